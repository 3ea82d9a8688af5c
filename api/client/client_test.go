package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
)

// fakeController knows the accounts "account-1" and "account-2" and
// records what it is asked.
type fakeController struct {
	mu     sync.Mutex
	log    []string
	nextID int
}

func (f *fakeController) check(account, format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf(format, args...))
	if account != "account-1" && account != "account-2" {
		return fmt.Errorf("unknown account %q", account)
	}
	return nil
}

func (f *fakeController) Login(_ context.Context, a string, u, p, s *string) error {
	val := func(p *string) string {
		if p == nil {
			return "-"
		}
		return *p
	}
	return f.check(a, "login %s %s %s %s", a, val(u), val(p), val(s))
}

func (f *fakeController) MakeCall(_ context.Context, a, num string, accepted func(int)) error {
	if err := f.check(a, "make-call %s %s", a, num); err != nil {
		return err
	}
	f.mu.Lock()
	id := f.nextID
	f.nextID++
	f.mu.Unlock()
	accepted(id)
	return nil
}

func (f *fakeController) AnswerCall(_ context.Context, a string, id int) error {
	return f.check(a, "answer %s %d", a, id)
}

func (f *fakeController) SwitchCall(_ context.Context, a string, id int) error {
	return f.check(a, "switch %s %d", a, id)
}

func (f *fakeController) HangupCall(_ context.Context, a string, id int, decline bool) error {
	return f.check(a, "hangup %s %d %v", a, id, decline)
}

func (f *fakeController) Logout(_ context.Context, a string) error {
	return f.check(a, "logout %s", a)
}
func (f *fakeController) SendDTMF(context.Context, string, int, string, time.Duration) error {
	return nil
}

func (f *fakeController) TransferCall(context.Context, string, int, string) error { return nil }

func (f *fakeController) Status(_ context.Context, a string) ([]api.Status, error) {
	all := []api.Status{
		{Account: "account-1", AccountStatus: 200, Calls: []api.Call{{CallID: 3, Caller: "3001", Callee: "3002", State: "active"}}},
		{Account: "account-2", AccountStatus: 0},
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

func (f *fakeController) calls() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.log, "; ")
}

