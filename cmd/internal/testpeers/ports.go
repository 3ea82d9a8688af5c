package testpeers

import (
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"testing"
)

// forbidden are port ranges tests must never use: the standard SIP port, the
// fixed ranges of the manual peer scripts, the baresip default RTP range and
// ranges other developers' tools hold on the shared machine.
var forbidden = [][2]int{
	{5060, 5060},
	{5070, 5070},
	{5100, 5199},
	{4400, 4499},
	{15060, 15069},
	{15200, 15399},
	{20000, 29999},
	{31000, 31999},
	{40000, 41999},
}

// Allowed reports whether port may be used by a test.
func Allowed(port int) bool {
	if port < 1024 || port > 65535 {
		return false
	}
	for _, r := range forbidden {
		if port >= r[0] && port <= r[1] {
			return false
		}
	}
	return true
}

// ports handed out by this process, so two harness objects in one test
// binary never get the same port even when the first has not bound it yet.
var (
	portsMu sync.Mutex
	given   = map[int]bool{}
)

func unclaim(ports ...int) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for _, p := range ports {
		delete(given, p)
	}
}

func claim(ports ...int) bool {
	portsMu.Lock()
	defer portsMu.Unlock()
	for _, p := range ports {
		if given[p] {
			return false
		}
	}
	for _, p := range ports {
		given[p] = true
	}
	return true
}

// free reports whether port can be bound right now on 127.0.0.1 and on
// ::1 for UDP and/or TCP, so a port serves tests of either family.
func free(port int, udp, tcp bool) bool {
	for _, host := range []string{"127.0.0.1", "::1"} {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		if tcp {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				return false
			}
			l.Close()
		}
		if udp {
			c, err := net.ListenPacket("udp", addr)
			if err != nil {
				return false
			}
			c.Close()
		}
	}
	return true
}

// LoopbackHost is the loopback address tests use: 127.0.0.1, or ::1 for
// the IPv6 variants.
func LoopbackHost(ipv6 bool) string {
	if ipv6 {
		return "::1"
	}
	return "127.0.0.1"
}

// portRegions are where FreePort looks: below the kernel's ephemeral ports
// (32768-60999 by default) and above them, away from the RTP regions. A
// port in the ephemeral range, even one free when chosen, may be handed to
// any outgoing connection (the test's own clients, a peer's) before the
// program it was chosen for binds it: "address already in use".
var portRegions = [][2]int{{10000, 15059}, {15400, 16383}, {61000, 65535}}

func randomPort() int {
	r := portRegions[rand.IntN(len(portRegions))]
	return r[0] + rand.IntN(r[1]-r[0]+1)
}

// FreePort returns a port that is free for both UDP and TCP on 127.0.0.1
// and outside the forbidden ranges.
func FreePort(t testing.TB) int {
	t.Helper()
	return freeRun(t, 1)
}

// FreePortPair returns p such that p and p+1 are both free for UDP and TCP
// (baresip listens on TCP port+1 too).
func FreePortPair(t testing.TB) int {
	t.Helper()
	return freeRun(t, 2)
}

func freeRun(t testing.TB, n int) int {
	t.Helper()
	for range 200 {
		p := randomPort()
		ok := true
		for i := range n {
			if !Allowed(p+i) || !free(p+i, true, true) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		run := make([]int, n)
		for i := range run {
			run[i] = p + i
		}
		if claim(run...) {
			return p
		}
	}
	t.Fatalf("testpeers: no free port run of %d after 200 tries", n)
	return 0
}

// RTP port blocks come from below the kernel's ephemeral range (which
// starts at 32768 by default), so an outgoing connection never takes one.
var rtpRegions = [][2]int{{16384, 19999}, {30000, 30999}, {32000, 32767}}

// FreeRTPRange returns an even first port and a last port (min+n-1) of a
// block of n ports that are all free for UDP now; n is rounded up to even.
func FreeRTPRange(t testing.TB, n int) (min, max int) {
	t.Helper()
	if n%2 == 1 {
		n++
	}
	for range 500 {
		r := rtpRegions[rand.IntN(len(rtpRegions))]
		span := r[1] - r[0] + 1 - n
		if span <= 0 {
			continue
		}
		base := r[0] + rand.IntN(span)
		base &^= 1
		if base < r[0] {
			base += 2
		}
		ok := true
		block := make([]int, n)
		for i := range n {
			block[i] = base + i
			if !Allowed(base+i) || !free(base+i, true, false) {
				ok = false
				break
			}
		}
		if ok && claim(block...) {
			// The regions hold a few thousand ports and a whole e2e run asks
			// for far more: give the block back when the test is done (its
			// users, started after this call, are stopped before it: cleanups
			// run last-in first-out).
			t.Cleanup(func() { unclaim(block...) })
			return base, base + n - 1
		}
	}
	t.Fatalf("testpeers: no free block of %d RTP ports", n)
	return 0, 0
}
