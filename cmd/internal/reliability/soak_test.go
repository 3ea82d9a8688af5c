//go:build integration

package reliability

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/debugserver"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// soakResult is what one soak run measured.
type soakResult struct {
	calls                     int
	took                      time.Duration
	start, middle, end, after debugserver.Stats
	first100, last100         time.Duration // median set-up, make-call → call-answered
	first100p95, last100p95   time.Duration
	steady100, steadyAt       time.Duration // median set-up of the 100 calls from steadyAt into the run
	steadyIndex               int
	steadyTo                  string        // the callee of those calls
	cpuFirst100, cpuLast100   time.Duration // daemon CPU per call (user+system)
	loadFirst, loadLast       string        // loadavg after the first 100, before the last 100
	settle                    time.Duration // from the last call to "after"
	// Budget runs: the first and the last 100 calls go to a second callee,
	// baresip 3004, which takes no call in between, and baresip 3003 calls
	// it too, interleaved with those calls (one after every fifth): the
	// reference of how much of a change in set-up time is the machine's
	// and the peers', not the daemon's. baresip 1.0 slows with every call
	// it has answered (its CPU per call grew 4.8x over 10 000 calls, most
	// of it in a walk of a libre list, and its RSS 2.7 KB per call), so
	// one callee for all the calls made the last 100 slower for reasons
	// of its own.
	refFirst, refLast time.Duration // median
	refCalls          int           // per window
	// CPU per call of the other processes, first and last 100: Kamailio
	// (all its processes), the callee of those calls and this test (the
	// load generator); and of the callee of the calls in between, over its
	// first and its last 100. When they grow as the daemon's does, the
	// machine is slower.
	peerCPU                             [4][2]time.Duration
	heapStart, heapEnd, heapAfter, logs string
	env                                 *daemonEnv
}

