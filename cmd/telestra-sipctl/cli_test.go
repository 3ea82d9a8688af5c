package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
)

// fakeController serves "account-1" and "account-2" and records commands.
type fakeController struct {
	mu  sync.Mutex
	log []string
}

func (f *fakeController) rec(account, format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf(format, args...))
	if account != "account-1" && account != "account-2" {
		return fmt.Errorf("unknown account %q", account)
	}
	return nil
}

func (f *fakeController) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.log) == 0 {
		return ""
	}
	return f.log[len(f.log)-1]
}

func p(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func (f *fakeController) Login(_ context.Context, a string, u, pw, s *string) error {
	return f.rec(a, "login %s %s %s %s", a, p(u), p(pw), p(s))
}

func (f *fakeController) MakeCall(_ context.Context, a, num string, accepted func(int)) error {
	if err := f.rec(a, "make-call %s %s", a, num); err != nil {
		return err
	}
	accepted(42)
	return nil
}

func (f *fakeController) AnswerCall(_ context.Context, a string, id int) error {
	return f.rec(a, "answer %s %d", a, id)
}

func (f *fakeController) SwitchCall(_ context.Context, a string, id int) error {
	return f.rec(a, "switch %s %d", a, id)
}

func (f *fakeController) HangupCall(_ context.Context, a string, id int, d bool) error {
	return f.rec(a, "hangup %s %d %v", a, id, d)
}

func (f *fakeController) Logout(_ context.Context, a string) error { return f.rec(a, "logout %s", a) }
func (f *fakeController) SendDTMF(_ context.Context, a string, id int, digits string, dur time.Duration) error {
	return f.rec(a, "dtmf %s %d %s %v", a, id, digits, dur)
}
func (f *fakeController) TransferCall(_ context.Context, a string, id int, num string) error {
	return f.rec(a, "transfer %s %d %s", a, id, num)
}

func (f *fakeController) Status(_ context.Context, a string) ([]api.Status, error) {
	busy := 486
	all := []api.Status{
		{Account: "account-1", AccountStatus: 200, Registration: &api.Registration{State: "registered", Server: "127.0.0.1:5070", Transport: "udp", ExpiresIn: 241},
			Calls: []api.Call{
				{CallID: 5, Caller: "3003", Callee: "3001", Started: true, State: "active", Direction: "in", Active: true,
					Codec: "PCMU", PacketsSent: 1500, PacketsReceived: 1498, PacketsLost: 2, JitterMs: 1.25,
					DurationS: 3725.4, LocalMedia: "127.0.0.1:31000", RemoteMedia: "127.0.0.1:18000", RTTMs: 0.4, MOS: 4.38},
				{CallID: 6, Caller: "3001", Callee: "3004", State: "held", Hold: "local", Direction: "out"},
				{CallID: 7, Caller: "3001", Callee: "3009", State: "ended", Stopped: true, Direction: "out", EndReason: "486 Busy Here", EndCode: &busy},
			}},
		{Account: "account-2", AccountStatus: 403},
	}
	if a == "" {
		return all, nil
	}
	for _, st := range all {
		if st.Account == a {
			return []api.Status{st}, nil
		}
	}
	return nil, fmt.Errorf("unknown account %q", a)
}

func startServer(t *testing.T) (*api.Server, *fakeController) {
	t.Helper()
	return startServerOn(t, api.Config{Address: "127.0.0.1"})
}

// planLimits gives cfg the daemon's defaults (plan.Default) for the limits
// the API server takes from the plan.
func planLimits(cfg api.Config) api.Config {
	tcp := plan.Default().TCP
	cfg.MaxClients, cfg.MaxMessageBytes, cfg.EventHistory = tcp.MaxClients, tcp.MaxMessageBytes, tcp.EventHistory
	return cfg
}

func startServerOn(t *testing.T, cfg api.Config) (*api.Server, *fakeController) {
	t.Helper()
	ctrl := &fakeController{}
	s := api.NewServer(planLimits(cfg), ctrl, nil, api.WithVersion("9.9.9", time.Time{}), api.WithLogLevel(new(slog.LevelVar)))
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, ctrl
}

// syncBuffer is written by run's goroutine and read by the test.
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

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCommands(t *testing.T) {
	s, ctrl := startServer(t)
	addr := s.Addr().String()
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string // exact stdout
		wantErr    string // substring of stderr
		wantCalled string // last controller call
	}{
		{name: "call", args: []string{"call", "account-1", "3002"}, wantOut: "42\n", wantCalled: "make-call account-1 3002"},
		{name: "call unknown account", args: []string{"call", "x", "3002"}, wantCode: 1,
			wantErr: `telestra-sipctl: call failed: unknown account "x"`},
		{name: "answer", args: []string{"answer", "account-2", "7"}, wantCalled: "answer account-2 7"},
		{name: "switch", args: []string{"switch", "account-1", "3"}, wantCalled: "switch account-1 3"},
		{name: "hangup", args: []string{"hangup", "account-1", "3"}, wantCalled: "hangup account-1 3 false"},
		{name: "hangup decline before", args: []string{"hangup", "-decline", "account-1", "4"}, wantCalled: "hangup account-1 4 true"},
		{name: "hangup decline after", args: []string{"hangup", "account-1", "4", "--decline"}, wantCalled: "hangup account-1 4 true"},
		{name: "hangup fail", args: []string{"hangup", "nope", "4"}, wantCode: 1, wantErr: `hangup failed: unknown account "nope"`},
		{name: "login account only", args: []string{"login", "account-1"}, wantCalled: "login account-1 - - -"},
		{name: "login full", args: []string{"login", "account-1", "3001", "pw", "127.0.0.1"}, wantCalled: "login account-1 3001 pw 127.0.0.1"},
		{name: "login user only", args: []string{"login", "account-1", "3009"}, wantCalled: "login account-1 3009 - -"},
		{name: "logout", args: []string{"logout", "account-2"}, wantCalled: "logout account-2"},
		{name: "dtmf", args: []string{"dtmf", "account-1", "3", "12#*"}, wantCalled: "dtmf account-1 3 12#* 0s"},
		{name: "dtmf bad id", args: []string{"dtmf", "account-1", "x", "1"}, wantCode: 64, wantErr: `CALL_ID "x" is not a call ID`},
		{name: "dtmf no digits", args: []string{"dtmf", "account-1", "3"}, wantCode: 64, wantErr: "dtmf: needs ACCOUNT CALL_ID DIGITS"},
		{name: "transfer", args: []string{"transfer", "account-1", "3", "3003"}, wantCalled: "transfer account-1 3 3003"},
		{name: "transfer no num", args: []string{"transfer", "account-1", "3"}, wantCode: 64, wantErr: "transfer: needs ACCOUNT CALL_ID NUM"},
		{name: "logout fail", args: []string{"logout", "x"}, wantCode: 1, wantErr: `logout failed: unknown account "x"`},
		{name: "send", args: []string{"send", `{"cmd":"make-call","account":"account-1","num":"9"}`},
			wantOut: `{"event":"call-return","account":"account-1","call_id":42}` + "\n", wantCalled: "make-call account-1 9"},
		{name: "send bad", args: []string{"send", `{"cmd":"answer-call","account":"a","call_id":"1"}`}, wantCode: 1,
			wantErr: `{"event":"fail","account":"a","error":"answer-call: field \"call_id\" must be an integer","cmd":"answer-call"}`},
		{name: "status one", args: []string{"status", "account-2"}, wantOut: "ACCOUNT    STATUS  MEANING                                        REGISTRATION\n" +
			"account-2  403     rejected: 403 Forbidden (check user and pass)  -\n\nno calls\n"},
		{name: "status unknown", args: []string{"status", "x"}, wantCode: 1, wantErr: `status failed: unknown account "x"`},
		{name: "log-level read", args: []string{"log-level"}, wantOut: "info\n"},
		{name: "log-level set", args: []string{"log-level", "debug"}, wantOut: "debug\n"},
		{name: "log-level bad", args: []string{"log-level", "loud"}, wantCode: 1,
			wantErr: `log-level failed: log-level: field "level" must be "debug", "info", "warn" or "error" (got "loud")`},
		{name: "log-level two args", args: []string{"log-level", "a", "b"}, wantCode: 64, wantErr: "log-level: takes at most one LEVEL"},
		// Usage errors.
		{name: "unknown command", args: []string{"dial"}, wantCode: 64, wantErr: `unknown command "dial"`},
		{name: "call one arg", args: []string{"call", "account-1"}, wantCode: 64, wantErr: "call: needs ACCOUNT NUM\nusage: telestra-sipctl call ACCOUNT NUM\n"},
		{name: "answer bad id", args: []string{"answer", "account-1", "x1"}, wantCode: 64, wantErr: `CALL_ID "x1" is not a call ID`},
		{name: "decline on answer", args: []string{"answer", "-decline", "account-1", "1"}, wantCode: 64, wantErr: "answer: flag provided but not defined: -decline"},
		{name: "login too many", args: []string{"login", "a", "b", "c", "d", "e"}, wantCode: 64, wantErr: "login: needs ACCOUNT"},
		{name: "events bad arg", args: []string{"events", "-x"}, wantCode: 64, wantErr: `events: flag provided but not defined: -x`},
		{name: "send no arg", args: []string{"send"}, wantCode: 64, wantErr: "send: needs one JSON argument"},
		{name: "status two args", args: []string{"status", "a", "b"}, wantCode: 64, wantErr: "status: takes at most one ACCOUNT"},
		// Flags after the command and among its arguments.
		{name: "hangup flags last", args: []string{"hangup", "account-1", "5", "-decline", "-timeout", "2s"}, wantCalled: "hangup account-1 5 true"},
		{name: "password after --", args: []string{"login", "account-1", "3001", "--", "-secret"}, wantCalled: "login account-1 3001 -secret -"},
		{name: "status json", args: []string{"status", "--json", "account-2"},
			wantOut: `{"event":"status","account":"account-2","calls":[],"account_status":403}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"-addr", addr}, tt.args...)...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, out, errOut)
			}
			if tt.wantOut != "" && out != tt.wantOut {
				t.Fatalf("stdout\n%q\nwant\n%q", out, tt.wantOut)
			}
			if !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("stderr %q does not contain %q", errOut, tt.wantErr)
			}
			if tt.wantCalled != "" && ctrl.last() != tt.wantCalled {
				t.Fatalf("controller last got %q, want %q", ctrl.last(), tt.wantCalled)
			}
		})
	}
}

func TestStatusTable(t *testing.T) {
	s, _ := startServer(t)
	code, out, errOut := runCLI(t, "-addr", s.Addr().String(), "status")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := `ACCOUNT    STATUS  MEANING                                        REGISTRATION
account-1  200     registered                                     registered at 127.0.0.1:5070/udp, expires in 241s
account-2  403     rejected: 403 Forbidden (check user and pass)  -

ACCOUNT    ID  DIR  CALLER  CALLEE  STATE   HOLD     ACTIVE  DURATION  CODEC  MEDIA LOCAL -> REMOTE               PKTS TX/RX  LOST  JITTER  RTT     MOS   END
account-1  5   in   3003    3001    active  -        yes     1:02:05   PCMU   127.0.0.1:31000 -> 127.0.0.1:18000  1500/1498   2     1.2 ms  0.4 ms  4.38  -
account-1  6   out  3001    3004    held    we hold  no      0:00:00   -      -                                   0/0         0     0.0 ms  0.0 ms  -     -
account-1  7   out  3001    3009    ended   -        no      0:00:00   -      -                                   0/0         0     0.0 ms  0.0 ms  -     486 Busy Here
`
	if out != want {
		t.Fatalf("got\n%s\nwant\n%s", out, want)
	}
}

func TestVersion(t *testing.T) {
	s, _ := startServer(t)
	code, out, errOut := runCLI(t, "-addr", s.Addr().String(), "version")
	if code != 0 || !strings.HasPrefix(out, "telestra-sipctl dev\ntelestra-sipd 9.9.9 (up ") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestEvents(t *testing.T) {
	for _, asJSON := range []bool{false, true} {
		t.Run(fmt.Sprintf("json=%v", asJSON), func(t *testing.T) {
			s, _ := startServer(t)
			ctx, cancel := context.WithCancel(context.Background())
			var out, errb syncBuffer
			args := []string{"-addr", s.Addr().String(), "events"}
			if asJSON {
				args = append(args, "--json")
			}
			done := make(chan int, 1)
			go func() { done <- runWithClock(ctx, args, &out, &errb) }()
			waitFor(t, func() bool { return s.Stats().Clients == 1 })
			s.Broadcast(api.CallIncoming{Account: "account-2", CallID: 1, Caller: "3001", CallerName: "account 1"})
			s.Broadcast(api.CallAnswered{Account: "account-2", CallID: 1})
			s.Broadcast(api.CallEnded{Account: "account-2", CallID: 1, Reason: "486 Busy Here", Code: 486})
			s.Broadcast(api.Fail{Account: "account-3", Error: "Failed to log in to account: account-3: 403 Forbidden"})
			want := "12:00:00.000 call-incoming account=account-2 call_id=1 caller=\"3001\" caller_name=\"account 1\"\n" +
				"12:00:00.000 call-answered account=account-2 call_id=1\n" +
				"12:00:00.000 call-ended account=account-2 call_id=1 reason=\"486 Busy Here\" code=486\n" +
				"12:00:00.000 fail account=account-3 error=\"Failed to log in to account: account-3: 403 Forbidden\"\n"
			if asJSON {
				want = `{"event":"call-incoming","account":"account-2","call_id":1,"caller":"3001","caller_name":"account 1","seq":1}` + "\n" +
					`{"event":"call-answered","account":"account-2","call_id":1,"seq":2}` + "\n" +
					`{"event":"call-ended","account":"account-2","call_id":1,"reason":"486 Busy Here","code":486,"seq":3}` + "\n" +
					`{"event":"fail","account":"account-3","error":"Failed to log in to account: account-3: 403 Forbidden","seq":4}` + "\n"
			}
			waitFor(t, func() bool { return strings.Count(out.String(), "\n") == 4 })
			if out.String() != want {
				t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
			}
			cancel()
			if code := <-done; code != 0 {
				t.Fatalf("exit %d after interrupt: %s", code, errb.String())
			}
		})
	}
}

// runWithClock is run with a fixed clock for the event time stamps.
func runWithClock(ctx context.Context, args []string, stdout, stderr *syncBuffer) int {
	fixed := time.Date(2026, 3, 9, 12, 0, 0, 0, time.Local)
	return runOpts(ctx, args, stdout, stderr, func(c *cli) { c.now = func() time.Time { return fixed } })
}

// A daemon that does not answer the first ping is exit 2.
func TestEventsDaemonGone(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		conn, err := ln.Accept()
		if err == nil {
			conn.Close()
		}
		ln.Close()
	}()
	code, _, errOut := runCLI(t, "-addr", ln.Addr().String(), "events")
	if code != 2 || !strings.Contains(errOut, "connection to telestra-sipd at "+ln.Addr().String()) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestConnectionErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silent := ln.Addr().String() // accepts (backlog) but never answers
	defer ln.Close()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "refused", args: []string{"-addr", refused, "status"}, wantErr: "connection refused (is telestra-sipd running? check -addr)"},
		{name: "no answer", args: []string{"-addr", silent, "-timeout", "200ms", "status"}, wantErr: "no answer from telestra-sipd at " + silent + " within 200ms"},
		{name: "no plan", args: []string{"-plan", filepath.Join(t.TempDir(), "none.toml"), "status"}, wantErr: "no API address: read SIP plan"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errOut, tt.wantErr)
			}
		})
	}
}

func TestAddressFromPlan(t *testing.T) {
	s, ctrl := startServer(t)
	port := s.Addr().(*net.TCPAddr).Port
	for _, listen := range []string{"0.0.0.0", "127.0.0.1", "::"} { // Go listens dual-stack on "::"
		t.Run(listen, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sipplan.toml")
			plan := fmt.Sprintf("[tcp-settings]\naddress = %q\nport = %d\n\n[audio.channels.ch1]\n\n[accounts.account-1]\nuser = \"3001\"\n", listen, port)
			if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCLI(t, "-plan", path, "call", "account-1", "3002")
			if code != 0 || out != "42\n" {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			if ctrl.last() != "make-call account-1 3002" {
				t.Fatalf("controller got %q", ctrl.last())
			}
		})
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out")
}

// TestIPv6API: -addr [::1]:PORT, a plan listening on ::1, and a plan on
// "::" whose allow-list admits only ::1 (the CLI must not use 127.0.0.1).
func TestIPv6API(t *testing.T) {
	s, ctrl := startServerOn(t, api.Config{Address: "::", Allow: []netip.Prefix{netip.MustParsePrefix("::1/128")}})
	port := s.Addr().(*net.TCPAddr).Port
	code, out, errOut := runCLI(t, "-addr", fmt.Sprintf("[::1]:%d", port), "call", "account-1", "3002")
	if code != 0 || out != "42\n" {
		t.Fatalf("-addr [::1]: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, listen := range []string{"::1", "::"} {
		t.Run(listen, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sipplan.toml")
			plan := fmt.Sprintf("[tcp-settings]\naddress = %q\nport = %d\nallow = [\"::1/128\"]\n\n[audio.channels.ch1]\n\n[accounts.account-1]\nuser = \"3001\"\n", listen, port)
			if err := os.WriteFile(path, []byte(plan), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCLI(t, "-plan", path, "call", "account-1", "3002")
			if code != 0 || out != "42\n" || ctrl.last() != "make-call account-1 3002" {
				t.Fatalf("exit %d, stdout %q, stderr %q, controller %q", code, out, errOut, ctrl.last())
			}
		})
	}
	code, _, errOut = runCLI(t, "-addr", fmt.Sprintf("::1:%d", port), "status")
	if code != 64 || !strings.Contains(errOut, "[::1]:3550") {
		t.Errorf("-addr without brackets: exit %d, stderr %q, want a usage error showing [::1]:3550", code, errOut)
	}
}

func TestEventLineExtensions(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"dtmf", `{"event":"dtmf","account":"account-1","call_id":3,"digit":"#","duration_ms":120}`,
			`dtmf account=account-1 call_id=3 digit=# duration_ms=120`},
		{"call-transferred", `{"event":"call-transferred","account":"account-1","call_id":3,"new_call_id":4,"target":"sip:3005@pbx"}`,
			`call-transferred account=account-1 call_id=3 new_call_id=4 target="sip:3005@pbx"`},
		{"call-answered replacing", `{"event":"call-answered","account":"account-1","call_id":8,"replaces":5}`,
			`call-answered account=account-1 call_id=8 replaces=5`},
		{"call-answered", `{"event":"call-answered","account":"account-1","call_id":8}`,
			`call-answered account=account-1 call_id=8`},
		{"transfer fail", `{"event":"fail","account":"account-1","error":"transfer of call 3 to sip:9@pbx failed: 486 Busy Here","cmd":"transfer-call"}`,
			`fail account=account-1 cmd=transfer-call error="transfer of call 3 to sip:9@pbx failed: 486 Busy Here"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m client.Message
			if err := json.Unmarshal([]byte(tc.raw), &m); err != nil {
				t.Fatal(err)
			}
			m.Raw = json.RawMessage(tc.raw)
			if got := eventLine(m); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

type nopTracer struct{ clients atomic.Int32 }

func (*nopTracer) SetSIPTrace(bool)     {}
func (n *nopTracer) TraceClients(c int) { n.clients.Store(int32(c)) }

func TestTrace(t *testing.T) {
	tr := &nopTracer{}
	s := api.NewServer(planLimits(api.Config{Address: "127.0.0.1"}), &fakeController{}, nil, api.WithTracer(tr))
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(sctx) }()
	t.Cleanup(func() { stop(); <-served })

	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runWithClock(ctx, []string{"-addr", s.Addr().String(), "trace", "account-1"}, &out, &errb)
	}()
	waitFor(t, func() bool { return tr.clients.Load() == 1 })
	at := time.Date(2026, 12, 2, 1, 2, 3, 456000000, time.UTC)
	s.TraceSIP(api.SIPMessage{Account: "account-2", Time: at, FirstLine: "OPTIONS sip:x SIP/2.0"})
	s.TraceSIP(api.SIPMessage{Account: "account-1", Time: at, Sent: true, Transport: "udp", Local: "127.0.0.1:5070",
		Remote: "127.0.0.1:5060", CallID: "c1", FirstLine: "INVITE sip:3002@127.0.0.1 SIP/2.0"})
	s.TraceSIP(api.SIPMessage{Account: "account-1", Time: at.Add(time.Millisecond), Transport: "udp", Local: "127.0.0.1:5070",
		Remote: "127.0.0.1:5060", CallID: "c1", FirstLine: "SIP/2.0 407 Proxy Authentication Required"})
	// Printed in the local time zone, as runWithClock's clock is.
	want := at.Local().Format("15:04:05.000") + " account-1 127.0.0.1:5070 --> 127.0.0.1:5060 udp INVITE sip:3002@127.0.0.1 SIP/2.0 [c1]\n" +
		at.Add(time.Millisecond).Local().Format("15:04:05.000") + " account-1 127.0.0.1:5070 <-- 127.0.0.1:5060 udp SIP/2.0 407 Proxy Authentication Required [c1]\n"
	waitFor(t, func() bool { return strings.Count(out.String(), "\n") == 2 })
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d after interrupt: %s", code, errb.String())
	}

	// A daemon without the trace: a fail, exit 1.
	s2, _ := startServer(t)
	code, _, errOut := runCLI(t, "-addr", s2.Addr().String(), "trace")
	if code != exitFail || !strings.Contains(errOut, "SIP trace is not available") {
		t.Errorf("exit %d, stderr %q; want 1 and the daemon's reason", code, errOut)
	}
}
