//go:build integration

package benchsuite

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// BenchmarkAPIRoundTrip measures get-status round trips against the daemon,
// with baresip's ctrl_tcp `reginfo` (one client: all ctrl_tcp serves) as the
// reference:
//
//   - closed loop, through apibench run as a subprocess: each client sends
//     its next request as soon as the answer arrives. baresip with 1 client,
//     the daemon with 1 and with 64 clients. At 64 clients this saturates
//     the box, so latency is queueing: about clients / throughput.
//   - open loop, in process: 64 clients each send one get-status every
//     BENCH_API_PERIOD_MS (default 20 ms, 3200 cmd/s in all) for
//     BENCH_API_OPEN_S seconds (default 3): the latency with 64 active
//     clients connected, without saturation.
//
// The runs are interleaved BENCH_API_REPS times (default 3), so a change of
// load on the machine hits all of them; the medians are reported.
//
// Goals: p99 <= 500 µs at 64 clients; p99 <= half of baresip's p99.
func BenchmarkAPIRoundTrip(b *testing.B) {
	reps := envInt(b, "BENCH_API_REPS", 3)
	n1 := envInt(b, "BENCH_API_N", 5000)     // requests per closed-loop run, 1 client
	n64 := envInt(b, "BENCH_API_N64", 20000) // requests per closed-loop run, 64 clients
	period := time.Duration(envInt(b, "BENCH_API_PERIOD_MS", 20)) * time.Millisecond
	openDur := time.Duration(envInt(b, "BENCH_API_OPEN_S", 3)) * time.Second
	bin := buildTool(b, "apibench")

	k := testpeers.StartKamailio(b, testpeers.KamailioOptions{})
	peer := testpeers.StartBaresip(b, "3009", testpeers.BaresipOptions{Registrar: k.Addr()})
	d := testpeers.StartDaemon(b, benchPlan(b,
		daemonAccount{Name: "acc1", User: "3001"},
		daemonAccount{Name: "acc2", User: "3002"}))

	type run struct {
		name string
		args []string // apibench; nil: the open loop
	}
	openName := fmt.Sprintf("daemon get-status, 64 x %.0f/s", float64(time.Second)/float64(period))
	runs := []run{
		{"baresip reginfo, 1 client", []string{"-baresip", "-addr", peer.CtrlAddr(), "-clients", "1", "-n", strconv.Itoa(n1), "-cmd", "reginfo"}},
		{"daemon get-status, 1 client", []string{"-addr", d.APIAddr(), "-clients", "1", "-n", strconv.Itoa(n1), "-cmd", "get-status", "-account", "acc1"}},
		{"daemon get-status, 64 clients", []string{"-addr", d.APIAddr(), "-clients", "64", "-n", strconv.Itoa(n64), "-cmd", "get-status", "-account", "acc1"}},
		{openName, nil},
	}
	type row struct{ p50, p99, rate float64 }
	res := make([][]row, len(runs))
	var table strings.Builder
	fmt.Fprintf(&table, "\n=== BenchmarkAPIRoundTrip (loadavg at start %s)\n", loadavg())
	fmt.Fprintf(&table, "%-34s %4s %8s %8s %8s %8s %9s  %s\n", "run", "rep", "p50 µs", "p90 µs", "p99 µs", "max µs", "cmd/s", "loadavg")
	b.ResetTimer()
	for range b.N {
		for rep := range reps {
			for i, r := range runs {
				if r.args == nil {
					t0 := time.Now()
					out, err := openLoop(d.APIAddr(), "acc1", 64, period, openDur)
					if err != nil {
						b.Fatalf("open loop: %v", err)
					}
					us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
					rate := float64(out.Requests) / time.Since(t0).Seconds()
					res[i] = append(res[i], row{us(out.P50), us(out.P99), rate})
					fmt.Fprintf(&table, "%-34s %4d %8.0f %8s %8.0f %8.0f %9.0f  %s\n", r.name, rep+1, us(out.P50), "", us(out.P99), us(out.Max), rate, loadavg())
					continue
				}
				out := runApibench(b, bin, r.args...)
				res[i] = append(res[i], row{out.P50us, out.P99us, out.CmdsPerSec})
				fmt.Fprintf(&table, "%-34s %4d %8.0f %8.0f %8.0f %8.0f %9.0f  %s\n", r.name, rep+1, out.P50us, out.P90us, out.P99us, out.MaxUs, out.CmdsPerSec, loadavg())
			}
		}
	}
	b.StopTimer()

	med := make([]row, len(runs))
	for i := range runs {
		var p50, p99, rate []float64
		for _, r := range res[i] {
			p50, p99, rate = append(p50, r.p50), append(p99, r.p99), append(rate, r.rate)
		}
		med[i] = row{median(p50), median(p99), median(rate)}
	}
	ref, one, closed, open := med[0], med[1], med[2], med[3]

	b.ReportMetric(0, "ns/op") // one op is the whole suite: meaningless
	for _, m := range []struct {
		prefix string
		r      row
	}{{"baresip", ref}, {"d1", one}, {"d64", closed}, {"d64open", open}} {
		b.ReportMetric(m.r.p50, m.prefix+"-p50-µs")
		b.ReportMetric(m.r.p99, m.prefix+"-p99-µs")
		b.ReportMetric(m.r.rate, m.prefix+"-cmd/s")
	}
	b.ReportMetric(one.p99/ref.p99, "d1/baresip-p99")
	b.ReportMetric(closed.p99/ref.p99, "d64/baresip-p99")
	b.ReportMetric(open.p99/ref.p99, "d64open/baresip-p99")

	fmt.Fprintf(&table, "\nmedians of %d reps                    p50 µs   p99 µs     cmd/s  p99 / baresip p99\n", reps)
	for i, r := range runs {
		note := fmt.Sprintf("%.2fx", med[i].p99/ref.p99)
		if i == 0 {
			note = "1 (reference)"
		}
		fmt.Fprintf(&table, "  %-34s %8.0f %8.0f %9.0f  %s\n", r.name, med[i].p50, med[i].p99, med[i].rate, note)
	}
	fmt.Fprintf(&table, "  closed loop, 64 clients: 64 / throughput = %.0f µs mean wait (Little's law)\n", 64/closed.rate*1e6)
	fmt.Fprintf(&table, "goals:\n  %s\n  %s\n  %s\n  %s\n  %s\n",
		verdict(b, open.p99 <= 500, fmt.Sprintf("p99 <= 500 µs with 64 clients, open loop (%.0f µs)", open.p99)),
		verdict(b, closed.p99 <= 500, fmt.Sprintf("p99 <= 500 µs with 64 clients, closed loop (%.0f µs)", closed.p99)),
		verdict(b, one.p99 <= ref.p99/2, fmt.Sprintf("p99 <= half of baresip's, 1 client vs 1 client (%.2fx)", one.p99/ref.p99)),
		verdict(b, open.p99 <= ref.p99/2, fmt.Sprintf("p99 <= half of baresip's, 64 clients open loop (%.2fx)", open.p99/ref.p99)),
		verdict(b, closed.p99 <= ref.p99/2, fmt.Sprintf("p99 <= half of baresip's, 64 clients closed loop (%.2fx)", closed.p99/ref.p99)))
	fmt.Fprintf(&table, "loadavg at end %s\n", loadavg())
	// Benchmark logs are cut to a few lines: print the table directly.
	fmt.Print(table.String())
}
