package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func twoAccounts() []Status {
	return []Status{
		{Account: "account-1", AccountStatus: 200, Calls: []Call{{CallID: 5, Caller: "3003", Callee: "3001", Started: true, State: "active", Direction: "in", Active: true, Codec: "PCMU"}}},
		{Account: "account-2", AccountStatus: 0}, // nil Calls must go out as []
	}
}

func TestDispatch(t *testing.T) {
	tests := []struct {
		name      string
		send      string
		wantCalls []string
		wantReply []string // exact frames, without NUL; nil: no reply
	}{
		{name: "login all fields", send: `{"cmd":"login","account":"account-3","user":"3003","pass":"sip3003","server":"127.0.0.1"}`,
			wantCalls: []string{"Login account-3 3003 sip3003 127.0.0.1"}},
		{name: "login account only", send: `{"cmd":"login","account":"account-3"}`,
			wantCalls: []string{"Login account-3 <nil> <nil> <nil>"}},
		{name: "make-call", send: `{"cmd":"make-call","account":"account-1","num":"3002"}`,
			wantCalls: []string{"MakeCall account-1 3002"},
			wantReply: []string{`{"event":"call-return","account":"account-1","call_id":0}`}},
		{name: "answer-call", send: `{"cmd":"answer-call","account":"account-1","call_id":0}`,
			wantCalls: []string{"AnswerCall account-1 0"}},
		{name: "switch-call", send: `{"cmd":"switch-call","account":"account-1","call_id":1}`,
			wantCalls: []string{"SwitchCall account-1 1"}},
		{name: "hangup-call", send: `{"cmd":"hangup-call","account":"account-1","call_id":0}`,
			wantCalls: []string{"HangupCall account-1 0 false"}},
		{name: "hangup-call decline", send: `{"cmd":"hangup-call","account":"account-1","call_id":4,"decline":true}`,
			wantCalls: []string{"HangupCall account-1 4 true"}},
		{name: "logout", send: `{"cmd":"logout","account":"account-3"}`,
			wantCalls: []string{"Logout account-3"}},
		{name: "get-status one", send: `{"cmd":"get-status","account":"account-1"}`,
			wantCalls: []string{"Status account-1"},
			wantReply: []string{`{"event":"status","account":"account-1","calls":[{"call_id":5,"caller":"3003","callee":"3001","started":true,"stopped":false,"state":"active","direction":"in","active":true,"codec":"PCMU","packets_sent":0,"packets_received":0,"packets_lost":0,"jitter_ms":0,"hold":"","duration_s":0,"octets_sent":0,"octets_received":0,"rtt_ms":0,"mos":0,"r_factor":0}],"account_status":200}`}},
		{name: "get-status all in plan order", send: `{"cmd":"get-status"}`,
			wantCalls: []string{"Status "},
			wantReply: []string{
				`{"event":"status","account":"account-1","calls":[{"call_id":5,"caller":"3003","callee":"3001","started":true,"stopped":false,"state":"active","direction":"in","active":true,"codec":"PCMU","packets_sent":0,"packets_received":0,"packets_lost":0,"jitter_ms":0,"hold":"","duration_s":0,"octets_sent":0,"octets_received":0,"rtt_ms":0,"mos":0,"r_factor":0}],"account_status":200}`,
				`{"event":"status","account":"account-2","calls":[],"account_status":0}`,
			}},
		{name: "get-status unknown account", send: `{"cmd":"get-status","account":"nope"}`,
			wantCalls: []string{"Status nope"},
			wantReply: []string{`{"event":"fail","account":"nope","error":"unknown account \"nope\"","cmd":"get-status"}`}},
		{name: "ping", send: `{"cmd":"ping","token":"abc"}`,
			wantReply: []string{`{"event":"pong","token":"abc"}`}},
		{name: "decode error reaches no controller", send: `{"cmd":"make-call","account":"account-1"}`,
			wantReply: []string{`{"event":"fail","account":"account-1","error":"make-call: missing field \"num\"","cmd":"make-call"}`}},
		{name: "invalid JSON", send: `{"cmd":`,
			wantReply: []string{`{"event":"fail","account":"","error":"invalid JSON at byte 7: unexpected end of JSON input"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctrl := &fakeController{statuses: twoAccounts()}
			s := startServer(t, Config{}, ctrl)
			c := dial(t, s)
			c.send(tt.send + "\x00")
			for _, want := range tt.wantReply {
				if got := c.nextRaw(); got != want {
					t.Fatalf("reply\n got %s\nwant %s", got, want)
				}
			}
			// A ping after the command proves it ran and had no other reply.
			c.send(`{"cmd":"ping","token":"end"}` + "\x00")
			if got := c.nextRaw(); got != `{"event":"pong","token":"end"}` {
				t.Fatalf("unexpected extra reply %s", got)
			}
			if got := strings.Join(ctrl.calls(), "\n"); got != strings.Join(tt.wantCalls, "\n") {
				t.Fatalf("controller got\n%s\nwant\n%s", got, strings.Join(tt.wantCalls, "\n"))
			}
		})
	}
}

func TestControllerErrorsBecomeFail(t *testing.T) {
	tests := []struct {
		name   string
		method string
		send   string
		want   string
	}{
		{name: "login", method: "Login", send: `{"cmd":"login","account":"x"}`,
			want: `{"event":"fail","account":"x","error":"unknown account \"x\"","cmd":"login"}`},
		{name: "make-call", method: "MakeCall", send: `{"cmd":"make-call","account":"x","num":"1"}`,
			want: `{"event":"fail","account":"x","error":"unknown account \"x\"","cmd":"make-call"}`},
		{name: "answer-call", method: "AnswerCall", send: `{"cmd":"answer-call","account":"x","call_id":1}`,
			want: `{"event":"fail","account":"x","error":"unknown account \"x\"","cmd":"answer-call"}`},
		{name: "switch-call", method: "SwitchCall", send: `{"cmd":"switch-call","account":"x","call_id":1}`,
			want: `{"event":"fail","account":"x","error":"unknown account \"x\"","cmd":"switch-call"}`},
		{name: "hangup-call", method: "HangupCall", send: `{"cmd":"hangup-call","account":"x","call_id":1}`,
			want: `{"event":"fail","account":"x","error":"unknown account \"x\"","cmd":"hangup-call"}`},
		{name: "logout", method: "Logout", send: `{"cmd":"logout","account":"x"}`,
			want: `{"event":"fail","account":"x","error":"unknown account \"x\"","cmd":"logout"}`},
		{name: "get-status", method: "Status", send: `{"cmd":"get-status","account":"x"}`,
			want: `{"event":"fail","account":"x","error":"unknown account \"x\"","cmd":"get-status"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctrl := &fakeController{errs: map[string]error{tt.method: errors.New(`unknown account "x"`)}}
			s := startServer(t, Config{}, ctrl)
			c := dial(t, s)
			c.send(tt.send + "\x00")
			if got := c.nextRaw(); got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			// Still connected and served.
			c.send(`{"cmd":"ping"}` + "\x00")
			if got := c.nextRaw(); got != `{"event":"pong","token":""}` {
				t.Fatalf("after fail: %s", got)
			}
		})
	}
}

// Framing through a real socket: split and merged writes, whitespace,
// oversize, garbage and invalid UTF-8 all keep the client connected.
func TestServerFraming(t *testing.T) {
	ctrl := &fakeController{statuses: twoAccounts()}
	s := startServer(t, Config{MaxMessageBytes: 128}, ctrl)
	c := dial(t, s)
	wantPong := func(tok string) {
		t.Helper()
		if got := c.nextRaw(); got != `{"event":"pong","token":"`+tok+`"}` {
			t.Fatalf("got %s, want pong %s", got, tok)
		}
	}
	// Split over several writes.
	for _, part := range []string{`{"cmd":"pi`, `ng","tok`, `en":"a"}`, "\x00"} {
		c.send(part)
		time.Sleep(5 * time.Millisecond)
	}
	wantPong("a")
	// Merged into one write, with CRLF and spaces between.
	c.send("{\"cmd\":\"ping\",\"token\":\"b\"}\x00\r\n  {\"cmd\":\"ping\",\"token\":\"c\"}\x00\n")
	wantPong("b")
	wantPong("c")
	// Oversize, then a good message in the same write.
	c.send(`{"cmd":"ping","token":"` + strings.Repeat("x", 300) + `"}` + "\x00" + `{"cmd":"ping","token":"d"}` + "\x00")
	if got := c.nextRaw(); got != `{"event":"fail","account":"","error":"message longer than max-message-bytes (128 bytes): it was discarded up to its terminating NUL"}` {
		t.Fatalf("oversize: %s", got)
	}
	wantPong("d")
	// Garbage and invalid UTF-8.
	c.send("garbage\x00")
	if got := c.next(); got["event"] != "fail" || !strings.HasPrefix(got["error"].(string), "invalid JSON at byte 1:") {
		t.Fatalf("garbage: %v", got)
	}
	c.send("{\"cmd\":\"ping\",\"token\":\"\xc3\x28\"}\x00")
	if got := c.nextRaw(); got != `{"event":"fail","account":"","error":"invalid UTF-8 at byte 24: messages must be UTF-8 JSON"}` {
		t.Fatalf("utf-8: %s", got)
	}
	wantRaw := `{"cmd":"ping","token":"e"}`
	c.send(wantRaw + "\x00")
	// Every frame is compact JSON + NUL: check the raw bytes.
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, err := c.conn.Read(buf)
	if err != nil || string(buf[:n]) != `{"event":"pong","token":"e"}`+"\x00" {
		t.Fatalf("raw frame %q, %v", buf[:n], err)
	}
}

func TestDirectAnswerBeforeBroadcast(t *testing.T) {
	var s *Server
	ctrl := &fakeController{}
	// The daemon may broadcast events of the new call as soon as accepted
	// returned; they must still reach the caller after its call-return.
	ctrl.afterAccept = func(id int) {
		s.Broadcast(CallAnswered{Account: "account-1", CallID: id})
		s.Broadcast(CallEnded{Account: "account-1", CallID: id, Reason: "remote hangup", Code: 0})
	}
	s = startServer(t, Config{}, ctrl)
	a := dial(t, s)
	b := dial(t, s)
	// Broadcasts reach the clients the hub has admitted.
	waitFor(t, "both clients", func() bool { return s.Stats().Clients == 2 })
	for i := range 50 {
		a.send(`{"cmd":"make-call","account":"account-1","num":"3002"}` + "\x00")
		want := []string{
			fmt.Sprintf(`{"event":"call-return","account":"account-1","call_id":%d}`, i),
			fmt.Sprintf(`{"event":"call-answered","account":"account-1","call_id":%d,"seq":%d}`, i, 2*i+1),
			fmt.Sprintf(`{"event":"call-ended","account":"account-1","call_id":%d,"reason":"remote hangup","code":0,"seq":%d}`, i, 2*i+2),
		}
		for _, w := range want {
			if got := a.nextRaw(); got != w {
				t.Fatalf("call %d: sender got %s, want %s", i, got, w)
			}
		}
		// The other client gets only the broadcasts.
		for _, w := range want[1:] {
			if got := b.nextRaw(); got != w {
				t.Fatalf("call %d: other client got %s, want %s", i, got, w)
			}
		}
	}
}

func TestBroadcastReachesEveryClient(t *testing.T) {
	s := startServer(t, Config{}, &fakeController{})
	clients := []*testConn{dial(t, s), dial(t, s), dial(t, s)}
	waitFor(t, "3 clients", func() bool { return s.Stats().Clients == 3 })
	events := []struct {
		ev   Event
		want string
	}{
		{CallIncoming{Account: "account-2", CallID: 1, Caller: "3001", CallerName: "account-1"},
			`{"event":"call-incoming","account":"account-2","call_id":1,"caller":"3001","caller_name":"account-1","seq":1}`},
		{&CallAnswered{Account: "account-2", CallID: 1},
			`{"event":"call-answered","account":"account-2","call_id":1,"seq":2}`},
		{CallEnded{Account: "account-2", CallID: 1, Reason: "486 Busy Here", Code: 486},
			`{"event":"call-ended","account":"account-2","call_id":1,"reason":"486 Busy Here","code":486,"seq":3}`},
		{Fail{Account: "account-1", Error: "Failed to log in to account: account-1: 403 Forbidden"},
			`{"event":"fail","account":"account-1","error":"Failed to log in to account: account-1: 403 Forbidden","seq":4}`},
	}
	s.Broadcast(nil) // logged and dropped (other non-events do not compile)
	for _, e := range events {
		s.Broadcast(e.ev)
	}
	for i, c := range clients {
		for _, e := range events {
			if got := c.nextRaw(); got != e.want {
				t.Fatalf("client %d got %s, want %s", i, got, e.want)
			}
		}
	}
}

// A client that never reads is disconnected once its queue fills, while
// another client keeps getting every event promptly.
func TestSlowClientDropped(t *testing.T) {
	s := startServer(t, Config{QueueLen: 16, WriteTimeout: 300 * time.Millisecond}, &fakeController{})
	slow := dial(t, s)
	fast := dial(t, s)
	waitFor(t, "2 clients", func() bool { return s.Stats().Clients == 2 })

	reason := strings.Repeat("r", 32<<10)
	var worst time.Duration
	for i := 0; s.Stats().DroppedClients == 0; i++ {
		if i == 2000 {
			t.Fatal("the client that does not read was never disconnected (64 MB sent)")
		}
		start := time.Now()
		s.Broadcast(CallEnded{Account: "a", CallID: i, Reason: reason})
		m := fast.next()
		if m["call_id"] != float64(i) {
			t.Fatalf("fast client got call_id %v, want %d", m["call_id"], i)
		}
		worst = max(worst, time.Since(start))
	}
	if worst > time.Second {
		t.Errorf("the reading client waited up to %v for an event", worst)
	}
	waitFor(t, "slow client unregistered", func() bool { return s.Stats().Clients == 1 })
	slow.expectClosed()
	// The other one is still served.
	s.Broadcast(CallAnswered{Account: "a", CallID: 99999})
	if got := fast.next(); got["call_id"] != float64(99999) {
		t.Fatalf("after drop: %v", got)
	}
	t.Logf("worst event latency of the reading client: %v", worst)
}

func TestAllowList(t *testing.T) {
	tests := []struct {
		name   string
		allow  []string
		listen string // "": 127.0.0.1
		from   string // client address; "": the listen address
		admits bool
	}{
		{name: "empty allows any", allow: nil, admits: true},
		{name: "loopback allowed", allow: []string{"192.0.2.0/24", "127.0.0.0/8"}, admits: true},
		{name: "single host", allow: []string{"127.0.0.1/32"}, admits: true},
		{name: "not listed", allow: []string{"192.0.2.0/24", "::1/128"}, admits: false},
		// Dual stack: IPv4 clients arrive as ::ffff:127.0.0.1 and are
		// matched as 127.0.0.1.
		{name: "dual stack ::1/128 admits ::1", allow: []string{"::1/128"}, listen: "::", from: "::1", admits: true},
		{name: "dual stack ::1/128 refuses 127.0.0.1", allow: []string{"::1/128"}, listen: "::", from: "127.0.0.1", admits: false},
		{name: "dual stack 127.0.0.1/32 refuses ::1", allow: []string{"127.0.0.1/32"}, listen: "::", from: "::1", admits: false},
		{name: "dual stack 127.0.0.1/32 admits 127.0.0.1", allow: []string{"127.0.0.1/32"}, listen: "::", from: "127.0.0.1", admits: true},
		{name: "ipv6 listener", allow: []string{"::1/128"}, listen: "::1", admits: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var allow []netip.Prefix
			for _, p := range tt.allow {
				allow = append(allow, netip.MustParsePrefix(p))
			}
			s := startServer(t, Config{Allow: allow, Address: tt.listen}, &fakeController{})
			c := dialFrom(t, s, tt.from)
			c.send(`{"cmd":"ping","token":"x"}` + "\x00")
			msg, err := c.nextErr(5 * time.Second)
			if tt.admits {
				if err != nil || msg != `{"event":"pong","token":"x"}` {
					t.Fatalf("admitted client: %q, %v", msg, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("refused client got %q", msg)
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("refused client was not closed")
			}
			if got := s.Stats().Refused; got != 1 {
				t.Fatalf("Refused = %d, want 1", got)
			}
		})
	}
}

// TestListenFamilies: 0.0.0.0 listens on IPv4 only, :: on both, ::1 on
// IPv6 only.
func TestListenFamilies(t *testing.T) {
	for _, tt := range []struct {
		name, listen string
		v4, v6       bool
	}{
		{name: "0.0.0.0", listen: "0.0.0.0", v4: true},
		{name: "::", listen: "::", v4: true, v6: true},
		{name: "::1", listen: "::1", v6: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, Config{Address: tt.listen}, &fakeController{})
			port := strconv.Itoa(s.Addr().(*net.TCPAddr).Port)
			for host, want := range map[string]bool{"127.0.0.1": tt.v4, "::1": tt.v6} {
				c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), time.Second)
				if err == nil {
					c.Close()
				}
				if (err == nil) != want {
					t.Errorf("connect from %s: %v, want connected=%t", host, err, want)
				}
			}
		})
	}
}

