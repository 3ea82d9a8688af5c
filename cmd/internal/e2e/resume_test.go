//go:build integration

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
)

// callAndHangUp places a call from account-1 to account-2, answers it and
// hangs it up: five broadcast events (call-incoming, two call-answered, two
// call-ended).
func callAndHangUp(t *testing.T, c *client.Client, ctx context.Context) {
	t.Helper()
	id, in := callAcross(t, c, ctx, "account-1", "3002", "account-2")
	if in.Caller != "3001" {
		t.Errorf("call-incoming %s, want the caller 3001", in.Raw)
	}
	wait(t, c, 5*time.Second, "call-answered (callee)", event(api.EventCallAnswered, "account-2", in.CallID))
	if err := c.HangupCall(ctx, "account-1", id, false); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 5*time.Second, "call-ended (caller)", event(api.EventCallEnded, "account-1", id))
	wait(t, c, 5*time.Second, "call-ended (callee)", event(api.EventCallEnded, "account-2", in.CallID))
}

// broadcasts reads the broadcast events of c (seq > 0) until it has n.
func broadcasts(t *testing.T, c *client.Client, n int) []client.Message {
	t.Helper()
	var out []client.Message
	for len(out) < n {
		m := wait(t, c, 10*time.Second, fmt.Sprintf("broadcast %d of %d", len(out)+1, n), func(m client.Message) bool { return m.Seq > 0 })
		out = append(out, m)
	}
	return out
}

