package api

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestHistory(t *testing.T) {
	tests := []struct {
		name        string
		size, n     int // ring size, events stamped
		resize      int // then the ring resized to this (a reload's event-history); 0: not
		more        int // events stamped after the resize
		since, upto uint64
		wantSeqs    []int
		wantLost    uint64
		long        bool // odd events longer than historySlot
	}{
		{name: "all kept", size: 8, n: 5, since: 2, upto: 5, wantSeqs: []int{3, 4, 5}},
		{name: "from the start", size: 8, n: 5, since: 0, upto: 5, wantSeqs: []int{1, 2, 3, 4, 5}},
		{name: "up to an earlier seq", size: 8, n: 5, since: 1, upto: 3, wantSeqs: []int{2, 3}},
		{name: "wrapped, nothing lost", size: 4, n: 10, since: 6, upto: 10, wantSeqs: []int{7, 8, 9, 10}},
		{name: "wrapped, some lost", size: 4, n: 10, since: 2, upto: 10, wantSeqs: []int{7, 8, 9, 10}, wantLost: 4},
		{name: "wrapped, all wanted lost", size: 4, n: 10, since: 1, upto: 5, wantLost: 4},
		{name: "ring of one", size: 1, n: 3, since: 0, upto: 3, wantSeqs: []int{3}, wantLost: 2},
		{name: "frames beyond a slot, wrapped", size: 3, n: 7, since: 3, upto: 7, wantSeqs: []int{5, 6, 7}, wantLost: 1, long: true},
		{name: "grown: nothing older than the old ring comes back", size: 4, n: 10, resize: 8, since: 0, upto: 10, wantSeqs: []int{7, 8, 9, 10}, wantLost: 6},
		{name: "grown, then filled", size: 4, n: 10, resize: 8, more: 4, since: 0, upto: 14, wantSeqs: []int{7, 8, 9, 10, 11, 12, 13, 14}, wantLost: 6},
		{name: "shrunk: the newest stay", size: 8, n: 10, resize: 2, since: 5, upto: 10, wantSeqs: []int{9, 10}, wantLost: 3},
		{name: "shrunk, then wrapped", size: 8, n: 10, resize: 3, more: 2, since: 8, upto: 12, wantSeqs: []int{10, 11, 12}, wantLost: 1},
		{name: "shrunk, frames beyond a slot", size: 8, n: 9, resize: 3, more: 2, since: 7, upto: 11, wantSeqs: []int{9, 10, 11}, wantLost: 1, long: true},
		{name: "resized before any event", size: 4, resize: 2, more: 3, since: 0, upto: 3, wantSeqs: []int{2, 3}, wantLost: 1},
	}
	frame := func(n int, long bool) string {
		acct := "a"
		if long && n%2 == 1 {
			acct = strings.Repeat("x", historySlot) // odd events outgrow their slot
		}
		return fmt.Sprintf(`{"event":"call-answered","account":%q,"call_id":%d,"seq":%d}`+"\x00", acct, n, n)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory(tt.size)
			for i := 1; i <= tt.n+tt.more; i++ {
				if i == tt.n+1 && tt.resize > 0 {
					h.resize(tt.resize)
				}
				acct := "a"
				if tt.long && i%2 == 1 {
					acct = strings.Repeat("x", historySlot)
				}
				sent := h.stamp(mustFrame(wireCallAnswered{EventCallAnswered, acct, i, nil}))
				if got, want := string(sent), frame(i, tt.long); got != want {
					t.Fatalf("stamp: %q, want %q", got, want)
				}
				// The frame sent is the client queues': the history keeps
				// its own copy, which later events must not overwrite.
				clear(sent)
			}
			if tt.more == 0 && tt.resize > 0 {
				h.resize(tt.resize)
			}
			frames, lost := h.between(tt.since, tt.upto)
			var want strings.Builder
			for _, n := range tt.wantSeqs {
				want.WriteString(frame(n, tt.long))
			}
			if string(frames) != want.String() || lost != tt.wantLost {
				t.Errorf("between(%d, %d) = %q, lost %d; want %q, lost %d", tt.since, tt.upto, frames, lost, want.String(), tt.wantLost)
			}
		})
	}
}

// probe returns once the hub handled everything broadcast before.
func probe(t *testing.T, s *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Probe(ctx); err != nil {
		t.Fatal(err)
	}
}