func TestMaxClients(t *testing.T) {
	s := startServer(t, Config{MaxClients: 2}, &fakeController{})
	a := dial(t, s)
	b := dial(t, s)
	waitFor(t, "2 clients", func() bool { return s.Stats().Clients == 2 })
	extra := dial(t, s)
	if got := extra.nextRaw(); got != `{"event":"fail","account":"","error":"too many clients: max-clients is 2; try again later"}` {
		t.Fatalf("extra client got %s", got)
	}
	extra.expectClosed()
	// The two admitted clients are unaffected.
	s.Broadcast(CallAnswered{Account: "a", CallID: 1})
	a.next()
	b.next()
	// Once one leaves, a new client is admitted.
	a.conn.Close()
	waitFor(t, "1 client", func() bool { return s.Stats().Clients == 1 })
	c := dial(t, s)
	c.send(`{"cmd":"ping"}` + "\x00")
	if got := c.nextRaw(); got != `{"event":"pong","token":""}` {
		t.Fatalf("new client got %s", got)
	}
	if st := s.Stats(); st.Rejected != 1 || st.Accepted != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestProbe(t *testing.T) {
	s := startServer(t, Config{}, &fakeController{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Probe(ctx); err != nil {
		t.Fatalf("healthy hub: Probe = %v", err)
	}
	release := make(chan struct{})
	s.inHub(func() { <-release })
	short, cancelShort := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancelShort()
	if err := s.Probe(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("stalled hub: Probe = %v, want deadline exceeded", err)
	}
	// Broadcast must not block while the hub is stalled, even past the
	// backlog; the excess is counted.
	done := make(chan struct{})
	go func() {
		for i := range hubBacklog + 10 {
			s.Broadcast(CallAnswered{Account: "a", CallID: i})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Broadcast blocked on a stalled hub")
	}
	if got := s.Stats().DroppedEvents; got < 10 {
		t.Fatalf("DroppedEvents = %d, want >= 10", got)
	}
	close(release)
	if err := s.Probe(ctx); err != nil {
		t.Fatalf("after release: Probe = %v", err)
	}
}

func TestProbeWithoutServe(t *testing.T) {
	s := NewServer(withLimits(Config{}), &fakeController{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Probe(ctx); err == nil {
		t.Fatal("Probe succeeded with no hub running")
	}
}

// A client that sends its commands and half-closes still gets the answers.
func TestHalfCloseGetsAnswers(t *testing.T) {
	s := startServer(t, Config{}, &fakeController{statuses: twoAccounts()})
	c := dial(t, s)
	c.send(`{"cmd":"get-status"}` + "\x00")
	c.conn.(*net.TCPConn).CloseWrite()
	for _, acct := range []string{"account-1", "account-2"} {
		if got := c.next(); got["account"] != acct {
			t.Fatalf("got %v, want status of %s", got, acct)
		}
	}
	c.expectClosed()
}

// Serve's stop delivers broadcasts already handed over, then closes clients.
func TestServeStopFlushesAndCloses(t *testing.T) {
	s := NewServer(withLimits(Config{Address: "127.0.0.1"}), &fakeController{}, testLogger(t))
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	c := dial(t, s)
	waitFor(t, "client", func() bool { return s.Stats().Clients == 1 })
	s.Broadcast(CallEnded{Account: "a", CallID: 7, Reason: "shutdown"})
	cancel()
	if got := c.next(); got["call_id"] != float64(7) {
		t.Fatalf("got %v", got)
	}
	c.expectClosed()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := net.Dial("tcp", s.Addr().String()); err == nil {
		t.Fatal("listener still open after Serve returned")
	}
}

// Close stops a serving server the way the end of Serve's ctx does, and
// returns once Serve has: the broadcast handed over before still arrives.
func TestCloseFlushesAndCloses(t *testing.T) {
	s := NewServer(withLimits(Config{Address: "127.0.0.1"}), &fakeController{}, testLogger(t))
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background()) }()
	c := dial(t, s)
	waitFor(t, "client", func() bool { return s.Stats().Clients == 1 })
	s.Broadcast(CallEnded{Account: "a", CallID: 7, Reason: "shutdown"})
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if got := c.next(); got["call_id"] != float64(7) {
		t.Fatalf("got %v", got)
	}
	c.expectClosed()
	if _, err := net.Dial("tcp", s.Addr().String()); err == nil {
		t.Fatal("listener still open after Close")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
}

// Close without Serve closes the bound listener.
func TestCloseWithoutServe(t *testing.T) {
	s := NewServer(withLimits(Config{Address: "127.0.0.1"}), &fakeController{}, testLogger(t))
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if _, err := net.Dial("tcp", s.Addr().String()); err == nil {
		t.Fatal("listener still open after Close")
	}
}

func TestListenError(t *testing.T) {
	a := startServer(t, Config{}, &fakeController{})
	port := a.Addr().(*net.TCPAddr).Port
	s := NewServer(withLimits(Config{Address: "127.0.0.1", Port: port}), &fakeController{}, nil)
	err := s.Listen()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("listen on 127.0.0.1:%d", port)) {
		t.Fatalf("Listen on a used port = %v", err)
	}
}

// BenchmarkGetStatusRoundTrip measures one client's get-status round trip
// over loopback (fake controller), with p50/p99 as extra metrics.
func BenchmarkGetStatusRoundTrip(b *testing.B) {
	s := NewServer(withLimits(Config{Address: "127.0.0.1"}), &fakeController{statuses: twoAccounts()}, nil)
	if err := s.Listen(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()
	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	fr := NewFrameReader(conn, 1<<16)
	req := []byte(`{"cmd":"get-status","account":"account-1"}` + "\x00")
	rtts := make([]time.Duration, 0, b.N)
	for b.Loop() {
		t0 := time.Now()
		if _, err := conn.Write(req); err != nil {
			b.Fatal(err)
		}
		if _, err := fr.Next(); err != nil {
			b.Fatal(err)
		}
		rtts = append(rtts, time.Since(t0))
	}
	slices.Sort(rtts)
	b.ReportMetric(float64(rtts[len(rtts)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(rtts[len(rtts)*99/100].Microseconds()), "p99-µs")
}

// Answers the socket cannot take at once (the client reads late) are queued
// behind the part already written: every answer arrives whole and in order,
// and broadcasts sent meanwhile arrive whole, once each.
func TestRepliesInOrderThroughFullSocket(t *testing.T) {
	s := startServer(t, Config{QueueLen: 8192}, &fakeController{})
	c := dial(t, s)
	const n = 5000 // about 1.1 MB of answers: more than the socket holds
	var cmds strings.Builder
	for i := range n {
		fmt.Fprintf(&cmds, `{"cmd":"ping","token":"%d-%s"}`+"\x00", i, strings.Repeat("p", 200))
	}
	go c.conn.Write([]byte(cmds.String())) // may block until we read
	for i := range 20 {
		s.Broadcast(CallAnswered{Account: "a", CallID: i})
	}
	time.Sleep(100 * time.Millisecond) // let the socket fill up
	pongs, events := 0, 0
	for pongs < n || events < 20 {
		m := c.next()
		switch m["event"] {
		case EventPong:
			if want := fmt.Sprintf("%d-%s", pongs, strings.Repeat("p", 200)); m["token"] != want {
				t.Fatalf("pong %d: token %v", pongs, m["token"])
			}
			pongs++
		case EventCallAnswered:
			if m["call_id"] != float64(events) {
				t.Fatalf("event %d: %v", events, m)
			}
			events++
		default:
			t.Fatalf("unexpected %v", m)
		}
	}
	if st := s.Stats(); st.DroppedClients != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// A client that sends commands without reading the answers is dropped
// once its queue is full; its reader never waits for its socket.
func TestClientNotReadingAnswersDropped(t *testing.T) {
	s := startServer(t, Config{QueueLen: 16}, &fakeController{statuses: twoAccounts()})
	slow := dial(t, s)
	slow.conn.(*net.TCPConn).SetReadBuffer(4096)
	batch := strings.Repeat(`{"cmd":"get-status"}`+"\x00", 2000)
	done := make(chan error, 1)
	go func() {
		for {
			slow.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if _, err := slow.conn.Write([]byte(batch)); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server stopped reading the client without dropping it")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("client not dropped")
	}
	waitFor(t, "dropped", func() bool { return s.Stats().DroppedClients == 1 && s.Stats().Clients == 0 })
}

// A write deadline set by the writer goroutine must not outlive its write:
// an answer written directly by the reader long after a broadcast must not
// fail with a stale deadline (seen as "raw-write ...: i/o timeout").
func TestDirectAnswerAfterStaleWriteDeadline(t *testing.T) {
	ctrl := &fakeController{statuses: []Status{{Account: "account-1", Calls: []Call{}}}}
	s := startServer(t, Config{WriteTimeout: 50 * time.Millisecond}, ctrl)
	c := dial(t, s)
	waitFor(t, "1 client", func() bool { return s.Stats().Clients == 1 })
	s.Broadcast(CallAnswered{Account: "account-1", CallID: 0}) // written by the writer goroutine
	if got := c.next()["event"]; got != "call-answered" {
		t.Fatalf("got %v, want call-answered", got)
	}
	time.Sleep(150 * time.Millisecond) // past the writer's deadline
	c.send("{\"cmd\":\"get-status\",\"account\":\"account-1\"}\x00")
	if got := c.next()["event"]; got != "status" {
		t.Fatalf("got %v, want status", got)
	}
	if n := s.Stats().DroppedClients; n != 0 {
		t.Fatalf("%d clients dropped", n)
	}
}

// The plan (plan.Default) is the one source of max-clients,
// max-message-bytes and event-history: a zero value is refused, not
// replaced by a default of this package's own.
func TestListenRejectsZeroLimits(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{name: "max-clients", cfg: Config{MaxMessageBytes: 1024, EventHistory: 1}, want: "max-clients 0"},
		{name: "max-message-bytes", cfg: Config{MaxClients: 1, EventHistory: 1}, want: "max-message-bytes 0"},
		{name: "event-history", cfg: Config{MaxClients: 1, MaxMessageBytes: 1024}, want: "event-history 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Address = "127.0.0.1"
			s := NewServer(tt.cfg, &fakeController{}, nil)
			err := s.Listen()
			if err == nil {
				s.Close()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Listen: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestReconfigure: a reload's allow and max-message-bytes apply to the
// connections after it, max-clients to the next one, while the clients
// connected before keep going; the address and port cannot change.
func TestReconfigure(t *testing.T) {
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	cfg := withLimits(Config{Address: "127.0.0.1", Allow: loop, MaxClients: 3, MaxMessageBytes: 1024, EventHistory: 4})
	s := startServer(t, cfg, &fakeController{})
	ping := func(c *testConn, token string) string {
		t.Helper()
		c.send(`{"cmd":"ping","token":"` + token + `"}` + "\x00")
		msg, err := c.nextErr(5 * time.Second)
		if err != nil {
			t.Fatalf("ping: %v", err)
		}
		return msg
	}
	a := dial(t, s)
	if got := ping(a, "a"); got != `{"event":"pong","token":"a"}` {
		t.Fatalf("a: %s", got)
	}

	next := cfg
	next.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	next.MaxMessageBytes = 2048
	next.EventHistory = 8
	if err := s.Reconfigure(next); err != nil {
		t.Fatal(err)
	}
	probe(t, s) // the history's resize ran in the hub
	refused := dial(t, s)
	refused.send(`{"cmd":"ping"}` + "\x00")
	if _, err := refused.nextErr(5 * time.Second); err == nil || s.Stats().Refused != 1 {
		t.Fatalf("a client the new allow does not list: %v, refused %d", err, s.Stats().Refused)
	}
	if got := ping(a, "a2"); got != `{"event":"pong","token":"a2"}` {
		t.Fatalf("the client connected before the reload: %s", got)
	}

	next.Allow, next.MaxClients = loop, 1
	if err := s.Reconfigure(next); err != nil {
		t.Fatal(err)
	}
	extra := dial(t, s)
	if got := extra.nextRaw(); got != `{"event":"fail","account":"","error":"too many clients: max-clients is 1; try again later"}` {
		t.Fatalf("a second client with max-clients 1: %s", got)
	}
	// a still has the limit it connected with: 1024 bytes.
	long := `{"cmd":"ping","token":"` + strings.Repeat("x", 1500) + `"}` + "\x00"
	a.send(long)
	if got := a.next(); got["event"] != "fail" {
		t.Fatalf("1.5 kB from the client connected with max-message-bytes 1024: %v", got)
	}
	a.conn.Close()
	waitFor(t, "a gone", func() bool { return s.Stats().Clients == 0 })
	b := dial(t, s)
	b.send(long)
	if got := b.next(); got["event"] != "pong" {
		t.Fatalf("1.5 kB from a client connected with max-message-bytes 2048: %v", got)
	}

	moved := next
	moved.Port = s.Addr().(*net.TCPAddr).Port + 1
	if err := s.Reconfigure(moved); err == nil || !strings.Contains(err.Error(), "needs a restart") {
		t.Fatalf("a new port: %v", err)
	}
}