// resumeEnv starts two local accounts and returns the driving client, a
// recorder that stays connected, and the seq of the last event a watcher
// saw before it disconnected.
func resumeEnv(t *testing.T, history int) (e *env, recorder *client.Client, last uint64) {
	t.Helper()
	e = &env{t: t, ctx: peerCtx(t, 120*time.Second)}
	e.start(&plan{EventHistory: history, LogLevel: "info", Accounts: []account{
		{Name: "account-1", User: "3001", Pass: "x"},
		{Name: "account-2", User: "3002", Pass: "x"},
	}})
	recorder = e.d.Client(t)
	watcher := e.d.Client(t)
	if err := recorder.Ping(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := watcher.Ping(e.ctx); err != nil {
		t.Fatal(err)
	}
	callAndHangUp(t, e.c, e.ctx)
	seen := broadcasts(t, watcher, 5)
	broadcasts(t, recorder, 5)
	last = seen[4].Seq
	for i, m := range seen {
		if m.Seq != seen[0].Seq+uint64(i) {
			t.Fatalf("live seq not consecutive: %d after %d", m.Seq, seen[0].Seq)
		}
	}
	watcher.Close()
	return e, recorder, last
}

// TestResume: a client disconnects, ten calls (50 events) happen, it
// reconnects with resume: exactly those 50, in order, then live ones.
func TestResume(t *testing.T) {
	e, recorder, last := resumeEnv(t, 0)
	for range 10 {
		callAndHangUp(t, e.c, e.ctx)
	}
	missed := broadcasts(t, recorder, 50)
	if missed[0].Seq != last+1 || missed[49].Seq != last+50 {
		t.Fatalf("recorder saw seq %d..%d, want %d..%d", missed[0].Seq, missed[49].Seq, last+1, last+50)
	}

	back := e.d.Client(t)
	if err := back.Resume(last, ""); err != nil {
		t.Fatal(err)
	}
	pong, err := back.Pong(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if pong.Seq != last+50 {
		t.Errorf("pong seq %d, want %d", pong.Seq, last+50)
	}
	// WaitFor for the pong kept what came before it, in order.
	replayed := broadcasts(t, back, 50)
	for i := range missed {
		if string(replayed[i].Raw) != string(missed[i].Raw) {
			t.Fatalf("replayed event %d = %s, want %s", i, replayed[i].Raw, missed[i].Raw)
		}
	}
	ctx, cancel := context.WithTimeout(e.ctx, 300*time.Millisecond)
	defer cancel()
	if m, err := back.Next(ctx); err == nil {
		t.Fatalf("after the replay and the pong: %s, want nothing until the next event", m.Raw)
	}
	callAndHangUp(t, e.c, e.ctx)
	live := broadcasts(t, back, 5)
	if live[0].Seq != last+51 || live[0].Event != api.EventCallIncoming {
		t.Fatalf("first live event after the replay: %s, want call-incoming with seq %d", live[0].Raw, last+51)
	}
}

// TestResumeTooOld: with a history of 16, the 50 missed events are
// reported as 34 lost, the 16 kept follow, then the live stream.
func TestResumeTooOld(t *testing.T) {
	e, recorder, last := resumeEnv(t, 16)
	for range 10 {
		callAndHangUp(t, e.c, e.ctx)
	}
	missed := broadcasts(t, recorder, 50)

	back := e.d.Client(t)
	if err := back.Resume(last, ""); err != nil {
		t.Fatal(err)
	}
	fail := wait(t, back, 5*time.Second, "fail of resume", func(m client.Message) bool { return m.Event == api.EventFail })
	want := fmt.Sprintf("resume: 34 events lost: events %d to %d are no longer kept ([tcp-settings] event-history is 16); the 16 kept ones follow", last+1, last+34)
	if fail.Cmd != api.CmdResume || fail.Error != want || fail.Seq != 0 {
		t.Fatalf("fail %s, want cmd resume, error %q", fail.Raw, want)
	}
	kept := broadcasts(t, back, 16)
	for i := range kept {
		if string(kept[i].Raw) != string(missed[34+i].Raw) {
			t.Fatalf("kept event %d = %s, want %s", i, kept[i].Raw, missed[34+i].Raw)
		}
	}
	callAndHangUp(t, e.c, e.ctx)
	if live := broadcasts(t, back, 1); live[0].Seq != last+51 {
		t.Fatalf("live event %s, want seq %d", live[0].Raw, last+51)
	}
}

// TestTagsEchoed: against the real daemon, every direct answer echoes the
// command's tag, commands without an answer stay silent, and a malformed
// tag is a fail naming the field.
func TestTagsEchoed(t *testing.T) {
	e := &env{t: t, ctx: peerCtx(t, 60*time.Second)}
	e.start(&plan{LogLevel: "info", Accounts: []account{
		{Name: "account-1", User: "3001", Pass: "x"},
		{Name: "account-2", User: "3002", Pass: "x"},
	}})
	// Not a broadcast: call-incoming and the rest carry a seq, and so does
	// pong (the latest); a command's fail has none.
	direct := func(m client.Message) bool {
		switch m.Event {
		case api.EventCallReturn, api.EventStatus, api.EventPong, api.EventLogLevel:
			return true
		}
		return m.Event == api.EventFail && m.Seq == 0
	}
	send := func(raw string) {
		t.Helper()
		if err := e.c.SendRaw([]byte(raw)); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(what string, check func(client.Message) bool) client.Message {
		t.Helper()
		m := wait(t, e.c, 5*time.Second, what, direct)
		if !check(m) {
			t.Fatalf("%s: got %s", what, m.Raw)
		}
		return m
	}

	send(`{"cmd":"make-call","account":"account-1","num":"3002","tag":"call-1"}`)
	ret := expect("tagged call-return", func(m client.Message) bool { return m.Event == api.EventCallReturn && m.Tag == "call-1" })
	send(`{"cmd":"get-status","tag":"st-1"}`)
	for _, acct := range []string{"account-1", "account-2"} {
		expect("tagged status of "+acct, func(m client.Message) bool {
			return m.Event == api.EventStatus && m.Account == acct && m.Tag == "st-1"
		})
	}
	// hangup-call has no answer of its own: a tagged ping confirms it.
	send(fmt.Sprintf(`{"cmd":"hangup-call","account":"account-1","call_id":%d,"tag":"h-1"}`, ret.CallID))
	send(`{"cmd":"ping","tag":"h-1"}`)
	expect("tagged pong after hangup-call", func(m client.Message) bool { return m.Event == api.EventPong && m.Tag == "h-1" })
	send(`{"cmd":"hangup-call","account":"account-1","call_id":999,"tag":"h-2"}`)
	expect("tagged fail of the daemon", func(m client.Message) bool {
		return m.Event == api.EventFail && m.Tag == "h-2" && m.Cmd == api.CmdHangupCall && strings.Contains(m.Error, "999")
	})
	send(`{"cmd":"log-level","tag":"l-1"}`)
	expect("tagged log-level", func(m client.Message) bool {
		return m.Event == api.EventLogLevel && m.Level == "info" && m.Tag == "l-1"
	})
	send(`{"cmd":"get-status","account":"account-1","tag":["x"]}`)
	expect("fail naming tag", func(m client.Message) bool {
		return m.Event == api.EventFail && m.Tag == "" && m.Error == `get-status: field "tag" must be a string`
	})
	send(`{"cmd":"ping","tag":"` + strings.Repeat("x", 65) + `"}`)
	expect("fail for a long tag", func(m client.Message) bool {
		return m.Event == api.EventFail && m.Error == `ping: field "tag" is 65 bytes long; at most 64 are allowed`
	})
}
