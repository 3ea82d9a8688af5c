//go:build integration

package benchsuite

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// loadavg is the first three fields of /proc/loadavg, printed next to every
// figure: the machine is shared, so a figure without its load means little.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// envInt reads a positive integer knob, failing the benchmark on garbage
// rather than silently measuring something else.
func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// percentile is the nearest-rank percentile of sorted values.
func percentile[T int64 | float64 | time.Duration](sorted []T, p float64) T {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// goBinary is the go command of the toolchain running the benchmark.
func goBinary(b *testing.B) string {
	b.Helper()
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	p, err := exec.LookPath("go")
	if err != nil {
		b.Fatal("go not found in GOROOT/bin or PATH")
	}
	return p
}

// buildTool builds ./cmd/internal/NAME into a temporary folder (without
// -race: a load tool must not measure the race detector).
func buildTool(b *testing.B, name string) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), name)
	cmd := exec.Command(goBinary(b), "build", "-o", bin, "./cmd/internal/"+name)
	cmd.Dir = testpeers.RepoRoot(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/internal/%s: %v\n%s", name, err, out)
	}
	return bin
}

// apibenchResult is apibench's JSON summary line.
type apibenchResult struct {
	Mode       string  `json:"mode"`
	Cmd        string  `json:"cmd"`
	Clients    int     `json:"clients"`
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	CmdsPerSec float64 `json:"cmds_per_sec"`
	P50us      float64 `json:"p50_us"`
	P90us      float64 `json:"p90_us"`
	P99us      float64 `json:"p99_us"`
	MaxUs      float64 `json:"max_us"`
	FirstError string  `json:"first_error"`
}

// runApibench runs the tool and decodes its first output line.
func runApibench(b *testing.B, bin string, args ...string) apibenchResult {
	b.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		b.Fatalf("apibench %s: %v\n%s%s", strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	line, _, _ := bytes.Cut(stdout.Bytes(), []byte("\n"))
	var r apibenchResult
	if err := json.Unmarshal(line, &r); err != nil {
		b.Fatalf("apibench %s: summary line %q: %v", strings.Join(args, " "), line, err)
	}
	if r.Requests == 0 || r.Errors > 0 {
		b.Fatalf("apibench %s: %d requests, %d errors (%s)", strings.Join(args, " "), r.Requests, r.Errors, r.FirstError)
	}
	return r
}

// daemonAccount is one [accounts.NAME] of benchPlan.
type daemonAccount struct {
	Name, User, Server string
}

// benchPlan is a SIP plan on free ports with loopback audio: one echo
// channel per account. Logging stays at the production default (info).
func benchPlan(b *testing.B, accounts ...daemonAccount) string {
	b.Helper()
	rtpMin, rtpMax := testpeers.FreeRTPRange(b, 40)
	var s strings.Builder
	fmt.Fprintf(&s, "[tcp-settings]\naddress = \"127.0.0.1\"\nport = %d\n\n", testpeers.FreePort(b))
	fmt.Fprintf(&s, "[sip-settings]\naddress = \"127.0.0.1\"\nport = %d\nuser-agent = \"telestra-bench\"\n", testpeers.FreePort(b))
	s.WriteString("register-expires = \"300s\"\nregister-retry = \"1s\"\n\n")
	fmt.Fprintf(&s, "[rtp-settings]\nport-min = %d\nport-max = %d\n\n", rtpMin, rtpMax)
	s.WriteString("[log]\nlevel = \"info\"\n\n[audio]\nbackend = \"loopback\"\n\n")
	for i := range accounts {
		fmt.Fprintf(&s, "[audio.channels.ch%d]\nloopback = \"echo\"\n\n", i+1)
	}
	for i, a := range accounts {
		fmt.Fprintf(&s, "[accounts.%s]\nuser = %q\npass = %q\nserver = %q\nchannel = \"ch%d\"\n", a.Name, a.User, "sip"+a.User, a.Server, i+1)
		if a.Server == "" {
			s.WriteString("register = false\n")
		}
		s.WriteString("\n")
	}
	return s.String()
}

// verdict renders a goal check; missed goals fail the run only with
// BENCH_STRICT=1, since a shared 2-vCPU box misses them for reasons of its
// own.
func verdict(b *testing.B, ok bool, goal string) string {
	b.Helper()
	if ok {
		return "MET     " + goal
	}
	if os.Getenv("BENCH_STRICT") == "1" {
		b.Errorf("goal missed: %s", goal)
	}
	return "MISSED  " + goal
}
