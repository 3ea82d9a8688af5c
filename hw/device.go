package hw

import (
	"encoding/binary"
	"math"
	"sync"
	"time"
)

// devQueues is the media-clock side shared by the device backends (pulse,
// alsa): the Channel's ReadFrame/WriteFrame work on these queues only, the
// device goroutine moves samples between them and the device.
//
// Both queues hold at most capacity samples (drop oldest). Standing latency
// is removed without reacting to bursts: when the lowest level seen over a
// second stayed above a quarter frame (playback: the server's buffer or the
// PCM holds the margin, so what the queue keeps is latency) or one frame
// (capture: a read needs a whole frame, and PipeWire delivers 21.3 ms
// fragments against 20 ms frames), that excess is dropped once. A
// read after a pause (no call was reading) first drops all but one frame of
// the stale capture.
type devQueues struct {
	play, capture *sampleQueue
	frame         int // samples per frame
	frameTime     time.Duration
	wake          chan struct{} // WriteFrame nudges the playback goroutine

	readMu   sync.Mutex // guards readTrim and lastRead
	readTrim levelTrim
	lastRead time.Time

	writeMu   sync.Mutex
	writeTrim levelTrim
}

func newDevQueues(cfg Config) *devQueues {
	frame := cfg.Format.FrameSamples(cfg.FrameTime)
	buf := cfg.Format.FrameSamples(cfg.Buffer)
	capacity := max(QueueFrames*frame, 4*buf)
	window := int(time.Second / cfg.FrameTime)
	return &devQueues{
		play:      newSampleQueue(capacity),
		capture:   newSampleQueue(capacity),
		frame:     frame,
		frameTime: cfg.FrameTime,
		wake:      make(chan struct{}, 1),
		readTrim:  newLevelTrim(frame, window),
		writeTrim: newLevelTrim(frame/4, window),
	}
}

// ReadFrame implements Channel.ReadFrame.
func (d *devQueues) ReadFrame(frame []int16) bool {
	d.readMu.Lock()
	defer d.readMu.Unlock()
	now := time.Now()
	if now.Sub(d.lastRead) > 5*d.frameTime {
		d.capture.trim(d.frame)
		d.readTrim.reset()
	}
	d.lastRead = now
	ok := d.capture.readFull(frame)
	if n := d.readTrim.observe(d.capture.len()); n > 0 {
		d.capture.drop(n)
	}
	return ok
}

// WriteFrame implements Channel.WriteFrame.
func (d *devQueues) WriteFrame(frame []int16) {
	d.writeMu.Lock()
	if n := d.writeTrim.observe(d.play.len()); n > 0 {
		d.play.drop(n)
	}
	d.play.write(frame)
	d.writeMu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// levelTrim finds standing excess in a queue: the lowest level observed over
// window observations, above keep.
type levelTrim struct {
	keep, window int
	n, low       int
}

func newLevelTrim(keep, window int) levelTrim {
	return levelTrim{keep: keep, window: max(window, 1), low: math.MaxInt}
}

// observe records a level and, once per window, returns how many samples to
// drop (0 if none).
func (l *levelTrim) observe(level int) int {
	l.low = min(l.low, level)
	l.n++
	if l.n < l.window {
		return 0
	}
	excess := l.low - l.keep
	l.reset()
	return max(excess, 0)
}

func (l *levelTrim) reset() { l.n, l.low = 0, math.MaxInt }

// stats fills the queue counters of a Stats.
func (d *devQueues) stats(st Stats) Stats {
	st.PlayDropped = d.play.droppedSamples()
	st.CaptureDropped = d.capture.droppedSamples()
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
