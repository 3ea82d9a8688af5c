//go:build integration

package e2e

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// editPlan replaces old by new in the daemon's plan file and reloads it;
// it returns the reload's changes.
func editPlan(t *testing.T, e *env, old, new string) []api.Change {
	t.Helper()
	b, err := os.ReadFile(e.d.PlanPath())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("the plan has no %q", old)
	}
	if err := os.WriteFile(e.d.PlanPath(), []byte(strings.Replace(string(b), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.ctx, 15*time.Second)
	defer cancel()
	r, err := e.c.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r.Changes
}

// applied fails the test unless changes are exactly keys, none of them
// waiting for a restart.
func applied(t *testing.T, changes []api.Change, keys ...string) {
	t.Helper()
	var got []string
	for _, c := range changes {
		got = append(got, c.Key)
		if c.Restart {
			t.Errorf("%s needs a restart: %s", c.Key, c.Text)
		}
	}
	if strings.Join(got, " ") != strings.Join(keys, " ") {
		t.Errorf("reload changed %v, want %v", got, keys)
	}
}

// TestReloadTrustsSource: a PBX address added to [sip-settings] trusted
// by a reload is let in at once, no restart: SIPp on 127.0.0.2 is refused
// (403) before and rings the account after, while a call set up before
// the reload stays up with its media flowing.
func TestReloadTrustsSource(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, k: testpeers.StartKamailio(t, testpeers.KamailioOptions{NoInviteAuth: true})}
	peer := e.peer("3008", testpeers.BaresipOptions{})
	p := &plan{Accounts: []account{e.user("acc1", "3001")}}
	e.start(p)
	waitRegistered(t, e.c, "acc1", 200)
	live := e.callPeer(t, "acc1", "3008", peer)
	direct := "127.0.0.1:" + strconv.Itoa(p.SIPPort)

	refused := testpeers.StartSipp(t, testpeers.SippOptions{Scenario: "trust_stranger.xml", Bind: stranger,
		Remote: direct, Service: "3001", Timeout: 20 * time.Second})
	if err := refused.Wait(25 * time.Second); err != nil {
		t.Fatal(err)
	}
	before := status(t, e.c, "acc1").Refused
	if before < 2 {
		t.Fatalf("the stranger's INVITE and OPTIONS: refused %d, want 2", before)
	}

	changes := editPlan(t, e, "user-agent = \"telestra-e2e\"\n", "user-agent = \"telestra-e2e\"\ntrusted = [\""+stranger+"\"]\n")
	applied(t, changes, "sip-settings.trusted")

	// Trusted now: the same stranger's INVITE straight to the daemon rings.
	rings := testpeers.StartSipp(t, testpeers.SippOptions{Scenario: "trust_via_proxy.xml", Bind: stranger,
		Remote: direct, Service: "3001", Timeout: 30 * time.Second})
	m := wait(t, e.c, 10*time.Second, "call-incoming from the trusted source", func(m client.Message) bool {
		return m.Event == api.EventCallIncoming && m.Account == "acc1" && m.CallID != live
	})
	if err := e.c.HangupCall(ctx, "acc1", m.CallID, false); err != nil {
		t.Fatal(err)
	}
	if err := rings.Wait(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	if got := status(t, e.c, "acc1").Refused; got != before {
		t.Errorf("refused went from %d to %d after the reload trusted the source", before, got)
	}

	// The call from before the reload: up, receiving, and it ends normally.
	c1 := waitCall(t, e.c, "acc1", live, "up", func(c api.Call) bool { return !c.Stopped })
	time.Sleep(time.Second)
	c2 := waitCall(t, e.c, "acc1", live, "receiving", func(c api.Call) bool { return !c.Stopped })
	if c2.PacketsReceived <= c1.PacketsReceived || c2.State != "active" {
		t.Errorf("the call set up before the reload: %s, %d then %d packets", c2.State, c1.PacketsReceived, c2.PacketsReceived)
	}
	if err := e.c.HangupCall(ctx, "acc1", live, false); err != nil {
		t.Fatal(err)
	}
	if ended := wait(t, e.c, 10*time.Second, "call-ended", event(api.EventCallEnded, "acc1", live)); ended.Reason != "local hangup" {
		t.Errorf("the call from before the reload ended %q", ended.Reason)
	}
	if _, err := peer.WaitEvent(peerCtx(t, 10*time.Second), "CALL_CLOSED"); err != nil {
		t.Error(err)
	}
	if strings.Contains(e.d.Log(), "needs a restart") {
		t.Errorf("the daemon logged a restart for trusted")
	}
}

// TestKeepaliveDetectsHungRegistrar: SIGSTOP the registrar an account is
// registered at (it hangs, its sockets stay open) and the keepalive
// notices within keepalive-interval + register-timeout: the account is at
// its backup long before the REGISTER refresh (due 30-40 s after it
// registered) would have found out.
func TestKeepaliveDetectsHungRegistrar(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	ka := testpeers.StartKamailio(t, testpeers.KamailioOptions{})
	kb := testpeers.StartKamailio(t, testpeers.KamailioOptions{})
	e := &env{t: t, ctx: ctx, k: ka}
	acc := account{Name: "acc1", User: "3001", Pass: "sip3001", Servers: []string{ka.Addr(), kb.Addr()}}
	p := &plan{Accounts: []account{acc}, RegisterExpires: "60s", RegisterRetry: "1s",
		SIPExtra: "register-timeout = \"2s\"\nfailback-interval = \"60s\"\nkeepalive-interval = \"2s\"\n"}
	e.start(p)
	st := waitRegistered(t, e.c, "acc1", 200)
	if serverOf(st) != ka.Addr() {
		t.Fatalf("registered at %q, want the primary %s", serverOf(st), ka.Addr())
	}
	registered := time.Now()
	// The keepalive reaches Kamailio and is answered: still at the primary.
	time.Sleep(5 * time.Second)
	if n := len(ka.LogLines("REQ OPTIONS")); n < 2 {
		t.Fatalf("Kamailio saw %d OPTIONS in 5 s, want the keepalive every 2 s", n)
	}
	if st := status(t, e.c, "acc1"); st.AccountStatus != 200 || serverOf(st) != ka.Addr() {
		t.Fatalf("after answered keepalives: %d at %q", st.AccountStatus, serverOf(st))
	}

	if err := ka.Pause(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	fail := wait(t, e.c, 10*time.Second, "fail from the keepalive", func(m client.Message) bool {
		return m.Event == api.EventFail && m.Account == "acc1"
	})
	detected := time.Since(stopped)
	if !strings.Contains(fail.Error, "keepalive") || !strings.Contains(fail.Error, kb.Addr()) {
		t.Errorf("fail %q does not name the keepalive and the backup", fail.Error)
	}
	waitStatus(t, e.c, "acc1", 10*time.Second, "registered at the backup", func(s api.Status) bool {
		return s.AccountStatus == 200 && serverOf(s) == kb.Addr()
	})
	moved := time.Since(stopped)
	t.Logf("hung registrar detected %.1f s after SIGSTOP, registered at the backup after %.1f s (keepalive-interval 2s, register-timeout 2s, register-retry 1s; the refresh was due %.0f-%.0f s after SIGSTOP)",
		detected.Seconds(), moved.Seconds(), 30-stopped.Sub(registered).Seconds(), 40-stopped.Sub(registered).Seconds())
	if detected > 6*time.Second {
		t.Errorf("detection took %v, want within keepalive-interval + register-timeout (4 s) and some slack", detected)
	}
	if err := ka.Continue(); err != nil {
		t.Fatal(err)
	}
}

// TestReloadTLSCA: Kamailio's TLS certificate comes from a CA the plan
// does not trust, so the account cannot register (503, the certificate
// named); a reload naming Kamailio's CA in tls-ca is applied without a
// restart and the account registers over TLS at once.
func TestReloadTLSCA(t *testing.T) {
	w := newTLSWorld(t)
	other := testpeers.NewTestCA(t, "other")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, k: w.k}
	e.start(w.plan(t, other.Cert))
	waitRegistered(t, e.c, "acc1", 503)
	if n := len(w.k.LogLines("REQ REGISTER")); n != 0 {
		t.Fatalf("Kamailio saw %d REGISTERs from a daemon that does not trust it", n)
	}

	changes := editPlan(t, e, "tls-ca = "+q(other.Cert), "tls-ca = "+q(w.ca.Cert))
	applied(t, changes, "sip-settings.tls-ca")
	reloaded := time.Now()
	st := waitStatus(t, e.c, "acc1", 10*time.Second, "registered over TLS", func(s api.Status) bool { return s.AccountStatus == 200 })
	t.Logf("registered %.1f s after the reload (register-retry 1s)", time.Since(reloaded).Seconds())
	if !strings.HasPrefix(serverOf(st), "tls:") || !strings.Contains(strings.Join(w.k.LogLines("REQ REGISTER"), "\n"), "(tls:") {
		t.Errorf("not registered over TLS: %q\n%s", serverOf(st), strings.Join(w.k.LogLines("REQ REGISTER"), "\n"))
	}
	if strings.Contains(e.d.Log(), "needs a restart") {
		t.Errorf("the daemon logged a restart for tls-ca")
	}
}
