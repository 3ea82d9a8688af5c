package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeController records the commands it gets. Errors come from errs,
// keyed by method name; MakeCall hands out IDs from nextID and then runs
// afterAccept (to broadcast from inside the command, as the daemon may).
type fakeController struct {
	mu          sync.Mutex
	log         []string
	errs        map[string]error
	nextID      int
	statuses    []Status
	afterAccept func(id int)
}

var _ Controller = (*fakeController)(nil)

func (f *fakeController) record(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf(format, args...))
	name, _, _ := strings.Cut(format, " ")
	return f.errs[name]
}

func (f *fakeController) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.log...)
}

func strOrNil(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func (f *fakeController) Login(_ context.Context, account string, user, pass, server *string) error {
	return f.record("Login %s %s %s %s", account, strOrNil(user), strOrNil(pass), strOrNil(server))
}

func (f *fakeController) MakeCall(_ context.Context, account, num string, accepted func(int)) error {
	if err := f.record("MakeCall %s %s", account, num); err != nil {
		return err
	}
	f.mu.Lock()
	id := f.nextID
	f.nextID++
	after := f.afterAccept
	f.mu.Unlock()
	accepted(id)
	if after != nil {
		after(id)
	}
	return nil
}

func (f *fakeController) AnswerCall(_ context.Context, account string, id int) error {
	return f.record("AnswerCall %s %d", account, id)
}

func (f *fakeController) SwitchCall(_ context.Context, account string, id int) error {
	return f.record("SwitchCall %s %d", account, id)
}

func (f *fakeController) HangupCall(_ context.Context, account string, id int, decline bool) error {
	return f.record("HangupCall %s %d %v", account, id, decline)
}

func (f *fakeController) SendDTMF(_ context.Context, account string, id int, digits string, dur time.Duration) error {
	return f.record("SendDTMF %s %d %s %v", account, id, digits, dur)
}

func (f *fakeController) TransferCall(_ context.Context, account string, id int, num string) error {
	return f.record("TransferCall %s %d %s", account, id, num)
}

func (f *fakeController) Logout(_ context.Context, account string) error {
	return f.record("Logout %s", account)
}

func (f *fakeController) Status(_ context.Context, account string) ([]Status, error) {
	if err := f.record("Status %s", account); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if account == "" {
		return f.statuses, nil
	}
	for _, st := range f.statuses {
		if st.Account == account {
			return []Status{st}, nil
		}
	}
	return nil, fmt.Errorf("unknown account %q", account)
}

// testLogger writes the server's log to the test's log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startServer runs a server on 127.0.0.1:0 until the test ends.
// withLimits fills the plan settings a test leaves zero (Listen rejects
// them) with generous test values.
func withLimits(cfg Config) Config {
	if cfg.MaxClients == 0 {
		cfg.MaxClients = 32
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 64 << 10
	}
	if cfg.EventHistory == 0 {
		cfg.EventHistory = 1024
	}
	return cfg
}

func startServer(t *testing.T, cfg Config, ctrl Controller, opts ...Option) *Server {
	t.Helper()
	if cfg.Address == "" {
		cfg.Address = "127.0.0.1"
	}
	s := NewServer(withLimits(cfg), ctrl, testLogger(t), opts...)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Serve did not return within 5s of cancel")
		}
	})
	return s
}

// testConn is a raw client: it writes bytes as given and reads frames.
type testConn struct {
	t    *testing.T
	conn net.Conn
	fr   *FrameReader
}

func dial(t *testing.T, s *Server) *testConn {
	t.Helper()
	return dialFrom(t, s, "")
}

// dialFrom connects to s's port at host (the client's address too, on
// loopback); "": s's own address.
func dialFrom(t *testing.T, s *Server, host string) *testConn {
	t.Helper()
	addr := s.Addr().String()
	if host != "" {
		addr = net.JoinHostPort(host, strconv.Itoa(s.Addr().(*net.TCPAddr).Port))
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &testConn{t: t, conn: conn, fr: NewFrameReader(conn, 1<<22)}
}

func (c *testConn) send(raw string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(raw)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// nextRaw returns the next frame as a string; it fails the test after 5s.
func (c *testConn) nextRaw() string {
	c.t.Helper()
	msg, err := c.nextErr(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return msg
}

func (c *testConn) nextErr(timeout time.Duration) (string, error) {
	c.conn.SetReadDeadline(time.Now().Add(timeout))
	msg, err := c.fr.Next()
	return string(msg), err
}

func (c *testConn) next() map[string]any {
	c.t.Helper()
	raw := c.nextRaw()
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		c.t.Fatalf("server sent invalid JSON %q: %v", raw, err)
	}
	return m
}

// expectSilence fails if anything arrives within d.
func (c *testConn) expectSilence(d time.Duration) {
	c.t.Helper()
	msg, err := c.nextErr(d)
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("expected nothing, got %q, %v", msg, err)
	}
}

// expectClosed fails unless the server closes the connection within 5s
// (frames still in flight are skipped).
func (c *testConn) expectClosed() {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_, err := c.nextErr(time.Until(deadline))
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			break
		}
		return
	}
	c.t.Fatal("connection still open after 5s")
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
