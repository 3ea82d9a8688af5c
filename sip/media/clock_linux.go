//go:build linux

package media

import (
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// monoClock sleeps with clock_nanosleep(TIMER_ABSTIME): the Go runtime's
// timers round to the netpoller's 1 ms epoll timeout, which alone costs
// about 0.5 ms median and 1 ms p99 of lateness; the kernel timer is ~50 µs.
// The calling goroutine blocks its OS thread, so only the scheduler uses it.
type monoClock struct {
	epoch time.Time
	base  int64 // CLOCK_MONOTONIC ns at epoch
}

func newMonoClock() monoClock {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	epoch := time.Now()
	return monoClock{epoch: epoch, base: ts.Nano()}
}

// now is the time since the epoch.
func (c monoClock) now() time.Duration { return time.Since(c.epoch) }

// sleepUntil returns at or shortly after the epoch+d.
func (c monoClock) sleepUntil(d time.Duration) {
	ts := unix.NsecToTimespec(c.base + int64(d))
	for {
		err := unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil)
		if err != unix.EINTR {
			return
		}
	}
}

// lockThread pins the calling goroutine to its OS thread and asks the
// kernel for exact wake-ups on it (the default 50 µs timer slack would be
// a tenth of our pacing budget). The thread exits with the goroutine.
func lockThread() {
	runtime.LockOSThread()
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
}
