package sip

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"testing"
)

// TestMain reports what sipgo warned through its default logger
// (slog.Default). The UA and the test peers give every sipgo layer a logger
// of their own; what is left on the default one are the connection
// reference counts ("TCP ref went negative"), which must stay quiet in
// normal operation (streams.go). The report does not fail the package: a
// test peer that closes its TCP connection while one of our transactions
// still holds it (a test's teardown on a loaded machine) makes sipgo warn
// once. A stop, where it was deterministic, is asserted quiet by
// TestTCPDaemonStopsQuietly against Kamailio.
func TestMain(m *testing.M) {
	w := &warnings{}
	slog.SetDefault(slog.New(w))
	code := m.Run()
	if n, first := w.get(); n > 0 {
		fmt.Fprintf(os.Stderr, "note: sipgo logged %d warnings through slog.Default; the first: %s\n", n, first)
	}
	os.Exit(code)
}

// warnings is an slog.Handler counting records at warning level and above.
type warnings struct {
	mu    sync.Mutex
	n     int
	first string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.n == 0 {
		w.first = line + "\n" + string(debug.Stack())
	}
	w.n++
	return nil
}

func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

func (w *warnings) get() (int, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.first
}