// answered is the frame of the n-th broadcast of broadcastN.
func answered(n int) string {
	return fmt.Sprintf(`{"event":"call-answered","account":"a","call_id":%d,"seq":%d}`, n, n)
}

// withHold sets how long a new client's broadcasts are held.
func withHold(d time.Duration) Option {
	return func(o *options) { o.hold = d }
}

// broadcastN broadcasts call-answered for call IDs from..to, which are also
// their seq when nothing else was broadcast.
func broadcastN(s *Server, from, to int) {
	for i := from; i <= to; i++ {
		s.Broadcast(CallAnswered{Account: "a", CallID: i})
	}
}

func TestResume(t *testing.T) {
	s := startServer(t, Config{}, &fakeController{})
	a := dial(t, s)
	waitFor(t, "client", func() bool { return s.Stats().Clients == 1 })
	broadcastN(s, 1, 5)
	for i := 1; i <= 5; i++ {
		if got := a.nextRaw(); got != answered(i) {
			t.Fatalf("live: got %s, want %s", got, answered(i))
		}
	}
	a.conn.Close()
	waitFor(t, "disconnect", func() bool { return s.Stats().Clients == 0 })
	broadcastN(s, 6, 55) // 50 events nobody receives

	b := dial(t, s)
	b.send(`{"cmd":"resume","since":5,"tag":"r1"}` + "\x00" + `{"cmd":"ping","token":"done"}` + "\x00")
	for i := 6; i <= 55; i++ {
		if got := b.nextRaw(); got != answered(i) {
			t.Fatalf("replay: got %s, want %s", got, answered(i))
		}
	}
	if got := b.nextRaw(); got != `{"event":"pong","token":"done"}` {
		t.Fatalf("after the replay: got %s, want the pong", got)
	}
	broadcastN(s, 56, 56)
	if got := b.nextRaw(); got != answered(56) {
		t.Fatalf("live after the replay: got %s", got)
	}
	// A second resume with nothing missed on this connection replays
	// nothing.
	b.send(`{"cmd":"resume","since":56}` + "\x00" + `{"cmd":"ping","token":"again"}` + "\x00")
	if got := b.nextRaw(); got != `{"event":"pong","token":"again"}` {
		t.Fatalf("second resume: got %s, want only the pong", got)
	}
}

func TestResumeLostEvents(t *testing.T) {
	s := startServer(t, Config{EventHistory: 16}, &fakeController{})
	broadcastN(s, 1, 50)
	probe(t, s)
	b := dial(t, s)
	b.send(`{"cmd":"resume","since":0,"tag":"r"}` + "\x00")
	want := `{"event":"fail","account":"","error":"resume: 34 events lost: events 1 to 34 are no longer kept ([tcp-settings] event-history is 16); the 16 kept ones follow","cmd":"resume","tag":"r"}`
	if got := b.nextRaw(); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	for i := 35; i <= 50; i++ {
		if got := b.nextRaw(); got != answered(i) {
			t.Fatalf("kept: got %s, want %s", got, answered(i))
		}
	}
	broadcastN(s, 51, 51)
	if got := b.nextRaw(); got != answered(51) {
		t.Fatalf("live: got %s", got)
	}
}

func TestResumeAfterRestart(t *testing.T) {
	s := startServer(t, Config{}, &fakeController{})
	broadcastN(s, 1, 2)
	probe(t, s)
	b := dial(t, s)
	b.send(`{"cmd":"resume","since":900}` + "\x00")
	want := `{"event":"fail","account":"","error":"resume: since 900 is ahead of the latest event 2, so the daemon restarted: any events of the previous run after 900 are lost; every event of this run follows","cmd":"resume"}`
	if got := b.nextRaw(); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	for i := 1; i <= 2; i++ {
		if got := b.nextRaw(); got != answered(i) {
			t.Fatalf("got %s, want %s", got, answered(i))
		}
	}
}

