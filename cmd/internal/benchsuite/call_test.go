//go:build integration

package benchsuite

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// BenchmarkCallSetup measures call set-up through Kamailio with the INVITE
// challenged (407): the daemon's account 3001 sends make-call to 3002 and
// the time to call-answered is taken at the API client; the reference is
// baresip 3003 dialling the same callee over the same path, timed from the
// ctrl_tcp dial to its CALL_ESTABLISHED. The callee is an auto-answering
// baresip with the harness's aubridge player (alsa,null would spin a core
// per call and slow everything down). Daemon and reference calls alternate,
// BENCH_CALLS of each (default 60) after BENCH_CALL_WARMUP (default 2)
// untimed ones; every call is hung up and both ends have seen the end before
// the next starts.
//
// Goal: the daemon is no slower than baresip (median and p95).
func BenchmarkCallSetup(b *testing.B) {
	calls := envInt(b, "BENCH_CALLS", 60)
	warm := envInt(b, "BENCH_CALL_WARMUP", 2)

	k := testpeers.StartKamailio(b, testpeers.KamailioOptions{})
	callee := testpeers.StartBaresip(b, "3002", testpeers.BaresipOptions{Registrar: k.Addr()})
	ref := testpeers.StartBaresip(b, "3003", testpeers.BaresipOptions{Registrar: k.Addr()})
	d := testpeers.StartDaemon(b, benchPlan(b, daemonAccount{Name: "acc1", User: "3001", Server: k.Addr()}))
	c := d.Client(b)
	waitRegistered(b, c, "acc1")
	target := "sip:3002@" + k.Addr()

	// Each returns the caller's set-up time and the callee's (its
	// CALL_ESTABLISHED, sent once the ACK arrived), both from the command.
	daemonCall := func() (caller, answerer time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		since := callee.EventCount()
		t0 := time.Now()
		id, err := c.MakeCall(ctx, "acc1", "3002")
		if err != nil {
			b.Fatalf("make-call: %v", err)
		}
		if _, err := c.WaitFor(ctx, client.Match(api.EventCallAnswered, "acc1", id)); err != nil {
			b.Fatalf("call-answered of call %d: %v", id, err)
		}
		caller = time.Since(t0)
		ev, err := callee.WaitEventSince(ctx, since, "CALL_ESTABLISHED")
		if err != nil {
			b.Fatal(err)
		}
		if err := c.HangupCall(ctx, "acc1", id, false); err != nil {
			b.Fatalf("hangup-call %d: %v", id, err)
		}
		if _, err := c.WaitFor(ctx, client.Match(api.EventCallEnded, "acc1", id)); err != nil {
			b.Fatalf("call-ended of call %d: %v", id, err)
		}
		if _, err := callee.WaitEventSince(ctx, since, "CALL_CLOSED"); err != nil {
			b.Fatal(err)
		}
		return caller, ev.Time.Sub(t0)
	}
	refCall := func() (caller, answerer time.Duration) {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		since, sinceRef := callee.EventCount(), ref.EventCount()
		t0 := time.Now()
		if err := ref.Dial(target); err != nil {
			b.Fatalf("baresip 3003 dial: %v", err)
		}
		evRef, err := ref.WaitEventSince(ctx, sinceRef, "CALL_ESTABLISHED", "CALL_CLOSED")
		if err != nil || evRef.Type != "CALL_ESTABLISHED" {
			b.Fatalf("baresip 3003 call to %s: %v %v", target, evRef, err)
		}
		ev, err := callee.WaitEventSince(ctx, since, "CALL_ESTABLISHED")
		if err != nil {
			b.Fatal(err)
		}
		if err := ref.Hangup(); err != nil {
			b.Fatalf("baresip 3003 hangup: %v", err)
		}
		for _, p := range []struct {
			b     *testpeers.Baresip
			since int
		}{{ref, sinceRef}, {callee, since}} {
			if _, err := p.b.WaitEventSince(ctx, p.since, "CALL_CLOSED"); err != nil {
				b.Fatal(err)
			}
		}
		return evRef.Time.Sub(t0), ev.Time.Sub(t0)
	}

	for range warm {
		daemonCall()
		refCall()
	}
	loadStart := loadavg()
	var dCaller, dCallee, rCaller, rCallee []time.Duration
	b.ResetTimer()
	for range b.N {
		for range calls {
			x, y := daemonCall()
			dCaller, dCallee = append(dCaller, x), append(dCallee, y)
			// Let the callee settle (its ACK/BYE transactions) so both
			// sides start from the same state.
			time.Sleep(20 * time.Millisecond)
			x, y = refCall()
			rCaller, rCallee = append(rCaller, x), append(rCallee, y)
			time.Sleep(20 * time.Millisecond)
		}
	}
	b.StopTimer()
	challenged := len(k.LogLines("AUTH challenge INVITE 3001"))
	if challenged < calls {
		b.Fatalf("only %d INVITEs of 3001 were challenged with 407 for %d calls: the registrar is not set up as the benchmark says", challenged, calls)
	}

	for _, s := range [][]time.Duration{dCaller, dCallee, rCaller, rCallee} {
		slices.Sort(s)
	}
	stat := func(s []time.Duration) (med, p95, lo float64) {
		return ms(percentile(s, 50)), ms(percentile(s, 95)), ms(s[0])
	}
	dm, dp, dl := stat(dCaller)
	rm, rp, rl := stat(rCaller)
	dcm, dcp, _ := stat(dCallee)
	rcm, rcp, _ := stat(rCallee)

	// Memory after the same work: the daemon and baresip 3003 each placed
	// warm+calls calls as one registered account.
	dRSS, rRSS := rssMB(b, d.PID()), rssMB(b, ref.PID())

	b.ReportMetric(0, "ns/op") // one op is the whole suite: meaningless
	b.ReportMetric(dRSS, "daemon-rss-MB")
	b.ReportMetric(rRSS, "baresip-rss-MB")
	b.ReportMetric(dm, "daemon-median-ms")
	b.ReportMetric(dp, "daemon-p95-ms")
	b.ReportMetric(rm, "baresip-median-ms")
	b.ReportMetric(rp, "baresip-p95-ms")
	b.ReportMetric(dm/rm, "median-ratio")
	b.ReportMetric(dp/rp, "p95-ratio")

	var t strings.Builder
	fmt.Fprintf(&t, "\n=== BenchmarkCallSetup: %d calls each, INVITE challenged (407), loadavg %s at start, %s at end\n", len(dCaller), loadStart, loadavg())
	fmt.Fprintf(&t, "%-46s %9s %9s %9s\n", "caller → established (ms)", "median", "p95", "fastest")
	fmt.Fprintf(&t, "%-46s %9.2f %9.2f %9.2f\n", "daemon: make-call → call-answered", dm, dp, dl)
	fmt.Fprintf(&t, "%-46s %9.2f %9.2f %9.2f\n", "baresip 3003: dial → CALL_ESTABLISHED (ref)", rm, rp, rl)
	fmt.Fprintf(&t, "%-46s %8.2fx %8.2fx\n", "ratio daemon / baresip", dm/rm, dp/rp)
	fmt.Fprintf(&t, "%-46s %9.2f %9.2f\n", "callee 3002 CALL_ESTABLISHED, daemon calling", dcm, dcp)
	fmt.Fprintf(&t, "%-46s %9.2f %9.2f\n", "callee 3002 CALL_ESTABLISHED, baresip calling", rcm, rcp)
	fmt.Fprintf(&t, "%-46s %9.1f MB, baresip 3003 %.1f MB: %.2fx\n", "RSS after the calls: daemon", dRSS, rRSS, dRSS/rRSS)
	fmt.Fprintf(&t, "goals:\n  %s\n  %s\n",
		verdict(b, dm <= rm, fmt.Sprintf("median no slower than baresip (%.2fx)", dm/rm)),
		verdict(b, dp <= rp, fmt.Sprintf("p95 no slower than baresip (%.2fx)", dp/rp)))
	fmt.Print(t.String())
}

// rssMB is VmRSS of a process in MB.
func rssMB(b *testing.B, pid int) float64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatalf("RSS of pid %d: %v", pid, err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.Atoi(f[1])
			if err != nil {
				break
			}
			return float64(kb) / 1024
		}
	}
	b.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// waitRegistered polls get-status until the account is registered (200).
func waitRegistered(b *testing.B, c *client.Client, account string) {
	b.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := c.GetStatus(ctx, account)
		cancel()
		if err == nil && len(st) == 1 && st[0].AccountStatus == 200 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s not registered after 15 s: %+v %v", account, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
