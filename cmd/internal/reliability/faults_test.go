//go:build integration

package reliability

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// timerF is RFC 3261's Timer F (64*T1): how long a non-INVITE client
// transaction, a REGISTER for instance, waits for an answer.
const timerF = 32 * time.Second

// callPeer places a call from acc1 to ext through the registrar and waits
// until both ends have it up.
func callPeer(t *testing.T, e *daemonEnv, p *testpeers.Baresip, ext string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	since := p.EventCount()
	id, err := e.c.MakeCall(ctx, "acc1", ext)
	if err != nil {
		t.Fatalf("make-call %s: %v", ext, err)
	}
	m, err := next(ctx, e.c, callEvent("acc1", id, api.EventCallAnswered, api.EventCallEnded))
	if err != nil || m.Event != api.EventCallAnswered {
		t.Fatalf("call %d to %s not answered: %s %v", id, ext, m.Raw, err)
	}
	if _, err := p.WaitEventSince(ctx, since, "CALL_ESTABLISHED"); err != nil {
		t.Fatal(err)
	}
	return id
}

// hangupSeen hangs up call id and waits for call-ended and the peer's BYE.
func hangupSeen(t *testing.T, e *daemonEnv, p *testpeers.Baresip, id int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	since := p.EventCount()
	if err := e.c.HangupCall(ctx, "acc1", id, false); err != nil {
		t.Fatalf("hangup-call %d: %v", id, err)
	}
	if _, err := next(ctx, e.c, callEvent("acc1", id, api.EventCallEnded)); err != nil {
		t.Fatalf("call-ended %d: %v", id, err)
	}
	if _, err := p.WaitEventSince(ctx, since, "CALL_CLOSED"); err != nil {
		t.Fatalf("the peer never saw the BYE of call %d: %v", id, err)
	}
}

func callUp(t *testing.T, e *daemonEnv, id int) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := e.c.GetStatus(ctx, "acc1")
	if err != nil || len(st) != 1 {
		t.Fatalf("get-status: %+v %v", st, err)
	}
	for _, c := range st[0].Calls {
		if c.CallID == id {
			return !c.Stopped
		}
	}
	return false
}

// callThroughRegistrar starts Kamailio, baresip 3002 and the daemon's
// account 3001 (registrations of 10 s, so refreshes happen during a test)
// and places a call from 3001 to 3002.
func callThroughRegistrar(t *testing.T) (*testpeers.Kamailio, *testpeers.Baresip, *daemonEnv, int) {
	t.Helper()
	k := testpeers.StartKamailio(t, testpeers.KamailioOptions{})
	p := testpeers.StartBaresip(t, "3002", testpeers.BaresipOptions{Registrar: k.Addr()})
	e := startDaemon(t, planOpts{Accounts: []account{{Name: "acc1", User: "3001", Server: k.Addr()}}, Expires: "10s"})
	waitRegistered(t, e.c, "acc1", 200, 15*time.Second)
	return k, p, e, callPeer(t, e, p, "3002")
}

// TestRegistrarFrozen: Kamailio is stopped (SIGSTOP of its process group)
// for longer than Timer F while a call is up and registrations are being
// refreshed. The daemon keeps answering its API, reports the registration
// failure (account_status 408), keeps the call, and once Kamailio runs
// again it registers by itself and the call can be hung up through it.
func TestRegistrarFrozen(t *testing.T) {
	k, p, e, id := callThroughRegistrar(t)

	frozen := false
	freeze := func(sig syscall.Signal) {
		if err := syscall.Kill(-k.PID(), sig); err != nil {
			t.Fatalf("kill -%v kamailio: %v", sig, err)
		}
		frozen = sig == syscall.SIGSTOP
	}
	t.Cleanup(func() {
		if frozen {
			freeze(syscall.SIGCONT)
		}
	})
	freeze(syscall.SIGSTOP)
	start := time.Now()
	// A refresh is due within 2/3 of 10 s and gives up after Timer F.
	waitRegistered(t, e.c, "acc1", 408, 10*time.Second+timerF+5*time.Second)
	t.Logf("account_status 408 %v after the freeze", time.Since(start).Round(time.Millisecond))
	for time.Since(start) < timerF+2*time.Second {
		e.alive(t, "registrar frozen")
		time.Sleep(time.Second)
	}
	if !callUp(t, e, id) {
		t.Fatal("the call ended while the registrar was frozen (media does not pass through it)")
	}
	freeze(syscall.SIGCONT)
	released := time.Now()
	waitRegistered(t, e.c, "acc1", 200, 15*time.Second)
	if err := k.WaitLocation(context.Background(), "3001", true); err != nil {
		t.Fatal(err)
	}
	t.Logf("registered again %v after the release", time.Since(released).Round(time.Millisecond))
	hangupSeen(t, e, p, id)
}

