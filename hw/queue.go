package hw

import "sync"

// sampleQueue is a bounded FIFO of samples shared by the media clock and a
// device goroutine. A write that would overflow drops the oldest samples so
// the writer never waits and latency stays bounded.
type sampleQueue struct {
	mu      sync.Mutex
	buf     []int16 // ring storage, len(buf) is the capacity
	start   int     // index of the oldest sample
	n       int     // queued samples
	dropped uint64  // samples dropped on overflow, for stats and tests
}

func newSampleQueue(capacity int) *sampleQueue {
	if capacity < 1 {
		capacity = 1
	}
	return &sampleQueue{buf: make([]int16, capacity)}
}

// write appends p, dropping the oldest samples when full.
func (q *sampleQueue) write(p []int16) {
	q.mu.Lock()
	defer q.mu.Unlock()
	c := len(q.buf)
	if len(p) >= c {
		q.dropped += uint64(q.n + len(p) - c)
		copy(q.buf, p[len(p)-c:])
		q.start, q.n = 0, c
		return
	}
	if over := q.n + len(p) - c; over > 0 {
		q.start = (q.start + over) % c
		q.n -= over
		q.dropped += uint64(over)
	}
	end := (q.start + q.n) % c
	k := copy(q.buf[end:], p)
	copy(q.buf, p[k:])
	q.n += len(p)
}

// readFull fills dst only when a whole len(dst) is queued.
func (q *sampleQueue) readFull(dst []int16) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n < len(dst) {
		return false
	}
	q.take(dst)
	return true
}

// readSome moves up to len(dst) samples into dst and returns how many.
func (q *sampleQueue) readSome(dst []int16) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(dst) > q.n {
		dst = dst[:q.n]
	}
	q.take(dst)
	return len(dst)
}

// take copies len(dst) <= q.n samples out; q.mu must be held.
func (q *sampleQueue) take(dst []int16) {
	c := len(q.buf)
	k := copy(dst, q.buf[q.start:min(c, q.start+len(dst))])
	copy(dst[k:], q.buf[:len(dst)-k])
	q.start = (q.start + len(dst)) % c
	q.n -= len(dst)
}

func (q *sampleQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

func (q *sampleQueue) droppedSamples() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.dropped
}

func (q *sampleQueue) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.start, q.n = 0, 0
}

// drop discards the n oldest samples (fewer if fewer are queued).
func (q *sampleQueue) drop(n int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n = min(n, q.n)
	q.start = (q.start + n) % len(q.buf)
	q.n -= n
	q.dropped += uint64(n)
}

// trim drops the oldest samples so at most keep remain, and reports whether
// it dropped any.
func (q *sampleQueue) trim(keep int) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	over := q.n - keep
	if over <= 0 {
		return false
	}
	q.start = (q.start + over) % len(q.buf)
	q.n = keep
	q.dropped += uint64(over)
	return true
}