// A resume that names another run's start time gets this run's events,
// even when its since is not ahead; naming this run is a plain resume.
func TestResumeNamesTheRun(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := startServer(t, Config{EventHistory: 4}, &fakeController{}, WithVersion("1", start))
	broadcastN(s, 1, 6)
	probe(t, s)
	b := dial(t, s)
	b.send(`{"cmd":"resume","since":3,"started":"2026-12-01T09:00:00Z","tag":"t"}` + "\x00")
	want := `{"event":"fail","account":"","error":"resume: the daemon restarted (this run started at 2026-12-01T10:00:00Z, not 2026-12-01T09:00:00Z): any events of the previous run after 3 are lost; this run's first 2 events are no longer kept; the 4 kept ones follow","cmd":"resume","tag":"t"}`
	if got := b.nextRaw(); got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
	for i := 3; i <= 6; i++ {
		if got := b.nextRaw(); got != answered(i) {
			t.Fatalf("got %s, want %s", got, answered(i))
		}
	}
	c := dial(t, s)
	c.send(`{"cmd":"resume","since":4,"started":"2026-12-01T10:00:00Z"}` + "\x00" + `{"cmd":"resume","since":1,"started":7}` + "\x00")
	for i := 5; i <= 6; i++ {
		if got := c.nextRaw(); got != answered(i) {
			t.Fatalf("same run: got %s, want %s", got, answered(i))
		}
	}
	if got, want := c.nextRaw(), `{"event":"fail","account":"","error":"resume: field \"started\" must be a string","cmd":"resume"}`; got != want {
		t.Fatalf("got %s\nwant %s", got, want)
	}
}

func TestTags(t *testing.T) {
	ctrl := &fakeController{statuses: twoAccounts(), errs: map[string]error{"Logout": fmt.Errorf("not registered")}}
	s := startServer(t, Config{}, ctrl, WithLogLevel(new(slog.LevelVar)))
	tag64 := strings.Repeat("t", 64)
	tests := []struct {
		name, send string
		want       []string
	}{
		{name: "call-return", send: `{"cmd":"make-call","account":"account-1","num":"3002","tag":"m1"}`,
			want: []string{`{"event":"call-return","account":"account-1","call_id":0,"tag":"m1"}`}},
		{name: "status of every account", send: `{"cmd":"get-status","tag":"s1"}`,
			want: []string{
				`{"event":"status","account":"account-1","calls":[{"call_id":5,"caller":"3003","callee":"3001","started":true,"stopped":false,"state":"active","direction":"in","active":true,"codec":"PCMU","packets_sent":0,"packets_received":0,"packets_lost":0,"jitter_ms":0,"hold":"","duration_s":0,"octets_sent":0,"octets_received":0,"rtt_ms":0,"mos":0,"r_factor":0}],"account_status":200,"tag":"s1"}`,
				`{"event":"status","account":"account-2","calls":[],"account_status":0,"tag":"s1"}`}},
		{name: "pong", send: `{"cmd":"ping","token":"x","tag":"p1"}`,
			want: []string{`{"event":"pong","token":"x","tag":"p1"}`}},
		{name: "log-level", send: `{"cmd":"log-level","tag":"l1"}`,
			want: []string{`{"event":"log-level","level":"info","tag":"l1"}`}},
		{name: "fail of the controller", send: `{"cmd":"logout","account":"account-1","tag":"o1"}`,
			want: []string{`{"event":"fail","account":"account-1","error":"not registered","cmd":"logout","tag":"o1"}`}},
		{name: "fail of a bad field", send: `{"cmd":"make-call","account":"account-1","tag":"m2"}`,
			want: []string{`{"event":"fail","account":"account-1","error":"make-call: missing field \"num\"","cmd":"make-call","tag":"m2"}`}},
		{name: "fail of an unknown command", send: `{"cmd":"dial","tag":"d1"}`,
			want: []string{`{"event":"fail","account":"","error":"unknown command \"dial\": use login, make-call, answer-call, switch-call, get-status, hangup-call, logout, ping, reload, resume, log-level, send-dtmf, transfer-call, trace or sip-trace","cmd":"dial","tag":"d1"}`}},
		{name: "fail of reload", send: `{"cmd":"reload","tag":"r1"}`,
			want: []string{`{"event":"fail","account":"","error":"reload is not available on this server","cmd":"reload","tag":"r1"}`}},
		{name: "silent command stays silent", send: `{"cmd":"answer-call","account":"account-1","call_id":0,"tag":"a1"}`},
		{name: "64 bytes", send: `{"cmd":"ping","tag":"` + tag64 + `"}`,
			want: []string{`{"event":"pong","token":"","tag":"` + tag64 + `"}`}},
		{name: "escaped tag", send: `{"cmd":"ping","tag":"\u00e9\n"}`,
			want: []string{`{"event":"pong","token":"","tag":"é\n"}`}},
		{name: "tag too long", send: `{"cmd":"ping","tag":"` + tag64 + `u"}`,
			want: []string{`{"event":"fail","account":"","error":"ping: field \"tag\" is 65 bytes long; at most 64 are allowed","cmd":"ping"}`}},
		{name: "tag not a string", send: `{"cmd":"get-status","account":"account-2","tag":7}`,
			want: []string{`{"event":"fail","account":"account-2","error":"get-status: field \"tag\" must be a string","cmd":"get-status"}`}},
		{name: "tag null", send: `{"cmd":"hangup-call","account":"account-2","call_id":1,"tag":null}`,
			want: []string{`{"event":"fail","account":"account-2","error":"hangup-call: field \"tag\" must be a string","cmd":"hangup-call"}`}},
	}
	c := dial(t, s)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.send(tt.send + "\x00" + `{"cmd":"ping","token":"end"}` + "\x00")
			for _, w := range tt.want {
				if got := c.nextRaw(); got != w {
					t.Fatalf("got  %s\nwant %s", got, w)
				}
			}
			if got := c.nextRaw(); got != `{"event":"pong","token":"end"}` {
				t.Fatalf("got %s, want the closing pong", got)
			}
		})
	}
}

