//go:build !linux

package media

import "time"

// monoClock falls back to the runtime timer where clock_nanosleep is missing.
type monoClock struct{ epoch time.Time }

func newMonoClock() monoClock { return monoClock{epoch: time.Now()} }

func (c monoClock) now() time.Duration { return time.Since(c.epoch) }

func (c monoClock) sleepUntil(d time.Duration) {
	if w := d - c.now(); w > 0 {
		time.Sleep(w)
	}
}

func lockThread() {}
