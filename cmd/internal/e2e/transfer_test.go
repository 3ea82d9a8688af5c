//go:build integration

package e2e

import (
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// establishedTo waits until peer p has an established call whose peer URI
// contains who.
func establishedTo(t *testing.T, p *testpeers.Baresip, who string, timeout time.Duration) testpeers.Event {
	t.Helper()
	ctx := peerCtx(t, timeout)
	for {
		ev, err := p.WaitEvent(ctx, "CALL_ESTABLISHED")
		if err != nil {
			t.Fatalf("baresip %s: no call established with %s: %v", p.Ext(), who, err)
		}
		if strings.Contains(ev.PeerURI, who) {
			return ev
		}
	}
}

// TestTransferOut: acc1 (3001) in a call with baresip B (3002) through
// Kamailio transfers B to baresip C (3003): B gets the REFER, calls C, B
// and C are in a call (their ctrl_tcp events), and acc1's call ends
// "transferred" (our BYE after B's NOTIFY 200).
func TestTransferOut(t *testing.T) {
	e := newEnv(t)
	b := e.peer("3002", testpeers.BaresipOptions{})
	c := e.peer("3003", testpeers.BaresipOptions{})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)
	id := e.callOut(t, "acc1", "3002")
	establishedTo(t, b, "3001", 5*time.Second)

	if err := e.c.TransferCall(e.ctx, "acc1", id, "3003"); err != nil {
		t.Fatal(err)
	}
	ev, err := b.WaitEvent(peerCtx(t, 5*time.Second), "TRANSFER")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ev.Param, "3003") {
		t.Errorf("B's TRANSFER %q, want the target 3003", ev.Param)
	}
	establishedTo(t, b, "3003", 10*time.Second)
	establishedTo(t, c, "3002", 10*time.Second)
	ended := wait(t, e.c, 10*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
	if ended.Reason != "transferred" {
		t.Errorf("call-ended reason %q code %d, want transferred", ended.Reason, ended.Code)
	}
	if len(e.k.LogLines("REQ REFER")) == 0 {
		t.Error("Kamailio saw no REFER: the transfer did not follow the route set")
	}
	// B and C stay in their call.
	time.Sleep(time.Second)
	if n, err := c.CallCount(); err != nil || n != 1 {
		t.Errorf("C has %d calls (%v), want its call with B", n, err)
	}
}

// TestTransferOutFails: the target does not exist (Kamailio answers B's
// INVITE 404): the daemon gets B's NOTIFY 404, broadcasts a fail with that
// status, and the call goes on, resumed from the hold of the transfer.
func TestTransferOutFails(t *testing.T) {
	e := newEnv(t)
	b := e.peer("3002", testpeers.BaresipOptions{})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)
	id := e.callOut(t, "acc1", "3002")
	establishedTo(t, b, "3001", 5*time.Second)
	if err := e.c.TransferCall(e.ctx, "acc1", id, "3999"); err != nil {
		t.Fatal(err)
	}
	f := wait(t, e.c, 15*time.Second, "fail", func(m client.Message) bool {
		return m.Event == api.EventFail && m.Account == "acc1" && m.Cmd == api.CmdTransferCall
	})
	if !strings.Contains(f.Error, "404") || !strings.Contains(f.Error, "3999") {
		t.Errorf("fail %q, want the target and B's 404", f.Error)
	}
	waitCall(t, e.c, "acc1", id, "resumed after the failed transfer", func(c api.Call) bool {
		return c.State == "active" && c.Active && !c.Stopped
	})
	waitPeerDir(t, b, "sendrecv")
	reinvites := e.k.LogLines("REINVITE INVITE from 3001")
	if len(reinvites) < 2 || !strings.Contains(reinvites[0], "dir=sendonly") || !strings.Contains(reinvites[len(reinvites)-1], "dir=sendrecv") {
		t.Errorf("re-INVITEs %q, want a hold for the transfer and the resume after it", reinvites)
	}
	// A second transfer while none is under way is accepted again; a
	// transfer of an unknown call fails at once.
	if err := e.c.TransferCall(e.ctx, "acc1", id+100, "3003"); err == nil || !strings.Contains(err.Error(), "unknown call_id") {
		t.Errorf("transfer of an unknown call: %v", err)
	}
	if err := e.c.HangupCall(e.ctx, "acc1", id, false); err != nil {
		t.Fatal(err)
	}
	ended := wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
	if ended.Reason != "local hangup" {
		t.Errorf("call-ended %q, want local hangup", ended.Reason)
	}
}

