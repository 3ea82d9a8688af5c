package testpeers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/telestra/telestra-sip/api/client"
)

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// DaemonBinary builds cmd/telestra-sipd once per test binary (with -race
// when the tests run with -race) and returns its path. TESTPEERS_DAEMON
// names a prebuilt binary to run instead (another version side by side,
// for a reference figure).
func DaemonBinary(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("TESTPEERS_DAEMON"); bin != "" {
		return bin
	}
	root := RepoRoot(t)
	buildOnce.Do(func() {
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			if goBin, err = exec.LookPath("go"); err != nil {
				buildErr = errors.New("go not found (GOROOT/bin/go or PATH)")
				return
			}
		}
		dir, err := os.MkdirTemp("", "telestra-sipd-build-")
		if err != nil {
			buildErr = err
			return
		}
		removeStaleBuilds(dir)
		bin := filepath.Join(dir, "telestra-sipd")
		args := []string{"build", "-o", bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/telestra-sipd")
		cmd := exec.Command(goBin, args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
			return
		}
		buildBin = bin
	})
	if buildErr != nil {
		t.Fatalf("testpeers: building the daemon: %v", buildErr)
	}
	return buildBin
}

// removeStaleBuilds deletes daemon builds of earlier test runs (older than
// an hour), since a test binary has no hook to remove its own at exit.
func removeStaleBuilds(keep string) {
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(keep), "telestra-sipd-build-*"))
	for _, d := range old {
		if fi, err := os.Stat(d); err == nil && d != keep && time.Since(fi.ModTime()) > time.Hour {
			os.RemoveAll(d)
		}
	}
}

// DaemonOptions are the less common knobs of StartDaemonWith.
type DaemonOptions struct {
	Env  []string // extra environment, e.g. PULSE_SERVER=..., HOME=...
	Args []string // extra flags after -plan FILE
	// NoWait returns right after the process starts instead of waiting for
	// the API port.
	NoWait bool
	// Bin runs this telestra-sipd build instead of DaemonBinary's (a
	// benchmark's reference build of another commit).
	Bin string
}

// Daemon is a running telestra-sipd.
type Daemon struct {
	t       testing.TB
	dir     string
	plan    string
	apiAddr string
	proc    *proc
}

// StartDaemon writes planTOML to a file, runs the daemon on it and waits
// until it serves its API, which it does once its SIP user agent has
// started ([tcp-settings] address/port of the plan; 0.0.0.0 is reached at
// 127.0.0.1, :: at ::1). Stopped in t.Cleanup, where a data
// race or panic in its log fails the test.
func StartDaemon(t testing.TB, planTOML string) *Daemon {
	t.Helper()
	return StartDaemonWith(t, planTOML, DaemonOptions{})
}

// StartDaemonWith is StartDaemon with options.
func StartDaemonWith(t testing.TB, planTOML string, opts DaemonOptions) *Daemon {
	t.Helper()
	bin := opts.Bin
	if bin == "" {
		bin = DaemonBinary(t)
	}
	d := &Daemon{t: t, dir: LogDir(t, "daemon")}
	d.plan = filepath.Join(d.dir, "sipplan.toml")
	if err := os.WriteFile(d.plan, []byte(planTOML), 0o600); err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	var p struct {
		TCP struct {
			Address string `toml:"address"`
			Port    int    `toml:"port"`
		} `toml:"tcp-settings"`
	}
	if _, err := toml.Decode(planTOML, &p); err != nil {
		t.Fatalf("testpeers: the test's plan is not TOML: %v", err)
	}
	host := p.TCP.Address
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	if p.TCP.Port == 0 {
		p.TCP.Port = 3550
	}
	d.apiAddr = net.JoinHostPort(host, strconv.Itoa(p.TCP.Port))

	env := append([]string{"GORACE=halt_on_error=0 log_path=stderr"}, opts.Env...)
	args := append([]string{"-plan", d.plan}, opts.Args...)
	pr, err := startProc("telestra-sipd", d.dir, filepath.Join(d.dir, "daemon.log"), env, bin, args...)
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	d.proc = pr
	t.Cleanup(d.cleanup)
	if opts.NoWait {
		return d
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if pr.exited() {
			t.Fatalf("testpeers: telestra-sipd exited during start-up (%v); log:\n%s", pr.waitErr, tail(pr.logPath, 40))
		}
		if served(d.apiAddr) {
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("testpeers: telestra-sipd API not listening on %s after 15 s; log:\n%s", d.apiAddr, tail(pr.logPath, 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// served says whether the daemon at addr serves its API. Its listener is
// bound before the SIP user agent starts (and the kernel accepts
// connections from then on), but served only once everything has started:
// any answer to a ping, or a close (a client the plan does not allow),
// means the accept loop runs.
func served(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := c.Write([]byte(`{"cmd":"ping","token":"testpeers-ready"}` + "\x00")); err != nil {
		return true // reset: closed by the accept loop
	}
	var b [1]byte
	_, err = c.Read(b[:])
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

func (d *Daemon) cleanup() {
	if !d.proc.exited() {
		if err := d.proc.stop(5 * time.Second); err != nil {
			d.t.Errorf("testpeers: %v", err)
		}
	}
	log := d.Log()
	for _, bad := range []string{"WARNING: DATA RACE", "panic: ", "fatal error: "} {
		if strings.Contains(log, bad) {
			d.t.Errorf("telestra-sipd log contains %q; see %s", bad, d.proc.logPath)
		}
	}
}

// APIAddr is the host:port of the daemon's TCP API.
func (d *Daemon) APIAddr() string { return d.apiAddr }

// PlanPath is the plan file the daemon runs on (rewrite it, then SIGHUP).
func (d *Daemon) PlanPath() string { return d.plan }

// Dir holds sipplan.toml and daemon.log.
func (d *Daemon) Dir() string { return d.dir }

// PID of the daemon.
func (d *Daemon) PID() int { return d.proc.pid() }

// Log is the daemon's stdout and stderr so far.
func (d *Daemon) Log() string { return d.proc.log() }

// Signal sends sig to the daemon.
func (d *Daemon) Signal(sig syscall.Signal) error { return d.proc.signal(sig) }

// Exited reports whether the process has ended.
func (d *Daemon) Exited() bool { return d.proc.exited() }

// Wait waits up to timeout for the daemon to exit and returns its exit
// error (nil for status 0).
func (d *Daemon) Wait(timeout time.Duration) error {
	select {
	case <-d.proc.done:
		return d.proc.waitErr
	case <-time.After(timeout):
		return fmt.Errorf("telestra-sipd still running after %v", timeout)
	}
}

// Client connects a new API client to the daemon; it is closed in
// t.Cleanup.
func (d *Daemon) Client(t testing.TB) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, d.apiAddr)
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// DumpGoroutines makes the daemon print every goroutine's stack into its
// log and exit (SIGQUIT), for diagnosing a hang. It returns the log.
func (d *Daemon) DumpGoroutines() string {
	if d.proc.exited() {
		return d.Log()
	}
	_ = d.proc.signal(syscall.SIGQUIT)
	_ = d.Wait(5 * time.Second)
	return d.Log()
}
