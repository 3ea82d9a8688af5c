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

// TestMain fails the package when sipgo warned through its default logger
// (slog.Default). The UA and the test peers give every sipgo layer a
// logger of their own; what is left on the default one (the connection
// reference counts, "TCP ref went negative") must stay quiet in normal
// operation (streams.go).
func TestMain(m *testing.M) {
	w := &warnings{}
	slog.SetDefault(slog.New(w))
	code := m.Run()
	if n, first := w.get(); n > 0 && code == 0 {
		fmt.Fprintf(os.Stderr, "FAIL: sipgo logged %d warnings through slog.Default; the first: %s\n", n, first)
		code = 1
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
