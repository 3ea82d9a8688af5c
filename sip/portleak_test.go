package sip

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/sip/media"
)

// Every call returns its RTP ports: 1000 real local calls in a row through
// the real media engine, with a pool of only 8 port pairs, must all get
// ports, and leave none in use.
func TestThousandCallsReturnEveryPort(t *testing.T) {
	const calls = 1000
	// The range lies below Linux's ephemeral ports (32768-60999), so the
	// socket-level check at the end cannot trip over another socket the
	// kernel handed out meanwhile.
	ev := newEvents()
	cfg := Config{
		Address: "127.0.0.1", Transports: []string{"udp"}, EndedCallLinger: time.Millisecond,
		Media: media.Config{BindIP: net.IPv4(127, 0, 0, 1), PortMin: 31300, PortMax: 31315, Codecs: []string{"PCMU"},
			PTime: 20 * time.Millisecond, JitterBuffer: 40 * time.Millisecond, Timeout: 30 * time.Second},
	}
	ua, err := New(cfg, []Account{
		{Name: "a", User: "3001", Audio: &fakePort{"a"}, AudioName: "ch1"},
		{Name: "b", User: "3002", Audio: &fakePort{"b"}, AudioName: "ch2"},
	}, ev.handler, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	// The linger is measured on a clock the test moves: one linger per call.
	clk := newFakeClock()
	ua.clock = clk
	if err := ua.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := ua.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()
	eng := ua.alloc.(engineAllocator).e

	for i := 0; i < calls; i++ {
		clk.Advance(cfg.EndedCallLinger)
		id := -1
		if err := ua.Dial("a", "3002", func(cid int) { id = cid }); err != nil {
			t.Fatalf("call %d: dial: %v", i, err)
		}
		in := ev.wait(t, CallIncoming, 5*time.Second)
		if err := ua.Answer("b", in.CallID); err != nil {
			t.Fatalf("call %d: answer: %v", i, err)
		}
		ev.wait(t, CallAnswered, 5*time.Second)
		ev.wait(t, CallAnswered, 5*time.Second)
		if err := ua.Hangup("a", id, false); err != nil {
			t.Fatalf("call %d: hangup: %v", i, err)
		}
		ev.wait(t, CallEnded, 5*time.Second)
		ev.wait(t, CallEnded, 5*time.Second)
	}
	// Ended calls leave the call and dialog tables (only the legs of the
	// last calls, within the linger, may remain): the daemon runs for months.
	ua.mu.Lock()
	nCalls, nDialogs := len(ua.calls), len(ua.dialogs)
	ua.mu.Unlock()
	if nCalls > 4 || nDialogs > 4 {
		t.Fatalf("after %d calls: %d calls and %d dialogs kept, want at most 4 each", calls, nCalls, nDialogs)
	}
	eventually(t, "every RTP port back in the pool", 2*time.Second, func() bool { return eng.InUse() == 0 })
	// And no socket of this process is bound in the range any more. The
	// kernel's socket table is asked rather than bind, because another copy
	// of this test (another checkout on the same machine) may hold ports of
	// the range at the same time.
	for p := cfg.Media.PortMin; p <= cfg.Media.PortMax; p++ {
		if ownsUDPPort(t, p) {
			t.Fatalf("port %d still bound by this process after %d calls", p, calls)
		}
	}
}

// ownsUDPPort says whether a UDP socket of this process is bound to port:
// /proc/net/udp{,6} name each socket's port and inode, /proc/self/fd links
// to the inodes of this process's sockets.
func ownsUDPPort(t *testing.T, port int) bool {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	mine := map[string]bool{}
	for _, fd := range fds {
		if l, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(l, "socket:[") {
			mine[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	hexPort := fmt.Sprintf(":%04X", port)
	for _, table := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) >= 10 && strings.HasSuffix(f[1], hexPort) && mine[f[9]] {
				return true
			}
		}
	}
	return false
}
