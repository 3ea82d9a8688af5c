//go:build integration

package benchsuite

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// BenchmarkLoadEcho is the media load of a busy appliance: N accounts, each
// with one active call on its own loopback echo channel, to one SIPp that
// answers every call and echoes its RTP (-rtp_echo). It reports the
// daemon's CPU (utime+stime from /proc) per RTP packet sent or received
// and per call-second, against a bare Go UDP loop (rtpload -mode floor)
// moving the same packet rate over the same number of sockets in the same
// run, before and after the daemon's window. Knobs: BENCH_LOAD_CALLS
// (comma-separated N, default "20,200"), BENCH_LOAD_SECONDS (measured
// window, default 10), BENCH_LOAD_CODEC (PCMU default, or G722: wideband
// channels and codec work included).
func BenchmarkLoadEcho(b *testing.B) {
	counts := []int{20, 200}
	if s := os.Getenv("BENCH_LOAD_CALLS"); s != "" {
		counts = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 2 || n%2 != 0 {
				b.Fatalf("BENCH_LOAD_CALLS=%q: want even numbers ≥ 2", s)
			}
			counts = append(counts, n)
		}
	}
	window := time.Duration(envInt(b, "BENCH_LOAD_SECONDS", 10)) * time.Second
	codec := strings.ToUpper(os.Getenv("BENCH_LOAD_CODEC"))
	if codec == "" {
		codec = "PCMU"
	}
	pt := map[string]string{"PCMU": "0", "PCMA": "8", "G722": "9"}[codec]
	if pt == "" {
		b.Fatalf("BENCH_LOAD_CODEC=%q: want PCMU, PCMA or G722", codec)
	}
	rtpload := buildTool(b, "rtpload")
	for _, n := range counts {
		b.Run(fmt.Sprintf("calls=%d/%s", n, codec), func(b *testing.B) {
			for range b.N {
				loadEcho(b, rtpload, n, codec, pt, window)
			}
		})
	}
}

func loadEcho(b *testing.B, rtpload string, n int, codec, pt string, window time.Duration) {
	f1 := runFloor(b, rtpload, n/2, window)
	d := loadDaemon(b, n, codec, pt, window)
	f2 := runFloor(b, rtpload, n/2, window)
	floor := (f1 + f2) / 2
	ratio := d.usPerPkt / floor
	b.ReportMetric(d.usPerPkt, "µs/pkt")
	b.ReportMetric(floor, "floor-µs/pkt")
	b.ReportMetric(ratio, "ratio")
	b.ReportMetric(d.msPerCallSec, "ms/call-s")
	b.Logf("load %d calls %s: daemon %.2f µs per packet sent or received (%.0f packets in %v, %.3f ms per call-second, %.1f%% of a core); floor %.2f / %.2f µs (before / after); ratio %.2fx; loss %.3f%%; load %s",
		n, codec, d.usPerPkt, d.packets, window, d.msPerCallSec, d.cpuShare*100, f1, f2, ratio, d.lossPct, loadavg())
	b.Logf("%s", verdict(b, ratio <= 1.3, fmt.Sprintf("daemon CPU per packet ≤ 1.3x the bare UDP loop at %d calls (%.2fx)", n, ratio)))
}

var floorPerPkt = regexp.MustCompile(`CPU per packet sent or received: ([0-9.]+) µs`)

// runFloor runs the bare UDP loop with streams×2 sockets (one per daemon
// session) and returns its CPU per packet sent or received.
func runFloor(b *testing.B, rtpload string, streams int, window time.Duration) float64 {
	b.Helper()
	var out bytes.Buffer
	cmd := exec.Command(rtpload, "-mode", "floor", "-n", strconv.Itoa(streams), "-dur", window.String(), "-warm", "1s")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		b.Fatalf("rtpload floor: %v\n%s", err, out.Bytes())
	}
	m := floorPerPkt.FindSubmatch(out.Bytes())
	if m == nil {
		b.Fatalf("rtpload floor: no per-packet figure in\n%s", out.Bytes())
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	b.Logf("%s", strings.TrimSpace(out.String()))
	return v
}

type loadResult struct {
	usPerPkt, msPerCallSec, cpuShare, packets, lossPct float64
}