func start(t *testing.T) (*api.Server, *fakeController, *client.Client) {
	t.Helper()
	ctrl := &fakeController{}
	// The limits are the daemon's to set (from the plan); any will do here.
	s := api.NewServer(api.Config{Address: "127.0.0.1", MaxClients: 8, MaxMessageBytes: 64 << 10, EventHistory: 256}, ctrl, nil)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	c, err := client.Dial(ctx, s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return s, ctrl, c
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestTypedCommands(t *testing.T) {
	_, ctrl, c := start(t)
	ctx := ctx(t)
	user, pass := "3001", "sip3001"
	if err := c.Login(ctx, "account-1", &user, &pass, nil); err != nil {
		t.Fatal(err)
	}
	id, err := c.MakeCall(ctx, "account-1", "3002")
	if err != nil || id != 0 {
		t.Fatalf("MakeCall = %d, %v", id, err)
	}
	id, err = c.MakeCall(ctx, "account-2", "sip:3001@127.0.0.1")
	if err != nil || id != 1 {
		t.Fatalf("MakeCall = %d, %v", id, err)
	}
	for _, err := range []error{
		c.AnswerCall(ctx, "account-2", 1),
		c.SwitchCall(ctx, "account-1", 0),
		c.HangupCall(ctx, "account-1", 0, false),
		c.HangupCall(ctx, "account-2", 1, true),
		c.Logout(ctx, "account-1"),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := "login account-1 3001 sip3001 -; make-call account-1 3002; make-call account-2 sip:3001@127.0.0.1; " +
		"answer account-2 1; switch account-1 0; hangup account-1 0 false; hangup account-2 1 true; logout account-1"
	if got := ctrl.calls(); got != want {
		t.Fatalf("controller got\n%s\nwant\n%s", got, want)
	}
}

func TestFailErrors(t *testing.T) {
	_, _, c := start(t)
	ctx := ctx(t)
	checks := []struct {
		name string
		err  error
	}{
		{"login", c.Login(ctx, "nope", nil, nil, nil)},
		{"logout", c.Logout(ctx, "nope")},
		{"answer", c.AnswerCall(ctx, "nope", 1)},
		{"switch", c.SwitchCall(ctx, "nope", 1)},
		{"hangup", c.HangupCall(ctx, "nope", 1, false)},
	}
	_, err := c.MakeCall(ctx, "nope", "1")
	checks = append(checks, struct {
		name string
		err  error
	}{"make-call", err})
	_, err = c.GetStatus(ctx, "nope")
	checks = append(checks, struct {
		name string
		err  error
	}{"get-status", err})
	for _, ch := range checks {
		var fe *client.FailError
		if !errors.As(ch.err, &fe) {
			t.Fatalf("%s: err = %v, want *FailError", ch.name, ch.err)
		}
		if got := fe.Error(); got != `nope: unknown account "nope"` {
			t.Fatalf("%s: %q", ch.name, got)
		}
	}
	// No stray pong or fail is left behind.
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if m, err := c.Next(short); err == nil {
		t.Fatalf("left over: %s", m.Raw)
	}
}

func TestGetStatus(t *testing.T) {
	_, _, c := start(t)
	ctx := ctx(t)
	all, err := c.GetStatus(ctx, "")
	if err != nil || len(all) != 2 || all[0].Account != "account-1" || all[1].Account != "account-2" {
		t.Fatalf("GetStatus(all) = %+v, %v", all, err)
	}
	if len(all[0].Calls) != 1 || all[0].Calls[0].CallID != 3 || all[0].AccountStatus != 200 || all[1].Calls == nil {
		t.Fatalf("decoded %+v", all)
	}
	one, err := c.GetStatus(ctx, "account-2")
	if err != nil || len(one) != 1 || one[0].Account != "account-2" {
		t.Fatalf("GetStatus(account-2) = %+v, %v", one, err)
	}
}

func TestWaitForKeepsSkippedInOrder(t *testing.T) {
	s, _, c := start(t)
	ctx := ctx(t)
	if err := c.Ping(ctx); err != nil { // registered with the hub
		t.Fatal(err)
	}
	for i := range 5 {
		s.Broadcast(api.CallAnswered{Account: "account-1", CallID: i})
	}
	s.Broadcast(api.CallEnded{Account: "account-2", CallID: 9, Reason: "remote hangup"})
	m, err := c.WaitFor(ctx, client.Match(api.EventCallEnded, "account-2", 9))
	if err != nil || m.Reason != "remote hangup" {
		t.Fatalf("WaitFor = %+v, %v", m, err)
	}
	// A later WaitFor finds a match in the backlog.
	m, err = c.WaitFor(ctx, client.Match(api.EventCallAnswered, "", 3))
	if err != nil || m.CallID != 3 {
		t.Fatalf("WaitFor(backlog) = %+v, %v", m, err)
	}
	for _, want := range []int{0, 1, 2, 4} {
		m, err := c.Next(ctx)
		if err != nil || m.Event != api.EventCallAnswered || m.CallID != want {
			t.Fatalf("Next = %+v, %v; want call-answered %d", m, err, want)
		}
	}
}

func TestRawAndDecode(t *testing.T) {
	_, _, c := start(t)
	ctx := ctx(t)
	if err := c.SendRaw([]byte(`{"cmd":"answer-call","account":"account-1","call_id":"3"}`)); err != nil {
		t.Fatal(err)
	}
	m, err := c.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Event != "fail" || m.Cmd != "answer-call" || m.Account != "account-1" || m.Error != `answer-call: field "call_id" must be an integer` {
		t.Fatalf("got %+v", m)
	}
	var v map[string]any
	if err := m.Decode(&v); err != nil || v["error"] != m.Error {
		t.Fatalf("Decode = %v, %v", v, err)
	}
	if err := c.Send(map[string]any{"cmd": "ping", "token": "t"}); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Next(ctx); err != nil || string(m.Raw) != `{"event":"pong","token":"t"}` {
		t.Fatalf("Raw = %s, %v", m.Raw, err)
	}
}

func TestConnectionEnd(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		conn.Write([]byte("{\"event\":\"call-answered\",\"account\":\"a\",\"call_id\":1}\x00not json\x00"))
		conn.Close()
	}()
	c, err := client.Dial(ctx(t), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m, err := c.Next(ctx(t)); err != nil || m.CallID != 1 {
		t.Fatalf("first = %+v, %v", m, err)
	}
	if _, err := c.Next(ctx(t)); err == nil || !strings.Contains(err.Error(), "invalid message") {
		t.Fatalf("bad frame: err = %v", err)
	}
	for range 2 {
		if _, err := c.Next(ctx(t)); err == nil || !strings.Contains(err.Error(), "EOF") {
			t.Fatalf("after close: err = %v", err)
		}
	}
}

func TestDialError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = client.Dial(ctx(t), addr)
	if err == nil || !strings.Contains(err.Error(), "connect to the telestra-sipd API at "+addr) {
		t.Fatalf("Dial = %v", err)
	}
}
