// clock.go owns the UA's notion of time: every timer and timestamp of the
// call and registration code goes through a clock so that tests drive time
// instead of racing the wall clock (as sip/media's monoClock does for RTP).
package sip

import "time"

// clock is the time source of a UA.
type clock interface {
	Now() time.Time
	// NewTimer is time.NewTimer.
	NewTimer(d time.Duration) timer
	// AfterFunc is time.AfterFunc: f runs in its own goroutine.
	AfterFunc(d time.Duration, f func()) timer
}

// timer is the part of *time.Timer the UA uses.
type timer interface {
	C() <-chan time.Time // nil for an AfterFunc timer
	Stop() bool
	Reset(d time.Duration) bool
}

// wallClock is the clock of a running daemon.
type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

func (wallClock) NewTimer(d time.Duration) timer { return wallTimer{time.NewTimer(d)} }

func (wallClock) AfterFunc(d time.Duration, f func()) timer {
	return wallTimer{time.AfterFunc(d, f)}
}

type wallTimer struct{ t *time.Timer }

func (w wallTimer) C() <-chan time.Time        { return w.t.C }
func (w wallTimer) Stop() bool                 { return w.t.Stop() }
func (w wallTimer) Reset(d time.Duration) bool { return w.t.Reset(d) }
