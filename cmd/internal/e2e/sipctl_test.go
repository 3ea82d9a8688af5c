//go:build integration

package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// sipctlBinary builds cmd/telestra-sipctl into the test's temp folder.
func sipctlBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "telestra-sipctl")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "./cmd/telestra-sipctl")
	cmd.Dir = testpeers.RepoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/telestra-sipctl: %v\n%s", err, out)
	}
	return bin
}

// lockedBuffer collects a process's stderr.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

// TestSipctlEventsAcrossRestart: `telestra-sipctl events -json` follows a
// daemon that is restarted (SIGTERM, then started again on the same plan):
// it says so on stderr, reconnects on its own and prints the new run's
// events, including those broadcast before it was back, each once.
func TestSipctlEventsAcrossRestart(t *testing.T) {
	ctl := sipctlBinary(t)
	e := &env{t: t, ctx: peerCtx(t, 90*time.Second)}
	e.start(&plan{Accounts: []account{
		{Name: "account-1", User: "3001", Pass: "x"},
		{Name: "account-2", User: "3002", Pass: "x"},
	}})
	planText, err := os.ReadFile(e.d.PlanPath())
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(ctl, "-addr", e.d.APIAddr(), "events", "-json")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	type ev struct {
		Event string `json:"event"`
		Seq   uint64 `json:"seq"`
	}
	read := func(n int) []ev {
		t.Helper()
		var out []ev
		for len(out) < n {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("telestra-sipctl ended; stderr:\n%s", stderr.String())
				}
				var m ev
				if err := json.Unmarshal([]byte(l), &m); err != nil {
					t.Fatalf("telestra-sipctl printed %q: %v", l, err)
				}
				out = append(out, m)
			case <-time.After(10 * time.Second):
				t.Fatalf("telestra-sipctl printed %d of %d events; stderr:\n%s", len(out), n, stderr.String())
			}
		}
		return out
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10 s; telestra-sipctl stderr:\n%s", what, stderr.String())
			}
		}
	}

	// The daemon logs (debug) each client it admits and each that leaves:
	// StartDaemon's readiness probe (a ping, then gone), the test's, then
	// telestra-sipctl's, whose ping it answers before anything else.
	waitUntil("telestra-sipctl connected", func() bool {
		log := e.d.Log()
		live := strings.Count(log, "API client connected") - strings.Count(log, "API client disconnected")
		return live >= 2 && strings.Count(log, `cmd=ping`) >= 2
	})
	callAndHangUp(t, e.c, e.ctx)
	first := read(5)
	for i, m := range first {
		if m.Seq != uint64(i+1) {
			t.Fatalf("first run: event %d has seq %d, want %d", i, m.Seq, i+1)
		}
	}

	if err := e.d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitUntil("reconnecting on stderr", func() bool { return strings.Contains(stderr.String(), "reconnecting") })
	d2 := testpeers.StartDaemon(t, string(planText))
	c2 := d2.Client(t)
	// A call right away: its first events may come before telestra-sipctl
	// is back, and are then replayed.
	callAndHangUp(t, c2, e.ctx)
	second := read(5)
	for i, m := range second {
		if m.Seq != uint64(i+1) {
			t.Fatalf("second run: event %d (%s) has seq %d, want %d; stderr:\n%s", i, m.Event, m.Seq, i+1, stderr.String())
		}
	}
	// stderr is copied from its pipe on its own: it may lag stdout.
	waitUntil("stderr saying the daemon restarted", func() bool {
		return strings.Contains(stderr.String(), "resume: the daemon restarted")
	})
	select {
	case l := <-lines:
		t.Fatalf("extra line after the second run's events: %s", l)
	case <-time.After(300 * time.Millisecond):
	}
	t.Logf("telestra-sipctl stderr:\n%s", stderr.String())
}
