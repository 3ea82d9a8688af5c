package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
)

// fakeController knows "account-1" and "account-2" and counts Status calls.
type fakeController struct{ statusCalls atomic.Int64 }

func (f *fakeController) Login(context.Context, string, *string, *string, *string) error { return nil }
func (f *fakeController) MakeCall(context.Context, string, string, func(int)) error {
	return errors.New("not used")
}
func (f *fakeController) AnswerCall(context.Context, string, int) error       { return nil }
func (f *fakeController) SwitchCall(context.Context, string, int) error       { return nil }
func (f *fakeController) HangupCall(context.Context, string, int, bool) error { return nil }
func (f *fakeController) Logout(context.Context, string) error                { return nil }
func (f *fakeController) SendDTMF(context.Context, string, int, string, time.Duration) error {
	return nil
}
func (f *fakeController) TransferCall(context.Context, string, int, string) error { return nil }
func (f *fakeController) Status(_ context.Context, a string) ([]api.Status, error) {
	f.statusCalls.Add(1)
	all := []api.Status{{Account: "account-1", AccountStatus: 200}, {Account: "account-2"}}
	switch a {
	case "":
		return all, nil
	case "account-1", "account-2":
		return all[:1], nil
	}
	return nil, fmt.Errorf("unknown account %q", a)
}

func startServer(t *testing.T) (*api.Server, *fakeController) {
	t.Helper()
	ctrl := &fakeController{}
	tcp := plan.Default().TCP // the daemon's limits
	s := api.NewServer(api.Config{Address: "127.0.0.1", MaxClients: tcp.MaxClients, MaxMessageBytes: tcp.MaxMessageBytes,
		EventHistory: tcp.EventHistory}, ctrl, nil)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return s, ctrl
}

func runBench(t *testing.T, args ...string) (int, result, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	var res result
	if code == 0 || code == 1 {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) == 2 {
			if err := json.Unmarshal([]byte(lines[0]), &res); err != nil {
				t.Fatalf("summary line %q: %v", lines[0], err)
			}
			if !strings.HasPrefix(lines[1], res.Mode+" "+res.Cmd+": ") {
				t.Fatalf("human line %q", lines[1])
			}
		}
	}
	return code, res, errb.String()
}

func checkResult(t *testing.T, res result, wantReqs int) {
	t.Helper()
	if res.Requests != wantReqs || res.Errors != 0 {
		t.Fatalf("requests %d errors %d, want %d and 0 (%+v)", res.Requests, res.Errors, wantReqs, res)
	}
	if !(0 < res.P50us && res.P50us <= res.P90us && res.P90us <= res.P99us && res.P99us <= res.MaxUs) || res.CmdsPerSec <= 0 {
		t.Fatalf("implausible figures %+v", res)
	}
}

