//go:build integration

package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/debugserver"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// account is one [accounts.NAME] of a generated plan.
type account struct {
	Name, User, Server string
	MaxCalls           int // 0: the daemon's default
}

// planOpts is what a reliability test varies in the daemon's plan.
type planOpts struct {
	Accounts   []account
	Linger     string // ended-call-linger; default "2s"
	LogLevel   string // default "info", as in production
	RTPPorts   int    // size of the RTP range; default 40
	Transports []string
	RTPTimeout string // default "30s"
	Expires    string // register-expires; default "60s"
	Bin        string // another telestra-sipd build (BENCH_REF); "": this tree's
}

// daemonEnv is a daemon with its debug endpoint and one API client.
type daemonEnv struct {
	d       *testpeers.Daemon
	c       *client.Client
	debug   string // http://127.0.0.1:PORT
	sipPort int
}

// startDaemon renders the plan on free ports and starts the daemon with
// -debug-addr.
func startDaemon(t testing.TB, o planOpts) *daemonEnv {
	t.Helper()
	api, sipPort, dbg := testpeers.FreePort(t), testpeers.FreePort(t), testpeers.FreePort(t)
	rtpMin, rtpMax := testpeers.FreeRTPRange(t, max(o.RTPPorts, 40))
	def := func(s, d string) string {
		if s == "" {
			return d
		}
		return s
	}
	var b strings.Builder
	fmt.Fprintf(&b, "[tcp-settings]\naddress = \"127.0.0.1\"\nport = %d\n\n", api)
	fmt.Fprintf(&b, "[sip-settings]\naddress = \"127.0.0.1\"\nport = %d\nuser-agent = \"telestra-reliability\"\n", sipPort)
	if len(o.Transports) > 0 {
		fmt.Fprintf(&b, "transports = [\"%s\"]\n", strings.Join(o.Transports, `", "`))
	}
	fmt.Fprintf(&b, "register-expires = %q\nregister-retry = \"1s\"\nended-call-linger = %q\n\n", def(o.Expires, "60s"), def(o.Linger, "2s"))
	fmt.Fprintf(&b, "[rtp-settings]\nport-min = %d\nport-max = %d\ntimeout = %q\n\n", rtpMin, rtpMax, def(o.RTPTimeout, "30s"))
	fmt.Fprintf(&b, "[log]\nlevel = %q\n\n[audio]\nbackend = \"loopback\"\n\n", def(o.LogLevel, "info"))
	for i := range o.Accounts {
		fmt.Fprintf(&b, "[audio.channels.ch%d]\nloopback = \"echo\"\n\n", i+1)
	}
	for i, a := range o.Accounts {
		fmt.Fprintf(&b, "[accounts.%s]\nuser = %q\npass = %q\nchannel = \"ch%d\"\n", a.Name, a.User, "sip"+a.User, i+1)
		if a.Server != "" {
			fmt.Fprintf(&b, "server = %q\n", a.Server)
		} else {
			b.WriteString("register = false\n")
		}
		if a.MaxCalls > 0 {
			fmt.Fprintf(&b, "max-calls = %d\n", a.MaxCalls)
		}
		b.WriteString("\n")
	}
	addr := "127.0.0.1:" + strconv.Itoa(dbg)
	d := testpeers.StartDaemonWith(t, b.String(), testpeers.DaemonOptions{
		Bin:  o.Bin,
		Args: []string{"-debug-addr", addr},
		Env:  []string{"GOMEMLIMIT=" + unitMemLimit(t)},
	})
	return &daemonEnv{d: d, c: d.Client(t), debug: "http://" + addr, sipPort: sipPort}
}

// refDaemon builds cmd/telestra-sipd at the git revision BENCH_REF (from
// `git archive`, in a temporary folder: no worktree is added) and returns
// the binary; "" when BENCH_REF is not set.
func refDaemon(t testing.TB) string {
	t.Helper()
	rev := os.Getenv("BENCH_REF")
	if rev == "" {
		return ""
	}
	root := testpeers.RepoRoot(t)
	dir := t.TempDir()
	archive := exec.Command("sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, rev, dir)
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("BENCH_REF=%s: git archive: %v\n%s", rev, err, out)
	}
	bin := filepath.Join(dir, "telestra-sipd-ref")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "./cmd/telestra-sipd")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("BENCH_REF=%s: go build: %v\n%s", rev, err, out)
	}
	return bin
}

