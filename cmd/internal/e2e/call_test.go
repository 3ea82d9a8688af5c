//go:build integration

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// TestCallOut: make-call to an auto-answering peer through Kamailio (INVITE
// challenged with 407): call-return, call-answered; hangup-call: call-ended
// and the peer sees the BYE.
func TestCallOut(t *testing.T) {
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)

	// The raw form of the vendor document, to check call-return's shape.
	if err := e.c.SendRaw([]byte(`{"cmd":"make-call","account":"acc1","num":"3002"}`)); err != nil {
		t.Fatal(err)
	}
	ret := wait(t, e.c, 5*time.Second, "call-return", event(api.EventCallReturn, "acc1", -1))
	var shape map[string]any
	if err := json.Unmarshal(ret.Raw, &shape); err != nil {
		t.Fatal(err)
	}
	if _, isNum := shape["call_id"].(float64); !isNum || shape["account"] != "acc1" {
		t.Errorf("call-return = %s, want account acc1 and an integer call_id", ret.Raw)
	}
	id := ret.CallID
	wait(t, e.c, 10*time.Second, "call-answered", event(api.EventCallAnswered, "acc1", id))
	if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_ESTABLISHED"); err != nil {
		t.Fatal(err)
	}
	if len(e.k.LogLines("AUTH challenge INVITE 3001")) == 0 {
		t.Error("the INVITE was not challenged (407): test registrar misconfigured")
	}
	call := waitCall(t, e.c, "acc1", id, "started", func(c api.Call) bool { return c.Started })
	if call.Direction != "out" || call.Callee != "3002" || call.Caller != "3001" {
		t.Errorf("call = %+v, want out 3001 → 3002", call)
	}

	if err := e.c.HangupCall(e.ctx, "acc1", id, false); err != nil {
		t.Fatal(err)
	}
	ended := wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
	t.Logf("call-ended: reason %q code %d", ended.Reason, ended.Code)
	ev, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_CLOSED")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ev.Param, "Connection reset by peer") {
		t.Errorf("peer CALL_CLOSED %q, want a BYE", ev.Param)
	}
}

// TestCallIn: a peer calls the account: call-incoming with caller and
// caller_name, answer-call: call-answered; the peer hangs up: call-ended.
func TestCallIn(t *testing.T) {
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{DisplayName: "Alice Peer"})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)

	if err := p.Dial(e.uri("3001")); err != nil {
		t.Fatal(err)
	}
	in := wait(t, e.c, 10*time.Second, "call-incoming", event(api.EventCallIncoming, "acc1", -1))
	if in.Caller != "3002" || in.CallerName != "Alice Peer" {
		t.Errorf("call-incoming caller %q caller_name %q, want 3002 \"Alice Peer\"", in.Caller, in.CallerName)
	}
	call := waitCall(t, e.c, "acc1", in.CallID, "ringing", func(c api.Call) bool { return c.State == "ringing" })
	if call.Started || call.Stopped || call.Direction != "in" || call.Caller != "3002" || call.Callee != "3001" {
		t.Errorf("ringing call = %+v, want in 3002 → 3001, not started", call)
	}
	if err := e.c.AnswerCall(e.ctx, "acc1", in.CallID); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 5*time.Second, "call-answered", event(api.EventCallAnswered, "acc1", in.CallID))
	if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_ESTABLISHED"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := p.Hangup(); err != nil {
		t.Fatal(err)
	}
	ended := wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", in.CallID))
	t.Logf("call-ended: reason %q code %d", ended.Reason, ended.Code)
	if !strings.Contains(strings.ToLower(ended.Reason), "remote") {
		t.Errorf("call-ended reason %q, want a remote hangup", ended.Reason)
	}
}

// TestCallerCancels: the peer gives up before the account answers: the
// daemon sees CANCEL and broadcasts call-ended.
func TestCallerCancels(t *testing.T) {
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)
	if err := p.Dial(e.uri("3001")); err != nil {
		t.Fatal(err)
	}
	in := wait(t, e.c, 10*time.Second, "call-incoming", event(api.EventCallIncoming, "acc1", -1))
	if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_RINGING"); err != nil {
		t.Fatal(err)
	}
	if err := p.Hangup(); err != nil {
		t.Fatal(err)
	}
	ended := wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", in.CallID))
	t.Logf("call-ended: reason %q code %d", ended.Reason, ended.Code)
	// Answering the cancelled call must now fail.
	if err := e.c.AnswerCall(e.ctx, "acc1", in.CallID); err == nil {
		t.Error("answer-call of a cancelled call succeeded")
	}
}

