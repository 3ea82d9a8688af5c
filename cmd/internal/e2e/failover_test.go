//go:build integration

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// serverOf is the server get-status says the account is on.
func serverOf(st api.Status) string {
	if st.Registration == nil {
		return ""
	}
	return st.Registration.Server
}

// TestRegistrarFailover plays a UCM-style primary/backup pair with two
// Kamailio instances: SIGSTOP the primary (it hangs without closing its
// sockets) and the account registers at the backup, with a fail naming
// both; a call through the backup works; a call set up through the
// primary before the switch stays up; SIGCONT the primary and the account
// is back on it within failback-interval.
func TestRegistrarFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	t.Cleanup(cancel)
	ka := testpeers.StartKamailio(t, testpeers.KamailioOptions{})
	kb := testpeers.StartKamailio(t, testpeers.KamailioOptions{})
	e := &env{t: t, ctx: ctx, k: ka}
	onA := testpeers.StartBaresip(t, "3008", testpeers.BaresipOptions{Registrar: ka.Addr()})
	onB := testpeers.StartBaresip(t, "3009", testpeers.BaresipOptions{Registrar: kb.Addr()})

	acc := account{Name: "acc1", User: "3001", Pass: "sip3001", Servers: []string{ka.Addr(), kb.Addr()}}
	p := &plan{Accounts: []account{acc}, RegisterExpires: "10s", RegisterRetry: "1s",
		SIPExtra: "register-timeout = \"2s\"\nfailback-interval = \"2s\"\n"}
	e.start(p)
	st := waitRegistered(t, e.c, "acc1", 200)
	if serverOf(st) != ka.Addr() {
		t.Fatalf("registered at %q, want the primary %s", serverOf(st), ka.Addr())
	}

	// A call through the primary, up before the switch.
	early := e.callPeer(t, "acc1", "3008", onA)

	if err := ka.Pause(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	fail := wait(t, e.c, 20*time.Second, "fail naming both servers", func(m client.Message) bool {
		return m.Event == api.EventFail && m.Account == "acc1"
	})
	if !strings.Contains(fail.Error, ka.Addr()) || !strings.Contains(fail.Error, kb.Addr()) {
		t.Errorf("fail %q does not name both servers", fail.Error)
	}
	waitStatus(t, e.c, "acc1", 20*time.Second, "registered at the backup", func(s api.Status) bool {
		return s.AccountStatus == 200 && serverOf(s) == kb.Addr()
	})
	t.Logf("failover: registered at the backup %.1f s after the primary stopped (register-expires 10s: refresh due after 5-6.7 s; register-timeout 2s; register-retry 1s)",
		time.Since(stopped).Seconds())

	// New calls go through the backup.
	late := e.callPeer(t, "acc1", "3009", onB)
	if len(kb.LogLines("REQ INVITE")) == 0 {
		t.Errorf("the backup saw no INVITE")
	}
	// The early call is still up, its media still flowing.
	before := waitCall(t, e.c, "acc1", early, "active", func(c api.Call) bool { return c.State == "held" || c.State == "active" })
	time.Sleep(time.Second)
	after := waitCall(t, e.c, "acc1", early, "receiving", func(c api.Call) bool { return !c.Stopped })
	if after.PacketsReceived <= before.PacketsReceived {
		t.Errorf("the call through the stopped primary receives no RTP: %d then %d packets", before.PacketsReceived, after.PacketsReceived)
	}

	if err := ka.Continue(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	waitStatus(t, e.c, "acc1", 15*time.Second, "back at the primary", func(s api.Status) bool {
		return s.AccountStatus == 200 && serverOf(s) == ka.Addr()
	})
	t.Logf("failback: registered at the primary %.1f s after it resumed (failback-interval 2s)", time.Since(resumed).Seconds())
	if ok, err := kb.Registered("3001"); err != nil || ok {
		t.Errorf("the backup still holds a binding for 3001 (%v, %v)", ok, err)
	}

	// Both calls end normally: BYE through the primary, and the backup.
	for _, id := range []int{early, late} {
		if err := e.c.HangupCall(ctx, "acc1", id, false); err != nil {
			t.Fatal(err)
		}
		ended := wait(t, e.c, 10*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
		if ended.Reason != "local hangup" {
			t.Errorf("call %d ended %q", id, ended.Reason)
		}
	}
	if _, err := onA.WaitEvent(peerCtx(t, 10*time.Second), "CALL_CLOSED"); err != nil {
		t.Errorf("the call through the primary: %v", err)
	}
}
