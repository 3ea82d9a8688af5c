package daemon

import (
	"context"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Go returns freed heap to the kernel only in the background, and only from
// chunks that stayed sparse for a whole GC cycle (runtime/mgcscavenge.go).
// An idle daemon allocates so little that it runs a GC only every 2
// minutes, so the heap of a burst (mostly SIP transaction state, which
// RFC 3261 keeps for 64*T1 = 32 s after each call or rejected INVITE, or a
// flood of garbage datagrams) stayed resident for 4 minutes or more.
//
// memTrimmer hands it back once per burst: when at least trimBurst bytes
// were allocated since the last trim and then less than trimQuietBytes in
// the last trimQuiet, by which time every transaction of the burst has
// expired, it runs debug.FreeOSMemory (one GC of a small live heap, then a
// forced scavenge). While the daemon is busy (calls, floods) it never
// triggers: the GC runs regularly then and the scavenger keeps up.
const (
	trimQuiet      = 40 * time.Second // 64*T1 (Timers M, D, H, J) plus a margin
	trimCheck      = 5 * time.Second  // sampling period
	trimBurst      = 8 << 20          // allocated since the last trim to count as a burst
	trimQuietBytes = 2 << 20          // at most this much allocated over trimQuiet (50 KB/s)
)

type memTrimmer struct {
	allocated func() uint64 // cumulative bytes allocated
	free      func()
	window    []uint64 // samples over trimQuiet, oldest first
	base      uint64   // allocated at the last trim (or start)
}

func newMemTrimmer() *memTrimmer {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	return &memTrimmer{
		allocated: func() uint64 {
			metrics.Read(s)
			if s[0].Value.Kind() != metrics.KindUint64 {
				return 0
			}
			return s[0].Value.Uint64()
		},
		free: debug.FreeOSMemory,
	}
}

// sample takes one reading (every trimCheck) and trims when a burst has
// been followed by trimQuiet of near silence. It reports whether it trimmed.
func (m *memTrimmer) sample() bool {
	now := m.allocated()
	if m.window == nil {
		m.base = now
	}
	m.window = append(m.window, now)
	if n := int(trimQuiet/trimCheck) + 1; len(m.window) > n {
		m.window = m.window[len(m.window)-n:]
	}
	full := len(m.window) == int(trimQuiet/trimCheck)+1
	if !full || now-m.base < trimBurst || now-m.window[0] > trimQuietBytes {
		return false
	}
	m.free()
	m.base = m.allocated()
	return true
}

// run samples on every tick until ctx is done.
func (m *memTrimmer) run(ctx context.Context, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			m.sample()
		}
	}
}