// runSoak places n calls in a row from the daemon's account 3001 through
// Kamailio (INVITE challenged with 407) to an auto-answering baresip 3002;
// every call is answered, hung up by the daemon and its call-ended seen
// before the next starts. It reads the daemon's figures before the first
// call, at the middle, after the last and once the calls have left
// get-status and settle has passed. With profiles it keeps heap profiles
// (start, end, after) in the daemon's log folder. With budget, the first
// and the last 100 calls go to baresip 3004 instead, and baresip 3003
// places reference calls to it among them (see soakResult).
func runSoak(t testing.TB, n int, settle time.Duration, profiles, budget bool, bin string) soakResult {
	t.Helper()
	k := testpeers.StartKamailio(t, testpeers.KamailioOptions{ShmMB: 256})
	callee := testpeers.StartBaresip(t, "3002", testpeers.BaresipOptions{Registrar: k.Addr(), MaxCalls: 8})
	win, ref := callee, (*testpeers.Baresip)(nil)
	if budget {
		win = testpeers.StartBaresip(t, "3004", testpeers.BaresipOptions{Registrar: k.Addr(), MaxCalls: 8})
		ref = testpeers.StartBaresip(t, "3003", testpeers.BaresipOptions{Registrar: k.Addr()})
	}
	e := startDaemon(t, planOpts{Accounts: []account{{Name: "acc1", User: "3001", Server: k.Addr()}}, Bin: bin})
	waitRegistered(t, e.c, "acc1", 200, 15*time.Second)

	r := soakResult{calls: n, settle: settle, logs: e.d.Dir(), env: e}
	r.start = e.idleStats(t)
	if profiles {
		r.heapStart = e.saveProfile(t, "start")
	}
	lat := make([]time.Duration, 0, n)
	began := make([]time.Duration, 0, n) // start of each call since t0
	m := min(100, n)
	// SOAK_SERIES=DIR: a time series of the daemon's figures and heap
	// profiles during the burst (at the middle, inuse and allocs) in DIR.
	series := os.Getenv("SOAK_SERIES")
	var doneCalls atomic.Int64
	if series != "" {
		if err := os.MkdirAll(series, 0o755); err != nil {
			t.Fatal(err)
		}
		stop := e.sampleSeries(t, series, 2*time.Second, func() int { return int(doneCalls.Load()) })
		defer stop()
		defer e.cpuProfile(t, series, "cpu-early.pb.gz", 10, func() int { return int(doneCalls.Load()) })()
	}
	var afterFirst, beforeLast debugserver.Stats
	var refFirst, refLast []time.Duration
	peers := func() [4]float64 {
		return [4]float64{treeCPU(k.PID()), treeCPU(win.PID()), selfCPU(), treeCPU(callee.PID())}
	}
	peerAt := map[int][4]float64{} // at call index: 0, m, 2m, n-2m, n-m, n
	target := "sip:" + win.Ext() + "@" + k.Addr()
	if ref != nil {
		for range 3 { // untimed: baresip's first calls are slower
			refCall(t, ref, win, target)
		}
	}
	t0 := time.Now()
	for i := range n {
		if i == 0 || i == m || i == 2*m || i == n-2*m || i == n-m {
			peerAt[i] = peers()
		}
		switch i {
		case n / 2:
			r.middle = e.stats(t)
			if series != "" {
				e.saveRaw(t, series, "heap", "heap-middle.pb.gz")
			}
		case m:
			afterFirst, r.loadFirst = e.stats(t), loadavg()
		}
		if i == n-m {
			beforeLast, r.loadLast = e.stats(t), loadavg()
		}
		if series != "" && i == max(n-800, n/2) {
			defer e.cpuProfile(t, series, "cpu-late.pb.gz", 10, func() int { return int(doneCalls.Load()) })()
		}
		began = append(began, time.Since(t0))
		to := callee
		if i < m || i >= n-m {
			to = win
		}
		lat = append(lat, oneCall(t, e, i, to.Ext()))
		doneCalls.Add(1)
		if ref != nil && i%5 == 4 && (i < m || i >= n-m) {
			d := refCall(t, ref, win, target)
			if i < m {
				refFirst = append(refFirst, d)
			} else {
				refLast = append(refLast, d)
			}
		}
	}
	if series != "" {
		e.saveRaw(t, series, "heap", "heap-end.pb.gz")
		e.saveRaw(t, series, "allocs", "allocs-end.pb.gz")
	}
	r.took = time.Since(t0)
	r.end = e.stats(t)
	peerAt[n] = peers()
	if n == m {
		afterFirst = r.end
	}
	perCall := func(a, b debugserver.Stats) time.Duration {
		return time.Duration((b.CPUSeconds - a.CPUSeconds) / float64(m) * float64(time.Second))
	}
	r.cpuFirst100, r.cpuLast100 = perCall(r.start, afterFirst), perCall(beforeLast, r.end)
	if n >= 4*m {
		per := func(p, from, to int) time.Duration {
			return time.Duration((peerAt[to][p] - peerAt[from][p]) / float64(to-from) * float64(time.Second))
		}
		for p := range 3 {
			r.peerCPU[p] = [2]time.Duration{per(p, 0, m), per(p, n-m, n)}
		}
		r.peerCPU[3] = [2]time.Duration{per(3, m, 2*m), per(3, n-2*m, n-m)}
	}
	last := time.Now()
	if profiles { // a profile collects garbage first: not in a budget run
		r.heapEnd = e.saveProfile(t, "end")
	}
	waitIdle(t, e.c, "acc1", 30*time.Second)
	for step := settle / 10; time.Since(last) < settle; time.Sleep(step) {
		if testing.Verbose() {
			t.Log(statsLine(fmt.Sprintf("settle +%v", time.Since(last).Round(time.Second)), e.stats(t)))
		}
	}
	r.after = e.stats(t)
	if series != "" {
		e.saveRaw(t, series, "heap", "heap-after.pb.gz")
	}
	if profiles {
		r.heapAfter = e.saveProfile(t, "after")
	}

	r.first100, r.first100p95 = medianP95(lat[:m])
	// Transaction state fills for 64*T1 after the first call, then stays
	// level: the 100 calls from 40 s on are the steady-state reference.
	r.steadyAt, r.steadyTo = 40*time.Second, callee.Ext()
	for i, b := range began {
		if b >= r.steadyAt && i+m <= n-m {
			r.steadyIndex = i
			r.steady100, _ = medianP95(lat[i : i+m])
			break
		}
	}
	r.last100, r.last100p95 = medianP95(lat[n-m:])
	if len(refFirst) > 0 && len(refLast) > 0 {
		r.refFirst, _ = medianP95(refFirst)
		r.refLast, _ = medianP95(refLast)
		r.refCalls = len(refLast)
	}
	return r
}

