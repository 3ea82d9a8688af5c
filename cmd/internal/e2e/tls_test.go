//go:build integration

package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// tlsWorld is a CA made with openssl, a Kamailio with a TLS listener whose
// certificate it signed, and a baresip peer registered over TLS.
type tlsWorld struct {
	ca         *testpeers.TestCA
	k          *testpeers.Kamailio
	cert, key  string // the daemon's
	peerBundle string // the peer's certificate and key in one file
}

func newTLSWorld(t *testing.T) *tlsWorld {
	t.Helper()
	w := &tlsWorld{ca: testpeers.NewTestCA(t, "main")}
	kc, kk := w.ca.Issue("kamailio", "IP:127.0.0.1", "DNS:localhost")
	w.k = testpeers.StartKamailio(t, testpeers.KamailioOptions{TLS: &testpeers.KamailioTLS{Cert: kc, Key: kk, CA: w.ca.Cert}})
	w.cert, w.key = w.ca.Issue("daemon", "IP:127.0.0.1")
	pc, pk := w.ca.Issue("peer", "IP:127.0.0.1")
	w.peerBundle = pc + ".bundle"
	c, _ := os.ReadFile(pc)
	k, _ := os.ReadFile(pk)
	if err := os.WriteFile(w.peerBundle, append(c, k...), 0o600); err != nil {
		t.Fatal(err)
	}
	return w
}

// plan is a daemon plan with TLS (and UDP for nothing but the listener
// rules) whose account registers at Kamailio's TLS address.
func (w *tlsWorld) plan(t *testing.T, ca string) *plan {
	return &plan{
		Accounts:   []account{{Name: "acc1", User: "3001", Pass: "sip3001", Server: "tls:" + w.k.TLSAddr()}},
		Transports: []string{"udp", "tls"},
		SIPExtra: fmt.Sprintf("tls-port = %d\ntls-certificate = %q\ntls-key = %q\ntls-ca = %q\n",
			testpeers.FreePort(t), w.cert, w.key, ca),
	}
}

// TestTLSRegisterAndCalls: REGISTER over TLS to Kamailio, a call to a
// baresip registered over TLS and one from it, every SIP hop on TLS.
func TestTLSRegisterAndCalls(t *testing.T) {
	w := newTLSWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, k: w.k}
	peer := testpeers.StartBaresip(t, "3009", testpeers.BaresipOptions{Registrar: w.k.TLSAddr(), Transport: "tls",
		TLSCA: w.ca.Cert, TLSCert: w.peerBundle})
	e.start(w.plan(t, w.ca.Cert))
	st := waitRegistered(t, e.c, "acc1", 200)
	if !strings.HasPrefix(serverOf(st), "tls:") {
		t.Errorf("status server %q", serverOf(st))
	}
	if lines := w.k.LogLines("REGISTER saved 3001"); len(lines) == 0 || !strings.Contains(strings.Join(w.k.LogLines("REQ REGISTER"), "\n"), "(tls:") {
		t.Fatalf("no REGISTER over TLS in Kamailio's log:\n%s", strings.Join(w.k.LogLines("REQ REGISTER"), "\n"))
	}

	// Out: the daemon calls the peer.
	id := e.callPeer(t, "acc1", "3009", peer)
	waitCall(t, e.c, "acc1", id, "receiving RTP", func(c api.Call) bool { return c.PacketsReceived > 10 })
	if err := e.c.HangupCall(ctx, "acc1", id, false); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 10*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
	if _, err := peer.WaitEvent(peerCtx(t, 5*time.Second), "CALL_CLOSED"); err != nil {
		t.Fatal(err)
	}

	// In: the peer calls the daemon.
	since := peer.EventCount()
	if err := peer.Dial("sip:3001@" + w.k.TLSAddr() + ";transport=tls"); err != nil {
		t.Fatal(err)
	}
	m := wait(t, e.c, 10*time.Second, "call-incoming over TLS", func(m client.Message) bool {
		return m.Event == api.EventCallIncoming && m.Account == "acc1"
	})
	if err := e.c.AnswerCall(ctx, "acc1", m.CallID); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 10*time.Second, "call-answered (in over TLS)", event(api.EventCallAnswered, "acc1", m.CallID))
	if _, err := peer.WaitEventSince(peerCtx(t, 5*time.Second), since, "CALL_ESTABLISHED"); err != nil {
		t.Fatal(err)
	}
	if err := peer.Hangup(); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 10*time.Second, "call-ended", event(api.EventCallEnded, "acc1", m.CallID))

	reqs := w.k.LogLines("REQ ")
	t.Logf("Kamailio saw:\n%s", strings.Join(reqs, "\n"))
	for _, l := range reqs {
		if strings.Contains(l, "3001") && !strings.Contains(l, "(tls:") {
			t.Errorf("a request of the daemon's account did not come over TLS: %s", l)
		}
	}
}