// TestRejectedCalls: a busy callee (486) and an absent one (not registered:
// Kamailio answers 404) end the call with the SIP code.
func TestRejectedCalls(t *testing.T) {
	e := newEnv(t)
	busy := e.peer("3002", testpeers.BaresipOptions{Answer: "manual"})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)

	t.Run("busy", func(t *testing.T) {
		id, err := e.c.MakeCall(e.ctx, "acc1", "3002")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := busy.WaitEvent(peerCtx(t, 10*time.Second), "CALL_INCOMING"); err != nil {
			t.Fatal(err)
		}
		if err := busy.Hangup(); err != nil { // 486 Busy Here
			t.Fatal(err)
		}
		ended := wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
		if ended.Code != 486 || !strings.Contains(ended.Reason, "486") {
			t.Errorf("call-ended code %d reason %q, want 486 Busy Here", ended.Code, ended.Reason)
		}
		// The lingering call keeps why it ended.
		c := waitCall(t, e.c, "acc1", id, "lingering", func(api.Call) bool { return true })
		if !c.Stopped || c.EndCode == nil || *c.EndCode != ended.Code || c.EndReason != ended.Reason || c.DurationS != 0 {
			t.Errorf("lingering call %+v, want stopped with end_reason %q and end_code %d, duration 0", c, ended.Reason, ended.Code)
		}
	})
	t.Run("absent", func(t *testing.T) {
		id, err := e.c.MakeCall(e.ctx, "acc1", "3009")
		if err != nil {
			t.Fatal(err)
		}
		ended := wait(t, e.c, 10*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
		if ended.Code != 404 && ended.Code != 480 {
			t.Errorf("call-ended code %d reason %q, want 404 or 480", ended.Code, ended.Reason)
		}
		st := status(t, e.c, "acc1")
		if c, ok := findCall(st, id); ok && (!c.Stopped || c.Started) {
			t.Errorf("rejected call in status: %+v, want stopped and never started", c)
		}
	})
}

// TestSwitchCall: two answered calls on one account; answering the second
// holds the first, switch-call swaps them. The peers see the hold
// (recvonly) and the resume (sendrecv), and Kamailio sees the re-INVITEs.
func TestSwitchCall(t *testing.T) {
	e := newEnv(t)
	p1 := e.peer("3002", testpeers.BaresipOptions{})
	p2 := e.peer("3003", testpeers.BaresipOptions{Source: "ausine,880"})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)

	answerFrom := func(p *testpeers.Baresip) int {
		t.Helper()
		if err := p.Dial(e.uri("3001")); err != nil {
			t.Fatal(err)
		}
		in := wait(t, e.c, 10*time.Second, "call-incoming from "+p.Ext(), func(m client.Message) bool {
			return m.Event == api.EventCallIncoming && m.Caller == p.Ext()
		})
		if err := e.c.AnswerCall(e.ctx, "acc1", in.CallID); err != nil {
			t.Fatal(err)
		}
		wait(t, e.c, 5*time.Second, "call-answered", event(api.EventCallAnswered, "acc1", in.CallID))
		if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_ESTABLISHED"); err != nil {
			t.Fatal(err)
		}
		return in.CallID
	}
	id1 := answerFrom(p1)
	waitPeerDir(t, p1, "sendrecv")
	id2 := answerFrom(p2)
	// Answering the second call put the first on hold.
	waitPeerDir(t, p1, "recvonly")
	waitPeerDir(t, p2, "sendrecv")
	checkActive(t, e, id1, id2)
	if c1, c2 := waitCall(t, e.c, "acc1", id1, "held", func(api.Call) bool { return true }),
		waitCall(t, e.c, "acc1", id2, "active", func(api.Call) bool { return true }); c1.Hold != "local" || c2.Hold != "" {
		t.Errorf("hold after answering the second call: %q and %q, want local and none", c1.Hold, c2.Hold)
	}

	if err := e.c.SwitchCall(e.ctx, "acc1", id1); err != nil {
		t.Fatal(err)
	}
	waitPeerDir(t, p2, "recvonly")
	waitPeerDir(t, p1, "sendrecv")
	checkActive(t, e, id2, id1)
	waitCall(t, e.c, "acc1", id2, `hold "local" after switch-call`, func(c api.Call) bool { return c.Hold == "local" })

	// Switching to the active call changes nothing and is no error.
	if err := e.c.SwitchCall(e.ctx, "acc1", id1); err != nil {
		t.Errorf("switch-call to the active call: %v", err)
	}
	if err := e.c.SwitchCall(e.ctx, "acc1", id2); err != nil {
		t.Fatal(err)
	}
	waitPeerDir(t, p1, "recvonly")
	waitPeerDir(t, p2, "sendrecv")
	checkActive(t, e, id1, id2)

	// SIP-level check: the daemon's in-dialog offers as Kamailio relayed
	// them (From is the daemon's own URI in its requests, RFC 3261 12.2.1.1).
	holds := len(e.k.LogLines("from 3001 to 3002 dir=sendonly")) + len(e.k.LogLines("from 3001 to 3003 dir=sendonly"))
	resumes := len(e.k.LogLines("from 3001 to 3002 dir=sendrecv")) + len(e.k.LogLines("from 3001 to 3003 dir=sendrecv"))
	if holds != 3 || resumes != 2 {
		t.Errorf("kamailio saw %d hold and %d resume re-INVITEs, want 3 and 2:\n%s", holds, resumes, strings.Join(e.k.LogLines("REINVITE"), "\n"))
	}
	for _, id := range []int{id1, id2} {
		if err := e.c.HangupCall(e.ctx, "acc1", id, false); err != nil {
			t.Fatal(err)
		}
		wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
	}
}