// refCall places one call from baresip ref to callee (target through
// Kamailio) and returns its set-up time, dial → CALL_ESTABLISHED, as
// BenchmarkCallSetup's reference does. Both ends have seen the call
// closed when it returns.
func refCall(t testing.TB, ref, callee *testpeers.Baresip, target string) time.Duration {
	t.Helper()
	// As BenchmarkCallSetup: the callee settles (the last call's ACK and
	// BYE) before and after.
	time.Sleep(20 * time.Millisecond)
	defer time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	since, sinceRef := callee.EventCount(), ref.EventCount()
	t0 := time.Now()
	if err := ref.Dial(target); err != nil {
		t.Fatalf("baresip 3003 dial: %v", err)
	}
	ev, err := ref.WaitEventSince(ctx, sinceRef, "CALL_ESTABLISHED", "CALL_CLOSED")
	if err != nil || ev.Type != "CALL_ESTABLISHED" {
		t.Fatalf("baresip 3003 call to %s: %v %v", target, ev, err)
	}
	if _, err := callee.WaitEventSince(ctx, since, "CALL_ESTABLISHED"); err != nil {
		t.Fatal(err)
	}
	if err := ref.Hangup(); err != nil {
		t.Fatalf("baresip 3003 hangup: %v", err)
	}
	for _, p := range []struct {
		b     *testpeers.Baresip
		since int
	}{{ref, sinceRef}, {callee, since}} {
		if _, err := p.b.WaitEventSince(ctx, p.since, "CALL_CLOSED"); err != nil {
			t.Fatal(err)
		}
	}
	return ev.Time.Sub(t0)
}

// oneCall places call i to num and returns its set-up time.
func oneCall(t testing.TB, e *daemonEnv, i int, num string) time.Duration {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	t0 := time.Now()
	id, err := e.c.MakeCall(ctx, "acc1", num)
	if err != nil {
		t.Fatalf("call %d: make-call: %v", i, err)
	}
	m, err := next(ctx, e.c, callEvent("acc1", id, api.EventCallAnswered, api.EventCallEnded))
	if err != nil {
		t.Fatalf("call %d (id %d): waiting for call-answered: %v", i, id, err)
	}
	if m.Event != api.EventCallAnswered {
		t.Fatalf("call %d (id %d) ended before it was answered: %s", i, id, m.Raw)
	}
	setup := time.Since(t0)
	if err := e.c.HangupCall(ctx, "acc1", id, false); err != nil {
		t.Fatalf("call %d: hangup-call: %v", i, err)
	}
	if _, err := next(ctx, e.c, callEvent("acc1", id, api.EventCallEnded)); err != nil {
		t.Fatalf("call %d (id %d): waiting for call-ended: %v", i, id, err)
	}
	return setup
}

func medianP95(d []time.Duration) (med, p95 time.Duration) {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, len(s)*95/100)]
}

