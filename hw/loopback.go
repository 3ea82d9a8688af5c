package hw

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// QueueFrames bounds every capture and playback queue, in frames of
// Config.FrameTime (10 × 20 ms = 200 ms of audio at most).
const QueueFrames = 10

// testFrameTime is the frame time of NewLoopback's channels (tests); Open
// takes Config.FrameTime.
const testFrameTime = 20 * time.Millisecond

// tapSeconds bounds what a Loopback keeps for Played, so a long-running
// loopback channel in the daemon cannot grow without limit.
const tapSeconds = 10

// Loopback is the hardware fake: no device, no goroutines. Modes:
//
//   - "echo": every frame written with WriteFrame is queued as capture, so the
//     next ReadFrame returns it (one media-clock tick later).
//   - "tone:HZ": capture is a sine of HZ at −12 dBFS with continuous phase.
//   - "silence": capture is zeros.
//
// In every mode Played returns what was written and Inject queues samples
// that ReadFrame returns before any generated audio.
type Loopback struct {
	f       Format
	mode    string
	capture *sampleQueue
	tap     *sampleQueue // NewLoopback only (tests); nil from Open

	mu   sync.Mutex // guards gen
	gen  *toneGen   // nil: silence (or echo)
	echo bool

	closed atomic.Bool
}

var _ Channel = (*Loopback)(nil)

// NewLoopback returns a loopback channel in mode ("echo", "tone:HZ",
// "silence"; empty means "echo") for format f, with 20 ms frames.
// Only a Loopback made here keeps the tap that Played reads; Open's (the
// daemon's) does not copy every played frame for nobody.
func NewLoopback(mode string, f Format) (*Loopback, error) {
	l, err := newLoopback(mode, f, testFrameTime)
	if err != nil {
		return nil, err
	}
	l.tap = newSampleQueue(tapSeconds * f.Rate * f.Channels)
	return l, nil
}

func newLoopback(mode string, f Format, frameTime time.Duration) (*Loopback, error) {
	if err := f.validate(); err != nil {
		return nil, err
	}
	l := &Loopback{
		f:       f,
		mode:    mode,
		capture: newSampleQueue(QueueFrames * f.FrameSamples(frameTime)),
	}
	switch {
	case mode == "" || mode == "echo":
		l.mode, l.echo = "echo", true
	case mode == "silence":
	case strings.HasPrefix(mode, "tone:"):
		hz, err := strconv.ParseFloat(strings.TrimPrefix(mode, "tone:"), 64)
		if err != nil || hz <= 0 || hz >= float64(f.Rate)/2 {
			return nil, fmt.Errorf("hw: loopback mode %q: want tone:HZ with 0 < HZ < %d (half the rate)", mode, f.Rate/2)
		}
		l.gen = newToneGen(hz, f.Rate, ToneLevel)
	default:
		return nil, fmt.Errorf("hw: loopback mode %q: want \"echo\", \"tone:HZ\" or \"silence\"", mode)
	}
	return l, nil
}

// Mode returns the normalised mode ("echo", "silence" or "tone:HZ").
func (l *Loopback) Mode() string { return l.mode }

// ReadFrame implements Channel. In echo mode it returns false until a full
// frame has been written or injected; tone and silence always return true.
func (l *Loopback) ReadFrame(frame []int16) bool {
	if l.closed.Load() {
		return false
	}
	if l.echo {
		return l.capture.readFull(frame)
	}
	n := l.capture.readSome(frame)
	rest := frame[n:]
	if l.gen == nil {
		clear(rest)
		return true
	}
	l.mu.Lock()
	l.gen.fill(rest, l.f.Channels)
	l.mu.Unlock()
	return true
}

// WriteFrame implements Channel: the frame is recorded for Played and, in
// echo mode, queued as capture. After Close it is discarded.
func (l *Loopback) WriteFrame(frame []int16) {
	if l.closed.Load() {
		return
	}
	if l.tap != nil {
		l.tap.write(frame)
	}
	if l.echo {
		l.capture.write(frame)
	}
}

// Played returns and forgets everything written since the last call (at
// most the last 10 seconds).
func (l *Loopback) Played() []int16 {
	if l.tap == nil {
		return nil
	}
	out := make([]int16, l.tap.len())
	return out[:l.tap.readSome(out)]
}

// Inject queues samples as capture, ahead of generated tone or silence. The
// capture queue is bounded (QueueFrames frames): inject at most that much
// between reads, or the oldest samples are dropped.
func (l *Loopback) Inject(samples []int16) {
	if l.closed.Load() {
		return
	}
	l.capture.write(samples)
}

// Stats implements the channels' Stats method.
func (l *Loopback) Stats() Stats {
	return Stats{
		Backend:        "loopback",
		Connected:      !l.closed.Load(),
		CaptureDropped: l.capture.droppedSamples(),
	}
}

// Close implements Channel; it is idempotent. Reads then return false and
// writes are discarded.
func (l *Loopback) Close() error {
	l.closed.Store(true)
	return nil
}
