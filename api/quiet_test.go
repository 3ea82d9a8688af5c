package api

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A client that closes its socket right after its answer (telestra-sipctl
// call) is a normal disconnect, not a warning, even when later broadcasts
// hit the closed socket (EPIPE, ECONNRESET).
func TestClientGoneIsNoWarning(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := NewServer(withLimits(Config{Address: "127.0.0.1"}), &fakeController{}, log)
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	defer func() { cancel(); <-done }()

	conn, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte(`{"cmd":"make-call","account":"a","num":"2"}` + "\x00"))
	fr := NewFrameReader(conn, 1<<16)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := fr.Next(); err != nil {
		t.Fatal(err)
	}
	// Close without reading what follows; unread data makes it an RST.
	s.Broadcast(CallAnswered{Account: "a", CallID: 0})
	time.Sleep(20 * time.Millisecond)
	conn.Close()
	for deadline := time.Now().Add(5 * time.Second); s.Stats().Clients > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("client still registered")
		}
		s.Broadcast(CallEnded{Account: "a", CallID: 0, Reason: "remote hangup"})
	}
	if strings.Contains(logs.String(), "level=WARN") {
		t.Fatalf("a client that closed its connection was logged as a warning:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "API client disconnected") {
		t.Fatalf("the disconnect was not logged at all:\n%s", logs.String())
	}
}

// Which failed writes are warnings: the race above is rarely lost, so the
// classification is checked directly too.
func TestWriteFailedLevel(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantWarn bool
	}{
		{name: "broken pipe", err: &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.EPIPE)}},
		{name: "reset", err: &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", syscall.ECONNRESET)}},
		{name: "closed", err: net.ErrClosed},
		{name: "client not reading", err: os.ErrDeadlineExceeded, wantWarn: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs lockedBuffer
			s := NewServer(withLimits(Config{}), &fakeController{}, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
			a, b := net.Pipe()
			defer a.Close()
			defer b.Close()
			s.writeFailed(newClient(a, 4), tc.err)
			if got := strings.Contains(logs.String(), "level=WARN"); got != tc.wantWarn {
				t.Fatalf("warning logged: %v, want %v\n%s", got, tc.wantWarn, logs.String())
			}
			if tc.wantWarn != (s.Stats().DroppedClients == 1) {
				t.Fatalf("DroppedClients = %d", s.Stats().DroppedClients)
			}
		})
	}
}