// unitMemLimit is the GOMEMLIMIT of the packaged unit, so the daemon runs
// under the memory budget it has in production (RELIABILITY_GOMEMLIMIT
// overrides it, e.g. "off" to measure without).
func unitMemLimit(t testing.TB) string {
	t.Helper()
	if v := os.Getenv("RELIABILITY_GOMEMLIMIT"); v != "" {
		return v
	}
	unit := readFile(t, filepath.Join(testpeers.RepoRoot(t), "packaging", "telestra-sipd.service"))
	m := regexp.MustCompile(`(?m)^Environment=GOMEMLIMIT=(\S+)$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatal("packaging/telestra-sipd.service sets no GOMEMLIMIT")
	}
	return m[1]
}

// sipAddr is the daemon's SIP address.
func (e *daemonEnv) sipAddr() string { return "127.0.0.1:" + strconv.Itoa(e.sipPort) }

// stats reads the daemon's /debug/stats.
func (e *daemonEnv) stats(t testing.TB) debugserver.Stats {
	t.Helper()
	hc := http.Client{Timeout: 5 * time.Second}
	res, err := hc.Get(e.debug + "/debug/stats")
	if err != nil {
		t.Fatalf("daemon /debug/stats: %v", err)
	}
	defer res.Body.Close()
	var st debugserver.Stats
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatalf("daemon /debug/stats: %v", err)
	}
	return st
}

// idleStats is the baseline of a budget: read once the daemon has answered
// a ping and its goroutine count has held still for a second (a race
// build starts its goroutines slowly).
func (e *daemonEnv) idleStats(t testing.TB) debugserver.Stats {
	t.Helper()
	e.alive(t, "idle baseline")
	prev := e.stats(t)
	for range 20 {
		time.Sleep(500 * time.Millisecond)
		st := e.stats(t)
		if st.Goroutines == prev.Goroutines && st.FDs == prev.FDs {
			return st
		}
		prev = st
	}
	return prev
}

// saveProfile stores a heap profile (after a GC) in the daemon's log folder
// and returns its path, for `go tool pprof -diff_base`.
func (e *daemonEnv) saveProfile(t testing.TB, name string) string {
	t.Helper()
	hc := http.Client{Timeout: 10 * time.Second}
	res, err := hc.Get(e.debug + "/debug/pprof/heap?gc=1")
	if err != nil {
		t.Fatalf("heap profile: %v", err)
	}
	defer res.Body.Close()
	path := e.d.Dir() + "/heap-" + name + ".pb.gz"
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadFrom(res.Body); err != nil {
		t.Fatal(err)
	}
	return path
}

// saveRaw stores /debug/pprof/NAME as it is (no collection first: during a
// burst the profile of the last GC is what is wanted) in dir.
func (e *daemonEnv) saveRaw(t testing.TB, dir, name, file string) {
	t.Helper()
	hc := http.Client{Timeout: 10 * time.Second}
	res, err := hc.Get(e.debug + "/debug/pprof/" + name)
	if err != nil {
		t.Errorf("%s profile: %v", name, err)
		return
	}
	defer res.Body.Close()
	f, err := os.Create(filepath.Join(dir, file))
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if _, err := f.ReadFrom(res.Body); err != nil {
		t.Error(err)
	}
}

// cpuProfile records a CPU profile of secs seconds into dir/file in the
// background and writes how many calls it covered into dir/file.calls;
// wait waits for it.
func (e *daemonEnv) cpuProfile(t testing.TB, dir, file string, secs int, done func() int) (wait func()) {
	t.Helper()
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		from := done()
		hc := http.Client{Timeout: time.Duration(secs+10) * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		res, err := hc.Get(e.debug + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs))
		if err != nil {
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		_ = os.WriteFile(filepath.Join(dir, file), b, 0o644)
		_ = os.WriteFile(filepath.Join(dir, file+".calls"), []byte(strconv.Itoa(done()-from)+"\n"), 0o644)
	}()
	return func() { <-finished }
}

// sampleSeries writes one JSON line every period to dir/series.jsonl
// (seconds since start, calls done, /debug/stats and the runtime's memory
// classes and GC figures) until the returned stop is called: where a run's
// memory went between its three or four fixed readings.
func (e *daemonEnv) sampleSeries(t testing.TB, dir string, period time.Duration, done func() int) (stop func()) {
	t.Helper()
	f, err := os.Create(filepath.Join(dir, "series.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		defer f.Close()
		hc := http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		enc := json.NewEncoder(f)
		t0 := time.Now()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			row := map[string]any{"t": time.Since(t0).Seconds(), "calls": done()}
			for _, ep := range []struct{ key, path string }{{"stats", "/debug/stats"}, {"rt", "/debug/runtime-metrics"}} {
				res, err := hc.Get(e.debug + ep.path)
				if err != nil {
					continue
				}
				var v map[string]any
				_ = json.NewDecoder(res.Body).Decode(&v)
				res.Body.Close()
				if ep.key == "rt" {
					for k := range v {
						if !strings.HasPrefix(k, "/memory/classes/") && !strings.HasPrefix(k, "/gc/") && !strings.HasPrefix(k, "/cpu/classes/gc") && !strings.HasPrefix(k, "/sched/gomaxprocs") {
							delete(v, k)
						}
					}
				}
				row[ep.key] = v
			}
			_ = enc.Encode(row)
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// alive checks that the daemon still answers its API and is healthy.
func (e *daemonEnv) alive(t testing.TB, what string) {
	t.Helper()
	if e.d.Exited() {
		t.Fatalf("%s: the daemon exited; log:\n%s", what, tailOf(e.d.Log(), 30))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.c.Ping(ctx); err != nil {
		t.Fatalf("%s: the daemon does not answer ping: %v", what, err)
	}
}

func tailOf(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// next returns the first message that match accepts, dropping the others
// (a soak must not keep every skipped event, as WaitFor's backlog would).
func next(ctx context.Context, c *client.Client, match func(client.Message) bool) (client.Message, error) {
	for {
		m, err := c.Next(ctx)
		if err != nil || match(m) {
			return m, err
		}
	}
}

// callEvent matches events of one call.
func callEvent(acct string, id int, names ...string) func(client.Message) bool {
	return func(m client.Message) bool {
		return m.Account == acct && m.CallID == id && slices.Contains(names, m.Event)
	}
}

// waitRegistered polls get-status until acct has account_status code.
func waitRegistered(t testing.TB, c *client.Client, acct string, code int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.GetStatus(ctx, acct)
		cancel()
		if err == nil && len(st) == 1 && st[0].AccountStatus == code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: account_status %d not reached in %v: %+v %v", acct, code, timeout, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// activeCalls is the number of calls in get-status of acct that have not
// stopped.
func activeCalls(t testing.TB, c *client.Client, acct string) (active, listed int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.GetStatus(ctx, acct)
	if err != nil || len(st) != 1 {
		t.Fatalf("get-status %s: %+v %v", acct, st, err)
	}
	for _, call := range st[0].Calls {
		if !call.Stopped {
			active++
		}
	}
	return active, len(st[0].Calls)
}

// waitIdle waits until acct lists no call at all (ended calls gone after
// ended-call-linger).
func waitIdle(t testing.TB, c *client.Client, acct string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, n := activeCalls(t, c, acct)
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still lists %d calls after %v", acct, n, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// envInt reads a positive integer knob.
func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// envDuration reads a duration knob.
func envDuration(t testing.TB, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		t.Fatalf("%s=%q: want a duration such as 30s", name, s)
	}
	return d
}

// treeCPU is the user+system CPU time of process pid and of every process
// below it (Kamailio forks its workers), in seconds; 0 when pid is gone.
func treeCPU(pid int) float64 {
	children := map[int][]int{}
	cpu := map[int]float64{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		p, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: ppid is the 2nd, utime the 12th, stime the 13th.
		f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		children[ppid] = append(children[ppid], p)
		cpu[p] = (ut + st) / 100 // USER_HZ is 100 on Linux
	}
	total := 0.0
	for todo := []int{pid}; len(todo) > 0; {
		p := todo[len(todo)-1]
		todo = append(todo[:len(todo)-1], children[p]...)
		total += cpu[p]
	}
	return total
}

// selfCPU is the user+system CPU time of this test process, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// backToIdle polls the daemon's figures until goroutines and fds are at
// most idle's (a transaction of the last call may still be finishing),
// failing the test after timeout.
func (e *daemonEnv) backToIdle(t *testing.T, idle debugserver.Stats, timeout time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := e.stats(t)
		if st.Goroutines <= idle.Goroutines && st.FDs <= idle.FDs {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: goroutines %d, fds %d at idle; still %d, %d after %v: a leak; goroutines:\n%s",
				what, idle.Goroutines, idle.FDs, st.Goroutines, st.FDs, timeout, e.goroutines(t))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// goroutines is the daemon's goroutine profile as text (one entry per
// distinct stack, with its count).
func (e *daemonEnv) goroutines(t testing.TB) string {
	t.Helper()
	hc := http.Client{Timeout: 10 * time.Second}
	res, err := hc.Get(e.debug + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	var b strings.Builder
	_, _ = io.Copy(&b, res.Body)
	return b.String()
}

// statsLine is one row of a figures table.
func statsLine(label string, s debugserver.Stats) string {
	return fmt.Sprintf("%-20s goroutines %4d  threads %3d  fds %3d  rss %5.1f MB (anon %5.1f file %4.1f)  heap alloc %5.1f inuse %5.1f idle %5.1f released %5.1f sys %5.1f (stacks %.1f meta %.1f) MB  gc %d  allocated %.0f MB",
		label, s.Goroutines, s.Threads, s.FDs, mb(s.RSSBytes), mb(s.RSSAnonBytes), mb(s.RSSFileBytes), mb(int64(s.HeapAlloc)), mb(int64(s.HeapInuse)),
		mb(int64(s.HeapIdle)), mb(int64(s.HeapReleased)), mb(int64(s.Sys)), mb(int64(s.StackSys)), mb(int64(s.MetaSys)), s.NumGC, mb(int64(s.Allocated)))
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
