//go:build integration

package benchsuite

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// buildDaemonAt builds cmd/telestra-sipd of git revision rev (a detached
// worktree in a temporary folder) and returns the binary.
func buildDaemonAt(b *testing.B, rev string) string {
	b.Helper()
	root := testpeers.RepoRoot(b)
	dir := filepath.Join(b.TempDir(), "ref")
	git := func(args ...string) {
		b.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	git("worktree", "add", "--quiet", "--detach", dir, rev)
	b.Cleanup(func() { git("worktree", "remove", "--force", dir) })
	bin := filepath.Join(b.TempDir(), "telestra-sipd-ref")
	cmd := exec.Command(goBinary(b), "build", "-o", bin, "./cmd/telestra-sipd")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/telestra-sipd at %s: %v\n%s", rev, err, out)
	}
	return bin
}

// scrape GETs url every period until ctx ends, as Prometheus would, and
// returns how many scrapes succeeded.
func scrape(ctx context.Context, url string, period time.Duration) (n int, err error) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return n, nil
		case <-t.C:
		}
		resp, err := http.Get(url)
		if err != nil {
			return n, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return n, fmt.Errorf("GET %s: %s, %v", url, resp.Status, err)
		}
		n++
	}
}

// BenchmarkAPIRoundTripMetrics: does serving metrics cost the API round
// trip? get-status round trips (apibench, 1 client, closed loop) against
// three daemons side by side: the reference build BENCH_REF (default
// HEAD~1, the parent commit) without metrics, this build without metrics,
// and this build with [metrics] on while a scraper reads /metrics every
// BENCH_SCRAPE_MS (default 100 ms, 150 times Prometheus' default rate, so
// that every run overlaps scrapes). BENCH_API_N requests per run (default
// 10000), interleaved BENCH_API_REPS times (default 5); medians reported.
//
// Goal: with metrics on, p50 and p99 within 10 % of the reference.
func BenchmarkAPIRoundTripMetrics(b *testing.B) {
	reps := envInt(b, "BENCH_API_REPS", 5)
	n := envInt(b, "BENCH_API_N", 10000)
	period := time.Duration(envInt(b, "BENCH_SCRAPE_MS", 100)) * time.Millisecond
	ref := os.Getenv("BENCH_REF")
	if ref == "" {
		ref = "HEAD~1"
	}
	bin := buildTool(b, "apibench")
	refBin := buildDaemonAt(b, ref)
	if out, err := exec.Command("git", "-C", testpeers.RepoRoot(b), "rev-parse", "--short", ref).Output(); err == nil {
		ref += " (" + strings.TrimSpace(string(out)) + ")"
	}
	self := filepath.Join(b.TempDir(), "telestra-sipd")
	cmd := exec.Command(goBinary(b), "build", "-o", self, "./cmd/telestra-sipd") // without -race
	cmd.Dir = testpeers.RepoRoot(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/telestra-sipd: %v\n%s", err, out)
	}

	accounts := []daemonAccount{{Name: "acc1", User: "3001"}, {Name: "acc2", User: "3002"}}
	metricsAddr := "127.0.0.1:" + strconv.Itoa(testpeers.FreePort(b))
	daemons := []struct {
		name string
		d    *testpeers.Daemon
	}{
		{"reference " + ref + ", no metrics", testpeers.StartDaemonWith(b, benchPlan(b, accounts...), testpeers.DaemonOptions{Bin: refBin})},
		{"this build, no metrics", testpeers.StartDaemonWith(b, benchPlan(b, accounts...), testpeers.DaemonOptions{Bin: self})},
		{"this build, metrics scraped", testpeers.StartDaemonWith(b, benchPlan(b, accounts...)+"[metrics]\naddress = \""+metricsAddr+"\"\n", testpeers.DaemonOptions{Bin: self})},
	}

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var scrapes int
	var scrapeErr error
	wg.Go(func() { scrapes, scrapeErr = scrape(ctx, "http://"+metricsAddr+"/metrics", period) })

	type row struct{ p50, p99 float64 }
	res := make([][]row, len(daemons))
	var table strings.Builder
	fmt.Fprintf(&table, "\n=== BenchmarkAPIRoundTripMetrics (loadavg at start %s)\n", loadavg())
	fmt.Fprintf(&table, "%-40s %4s %8s %8s %8s %9s  %s\n", "daemon", "rep", "p50 µs", "p99 µs", "max µs", "cmd/s", "loadavg")
	b.ResetTimer()
	for range b.N {
		for rep := range reps {
			for i, dm := range daemons {
				out := runApibench(b, bin, "-addr", dm.d.APIAddr(), "-clients", "1", "-n", strconv.Itoa(n), "-cmd", "get-status", "-account", "acc1")
				res[i] = append(res[i], row{out.P50us, out.P99us})
				fmt.Fprintf(&table, "%-40s %4d %8.0f %8.0f %8.0f %9.0f  %s\n", dm.name, rep+1, out.P50us, out.P99us, out.MaxUs, out.CmdsPerSec, loadavg())
			}
		}
	}
	b.StopTimer()
	stop()
	wg.Wait()
	if scrapeErr != nil || scrapes == 0 {
		b.Fatalf("scraper: %d scrapes, %v", scrapes, scrapeErr)
	}
	med := func(i int, f func(row) float64) float64 {
		v := make([]float64, len(res[i]))
		for j, r := range res[i] {
			v[j] = f(r)
		}
		return median(v)
	}
	p50 := func(r row) float64 { return r.p50 }
	p99 := func(r row) float64 { return r.p99 }
	fmt.Fprintf(&table, "\nmedians of %d reps (%d scrapes of /metrics meanwhile):\n", reps, scrapes)
	for i, dm := range daemons {
		fmt.Fprintf(&table, "  %-40s p50 %6.0f µs (x%.2f)  p99 %6.0f µs (x%.2f)\n", dm.name,
			med(i, p50), med(i, p50)/med(0, p50), med(i, p99), med(i, p99)/med(0, p99))
	}
	r50, r99 := med(2, p50)/med(0, p50), med(2, p99)/med(0, p99)
	fmt.Fprintf(&table, "  %s\n", verdict(b, r50 <= 1.1 && r99 <= 1.1, fmt.Sprintf("metrics on: p50 x%.2f and p99 x%.2f of the reference, both <= x1.10", r50, r99)))
	b.Log(table.String())
	fmt.Print(table.String())
}
