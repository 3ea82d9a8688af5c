//go:build integration

package reliability

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/debugserver"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// floodResult is what one INVITE flood measured.
type floodResult struct {
	invites, busy, cancelled int
	incoming, ended          int // API events seen
	took                     time.Duration
	start, end, after        debugserver.Stats
	heapStart, heapAfter     string
	env                      *daemonEnv
}

// eventCounter drains a client's events (a client that stops reading is
// disconnected as slow) and counts them by name.
type eventCounter struct {
	mu     sync.Mutex
	counts map[string]int
	done   chan struct{}
}

func countEvents(ctx context.Context, c *client.Client) *eventCounter {
	ec := &eventCounter{counts: map[string]int{}, done: make(chan struct{})}
	go func() {
		defer close(ec.done)
		for {
			m, err := c.Next(ctx)
			if err != nil {
				return
			}
			ec.mu.Lock()
			ec.counts[m.Event]++
			ec.mu.Unlock()
		}
	}()
	return ec
}

func (ec *eventCounter) get(name string) int {
	ec.mu.Lock()
	defer ec.mu.Unlock()
	return ec.counts[name]
}

// runFlood sends calls INVITEs at rate per second from SIPp straight to
// the daemon's account 3001 (max-calls 4, no registrar): a call that finds
// the account full gets 486, one that rings is CANCELled by SIPp after
// 300 ms. Every INVITE must get a final answer (SIPp exits 0).
func runFlood(t testing.TB, calls, rate int, settle time.Duration, profiles bool, bin string) floodResult {
	t.Helper()
	e := startDaemon(t, planOpts{Accounts: []account{{Name: "acc1", User: "3001", MaxCalls: 4}}, RTPPorts: 80, Bin: bin})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := floodResult{invites: calls, start: e.idleStats(t), env: e}
	if profiles {
		r.heapStart = e.saveProfile(t, "start")
	}
	listener := e.d.Client(t)
	ec := countEvents(ctx, listener) // e.c stays free for get-status

	t0 := time.Now()
	s := testpeers.StartSipp(t, testpeers.SippOptions{
		Scenario: "flood_uac.xml", Remote: e.sipAddr(), Service: "3001",
		Calls: calls, Rate: rate,
		Timeout: time.Duration(calls/rate+60) * time.Second,
	})
	if err := s.Wait(time.Duration(calls/rate+90) * time.Second); err != nil {
		t.Fatalf("INVITE flood: %v", err)
	}
	r.took = time.Since(t0)
	r.end = e.stats(t)
	waitIdle(t, e.c, "acc1", 30*time.Second)
	r.incoming, r.ended = ec.get(api.EventCallIncoming), ec.get(api.EventCallEnded)
	// The listener is the test's, not the daemon's: gone before "after".
	cancel()
	listener.Close()
	<-ec.done
	if d := settle - time.Since(t0.Add(r.took)); d > 0 {
		time.Sleep(d)
	}
	r.after = e.stats(t)
	if profiles {
		r.heapAfter = e.saveProfile(t, "after")
	}
	r.busy, r.cancelled = sippResponses(t, s, "486"), sippResponses(t, s, "487")
	return r
}

// sippResponses reads how many responses with code SIPp received from its
// final screen.
func sippResponses(t testing.TB, s *testpeers.Sipp, code string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir(), "screen.log"))
	if err != nil {
		t.Fatalf("sipp screen: %v", err)
	}
	// Lines such as "         486 <----------  997  0  0" : the count
	// follows the arrow.
	re := regexp.MustCompile(`(?m)^\s*` + code + `\s*<-+\s+(\d+)`)
	ms := re.FindAllStringSubmatch(string(b), -1)
	if len(ms) == 0 {
		return 0
	}
	var n int
	fmt.Sscan(ms[len(ms)-1][1], &n)
	return n
}

func (r floodResult) report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "flood: %d INVITEs in %v: %d busy (486), %d rang and were cancelled (487); API saw %d call-incoming, %d call-ended\n",
		r.invites, r.took.Round(time.Millisecond), r.busy, r.cancelled, r.incoming, r.ended)
	b.WriteString(statsLine("start (idle)", r.start) + "\n")
	b.WriteString(statsLine("end of flood", r.end) + "\n")
	b.WriteString(statsLine("after linger+settle", r.after) + "\n")
	fmt.Fprintf(&b, "RSS after - idle: %+.1f MB; goroutines %+d; threads %+d; fds %+d\n",
		mb(r.after.RSSBytes-r.start.RSSBytes), r.after.Goroutines-r.start.Goroutines,
		r.after.Threads-r.start.Threads, r.after.FDs-r.start.FDs)
	if r.heapStart != "" {
		fmt.Fprintf(&b, "heap profiles: go tool pprof -top -diff_base %s %s\n", r.heapStart, r.heapAfter)
	}
	return b.String()
}

// TestInviteFlood: SIPp at 100 calls/s for 10 s against an account with
// max-calls 4: every INVITE gets a final answer (486 when full, 487 after
// SIPp's CANCEL when it rang), only the calls that rang reach the host as
// call-incoming, the daemon keeps answering its API, and goroutines and fds
// go back to idle.
func TestInviteFlood(t *testing.T) {
	r := runFlood(t, 1000, 100, 5*time.Second, true, "")
	t.Log("\n" + r.report())
	if r.busy+r.cancelled != r.invites {
		t.Errorf("486 %d + 487 %d = %d finals for %d INVITEs", r.busy, r.cancelled, r.busy+r.cancelled, r.invites)
	}
	if r.busy == 0 || r.cancelled == 0 {
		t.Errorf("486 %d, 487 %d: the flood did not exercise both max-calls and ringing", r.busy, r.cancelled)
	}
	if r.incoming != r.cancelled {
		t.Errorf("%d call-incoming events for %d calls that rang (486s must not reach the host)", r.incoming, r.cancelled)
	}
	r.env.backToIdle(t, r.start, timerF+10*time.Second, "after the flood")
}