func TestLogLevel(t *testing.T) {
	lv := new(slog.LevelVar)
	lv.Set(slog.LevelWarn)
	s := startServer(t, Config{}, &fakeController{}, WithLogLevel(lv))
	c := dial(t, s)
	steps := []struct {
		send, want string
		level      slog.Level
	}{
		{`{"cmd":"log-level"}`, `{"event":"log-level","level":"warn"}`, slog.LevelWarn},
		{`{"cmd":"log-level","level":"debug"}`, `{"event":"log-level","level":"debug"}`, slog.LevelDebug},
		{`{"cmd":"log-level","level":"error"}`, `{"event":"log-level","level":"error"}`, slog.LevelError},
		{`{"cmd":"log-level","level":"DEBUG"}`, `{"event":"fail","account":"","error":"log-level: field \"level\" must be \"debug\", \"info\", \"warn\" or \"error\" (got \"DEBUG\")","cmd":"log-level"}`, slog.LevelError},
		{`{"cmd":"log-level","level":2}`, `{"event":"fail","account":"","error":"log-level: field \"level\" must be a string","cmd":"log-level"}`, slog.LevelError},
		{`{"cmd":"log-level","level":"info"}`, `{"event":"log-level","level":"info"}`, slog.LevelInfo},
	}
	for _, st := range steps {
		c.send(st.send + "\x00")
		if got := c.nextRaw(); got != st.want {
			t.Fatalf("%s: got %s, want %s", st.send, got, st.want)
		}
		if lv.Level() != st.level {
			t.Fatalf("%s: level %v, want %v", st.send, lv.Level(), st.level)
		}
	}

	plain := startServer(t, Config{}, &fakeController{})
	p := dial(t, plain)
	p.send(`{"cmd":"log-level","level":"debug"}` + "\x00")
	if got, want := p.nextRaw(), `{"event":"fail","account":"","error":"log-level: this server has no adjustable log level","cmd":"log-level"}`; got != want {
		t.Fatalf("without WithLogLevel: got %s", got)
	}
}