// TestTransferredByBaresip: baresip B transfers its call with acc1 to C
// (B's transfer command: REFER): the daemon accepts, announces
// call-transferred with the new call's ID, places the call to C, which
// answers; audio flows on acc1's channel (its echo: C hears its own 1200 Hz
// back); B hangs up after our NOTIFY 200 and the old call ends
// "transferred".
func TestTransferredByBaresip(t *testing.T) {
	e := newEnv(t)
	b := e.peer("3002", testpeers.BaresipOptions{})
	c := e.peer("3003", testpeers.BaresipOptions{Source: "ausine,1200", Record: true})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)
	id := e.callOut(t, "acc1", "3002")
	establishedTo(t, b, "3001", 5*time.Second)

	if _, err := b.Command("transfer", e.uri("3003")); err != nil {
		t.Fatal(err)
	}
	tr := wait(t, e.c, 5*time.Second, "call-transferred", event(api.EventCallTransferred, "acc1", id))
	if tr.NewCallID == id || !strings.Contains(tr.Target, "3003") {
		t.Errorf("call-transferred %s, want a new call to 3003", tr.Raw)
	}
	wait(t, e.c, 10*time.Second, "new call answered", event(api.EventCallAnswered, "acc1", tr.NewCallID))
	establishedTo(t, c, "3001", 5*time.Second)
	ended := wait(t, e.c, 10*time.Second, "old call ended", event(api.EventCallEnded, "acc1", id))
	if ended.Reason != "transferred" {
		t.Errorf("old call-ended reason %q, want transferred", ended.Reason)
	}
	waitCall(t, e.c, "acc1", tr.NewCallID, "new call active on the channel", func(c api.Call) bool {
		return c.State == "active" && c.Active && c.PacketsReceived > 20
	})
	time.Sleep(2500 * time.Millisecond)
	if err := e.c.HangupCall(e.ctx, "acc1", tr.NewCallID, false); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 5*time.Second, "new call ended", event(api.EventCallEnded, "acc1", tr.NewCallID))
	if _, err := c.WaitEvent(peerCtx(t, 5*time.Second), "CALL_CLOSED"); err != nil {
		t.Fatal(err)
	}
	wavs := c.ReceivedWAVs()
	if len(wavs) != 1 {
		t.Fatalf("C's recordings %v, want one", wavs)
	}
	a, err := testpeers.ReadWAV(wavs[0])
	if err != nil {
		t.Fatal(err)
	}
	expectTone(t, "C hears its tone through acc1's echo channel", a.Slice(1, a.Seconds()-0.2), 1200, 0.5)
}

// TestTransferredToUnreachable: a transferor (SIPp) refers acc1 to a
// local TCP port nothing listens on (127.0.0.1 only): REFER accepted 202,
// the daemon's INVITE is refused at once, call-transferred and the new
// call's call-ended are broadcast, the NOTIFYs report 100 then 503
// (checked by SIPp), and the old call stays up and active on the channel.
// (baresip 1.0 as transferor hangs up itself when a transfer fails, so it
// cannot show that the daemon keeps the call.)
func TestTransferredToUnreachable(t *testing.T) {
	e, p := cucmEnv(t, "udp", "tcp")
	dead := testpeers.FreePort(t) // claimed, never listened on
	target := "sip:3009@127.0.0.1:" + strconv.Itoa(dead) + ";transport=tcp"
	c := sippTo(t, e, p, "refer_unreachable_uac.xml", testpeers.SippOptions{Keys: map[string]string{"target": target}})
	id := c.answer("2011")
	tr := c.event("call-transferred", event(api.EventCallTransferred, "acc1", id))
	if tr.Target != target {
		t.Errorf("call-transferred target %q, want %q", tr.Target, target)
	}
	nc := c.event("new call ended", event(api.EventCallEnded, "acc1", tr.NewCallID))
	t.Logf("referred call ended: %q %d", nc.Reason, nc.Code)
	c.s.Reached("failed")
	c.state(id, "active", true)
	c.noEnded(id)
	c.s.Continue("failed")
	c.remoteHangup(id)
	c.passed()
}

// TestReplacesFromSipp: SIPp has a call with acc1, then a second SIPp
// sends an INVITE with Replaces naming it (RFC 3891): the daemon answers
// it at once (no call-incoming, no 180: SIPp fails on one), its
// call-answered carries replaces, the old call gets BYE and ends
// "replaced", and the new call has acc1's channel.
func TestReplacesFromSipp(t *testing.T) {
	e, p := cucmEnv(t)
	old := sippTo(t, e, p, "replaces_old_uac.xml", testpeers.SippOptions{})
	oldID := old.answer("2009")
	old.s.Reached("answered")
	m := regexp.MustCompile(`(?m)^SIP/2.0 200 OK[\s\S]*?^To:.*;tag=([^;\s>]+)`).FindStringSubmatch(old.s.Messages())
	if m == nil {
		t.Fatalf("no To tag in the daemon's 200 OK:\n%s", old.s.Messages())
	}
	rep := old.s.CallID() + ";to-tag=" + m[1] + ";from-tag=old1"
	repl := &cucmCall{env: e, s: testpeers.StartSipp(t, testpeers.SippOptions{
		Scenario: "replaces_new_uac.xml", Remote: "127.0.0.1:" + strconv.Itoa(p.SIPPort), Service: cucmUser,
		Keys: map[string]string{"replaces": rep},
	})}
	ans := repl.event("call-answered of the replacing call", func(m client.Message) bool {
		return m.Event == api.EventCallAnswered && m.Account == "acc1" && m.CallID != oldID
	})
	if ans.Replaces == nil || *ans.Replaces != oldID {
		t.Errorf("call-answered %s, want replaces %d", ans.Raw, oldID)
	}
	ended := repl.event("old call ended", event(api.EventCallEnded, "acc1", oldID))
	if ended.Reason != "replaced" {
		t.Errorf("old call-ended reason %q, want replaced", ended.Reason)
	}
	old.passed() // it got the BYE
	repl.state(ans.CallID, "active", true)
	repl.s.Reached("answered")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if m, err := e.c.WaitFor(ctx, event(api.EventCallIncoming, "acc1", ans.CallID)); err == nil {
		t.Errorf("call-incoming for the replacing call: %s", m.Raw)
	}
	repl.s.Continue("answered")
	repl.remoteHangup(ans.CallID)
	repl.passed()
}