func (r soakResult) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "soak: %d calls in %v (%.1f calls/s), figures settled %v after the last call\n",
		r.calls, r.took.Round(time.Millisecond), float64(r.calls)/r.took.Seconds(), r.settle)
	for _, row := range []struct {
		l string
		s debugserver.Stats
	}{{"start (idle)", r.start}, {"middle", r.middle}, {"end (last call)", r.end}, {"after linger+settle", r.after}} {
		b.WriteString(statsLine(row.l, row.s) + "\n")
	}
	fmt.Fprintf(&b, "set-up median first 100 %v, last 100 %v: ratio %.2f (p95 %v, %v)\n",
		r.first100.Round(10*time.Microsecond), r.last100.Round(10*time.Microsecond),
		float64(r.last100)/float64(r.first100), r.first100p95.Round(10*time.Microsecond), r.last100p95.Round(10*time.Microsecond))
	if r.steady100 > 0 {
		fmt.Fprintf(&b, "set-up median of calls %d-%d (from %v in, transaction state level; to %s): %v; last 100 / these: %.2f\n",
			r.steadyIndex+1, r.steadyIndex+100, r.steadyAt, r.steadyTo, r.steady100.Round(10*time.Microsecond), float64(r.last100)/float64(r.steady100))
	}
	if r.refCalls > 0 {
		fmt.Fprintf(&b, "reference, baresip 3003 → 3004 through the same Kamailio (%d calls each among the first and the last 100): median %v, then %v: ratio %.2f\n",
			r.refCalls, r.refFirst.Round(10*time.Microsecond), r.refLast.Round(10*time.Microsecond), float64(r.refLast)/float64(r.refFirst))
	}
	fmt.Fprintf(&b, "daemon CPU per call first 100 %v, last 100 %v: ratio %.2f (loadavg %s, then %s)\n",
		r.cpuFirst100.Round(time.Microsecond), r.cpuLast100.Round(time.Microsecond),
		float64(r.cpuLast100)/float64(r.cpuFirst100), r.loadFirst, r.loadLast)
	if r.peerCPU[0][0] > 0 {
		b.WriteString("CPU per call of the others, first 100 → last 100:")
		for i, name := range []string{"Kamailio", "their callee", "test (load generator)", "callee of the calls between, its first → last 100"} {
			c := r.peerCPU[i]
			fmt.Fprintf(&b, " %s %v → %v (%.2f×);", name, c[0].Round(10*time.Microsecond), c[1].Round(10*time.Microsecond), float64(c[1])/float64(max(c[0], 1)))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "RSS after - idle: %+.1f MB; goroutines %+d; threads %+d; fds %+d\n",
		mb(r.after.RSSBytes-r.start.RSSBytes), r.after.Goroutines-r.start.Goroutines,
		r.after.Threads-r.start.Threads, r.after.FDs-r.start.FDs)
	if r.heapStart == "" {
		return b.String()
	}
	fmt.Fprintf(&b, "heap profiles: go tool pprof -top -diff_base %s %s (and %s)\n", r.heapStart, r.heapAfter, r.heapEnd)
	if out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount", "15", "-sample_index", "inuse_space",
		"-diff_base", r.heapStart, r.heapAfter).CombinedOutput(); err == nil {
		b.Write(out)
	}
	return b.String()
}

// TestSoak: SOAK_CALLS calls in a row (default 1000, as in CI: about 14 s
// with -race on the 2-vCPU CI machine; `make soak` runs 10 000) all succeed, and once they are gone the daemon is back to its
// idle goroutines and fds. RSS and latency are reported here and budgeted
// in BenchmarkSoakBudget (a race-detector build has no meaningful RSS).
func TestSoak(t *testing.T) {
	n := envInt(t, "SOAK_CALLS", 1000)
	r := runSoak(t, n, envDuration(t, "SOAK_SETTLE", 5*time.Second), true, false, "")
	t.Log("\n" + r.report())
	r.env.backToIdle(t, r.start, timerF+10*time.Second, fmt.Sprintf("after %d calls", n))
}
