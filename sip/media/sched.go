package media

import (
	"sync/atomic"
	"time"
)

// run is the engine's one send clock. Sessions sit in slots of slotDur
// spread over the ptime; the scheduler sleeps until the next non-empty
// slot's deadline and ticks its sessions. Sockets are written without
// e.mu held: the slot is copied first.
func (e *Engine) run() {
	defer e.wg.Done()
	lockThread()
	var batch []*Session
	last := int64(-1) // absolute index of the last slot ticked
	for {
		e.mu.Lock()
		if e.count == 0 {
			e.mu.Unlock()
			select {
			case <-e.stop:
				return
			case <-e.wake:
			}
			last = -1
			continue
		}
		now := e.clock.now()
		if last < 0 {
			last = int64(now / e.slotDur)
		}
		next := last + 1
		for i := 0; i < e.nslots && len(e.slots[next%int64(e.nslots)]) == 0; i++ {
			next++
		}
		e.mu.Unlock()

		deadline := time.Duration(next) * e.slotDur
		if now-deadline > 5*e.cfg.PTime {
			// Stalled (suspended VM, overload): drop the missed ticks
			// rather than burst them out.
			last = int64(now / e.slotDur)
			continue
		}
		if deadline > now {
			e.clock.sleepUntil(deadline)
		}
		select {
		case <-e.stop:
			return
		default:
		}
		e.tickMu.RLock()
		e.mu.Lock()
		batch = append(batch[:0], e.slots[next%int64(e.nslots)]...)
		e.mu.Unlock()
		e.tick(batch, deadline)
		e.tickMu.RUnlock()
		clear(batch)
		last = next
	}
}

// tick runs one frame for each session of a slot: playout first (so an
// echo loops back within the same tick), then capture and send, then the
// housekeeping that is not time critical. A session whose peer is another
// session of this engine (a call between two channels of the appliance)
// sends before the drain instead: its peer plays the frame in the tick
// that captured it, not a frame later. Only such sessions: an echo port
// then loops back a frame later.
func (e *Engine) tick(batch []*Session, deadline time.Duration) {
	for _, s := range batch {
		if s.sendEarly = s.localPeer.Load(); s.sendEarly {
			s.sendTick(deadline)
		}
	}
	now, wall := e.clock.now(), time.Now()
	for _, s := range batch {
		s.rtp.drain(s, now, wall)
	}
	for _, s := range batch {
		s.playoutTick()
	}
	for _, s := range batch {
		if !s.sendEarly {
			s.sendTick(deadline)
		}
	}
	now = e.clock.now()
	for _, s := range batch {
		s.housekeep(now, deadline)
	}
}

// PacingStats summarises departure lateness against the ptime grid.
type PacingStats struct {
	Packets uint64
	P50     time.Duration
	P99     time.Duration
	P999    time.Duration
	Max     time.Duration
}

// Lateness buckets: 10 µs wide up to 5 ms, then 1 ms wide up to 200 ms;
// anything later lands in the last bucket.
const (
	fineBucket    = 10 * time.Microsecond
	fineBuckets   = 500
	coarseBucket  = time.Millisecond
	pacingBuckets = fineBuckets + 195
)

func bucketOf(d time.Duration) int {
	if d < fineBuckets*fineBucket {
		return int(d / fineBucket)
	}
	return min(fineBuckets+int((d-fineBuckets*fineBucket)/coarseBucket), pacingBuckets-1)
}

// bucketTop is the upper edge of bucket i.
func bucketTop(i int) time.Duration {
	if i < fineBuckets {
		return time.Duration(i+1) * fineBucket
	}
	return fineBuckets*fineBucket + time.Duration(i-fineBuckets+1)*coarseBucket
}

// pacingHist is a lock-free histogram of departure lateness.
type pacingHist struct {
	b   [pacingBuckets]atomic.Uint64
	max atomic.Int64
}

func (h *pacingHist) add(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.b[bucketOf(d)].Add(1)
	for {
		m := h.max.Load()
		if int64(d) <= m || h.max.CompareAndSwap(m, int64(d)) {
			return
		}
	}
}

func (h *pacingHist) snapshot() PacingStats {
	var counts [pacingBuckets]uint64
	var total uint64
	for i := range counts {
		counts[i] = h.b[i].Load()
		total += counts[i]
	}
	ps := PacingStats{Packets: total, Max: time.Duration(h.max.Load())}
	if total == 0 {
		return ps
	}
	q := func(f float64) time.Duration {
		want := uint64(f*float64(total-1)) + 1
		var acc uint64
		for i, c := range counts {
			acc += c
			if acc >= want {
				return min(bucketTop(i), ps.Max)
			}
		}
		return ps.Max
	}
	ps.P50, ps.P99, ps.P999 = q(0.50), q(0.99), q(0.999)
	return ps
}

// ResetPacing clears the pacing histogram (for load tests that skip warm-up).
func (e *Engine) ResetPacing() {
	for i := range e.pacing.b {
		e.pacing.b[i].Store(0)
	}
	e.pacing.max.Store(0)
}
