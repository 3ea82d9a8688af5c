package daemon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestJournalKey(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "plain", in: "account", want: "ACCOUNT"},
		{name: "snake", in: "call_id", want: "CALL_ID"},
		{name: "dash and dot", in: "sip-call.id", want: "SIP_CALL_ID"},
		{name: "reserved underscore", in: "_pid", want: "F__PID"},
		{name: "leading digit", in: "1x", want: "F_1X"},
		{name: "empty", in: "", want: "F_"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := journalKey(tc.in); got != tc.want {
				t.Fatalf("journalKey(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestJournalAttr(t *testing.T) {
	tests := []struct {
		name string
		in   slog.Attr
		want string
	}{
		{name: "SIP layer's call is CALL_ID", in: slog.Int("call", 7), want: "CALL_ID=7"},
		{name: "component", in: slog.String("component", "sip"), want: "COMPONENT=sip"},
		{name: "duration stays readable", in: slog.Duration("retry", 1500*time.Millisecond), want: "RETRY=1.5s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := journalAttr(nil, tc.in)
			if got := a.Key + "=" + a.Value.String(); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

// capture is a fake inner handler: it keeps what the journal would get.
type capture struct {
	pre  []slog.Attr
	recs *[]slog.Record
}

func (c capture) Enabled(context.Context, slog.Level) bool { return true }
func (c capture) Handle(_ context.Context, r slog.Record) error {
	r.AddAttrs(c.pre...)
	*c.recs = append(*c.recs, r)
	return nil
}
func (c capture) WithAttrs(as []slog.Attr) slog.Handler {
	return capture{pre: append(append([]slog.Attr(nil), c.pre...), as...), recs: c.recs}
}
func (c capture) WithGroup(string) slog.Handler { return c }

func TestJournalHandlerMessageAndFields(t *testing.T) {
	var recs []slog.Record
	level := new(slog.LevelVar)
	log := slog.New(newJournalHandler(capture{recs: &recs}, level)).With("component", "sip")
	log.Debug("not shown at info")
	log.Warn("registration failed", "account", "account-1", "reason", "403 Forbidden")
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1 (debug filtered)", len(recs))
	}
	r := recs[0]
	if want := `registration failed component=sip account=account-1 reason="403 Forbidden"`; r.Message != want {
		t.Fatalf("MESSAGE = %q, want %q", r.Message, want)
	}
	if !r.Time.IsZero() {
		t.Fatalf("record keeps its time %v: journald stamps its own", r.Time)
	}
	if r.Level != slog.LevelWarn {
		t.Fatalf("level %v, want WARN (PRIORITY=4)", r.Level)
	}
	fields := map[string]string{}
	r.Attrs(func(a slog.Attr) bool { fields[a.Key] = a.Value.String(); return true })
	for k, v := range map[string]string{"account": "account-1", "component": "sip", "reason": "403 Forbidden"} {
		if fields[k] != v {
			t.Fatalf("field %s = %q, want %q (all: %v)", k, fields[k], v, fields)
		}
	}
	if strings.Contains(r.Message, "time=") || strings.Contains(r.Message, "level=") {
		t.Fatalf("MESSAGE repeats time or level: %q", r.Message)
	}
}

func TestJournalStreamMatchesOnlyStderrsInode(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  string
		want bool
	}{
		{name: "matches", env: fmt.Sprintf("%d:%d", st.Dev, st.Ino), want: true},
		{name: "other inode (stderr redirected)", env: fmt.Sprintf("%d:%d", st.Dev, st.Ino+1), want: false},
		{name: "unset", env: "", want: false},
		{name: "garbage", env: "journal", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := journalStream(f, tc.env); got != tc.want {
				t.Fatalf("journalStream(%q) = %v, want %v", tc.env, got, tc.want)
			}
		})
	}
}

func TestNewLogHandlerTextWithoutJournal(t *testing.T) {
	t.Setenv("JOURNAL_STREAM", "1:2")
	var buf bytes.Buffer
	h, journal := NewLogHandler(&buf, slog.LevelInfo)
	if journal {
		t.Fatal("a buffer is not the journal")
	}
	slog.New(h).Info("hello", "account", "a")
	if !strings.Contains(buf.String(), "level=INFO msg=hello account=a") {
		t.Fatalf("text output %q", buf.String())
	}
}

func TestStatusText(t *testing.T) {
	tests := []struct {
		name string
		in   statusCounts
		want string
	}{
		{name: "registering", in: statusCounts{accounts: 4, registrars: 4, registered: 3, calls: 2}, want: "3/4 accounts registered, 2 calls"},
		{name: "one call", in: statusCounts{accounts: 1, registrars: 1, registered: 1, calls: 1}, want: "1/1 accounts registered, 1 call"},
		{name: "no registrar", in: statusCounts{accounts: 2}, want: "2 accounts (none registers), 0 calls"},
		{name: "logged in at run time", in: statusCounts{accounts: 2, registered: 1}, want: "1/1 accounts registered, 0 calls"},
		{name: "rejected reload", in: statusCounts{accounts: 1, registrars: 1, reloadErr: true}, want: "0/1 accounts registered, 0 calls; last reload rejected (journalctl -u telestra-sipd -p err)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.in.String(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