func TestBenchAPI(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		wantReqs  int
		wantCalls int64
	}{
		{name: "get-status one account", args: []string{"-clients", "3", "-n", "301", "-warmup", "5", "-account", "account-1"}, wantReqs: 301, wantCalls: 316},
		{name: "get-status every account", args: []string{"-clients", "2", "-n", "100", "-warmup", "1"}, wantReqs: 100, wantCalls: 102},
		{name: "ping", args: []string{"-clients", "4", "-n", "200", "-cmd", "ping", "-warmup", "0"}, wantReqs: 200, wantCalls: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ctrl := startServer(t)
			// Broadcasts in between must be skipped.
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Microsecond):
						s.Broadcast(api.CallAnswered{Account: "account-1", CallID: i})
						s.Broadcast(api.Fail{Account: "account-1", Error: "Failed to log in to account: account-1: 403 Forbidden"})
					}
				}
			}()
			code, res, errOut := runBench(t, append([]string{"-addr", s.Addr().String()}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			checkResult(t, res, tt.wantReqs)
			if res.Mode != "api" {
				t.Fatalf("mode %q", res.Mode)
			}
			if got := ctrl.statusCalls.Load(); got != tt.wantCalls {
				t.Fatalf("controller Status called %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}

func TestBenchAPIFail(t *testing.T) {
	s, _ := startServer(t)
	code, _, errOut := runBench(t, "-addr", s.Addr().String(), "-n", "10", "-warmup", "0", "-account", "nope")
	if code != 1 || !strings.Contains(errOut, `10 requests failed; first: fail: unknown account "nope"`) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = runBench(t, "-addr", s.Addr().String(), "-n", "10", "-account", "nope")
	if code != 1 || !strings.Contains(errOut, "warm-up request") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// fakeBaresip answers ctrl_tcp commands like baresip 1.0.0, with an event
// before every response.
func fakeBaresip(t *testing.T) (addr string, commands *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	commands = new(atomic.Int64)
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			br := bufio.NewReader(conn)
			for {
				data, err := readNetstring(br)
				if err != nil {
					break
				}
				var req struct{ Command, Token string }
				json.Unmarshal(data, &req)
				commands.Add(1)
				ev := `{"event":true,"class":"register","type":"REGISTER_OK","accountaor":"sip:3004@127.0.0.1"}`
				resp, _ := json.Marshal(map[string]any{"response": true, "ok": req.Command == "reginfo", "data": "\n--- User Agents (1) ---\n", "token": req.Token})
				conn.Write(appendNetstring(appendNetstring(nil, []byte(ev)), resp))
			}
			conn.Close()
		}
	}()
	return ln.Addr().String(), commands
}

func TestBenchBaresip(t *testing.T) {
	addr, commands := fakeBaresip(t)
	code, res, errOut := runBench(t, "-baresip", "-addr", addr, "-n", "200", "-warmup", "10")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	checkResult(t, res, 200)
	if res.Mode != "baresip" || res.Cmd != "reginfo" || commands.Load() != 210 {
		t.Fatalf("%+v, %d commands", res, commands.Load())
	}
	code, _, errOut = runBench(t, "-baresip", "-addr", addr, "-n", "5", "-warmup", "0", "-cmd", "bogus")
	if code != 1 || !strings.Contains(errOut, `baresip refused "bogus"`) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "baresip many clients", args: []string{"-baresip", "-clients", "2"}, wantErr: "-baresip needs -clients 1"},
		{name: "zero clients", args: []string{"-clients", "0"}, wantErr: "-clients must be at least 1"},
		{name: "n below clients", args: []string{"-clients", "4", "-n", "2"}, wantErr: "-n (2) must be at least -clients (4)"},
		{name: "api command", args: []string{"-cmd", "make-call"}, wantErr: `-cmd "make-call"`},
		{name: "stray argument", args: []string{"x"}, wantErr: `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runBench(t, tt.args...)
			if code != 64 || !strings.Contains(errOut, tt.wantErr) {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
		})
	}
}

func TestConnectError(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	code, _, errOut := runBench(t, "-addr", addr, "-n", "1")
	if code != 1 || !strings.Contains(errOut, "connect to "+addr) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {90, 90}, {99, 99}, {100, 100}, {0, 1}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("p%v = %v, want %v", c.p, got, c.want)
		}
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Errorf("single = %v", got)
	}
}

func TestNetstring(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "two", in: "3:abc,0:,", want: []string{"abc", ""}, wantErr: "EOF"},
		{name: "json", in: `17:{"response":true},`, want: []string{`{"response":true}`}, wantErr: "EOF"},
		{name: "missing comma", in: "3:abcd", wantErr: `netstring: 'd' instead of the closing ','`},
		{name: "bad length", in: "3x:abc,", wantErr: `netstring: byte 'x' in the length`},
		{name: "empty length", in: ":abc,", wantErr: "netstring: empty length"},
		{name: "leading zero", in: "03:abc,", wantErr: "netstring: leading zero in the length"},
		{name: "huge", in: "99999999:", wantErr: "netstring: length too long"},
		{name: "over limit", in: "2000000:", wantErr: "over the 1048576 limit"},
		{name: "truncated", in: "10:abc", wantErr: "unexpected EOF"},
		{name: "truncated length", in: "10", wantErr: "unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.in))
			var got []string
			var err error
			for {
				var data []byte
				if data, err = readNetstring(br); err != nil {
					break
				}
				got = append(got, string(data))
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got %q, %v; want %q, %q", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// FuzzNetstring checks that readNetstring never panics and that what it
// returns encodes back to the bytes it consumed.
func FuzzNetstring(f *testing.F) {
	f.Add([]byte("3:abc,"))
	f.Add([]byte(`37:{"command":"reginfo","token":"b1"},`))
	f.Add([]byte("0:,5:hello,"))
	f.Add([]byte("1x:a,"))
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReader(bytes.NewReader(in))
		var re []byte
		for {
			data, err := readNetstring(br)
			if err != nil {
				if err == io.EOF && !bytes.HasPrefix(in, re) {
					t.Fatalf("re-encoded %q is not a prefix of %q", re, in)
				}
				return
			}
			re = appendNetstring(re, data)
		}
	})
}