// loadDaemon runs the daemon with n accounts calling SIPp and measures it
// over window once every call is up.
func loadDaemon(b *testing.B, n int, codec, pt string, window time.Duration) loadResult {
	b.Helper()
	s := testpeers.StartSipp(b, testpeers.SippOptions{
		Scenario: "load_echo_uas.xml", Calls: n, Timeout: 10 * time.Minute, RecvTimeout: 10 * time.Minute,
		Keys: map[string]string{"codec_pt": pt, "codec_name": codec},
	})
	d := testpeers.StartDaemon(b, loadPlan(b, n, codec))
	c := d.Client(b)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ids := make([]int, n)
	for i := range n {
		acc := fmt.Sprintf("acc%d", i+1)
		id, err := c.MakeCall(ctx, acc, "sip:load@"+s.Addr())
		if err != nil {
			b.Fatalf("make-call %s: %v", acc, err)
		}
		ids[i] = id
		if _, err := c.WaitFor(ctx, func(m client.Message) bool {
			return m.Event == api.EventCallAnswered && m.Account == acc && m.CallID == id
		}); err != nil {
			b.Fatalf("%s: call-answered: %v", acc, err)
		}
	}
	time.Sleep(3 * time.Second) // jitter buffers settle, echo loops fill
	cpu0 := procCPU(b, d.PID())
	pk0, lost0 := packets(b, ctx, c, codec)
	t0 := time.Now()
	time.Sleep(window)
	cpu1 := procCPU(b, d.PID())
	pk1, lost1 := packets(b, ctx, c, codec)
	el := time.Since(t0).Seconds()
	for i, id := range ids {
		if err := c.HangupCall(ctx, fmt.Sprintf("acc%d", i+1), id, false); err != nil {
			b.Errorf("hangup acc%d: %v", i+1, err)
		}
	}
	pk := pk1 - pk0
	if pk < float64(n)*90*el {
		b.Fatalf("%.0f packets in %.1f s over %d calls: want about 100 a call-second (is SIPp echoing?)", pk, el, n)
	}
	cpu := cpu1 - cpu0
	return loadResult{
		usPerPkt:     cpu * 1e6 / pk,
		msPerCallSec: cpu * 1e3 / (float64(n) * el),
		cpuShare:     cpu / el,
		packets:      pk,
		lossPct:      100 * (lost1 - lost0) / max(pk/2, 1),
	}
}

// packets sums packets sent and received, and lost, over every active call
// of the codec.
func packets(b *testing.B, ctx context.Context, c *client.Client, codec string) (total, lost float64) {
	b.Helper()
	st, err := c.GetStatus(ctx, "")
	if err != nil {
		b.Fatalf("get-status: %v", err)
	}
	for _, s := range st {
		for _, call := range s.Calls {
			if call.State != "active" || call.Codec != codec {
				b.Fatalf("%s call %d: state %q codec %q, want active %s", s.Account, call.CallID, call.State, call.Codec, codec)
			}
			total += float64(call.PacketsSent + call.PacketsReceived)
			lost += float64(call.PacketsLost)
		}
	}
	return total, lost
}

// procCPU is a process's user+system CPU seconds (/proc/PID/stat).
func procCPU(b *testing.B, pid int) float64 {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command: state is field 3, utime 14.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ is 100 on Linux
}

// loadPlan: n accounts without a registrar, each with max-calls 1 and its
// own echo channel, the codec alone in rtp-settings.codecs.
func loadPlan(b *testing.B, n int, codec string) string {
	b.Helper()
	rtpMin, rtpMax := testpeers.FreeRTPRange(b, 2*n+16)
	var s strings.Builder
	fmt.Fprintf(&s, "[tcp-settings]\naddress = \"127.0.0.1\"\nport = %d\n\n", testpeers.FreePort(b))
	fmt.Fprintf(&s, "[sip-settings]\naddress = \"127.0.0.1\"\nport = %d\nuser-agent = \"telestra-bench\"\n\n", testpeers.FreePort(b))
	fmt.Fprintf(&s, "[rtp-settings]\nport-min = %d\nport-max = %d\ncodecs = [%q]\n\n", rtpMin, rtpMax, codec)
	s.WriteString("[log]\nlevel = \"info\"\n\n[audio]\nbackend = \"loopback\"\n\n")
	for i := range n {
		fmt.Fprintf(&s, "[audio.channels.ch%d]\nloopback = \"echo\"\n\n", i+1)
	}
	for i := range n {
		fmt.Fprintf(&s, "[accounts.acc%d]\nuser = \"%d\"\nregister = false\nmax-calls = 1\nchannel = \"ch%d\"\n\n", i+1, 5000+i, i+1)
	}
	return s.String()
}
