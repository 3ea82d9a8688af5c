package sip

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTraceShowsTheRegistrationLadder: over UDP, and over TCP on the
// connection the UA dials itself.
func TestTraceShowsTheRegistrationLadder(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) { testTraceLadder(t, transport) })
	}
}

func testTraceLadder(t *testing.T, transport string) {
	p := newPeerOn(t, transport == "tcp")
	reg := &registrar{expires: 60, user: "3001", pass: "pw", nonce: "n1"}
	reg.install(p)
	var mu sync.Mutex
	var got []TraceMessage
	h := startUA(t, []Account{{Name: "a1", User: "3001", Pass: "pw", Server: p.addr(), Register: true}}, func(c *Config, u *UA) {
		if c != nil {
			c.Transports = []string{transport}
		}
		if u != nil {
			u.SetTrace(func(m TraceMessage) {
				mu.Lock()
				got = append(got, m)
				mu.Unlock()
			})
		}
	})
	eventually(t, "registered", 3*time.Second, func() bool { return h.status(t, "a1").Code == 200 })
	eventually(t, "four messages", 2*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 4 })
	mu.Lock()
	defer mu.Unlock()
	want := []struct {
		sent  bool
		first string
	}{{true, "REGISTER sip:"}, {false, "SIP/2.0 401"}, {true, "REGISTER sip:"}, {false, "SIP/2.0 200"}}
	for i, w := range want {
		m := got[i]
		if m.Sent != w.sent || !strings.HasPrefix(m.FirstLine, w.first) || m.Account != "a1" || m.Transport != transport ||
			m.Remote != p.addr() || m.CallID == "" || m.CallID != got[0].CallID || !strings.Contains(string(m.Data), "\r\nCSeq: ") {
			t.Errorf("message %d: sent=%v %q account %q %s %s -> %s call-id %q; want sent=%v %q of a1 over %s to %s",
				i, m.Sent, m.FirstLine, m.Account, m.Transport, m.Local, m.Remote, m.CallID, w.sent, w.first, transport, p.addr())
		}
	}
	// Off: nothing more is traced.
	h.ua.SetTrace(nil)
	n := len(got)
	mu.Unlock()
	if err := h.ua.Logout("a1"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "un-REGISTER", 3*time.Second, func() bool {
		reg.mu.Lock()
		defer reg.mu.Unlock()
		return reg.last.GetHeader("Expires").Value() == "0"
	})
	mu.Lock()
	if len(got) != n {
		t.Errorf("%d messages traced after SetTrace(nil)", len(got)-n)
	}
}

func TestTraceHeaders(t *testing.T) {
	tests := []struct {
		name, msg, first, callID, to, from string
	}{
		{name: "request", msg: "INVITE sip:3002@h SIP/2.0\r\nTo: <sip:3002@h>\r\nFrom: \"A\" <sip:3001@h>;tag=1\r\nCall-ID: abc@h\r\n\r\nv=0\r\n",
			first: "INVITE sip:3002@h SIP/2.0", callID: "abc@h", to: "3002", from: "3001"},
		{name: "compact", msg: "SIP/2.0 200 OK\r\nt: sip:9@h\r\nf: <sips:8@h>\r\ni:  x1 \r\n\r\n",
			first: "SIP/2.0 200 OK", callID: "x1", to: "9", from: "8"},
		{name: "no call-id", msg: "OPTIONS sip:h SIP/2.0\r\nTo: <sip:h>\r\n\r\n", first: "OPTIONS sip:h SIP/2.0"},
		// Terminal escapes and bare CRs from the wire are not printed as such.
		{name: "control characters", msg: "INVITE sip:x\x1b[2J SIP/2.0\r\nCall-ID: a\rb\r\nTo: <sip:\x07u@h>\r\n\r\n",
			first: "INVITE sip:x?[2J SIP/2.0", callID: "a?b", to: "?u"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, cid := traceHeaders([]byte(tt.msg))
			if first != tt.first || cid != tt.callID {
				t.Errorf("traceHeaders = %q, %q; want %q, %q", first, cid, tt.first, tt.callID)
			}
			if to, from := headerUser([]byte(tt.msg), "To"), headerUser([]byte(tt.msg), "From"); to != tt.to || from != tt.from {
				t.Errorf("users = %q, %q; want %q, %q", to, from, tt.to, tt.from)
			}
		})
	}
}

// FuzzTraceHeaders: the trace reads whatever arrives on the socket.
func FuzzTraceHeaders(f *testing.F) {
	f.Add([]byte("INVITE sip:3002@h SIP/2.0\r\nTo: <sip:3002@h>\r\nFrom: <sip:3001@h>;tag=1\r\nCall-ID: abc\r\n\r\nv=0\r\n"))
	f.Add([]byte("SIP/2.0 200 OK\r\ni: x\r\nt: sips:@\r\nf: sip:\r\n\r\n"))
	f.Add([]byte("\r\n\r\n"))
	f.Add([]byte("X\nCall-ID:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		first, cid := traceHeaders(b)
		if strings.ContainsAny(first, "\n") || strings.ContainsAny(cid, "\r\n") || cid != strings.TrimSpace(cid) {
			t.Fatalf("start line %q, Call-ID %q", first, cid)
		}
		for _, h := range []string{"To", "From"} {
			if u := headerUser(b, h); strings.ContainsAny(u, "@\r\n") {
				t.Fatalf("%s user %q", h, u)
			}
		}
	})
}
