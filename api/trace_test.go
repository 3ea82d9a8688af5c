package api

import (
	"context"
	"sync"
	"testing"
	"time"
)

type fakeTracer struct {
	mu      sync.Mutex
	log     []bool
	clients []int
}

func (f *fakeTracer) SetSIPTrace(on bool) { f.mu.Lock(); f.log = append(f.log, on); f.mu.Unlock() }
func (f *fakeTracer) TraceClients(n int) {
	f.mu.Lock()
	f.clients = append(f.clients, n)
	f.mu.Unlock()
}
func (f *fakeTracer) lastClients() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.clients) == 0 {
		return -1
	}
	return f.clients[len(f.clients)-1]
}

func startTraceServer(t *testing.T, tr Tracer) *Server {
	t.Helper()
	s := NewServer(withLimits(Config{Address: "127.0.0.1"}), &fakeController{statuses: twoAccounts()}, testLogger(t), WithTracer(tr))
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s
}

func TestTraceSubscription(t *testing.T) {
	tr := &fakeTracer{}
	s := startTraceServer(t, tr)
	sub, other, all := dial(t, s), dial(t, s), dial(t, s)
	sub.send(`{"cmd":"trace","account":"account-1"}` + "\x00")
	if got := sub.nextRaw(); got != `{"event":"trace","account":"account-1","on":true}` {
		t.Fatalf("answer %s", got)
	}
	all.send(`{"cmd":"trace"}` + "\x00")
	if got := all.nextRaw(); got != `{"event":"trace","account":"","on":true}` {
		t.Fatalf("answer %s", got)
	}
	waitFor(t, "two trace clients", func() bool { return tr.lastClients() == 2 })
	at := time.Date(2026, 12, 2, 1, 2, 3, 456789000, time.UTC)
	s.TraceSIP(SIPMessage{Account: "account-2", Time: at, FirstLine: "OPTIONS sip:x SIP/2.0"})
	s.TraceSIP(SIPMessage{Account: "account-1", Time: at, Sent: true, Transport: "udp", Local: "127.0.0.1:5070",
		Remote: "127.0.0.1:5080", CallID: "c1", FirstLine: "INVITE sip:3002@h SIP/2.0", Message: "INVITE sip:3002@h SIP/2.0\r\n\r\n"})
	want := `{"event":"sip-message","account":"account-1","time":"2026-12-02T01:02:03.456789Z","direction":"sent","transport":"udp",` +
		`"local":"127.0.0.1:5070","remote":"127.0.0.1:5080","sip_call_id":"c1","first_line":"INVITE sip:3002@h SIP/2.0",` +
		`"message":"INVITE sip:3002@h SIP/2.0\r\n\r\n"}`
	if got := sub.nextRaw(); got != want {
		t.Errorf("sip-message\n got %s\nwant %s", got, want)
	}
	if m := all.next(); m["account"] != "account-2" {
		t.Errorf("unfiltered client got %v first", m)
	}
	if m := all.next(); m["account"] != "account-1" {
		t.Errorf("unfiltered client got %v second", m)
	}
	other.expectSilence(100 * time.Millisecond)

	// Unknown account: a fail, no subscription.
	other = dial(t, s)
	other.send(`{"cmd":"trace","account":"nope"}` + "\x00")
	if m := other.next(); m["event"] != "fail" || m["cmd"] != "trace" {
		t.Errorf("unknown account: %v", m)
	}
	// Off, and a disconnect, unsubscribe.
	sub.send(`{"cmd":"trace","account":"account-1","on":false}` + "\x00")
	if got := sub.nextRaw(); got != `{"event":"trace","account":"account-1","on":false}` {
		t.Errorf("answer %s", got)
	}
	all.conn.Close()
	waitFor(t, "no trace client", func() bool { return tr.lastClients() == 0 })
	s.TraceSIP(SIPMessage{Account: "account-1"})
	sub.expectSilence(100 * time.Millisecond)
	other.send(`{"cmd":"ping","token":"t"}` + "\x00")
	if m := other.next(); m["event"] != "pong" {
		t.Errorf("an unsubscribed client got %v", m)
	}

	// The log switch.
	other.send(`{"cmd":"sip-trace","on":true}` + "\x00" + `{"cmd":"sip-trace","on":false}` + "\x00" + `{"cmd":"sip-trace"}` + "\x00")
	for _, want := range []string{`{"event":"sip-trace","account":"","on":true}`, `{"event":"sip-trace","account":"","on":false}`,
		`{"event":"fail","account":"","error":"sip-trace: missing field \"on\"","cmd":"sip-trace"}`} {
		if got := other.nextRaw(); got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	tr.mu.Lock()
	if len(tr.log) != 2 || !tr.log[0] || tr.log[1] {
		t.Errorf("SetSIPTrace calls %v, want [true false]", tr.log)
	}
	tr.mu.Unlock()
}

func TestTraceNeverDisconnectsASlowClient(t *testing.T) {
	s := startTraceServer(t, &fakeTracer{})
	c := dial(t, s)
	c.send(`{"cmd":"trace"}` + "\x00")
	c.nextRaw()
	big := string(make([]byte, 60000))
	for i := 0; i < 2000; i++ {
		s.TraceSIP(SIPMessage{Account: "account-1", Message: big})
	}
	waitFor(t, "drops counted", func() bool { return s.TraceDropped() > 0 })
	if st := s.Stats(); st.DroppedClients != 0 {
		t.Errorf("a trace flood disconnected %d clients", st.DroppedClients)
	}
	// Still connected: documented commands are answered.
	c.send(`{"cmd":"ping","token":"x"}` + "\x00")
	for {
		m := c.next()
		if m["event"] == "pong" {
			break
		}
	}
}

func TestTraceWithoutTracer(t *testing.T) {
	s := startServer(t, Config{}, &fakeController{})
	c := dial(t, s)
	c.send(`{"cmd":"trace"}` + "\x00")
	if m := c.next(); m["event"] != "fail" {
		t.Errorf("got %v", m)
	}
}
