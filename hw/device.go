package hw

import (
	"encoding/binary"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// devQueues is the media-clock side shared by the device backends (pulse,
// alsa): the Channel's ReadFrame/WriteFrame work on these queues only, the
// device goroutine moves samples between them and the device.
//
// Both queues hold at most capacity samples (drop oldest). Standing latency
// is removed without reacting to bursts: when the lowest level seen over a
// second stayed above the direction's margin, that excess is dropped once.
// Capture measures the queue after each read; playback measures, before
// each write, the queue plus what the device side already holds (the pulse
// server's buffer), so the margin is the whole playback buffer's low point
// wherever the audio waits. A margin adapts (see margin): it rises when the
// direction starves (a read finds less than a frame after reads were
// flowing; the device reports an underrun) and falls back slowly while it
// does not. Starvation in the first window after a pause (no call was
// reading or writing) does not count: the device is starting (a stream that
// ran dry between calls, a source resuming), which says nothing about this
// machine's scheduling. A read after a pause first drops stale capture down
// to one frame plus the margin.
type devQueues struct {
	play, capture *sampleQueue
	frame         int // samples per frame
	frameTime     time.Duration
	wake          chan struct{} // WriteFrame nudges the playback goroutine

	readMu       sync.Mutex // guards the fields below up to writeMu
	readTrim     levelTrim
	readMargin   margin
	lastRead     time.Time
	flowing      bool   // the last read returned a frame
	readSettling bool   // in the first window after a pause
	captureSeen  uint64 // capture.droppedSamples() at the last read

	writeMu       sync.Mutex // guards the fields below up to the atomics
	writeTrim     levelTrim
	writeMargin   margin
	lastWrite     time.Time
	seenUnder     uint64 // underruns already looked at
	writeSettling bool   // in the first window after a pause

	// Set by the backend, read by WriteFrame without a lock.
	underruns   atomic.Uint64 // device playback underruns (pulse Underflow)
	deviceLevel atomic.Int64  // samples the device side holds beyond the queue
	playKeep    atomic.Int64  // writeMargin.cur, for the backend's priming
	captureKeep atomic.Int64  // readMargin.cur, for Stats
	captureLost atomic.Uint64 // capture samples dropped while calls read, for Stats
}

func newDevQueues(cfg Config) *devQueues {
	frame := cfg.Format.FrameSamples(cfg.FrameTime)
	buf := cfg.Format.FrameSamples(cfg.Buffer)
	capacity := max(QueueFrames*frame, 4*buf)
	window := int(time.Second / cfg.FrameTime)
	d := &devQueues{
		play:      newSampleQueue(capacity),
		capture:   newSampleQueue(capacity),
		frame:     frame,
		frameTime: cfg.FrameTime,
		wake:      make(chan struct{}, 1),
		readTrim:  newLevelTrim(window),
		writeTrim: newLevelTrim(window),
	}
	// Fixed margins until a backend knows its device: capture one frame
	// (a read needs a whole frame), playback a quarter frame (the PCM
	// holds the rest: the ALSA backend).
	d.setMargins(fixedMargin(frame/4), fixedMargin(frame))
	return d
}

// setMargins replaces the playback and capture margins (a backend calls it
// once it knows its device's granularity).
func (d *devQueues) setMargins(play, capture margin) {
	d.writeMu.Lock()
	d.writeMargin.replace(play)
	d.seenUnder = d.underruns.Load()
	d.playKeep.Store(int64(d.writeMargin.cur))
	d.writeMu.Unlock()
	d.readMu.Lock()
	d.readMargin.replace(capture)
	d.captureKeep.Store(int64(d.readMargin.cur))
	d.readMu.Unlock()
}

// ReadFrame implements Channel.ReadFrame.
func (d *devQueues) ReadFrame(frame []int16) bool {
	d.readMu.Lock()
	defer d.readMu.Unlock()
	now := time.Now()
	paused := now.Sub(d.lastRead) > 5*d.frameTime
	if paused {
		d.capture.trim(d.frame + d.readMargin.cur)
		d.readTrim.reset()
		d.flowing, d.readSettling = false, true
	}
	d.lastRead = now
	defer d.countCaptureLost(paused)
	ok := d.capture.readFull(frame)
	if !ok && d.flowing && !d.readSettling {
		// Starved: the device delivered later than the margin allows.
		d.readMargin.starved()
		d.captureKeep.Store(int64(d.readMargin.cur))
	}
	d.flowing = ok
	if n, done := d.readTrim.observe(d.capture.len()); done {
		if n -= d.readMargin.cur; n > 0 {
			d.capture.drop(n)
		}
		if !d.readSettling {
			d.readMargin.endWindow()
		}
		d.readSettling = false
		d.captureKeep.Store(int64(d.readMargin.cur))
	}
	return ok
}

// countCaptureLost adds the capture drops since the last read to what calls
// lost, unless no call was reading: between calls the device goes on
// capturing into a queue nobody reads, and the first read drops what went
// stale. Counting those would make the figure grow by the sample rate
// while the appliance is idle. d.readMu is held.
func (d *devQueues) countCaptureLost(paused bool) {
	n := d.capture.droppedSamples()
	if !paused {
		d.captureLost.Add(n - d.captureSeen)
	}
	d.captureSeen = n
}

// WriteFrame implements Channel.WriteFrame.
func (d *devQueues) WriteFrame(frame []int16) {
	d.writeMu.Lock()
	now := time.Now()
	if now.Sub(d.lastWrite) > 5*d.frameTime {
		d.writeTrim.reset()
		d.writeSettling = true
	}
	d.lastWrite = now
	if u := d.underruns.Load(); u != d.seenUnder {
		d.seenUnder = u
		if !d.writeSettling {
			d.writeMargin.starved()
			d.playKeep.Store(int64(d.writeMargin.cur))
		}
	}
	level := d.play.len()
	if dev := d.deviceLevel.Load(); dev > 0 {
		level += int(dev)
	}
	d.play.write(frame)
	if low, done := d.writeTrim.observe(level); done {
		if n := low - d.writeMargin.cur; n > 0 {
			// Dropped from the queue only: what the server holds is
			// beyond reach, so a larger excess goes over a few windows.
			d.play.drop(min(n, d.play.len()))
		}
		if !d.writeSettling {
			d.writeMargin.endWindow()
		}
		d.writeSettling = false
		d.playKeep.Store(int64(d.writeMargin.cur))
	}
	d.writeMu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// levelTrim finds standing excess in a queue: the lowest level observed over
// window observations.
type levelTrim struct {
	window, n, low int
}

func newLevelTrim(window int) levelTrim {
	return levelTrim{window: max(window, 1), low: math.MaxInt}
}

// observe records a level and, once per window, returns the window's lowest
// level and true.
func (l *levelTrim) observe(level int) (int, bool) {
	l.low = min(l.low, level)
	l.n++
	if l.n < l.window {
		return 0, false
	}
	low := l.low
	l.reset()
	return low, true
}

func (l *levelTrim) reset() { l.n, l.low = 0, math.MaxInt }

// margin is the level (samples) a queue's standing-latency trim keeps: its
// safety against a late device or a late media clock. It starts at cur,
// rises by up on a starvation (once per window: one stall often starves
// twice, before and after the catch-up), at most to hi, and falls by down
// after every decay windows without one, at least to lo: the margin settles
// just above what this machine's scheduling needs, so a quiet machine gets
// low latency and a loaded one few glitches.
type margin struct {
	cur, lo, hi, up, down int
	decay, calm           int  // windows per step down; windows since the last step or starvation
	raised                bool // in this window
}

// replace takes n's limits; a margin with the same limits (a reconnect to
// the same kind of server) keeps what it learned.
func (m *margin) replace(n margin) {
	if m.lo != n.lo || m.hi != n.hi {
		*m = n
		return
	}
	m.up, m.down, m.decay = n.up, n.down, n.decay
}

// fixedMargin never moves.
func fixedMargin(n int) margin { return margin{cur: n, lo: n, hi: n} }

func (m *margin) starved() {
	if !m.raised {
		m.cur = min(m.cur+m.up, m.hi)
	}
	m.raised, m.calm = true, 0
}

// endWindow ends a window: a step down after decay windows without a
// starvation.
func (m *margin) endWindow() {
	if m.raised {
		m.raised = false
		return
	}
	if m.calm++; m.decay > 0 && m.calm >= m.decay {
		m.calm = 0
		m.cur = max(m.cur-m.down, m.lo)
	}
}

// stats fills the queue counters of a Stats.
func (d *devQueues) stats(st Stats) Stats {
	st.PlayDropped = d.play.droppedSamples()
	st.CaptureDropped = d.captureLost.Load()
	dur := func(n int64) time.Duration { return time.Duration(n) * d.frameTime / time.Duration(max(d.frame, 1)) }
	st.PlayMargin = dur(d.playKeep.Load())
	st.CaptureMargin = dur(d.captureKeep.Load())
	return st
}

// backoff is the reconnect/reopen delay: 200 ms doubling to 5 s.
type backoff struct{ d time.Duration }

const (
	backoffMin = 200 * time.Millisecond
	backoffMax = 5 * time.Second
)

func (b *backoff) next() time.Duration {
	if b.d == 0 {
		b.d = backoffMin
	} else {
		b.d = min(2*b.d, backoffMax)
	}
	return b.d
}

func (b *backoff) reset() { b.d = 0 }

// putS16LE encodes samples as little-endian bytes into dst (len ≥ 2·len(s)).
func putS16LE(dst []byte, s []int16) []byte {
	dst = dst[:2*len(s)]
	for i, v := range s {
		binary.LittleEndian.PutUint16(dst[2*i:], uint16(v))
	}
	return dst
}

// getS16LE decodes little-endian bytes (even length) into dst.
func getS16LE(dst []int16, b []byte) []int16 {
	dst = dst[:len(b)/2]
	for i := range dst {
		dst[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
	}
	return dst
}