// TestTLSUnknownCA: a server certificate from a CA the daemon does not
// trust is a fail and account_status 503, never a registration, and never
// a fallback to plain TCP or UDP.
func TestTLSUnknownCA(t *testing.T) {
	w := newTLSWorld(t)
	other := testpeers.NewTestCA(t, "other")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, k: w.k}
	e.start(w.plan(t, other.Cert))
	waitRegistered(t, e.c, "acc1", 503)
	// The first fail may have gone out before the client connected: a
	// login makes the next failure reported again.
	if err := e.c.Login(ctx, "acc1", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	fail := wait(t, e.c, 15*time.Second, "fail for the certificate", func(m client.Message) bool {
		return m.Event == api.EventFail && m.Account == "acc1" && !strings.Contains(m.Error, "login")
	})
	if !strings.Contains(fail.Error, "certificate") {
		t.Errorf("fail %q does not name the certificate problem", fail.Error)
	}
	if ok, err := w.k.Registered("3001"); err != nil || ok {
		t.Errorf("registered anyway (%v, %v)", ok, err)
	}
	if n := len(w.k.LogLines("REQ REGISTER")); n != 0 {
		t.Errorf("Kamailio saw %d REGISTERs: a fallback to another transport", n)
	}
}

// TestTLSServerByName: a server given by host name proves that name, not
// the address it resolved to (RFC 3261 §26.3.1, RFC 5922 §4). Kamailio's
// certificate names only "localhost" (no IP address): the daemon, told
// `tls:localhost:PORT`, registers; one whose certificate names another host
// is refused.
func TestTLSServerByName(t *testing.T) {
	for _, tc := range []struct {
		name, san string
		want      int
	}{
		{"certificate names the host", "DNS:localhost", 200},
		{"certificate names another host", "DNS:pbx.example.com", 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ca := testpeers.NewTestCA(t, "main")
			kc, kk := ca.Issue("kamailio", tc.san)
			k := testpeers.StartKamailio(t, testpeers.KamailioOptions{TLS: &testpeers.KamailioTLS{Cert: kc, Key: kk, CA: ca.Cert}})
			cert, key := ca.Issue("daemon", "IP:127.0.0.1")
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			t.Cleanup(cancel)
			e := &env{t: t, ctx: ctx, k: k}
			_, port, _ := strings.Cut(k.TLSAddr(), ":")
			e.start(&plan{
				Accounts:   []account{{Name: "acc1", User: "3001", Pass: "sip3001", Server: "tls:localhost:" + port}},
				Transports: []string{"udp", "tls"},
				SIPExtra: fmt.Sprintf("tls-port = %d\ntls-certificate = %q\ntls-key = %q\ntls-ca = %q\n",
					testpeers.FreePort(t), cert, key, ca.Cert),
			})
			waitRegistered(t, e.c, "acc1", tc.want)
			if ok, err := k.Registered("3001"); err != nil || ok != (tc.want == 200) {
				t.Errorf("Kamailio holds a binding: %v (%v), want %v", ok, err, tc.want == 200)
			}
		})
	}
}