// TestRegistrarRestarted: Kamailio restarts (its location table lost)
// while a call is up: the daemon registers again by itself, the call stays
// up and is hung up through the new Kamailio, and a new call works.
func TestRegistrarRestarted(t *testing.T) {
	k, p, e, id := callThroughRegistrar(t)

	k.Restart()
	if ok, _ := k.Registered("3001"); ok {
		t.Fatal("location survived the restart: the test proves nothing")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := k.WaitLocation(ctx, "3001", true); err != nil {
		t.Fatal(err)
	}
	if !callUp(t, e, id) {
		t.Fatal("the call ended with the registrar restart")
	}
	hangupSeen(t, e, p, id)
	// baresip 3002 re-registers on its own (hourly) schedule: a new call
	// goes to a peer that registered with the new Kamailio.
	p2 := testpeers.StartBaresip(t, "3003", testpeers.BaresipOptions{Registrar: k.Addr()})
	hangupSeen(t, e, p2, callPeer(t, e, p2, "3003"))
}

// TestPeerKilledMidCall: the peer is SIGKILLed during a call (no BYE): the
// daemon ends the call on RTP timeout, stays healthy and calls another
// peer.
func TestPeerKilledMidCall(t *testing.T) {
	k := testpeers.StartKamailio(t, testpeers.KamailioOptions{})
	p := testpeers.StartBaresip(t, "3002", testpeers.BaresipOptions{Registrar: k.Addr()})
	e := startDaemon(t, planOpts{Accounts: []account{{Name: "acc1", User: "3001", Server: k.Addr()}}, RTPTimeout: "3s"})
	waitRegistered(t, e.c, "acc1", 200, 15*time.Second)
	idle := e.idleStats(t)
	id := callPeer(t, e, p, "3002")
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	m, err := next(ctx, e.c, callEvent("acc1", id, api.EventCallEnded))
	if err != nil {
		t.Fatalf("no call-ended after the peer died: %v", err)
	}
	t.Logf("call-ended %v after SIGKILL: reason %q code %d", time.Since(killed).Round(time.Millisecond), m.Reason, m.Code)
	if !strings.Contains(m.Reason, "rtp timeout") {
		t.Errorf("call-ended reason %q, want rtp timeout", m.Reason)
	}
	e.alive(t, "after the peer died")
	p2 := testpeers.StartBaresip(t, "3003", testpeers.BaresipOptions{Registrar: k.Addr()})
	hangupSeen(t, e, p2, callPeer(t, e, p2, "3003"))
	waitIdle(t, e.c, "acc1", 20*time.Second)
	// The BYE to the dead peer may still be retransmitted (Timer F).
	e.backToIdle(t, idle, timerF+10*time.Second, "after the dead peer's call")
}

// tenCalls starts a daemon with ten accounts and a SIPp UAS that holds
// every call up, and places one call per account.
func tenCalls(t *testing.T) (*daemonEnv, *testpeers.Sipp, []string) {
	t.Helper()
	s := testpeers.StartSipp(t, testpeers.SippOptions{Scenario: "calls_uas.xml", Calls: 10, Timeout: 10 * time.Minute})
	var accts []account
	var names []string
	for i := range 10 {
		name := fmt.Sprintf("acc%d", i+1)
		accts = append(accts, account{Name: name, User: fmt.Sprintf("40%02d", i+1), MaxCalls: 1})
		names = append(names, name)
	}
	e := startDaemon(t, planOpts{Accounts: accts, RTPPorts: 60})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, a := range names {
		id, err := e.c.MakeCall(ctx, a, "sip:peer@"+s.Addr())
		if err != nil {
			t.Fatalf("make-call %s: %v", a, err)
		}
		m, err := next(ctx, e.c, callEvent(a, id, api.EventCallAnswered, api.EventCallEnded))
		if err != nil || m.Event != api.EventCallAnswered {
			t.Fatalf("%s call %d not answered: %s %v", a, id, m.Raw, err)
		}
	}
	return e, s, names
}

func activeAll(t *testing.T, e *daemonEnv) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := e.c.GetStatus(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range st {
		for _, c := range s.Calls {
			if !c.Stopped {
				n++
			}
		}
	}
	return n
}

// TestSignalsWithCalls: with 10 calls up, SIGHUP reloads without touching
// them; SIGTERM sends 10 BYEs (SIPp completes its 10 calls) and exits 0
// within 2 s; SIGKILL drops them and a new daemon on the same plan and
// ports starts and serves at once.
func TestSignalsWithCalls(t *testing.T) {
	t.Run("SIGHUP then SIGTERM", func(t *testing.T) {
		e, s, _ := tenCalls(t)
		if err := e.d.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		e.alive(t, "after SIGHUP")
		if n := activeAll(t, e); n != 10 {
			t.Fatalf("%d calls up after SIGHUP, want 10", n)
		}
		start := time.Now()
		if err := e.d.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := e.d.Wait(2 * time.Second); err != nil {
			t.Fatalf("after SIGTERM: %v", err)
		}
		t.Logf("exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
		if err := s.Wait(5 * time.Second); err != nil {
			t.Fatalf("SIPp did not get 10 BYEs: %v", err)
		}
	})
	t.Run("SIGKILL", func(t *testing.T) {
		e, _, _ := tenCalls(t)
		if err := e.d.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if err := e.d.Wait(2 * time.Second); err == nil {
			t.Fatal("SIGKILL: exit status 0")
		}
		start := time.Now()
		d2 := testpeers.StartDaemonWith(t, readFile(t, e.d.PlanPath()), testpeers.DaemonOptions{})
		c2 := d2.Client(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c2.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		st, err := c2.GetStatus(ctx, "")
		if err != nil || len(st) != 10 {
			t.Fatalf("get-status after restart: %d accounts, %v", len(st), err)
		}
		t.Logf("a new daemon served %v after SIGKILL of the old one", time.Since(start).Round(time.Millisecond))
	})
}