// checkActive: get-status shows held as held and active as the active call.
func checkActive(t *testing.T, e *env, held, active int) {
	t.Helper()
	waitStatus(t, e.c, "acc1", 5*time.Second, "held/active", func(s api.Status) bool {
		h, ok1 := findCall(s, held)
		a, ok2 := findCall(s, active)
		return ok1 && ok2 && h.State == "held" && !h.Active && a.State == "active" && a.Active
	})
}

// TestGetStatusFields: every documented field of a call through its life,
// and the ended call disappears after ended-call-linger.
func TestGetStatusFields(t *testing.T) {
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001"), e.user("acc2", "3004")}, Linger: "2s"})
	waitRegistered(t, e.c, "acc1", 200)
	waitRegistered(t, e.c, "acc2", 200)

	// Without account: one status per account, in plan order.
	all, err := e.c.GetStatus(e.ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].Account != "acc1" || all[1].Account != "acc2" {
		t.Errorf("get-status without account = %+v, want acc1 then acc2", all)
	}

	id := e.callOut(t, "acc1", "3002")
	time.Sleep(1500 * time.Millisecond) // let RTP counters move

	// The raw status, to check the field names and JSON types.
	if err := e.c.Send(map[string]any{"cmd": "get-status", "account": "acc1"}); err != nil {
		t.Fatal(err)
	}
	m := wait(t, e.c, 5*time.Second, "status", event(api.EventStatus, "acc1", -1))
	var raw struct {
		Event         string           `json:"event"`
		Account       string           `json:"account"`
		AccountStatus *int             `json:"account_status"`
		Calls         []map[string]any `json:"calls"`
	}
	if err := json.Unmarshal(m.Raw, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.AccountStatus == nil || *raw.AccountStatus != 200 || len(raw.Calls) != 1 {
		t.Fatalf("status = %s, want account_status 200 and one call", m.Raw)
	}
	c := raw.Calls[0]
	want := map[string]any{"call_id": float64(id), "caller": "3001", "callee": "3002", "started": true, "stopped": false,
		"state": "active", "direction": "out", "active": true}
	for k, v := range want {
		if c[k] != v {
			t.Errorf("status call %s = %#v, want %#v (call %v)", k, c[k], v, c)
		}
	}
	if n, _ := c["packets_received"].(float64); n < 20 {
		t.Errorf("packets_received = %v after 1.5 s of a call, want ≥ 20", c["packets_received"])
	}
	if n, _ := c["packets_sent"].(float64); n < 20 {
		t.Errorf("packets_sent = %v after 1.5 s of a call, want ≥ 20", c["packets_sent"])
	}
	if st := status(t, e.c, "acc2"); len(st.Calls) != 0 {
		t.Errorf("acc2 lists calls of acc1: %+v", st.Calls)
	}

	if err := p.Hangup(); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
	ended := waitCall(t, e.c, "acc1", id, "stopped", func(c api.Call) bool { return c.Stopped })
	if ended.State != "ended" || ended.Active {
		t.Errorf("ended call = %+v, want state ended, not active", ended)
	}
	endedAt := time.Now()
	waitStatus(t, e.c, "acc1", 5*time.Second, "ended call gone", func(s api.Status) bool { return len(s.Calls) == 0 })
	if d := time.Since(endedAt); d < time.Second {
		t.Errorf("ended call disappeared after %v, want about the 2 s linger", d)
	}

	// A second call gets the next call_id.
	id2 := e.callOut(t, "acc2", "3002")
	if id2 != id+1 {
		t.Errorf("second call_id = %d, want %d", id2, id+1)
	}
	if err := e.c.HangupCall(e.ctx, "acc2", id2, false); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc2", id2))
}
