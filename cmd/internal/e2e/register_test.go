//go:build integration

package e2e

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// TestRegister: the plan's account registers (401 challenge answered):
// account_status 200 and Kamailio has the location.
func TestRegister(t *testing.T) {
	e := newEnv(t)
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	st := waitRegistered(t, e.c, "acc1", 200)
	if st.Calls == nil || len(st.Calls) != 0 {
		t.Errorf("calls = %#v, want [] (never null)", st.Calls)
	}
	if err := e.k.WaitLocation(e.ctx, "3001", true); err != nil {
		t.Fatal(err)
	}
	contacts, err := e.k.Contacts()
	if err != nil {
		t.Fatal(err)
	}
	if len(contacts["3001"]) != 1 || !strings.Contains(contacts["3001"][0], "127.0.0.1") {
		t.Errorf("contacts of 3001 = %v, want one 127.0.0.1 contact", contacts["3001"])
	}
	if len(e.k.LogLines("AUTH challenge REGISTER 3001")) == 0 {
		t.Error("the REGISTER was never challenged: the test registrar is misconfigured")
	}
}

// TestWrongPassword: a rejected REGISTER gives account_status 401 or 403
// and a fail naming the account, broadcast to every client (the rejection
// of a login's REGISTER arrives after the command has returned).
func TestWrongPassword(t *testing.T) {
	e := newEnv(t)
	a := e.user("acc1", "3001")
	a.Pass = "not-the-password"
	e.start(&plan{Accounts: []account{a}})
	// The REGISTER at start-up fails before any client can connect: the
	// status tells.
	st := waitStatus(t, e.c, "acc1", 10*time.Second, "account_status 401/403", func(s api.Status) bool {
		return s.AccountStatus == 401 || s.AccountStatus == 403
	})
	t.Logf("account_status %d after start-up", st.AccountStatus)
	if ok, _ := e.k.Registered("3001"); ok {
		t.Error("kamailio has a location for 3001 after a wrong password")
	}

	c2 := e.d.Client(t)
	if err := c2.Ping(e.ctx); err != nil {
		t.Fatal(err)
	}
	wrong := "still-wrong"
	if err := e.c.Login(e.ctx, "acc1", nil, &wrong, nil); err != nil {
		t.Fatal(err)
	}
	isFail := func(m client.Message) bool { return m.Event == api.EventFail && m.Account == "acc1" }
	for i, c := range []*client.Client{e.c, c2} {
		m := wait(t, c, 10*time.Second, fmt.Sprintf("fail for acc1 (client %d)", i+1), isFail)
		if !strings.HasPrefix(m.Error, "Failed to log in to account: acc1: ") {
			t.Errorf("fail error = %q, want prefix %q", m.Error, "Failed to log in to account: acc1: ")
		}
		if strings.Contains(string(m.Raw), wrong) || strings.Contains(string(m.Raw), a.Pass) {
			t.Errorf("fail event leaks the password: %s", m.Raw)
		}
		t.Logf("client %d: %s", i+1, m.Raw)
	}
	waitStatus(t, e.c, "acc1", 5*time.Second, "account_status 401/403", func(s api.Status) bool {
		return s.AccountStatus == 401 || s.AccountStatus == 403
	})
	if log := e.d.Log(); strings.Contains(log, a.Pass) || strings.Contains(log, wrong) {
		t.Error("the daemon log contains a password")
	}

	// login with the right password fixes it without a restart.
	pass := "sip3001"
	if err := e.c.Login(e.ctx, "acc1", nil, &pass, nil); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, e.c, "acc1", 200)
	if err := e.k.WaitLocation(e.ctx, "3001", true); err != nil {
		t.Fatal(err)
	}
}

// TestLogout: logout un-registers: account_status 0 and the location is
// gone; login registers again.
func TestLogout(t *testing.T) {
	e := newEnv(t)
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)
	if err := e.k.WaitLocation(e.ctx, "3001", true); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Logout(e.ctx, "acc1"); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, e.c, "acc1", 0)
	if err := e.k.WaitLocation(peerCtx(t, 5*time.Second), "3001", false); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Login(e.ctx, "acc1", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	waitRegistered(t, e.c, "acc1", 200)
	if err := e.k.WaitLocation(e.ctx, "3001", true); err != nil {
		t.Fatal(err)
	}
}

// TestRegistrarRestart: the registrar goes away and comes back with an
// empty location table; the daemon registers again by itself (refresh
// before expiry, retries after failures).
func TestRegistrarRestart(t *testing.T) {
	e := newEnv(t)
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}, RegisterExpires: "10s", RegisterRetry: "1s"})
	waitRegistered(t, e.c, "acc1", 200)
	if err := e.k.WaitLocation(e.ctx, "3001", true); err != nil {
		t.Fatal(err)
	}
	e.k.Stop()
	time.Sleep(3 * time.Second) // at least one refresh or retry fails meanwhile
	e.k.Restart()
	if ok, _ := e.k.Registered("3001"); ok {
		t.Fatal("location survived the restart: the test proves nothing")
	}
	start := time.Now()
	if err := e.k.WaitLocation(peerCtx(t, 20*time.Second), "3001", true); err != nil {
		t.Fatal(err)
	}
	t.Logf("registered again %v after the registrar restart", time.Since(start).Round(time.Millisecond))
	waitRegistered(t, e.c, "acc1", 200)
}

// TestSIGTERM: on SIGTERM the daemon hangs up (peer sees BYE), un-registers
// (location gone) and exits 0 within 2 s.
func TestSIGTERM(t *testing.T) {
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)
	e.callPeer(t, "acc1", "3002", p)

	start := time.Now()
	if err := e.d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := e.d.Wait(2 * time.Second)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("daemon after SIGTERM: %v (%v)", err, took)
	}
	t.Logf("exited %v after SIGTERM", took.Round(time.Millisecond))
	ev, err := p.WaitEvent(peerCtx(t, 3*time.Second), "CALL_CLOSED")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ev.Param, "Connection reset by peer") {
		t.Errorf("peer CALL_CLOSED %q, want a BYE (\"Connection reset by peer\")", ev.Param)
	}
	if ok, err := e.k.Registered("3001"); err != nil || ok {
		t.Errorf("location of 3001 after SIGTERM: present=%t (%v), want gone (un-REGISTER)", ok, err)
	}
}

// TestLoginOtherUser: login with another user on an account whose plan has
// no auth-user authenticates as the new user (the digest user follows
// "user"), so Kamailio, which requires the digest user to match From,
// accepts it: status 200 and the new user's location, the old one removed.
func TestLoginOtherUser(t *testing.T) {
	e := newEnv(t)
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)
	if err := e.k.WaitLocation(e.ctx, "3001", true); err != nil {
		t.Fatal(err)
	}
	user, pass := "3002", "sip3002"
	if err := e.c.Login(e.ctx, "acc1", &user, &pass, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.k.WaitLocation(peerCtx(t, 15*time.Second), "3002", true); err != nil {
		t.Fatalf("%v; kamailio REGISTER lines:\n%s", err, strings.Join(e.k.LogLines("REGISTER"), "\n"))
	}
	waitRegistered(t, e.c, "acc1", 200)
	if err := e.k.WaitLocation(peerCtx(t, 5*time.Second), "3001", false); err != nil {
		t.Error(err)
	}
	if len(e.k.LogLines("REGISTER saved 3002")) == 0 {
		t.Error("kamailio did not save a REGISTER of 3002")
	}
}
