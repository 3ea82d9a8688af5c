//go:build integration

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// TestCancelOutgoing: hangup-call on a ringing outgoing call sends CANCEL:
// call-ended, and the peer's ringing call closes.
func TestCancelOutgoing(t *testing.T) {
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{Answer: "manual"})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)
	id, err := e.c.MakeCall(e.ctx, "acc1", "3002")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitEvent(peerCtx(t, 10*time.Second), "CALL_INCOMING"); err != nil {
		t.Fatal(err)
	}
	waitCall(t, e.c, "acc1", id, "ringing or early", func(c api.Call) bool { return c.State == "ringing" || c.State == "early" })
	if err := e.c.HangupCall(e.ctx, "acc1", id, false); err != nil {
		t.Fatal(err)
	}
	ended := wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
	t.Logf("call-ended: reason %q code %d", ended.Reason, ended.Code)
	if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_CLOSED"); err != nil {
		t.Fatal(err)
	}
	if n, err := p.CallCount(); err != nil || n != 0 {
		t.Errorf("peer still has %d calls (%v) after the CANCEL", n, err)
	}
}

// TestDeclineIncoming: hangup-call on a ringing incoming call answers 486
// Busy Here, or 603 Decline with "decline": true.
func TestDeclineIncoming(t *testing.T) {
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)
	for _, tc := range []struct {
		name    string
		decline bool
		want    string
	}{
		{name: "busy", want: "486"},
		{name: "decline", decline: true, want: "603"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := p.Dial(e.uri("3001")); err != nil {
				t.Fatal(err)
			}
			in := wait(t, e.c, 10*time.Second, "call-incoming", event(api.EventCallIncoming, "acc1", -1))
			if err := e.c.HangupCall(e.ctx, "acc1", in.CallID, tc.decline); err != nil {
				t.Fatal(err)
			}
			wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", in.CallID))
			ev, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_CLOSED")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(ev.Param, tc.want) {
				t.Errorf("peer CALL_CLOSED %q, want %s", ev.Param, tc.want)
			}
		})
	}
}

// TestRemoteHold: the peer puts the call on hold (sendonly) and resumes it,
// then refreshes it with an unchanged offer; the daemon answers recvonly,
// sendrecv, sendrecv and the call goes on.
func TestRemoteHold(t *testing.T) {
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)
	id := e.callPeer(t, "acc1", "3002", p)
	if err := p.Hold(); err != nil {
		t.Fatal(err)
	}
	waitPeerDir(t, p, "sendonly")
	waitCall(t, e.c, "acc1", id, `hold "remote"`, func(c api.Call) bool { return c.State == "held" && c.Hold == "remote" })
	if err := p.Resume(); err != nil {
		t.Fatal(err)
	}
	waitPeerDir(t, p, "sendrecv")
	waitCall(t, e.c, "acc1", id, `hold "" after the resume`, func(c api.Call) bool { return c.State == "active" && c.Hold == "" })
	// A refresh re-INVITE with the same SDP (what session timers send) is
	// answered and changes nothing.
	before := len(e.k.LogLines("REINVITE INVITE from 3002 to 3001 dir=sendrecv"))
	if _, err := p.Command("reinvite", ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(e.k.LogLines("REINVITE INVITE from 3002 to 3001 dir=sendrecv")) == before {
		if time.Now().After(deadline) {
			t.Fatal("kamailio never saw the peer's refresh re-INVITE")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	waitPeerDir(t, p, "sendrecv")
	call := waitCall(t, e.c, "acc1", id, "active after the remote resume", func(c api.Call) bool { return c.State == "active" })
	if call.Stopped {
		t.Errorf("call = %+v after a remote hold/resume, want it going on", call)
	}
	if err := e.c.HangupCall(e.ctx, "acc1", id, false); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
}

// TestLocalCall: two accounts without a server call each other by user
// (real SIP over loopback, no registrar).
func TestLocalCall(t *testing.T) { localCall(t, "") }

// localCall is TestLocalCall with the daemon on address ("": 127.0.0.1)
// and transports (none: the default).
func localCall(t *testing.T, address string, transports ...string) {
	ctx := peerCtx(t, 60*time.Second)
	e := &env{t: t, ctx: ctx}
	e.start(&plan{Accounts: []account{
		{Name: "account-1", User: "3001", Pass: "x"},
		{Name: "account-2", User: "3002", Pass: "x", DisplayName: "Second"},
	}, Address: address, Transports: transports})
	waitRegistered(t, e.c, "account-1", 0)
	id, in := callAcross(t, e.c, ctx, "account-1", "3002", "account-2")
	if in.CallID == id || in.Caller != "3001" {
		t.Errorf("call-incoming %s: want a call id other than %d from 3001", in.Raw, id)
	}
	wait(t, e.c, 5*time.Second, "call-answered (callee)", event(api.EventCallAnswered, "account-2", in.CallID))
	time.Sleep(time.Second)
	call := waitCall(t, e.c, "account-1", id, "media flowing", func(c api.Call) bool { return c.PacketsReceived > 10 })
	t.Logf("caller leg after 1 s: %+v", call)
	if err := e.c.HangupCall(ctx, "account-1", id, false); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 5*time.Second, "call-ended (caller)", event(api.EventCallEnded, "account-1", id))
	wait(t, e.c, 5*time.Second, "call-ended (callee)", event(api.EventCallEnded, "account-2", in.CallID))
}
