package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	slogjournal "github.com/systemd/slog-journal"
)

// NewLogHandler returns the daemon's log handler. Under systemd, when
// stderr is connected to the journal ($JOURNAL_STREAM names stderr's device
// and inode, see systemd.exec(5)), records go to journald over its native
// protocol: the slog level becomes PRIORITY= and every attribute its own
// field (ACCOUNT=, CALL_ID=, COMPONENT=, ...), and journald stamps the time.
// Anywhere else (a terminal, a pipe, tests) it is the text handler on
// stderr. journal reports which one was chosen.
func NewLogHandler(stderr io.Writer, level slog.Leveler) (h slog.Handler, journal bool) {
	if f, ok := stderr.(*os.File); ok && journalStream(f, os.Getenv("JOURNAL_STREAM")) {
		jh, err := slogjournal.NewHandler(&slogjournal.Options{Level: level, ReplaceAttr: journalAttr, ReplaceGroup: journalKey})
		if err == nil {
			return newJournalHandler(jh, level), true
		}
		// No datagram socket: the text handler still reaches the journal.
		fmt.Fprintf(stderr, "journal handler unavailable, logging text to stderr: %v\n", err)
	}
	return slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}), false
}

// journalStream reports whether env ("DEV:INODE", as systemd sets
// JOURNAL_STREAM) names f. A stderr redirected elsewhere by a wrapper keeps
// the variable but no longer matches, and then text is right.
func journalStream(f *os.File, env string) bool {
	var dev, ino uint64
	if n, err := fmt.Sscanf(env, "%d:%d", &dev, &ino); err != nil || n != 2 {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && st.Ino == ino
}

// journalAttr turns slog keys into journal field names (^[A-Z_][A-Z0-9_]*$):
// "call_id" becomes CALL_ID; the SIP layer's "call" (the API call id) is
// CALL_ID too, so one field filters a call whoever logged it. Durations are
// kept readable ("1.5s") rather than the handler's microseconds.
func journalAttr(groups []string, a slog.Attr) slog.Attr {
	if a.Key == "call" {
		a.Key = "call_id"
	}
	a.Key = journalKey(a.Key)
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

func journalKey(k string) string {
	b := []byte(strings.ToUpper(k))
	for i, c := range b {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			b[i] = '_'
		}
	}
	// Leading '_' is reserved for journald's trusted fields, a digit is invalid.
	if len(b) == 0 || b[0] == '_' || (b[0] >= '0' && b[0] <= '9') {
		b = append([]byte("F_"), b...)
	}
	return string(b)
}

// journalHandler wraps the native journal handler so that MESSAGE= still
// reads like the text log ("reload: plan rejected err=..."): journalctl
// shows only MESSAGE by default, and an operator must see the error without
// -o verbose. The attributes are fields as well. The record's time is
// dropped: journald's own timestamp is the only one.
type journalHandler struct {
	inner slog.Handler
	level slog.Leveler
	text  slog.Handler // formats the attributes into buf
	buf   *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) { return l.b.Write(p) }

func newJournalHandler(inner slog.Handler, level slog.Leveler) *journalHandler {
	buf := &lockedBuffer{}
	text := slog.NewTextHandler(buf, &slog.HandlerOptions{
		Level: slog.LevelDebug - 8, // the outer handler filters
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
				return slog.Attr{}
			}
			return a
		},
	})
	return &journalHandler{inner: inner, level: level, text: text, buf: buf}
}

func (h *journalHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.level.Level()
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.buf.mu.Lock()
	h.buf.b.Reset()
	err := h.text.Handle(ctx, r)
	attrs := strings.TrimSpace(h.buf.b.String())
	h.buf.mu.Unlock()
	if err != nil {
		return err
	}
	msg := r.Message
	if attrs != "" {
		msg += " " + attrs
	}
	nr := slog.NewRecord(time.Time{}, r.Level, msg, r.PC)
	r.Attrs(func(a slog.Attr) bool { nr.AddAttrs(a); return true })
	return h.inner.Handle(ctx, nr)
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(as)
	c.text = h.text.WithAttrs(as)
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.inner = h.inner.WithGroup(name)
	c.text = h.text.WithGroup(name)
	return &c
}
