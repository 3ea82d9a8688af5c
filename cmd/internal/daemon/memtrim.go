package daemon

import (
	"context"
	"runtime/debug"
	"sync/atomic"
	"time"
)

// Go returns freed heap to the kernel only in the background, and only from
// chunks that stayed sparse for a whole GC cycle (runtime/mgcscavenge.go);
// an idle daemon runs a GC only every 2 minutes, so the heap of a burst of
// calls (mostly SIP transaction state, which RFC 3261 keeps for 64*T1 = 32 s
// after each call) stayed resident for 4 minutes or more after the burst.
// memTrimmer hands it back once per burst: when a call event has been seen
// and then nothing for trimQuiet, by which time every transaction of the
// burst has expired, it runs debug.FreeOSMemory (one GC of a small live
// heap, then a forced scavenge). Continuous traffic never triggers it.
const (
	trimQuiet = 40 * time.Second // 64*T1 (Timer M, D, H, J) plus a margin
	trimCheck = 5 * time.Second  // how often quiet is checked
)

type memTrimmer struct {
	quiet time.Duration
	now   func() time.Time
	free  func()
	last  atomic.Int64 // unix nanoseconds of the last call event
	dirty atomic.Bool  // a call event since the last trim
}

func newMemTrimmer() *memTrimmer {
	return &memTrimmer{quiet: trimQuiet, now: time.Now, free: debug.FreeOSMemory}
}

// touch records call activity; it never blocks (the SIP goroutine calls it).
func (m *memTrimmer) touch() {
	m.last.Store(m.now().UnixNano())
	m.dirty.Store(true)
}

// check trims when the daemon has been quiet long enough after activity.
func (m *memTrimmer) check() bool {
	if !m.dirty.Load() || m.now().UnixNano()-m.last.Load() < int64(m.quiet) {
		return false
	}
	m.dirty.Store(false)
	m.free()
	return true
}

// run checks on every tick until ctx is done.
func (m *memTrimmer) run(ctx context.Context, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			m.check()
		}
	}
}