func TestPongVersionAndUptime(t *testing.T) {
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	now := start.Add(3*time.Hour + 1500*time.Millisecond)
	s := startServer(t, Config{}, &fakeController{}, WithVersion("1.2.3", start), withClock(func() time.Time { return now }))
	c := dial(t, s)
	c.send(`{"cmd":"ping","token":"v"}` + "\x00")
	if got, want := c.nextRaw(), `{"event":"pong","token":"v","version":"1.2.3","uptime_s":10801,"seq":0,"started":"2026-12-01T10:00:00Z"}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	broadcastN(s, 1, 3)
	for i := 1; i <= 3; i++ {
		c.nextRaw()
	}
	c.send(`{"cmd":"ping","tag":"x"}` + "\x00")
	if got, want := c.nextRaw(), `{"event":"pong","token":"","tag":"x","version":"1.2.3","uptime_s":10801,"seq":3,"started":"2026-12-01T10:00:00Z"}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// Events broadcast while a client connects and before its resume is read
// still come in seq order after the replay: the client's broadcasts are
// held until its first command.
func TestResumeFirstCommandIsInOrder(t *testing.T) {
	// The hold outlasts any scheduling delay of a loaded machine: resume
	// must arrive as the first command within it (TestHoldEnds covers
	// the hold's end).
	s := startServer(t, Config{}, &fakeController{}, withHold(time.Minute))
	broadcastN(s, 1, 10)
	b := dial(t, s)
	broadcastN(s, 11, 30) // before, during or after b's admission
	time.Sleep(20 * time.Millisecond)
	b.send(`{"cmd":"resume","since":5}` + "\x00")
	for i := 6; i <= 30; i++ {
		if got := b.nextRaw(); got != answered(i) {
			t.Fatalf("got %s, want %s", got, answered(i))
		}
	}
	broadcastN(s, 31, 31)
	if got := b.nextRaw(); got != answered(31) {
		t.Fatalf("live: got %s", got)
	}
}

// A client that sends nothing gets the broadcasts held for it once the
// hold ends, in order; one whose first command is not resume gets them
// at once.
func TestHoldEnds(t *testing.T) {
	s := startServer(t, Config{}, &fakeController{})
	quiet := dial(t, s)
	waitFor(t, "client", func() bool { return s.Stats().Clients == 1 })
	broadcastN(s, 1, 3)
	for i := 1; i <= 3; i++ { // within holdTime, nextRaw allows 5 s
		if got := quiet.nextRaw(); got != answered(i) {
			t.Fatalf("quiet client: got %s, want %s", got, answered(i))
		}
	}

	busy := dial(t, s)
	busy.send(`{"cmd":"ping","token":"p"}` + "\x00")
	if got := busy.nextRaw(); got != `{"event":"pong","token":"p"}` {
		t.Fatalf("got %s", got)
	}
	// The release went to the hub before the ping ran: once the hub has
	// handled what came before the probe, nobody is held.
	probe(t, s)
	held := -1
	done := make(chan struct{})
	s.inHub(func() {
		held = 0
		for _, c := range s.arrivals.held {
			if c.held {
				held++
			}
		}
		close(done)
	})
	<-done
	if held != 0 {
		t.Fatalf("%d clients still held after their first command", held)
	}
	broadcastN(s, 4, 4)
	if got := busy.nextRaw(); got != answered(4) {
		t.Fatalf("after a ping: got %s", got)
	}
	if got := quiet.nextRaw(); got != answered(4) {
		t.Fatalf("quiet client live: got %s", got)
	}
}

// sip_edge and audio are extra fields after the documented ones, and absent
// when the controller gives none: a host application sees the vendor's
// status.
func TestStatusSIPEdge(t *testing.T) {
	tests := []struct {
		name string
		st   Status
		want string
	}{
		{name: "without", st: Status{Account: "a", AccountStatus: 200},
			want: `{"event":"status","account":"a","calls":[],"account_status":200}`},
		{name: "with", st: Status{Account: "a", AccountStatus: 200, SIPEdge: &SIPEdge{Malformed: 3, Rejected: 2, Dropped: 1, Answers: 4, LogLines: 1}},
			want: `{"event":"status","account":"a","calls":[],"account_status":200,"sip_edge":{"malformed":3,"rejected":2,"dropped":1,"rewritten":0,"answers":4,"log_lines":1}}`},
		{name: "audio", st: Status{Account: "a", AccountStatus: 200, Audio: &Audio{Channel: "ch1", Backend: "pulse", Reconnects: 2,
			Xruns: 5, PlaybackDroppedS: 0.25, CaptureDroppedS: 0.02, PlaybackMarginMs: 12.5, CaptureMarginMs: 20}},
			want: `{"event":"status","account":"a","calls":[],"account_status":200,"audio":{"channel":"ch1","backend":"pulse","connected":false,"reconnects":2,"xruns":5,` +
				`"playback_dropped_s":0.25,"capture_dropped_s":0.02,"playback_margin_ms":12.5,"capture_margin_ms":20}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(encodeStatus(tt.st, ""))
			if got != tt.want+"\x00" {
				t.Errorf("status frame\n got %q\nwant %q", got, tt.want+"\x00")
			}
		})
	}
}
