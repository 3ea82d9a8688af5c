//go:build integration

package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// bigNum is a make-call target at Kamailio whose INVITE is over 1300 bytes
// (a long URI parameter; Kamailio's lookup replaces the Request-URI, so the
// peer gets an ordinary INVITE).
func bigNum(k *testpeers.Kamailio, ext string) string {
	return "sip:" + ext + "@" + k.Addr() + ";x-pad=" + strings.Repeat("p", 1400)
}

// bigCall makes the big call from acc1 to baresip 3002, checks both ends
// have it, hangs up, and returns the Kamailio log lines of its INVITEs.
func bigCall(t *testing.T, e *env, p *testpeers.Baresip) []string {
	t.Helper()
	id, err := e.c.MakeCall(e.ctx, "acc1", bigNum(e.k, "3002"))
	if err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 10*time.Second, "call-answered", event(api.EventCallAnswered, "acc1", id))
	if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_ESTABLISHED"); err != nil {
		t.Fatal(err)
	}
	waitCall(t, e.c, "acc1", id, "media started", func(c api.Call) bool { return c.Started && c.PacketsReceived > 0 })
	if err := e.c.HangupCall(e.ctx, "acc1", id, false); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
	if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_CLOSED"); err != nil {
		t.Fatal(err)
	}
	return e.k.LogLines("REQ INVITE sip:3002@")
}

// stopQuietly stops the daemon and fails the test on any warning or error
// it logged, shutdown included ("TCP ref went negative" from sipgo when a
// TCP connection was still open).
func stopQuietly(t *testing.T, e *env) {
	t.Helper()
	if err := e.d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	quiet(t, e.d)
}

// TestBigInviteOverTCP: RFC 3261 §18.1.1 against Kamailio listening on UDP
// and TCP: our INVITE of over 1300 bytes (and its challenged retry) reaches
// Kamailio over TCP although the account is on UDP, the call to baresip
// works, and the daemon stops without a warning.
func TestBigInviteOverTCP(t *testing.T) {
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}, Transports: []string{"udp", "tcp"}})
	waitRegistered(t, e.c, "acc1", 200)
	if regs := e.k.LogLines("REQ REGISTER sip:"); len(regs) == 0 || !strings.Contains(regs[0], "(udp:") {
		t.Fatalf("REGISTER not over UDP: %q", regs)
	}
	invites := bigCall(t, e, p)
	if len(invites) < 2 {
		t.Fatalf("Kamailio logged %d INVITEs, want the first and the one with credentials", len(invites))
	}
	for _, l := range invites {
		if !strings.Contains(l, "(tcp:") {
			t.Errorf("INVITE not over TCP: %s", l)
		}
	}
	stopQuietly(t, e)
}

// TestBigInviteFallsBackToUDP: the same against a Kamailio without TCP:
// the connect is refused, the INVITE goes over UDP after all (RFC 3261
// §18.1.1), and the call works.
func TestBigInviteFallsBackToUDP(t *testing.T) {
	e := &env{t: t, k: testpeers.StartKamailio(t, testpeers.KamailioOptions{UDPOnly: true}), ctx: peerCtx(t, 90*time.Second)}
	p := e.peer("3002", testpeers.BaresipOptions{})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}, Transports: []string{"udp", "tcp"}})
	waitRegistered(t, e.c, "acc1", 200)
	invites := bigCall(t, e, p)
	if len(invites) < 2 {
		t.Fatalf("Kamailio logged %d INVITEs, want the first and the one with credentials", len(invites))
	}
	for _, l := range invites {
		if !strings.Contains(l, "(udp:") {
			t.Errorf("INVITE not over UDP: %s", l)
		}
	}
	if !strings.Contains(e.d.Log(), "request over UDP after all") {
		t.Error("the daemon did not log the fallback to UDP")
	}
	stopQuietly(t, e)
}

// TestTCPDaemonStopsQuietly: a daemon registered over TCP stops with the
// connection to Kamailio open and logs no warning (sipgo's transport Close
// used to zero the connection's count under its reader: "TCP ref went
// negative").
func TestTCPDaemonStopsQuietly(t *testing.T) {
	e := newEnv(t)
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}, Transports: []string{"tcp"}})
	waitRegistered(t, e.c, "acc1", 200)
	if regs := e.k.LogLines("REQ REGISTER sip:"); len(regs) == 0 || !strings.Contains(regs[len(regs)-1], "(tcp:") {
		t.Fatalf("REGISTER not over TCP: %q", regs)
	}
	stopQuietly(t, e)
}
