package sip

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the UA's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Every log line about a call carries its account, API id and SIP Call-ID
// ("sip_call_id", which the daemon's journal handler writes as
// SIP_CALL_ID=), so that journalctl SIP_CALL_ID=... finds a call seen in a
// trace or a PBX log.
func TestCallLogCarriesSIPCallID(t *testing.T) {
	var buf syncBuffer
	h := startUA(t, []Account{
		{Name: "a", User: "3001", Audio: &fakePort{"a"}},
		{Name: "b", User: "3002", Audio: &fakePort{"b"}},
	}, func(_ *Config, u *UA) {
		if u != nil {
			u.log = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	})
	id := dialAccount(t, h, "a", "3002")
	in := h.ev.wait(t, CallIncoming, 3*time.Second)
	if err := h.ua.Answer("b", in.CallID); err != nil {
		t.Fatal(err)
	}
	h.ev.wait(t, CallAnswered, 3*time.Second)
	h.ev.wait(t, CallAnswered, 3*time.Second)
	h.ua.mu.Lock()
	sipID := h.ua.calls[id].dlg.callID
	h.ua.mu.Unlock()
	if err := h.ua.Hangup("a", id, false); err != nil {
		t.Fatal(err)
	}
	h.ev.wait(t, CallEnded, 3*time.Second)
	h.ev.wait(t, CallEnded, 3*time.Second)

	// msgs[call id] are the messages logged about that call.
	msgs := map[int][]string{}
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		cid, ok := rec["call"].(float64)
		if !ok {
			continue // not about a call
		}
		if got := rec["sip_call_id"]; got != sipID {
			t.Errorf("call %v: %q has sip_call_id %v, want %q", cid, rec["msg"], got, sipID)
		}
		if rec["account"] == nil {
			t.Errorf("call %v: %q has no account", cid, rec["msg"])
		}
		msgs[int(cid)] = append(msgs[int(cid)], rec["msg"].(string))
	}
	// The caller's and the callee's side of a local call share the dialog's
	// Call-ID; each side's own lines are there.
	for call, want := range map[int][]string{
		id:        {"dialing", "call answered", "call ended"},
		in.CallID: {"incoming call", "call answered", "call ended"},
	} {
		for _, w := range want {
			if !strings.Contains(strings.Join(msgs[call], "|"), w) {
				t.Errorf("call %d: no %q line among %q", call, w, msgs[call])
			}
		}
	}
}
