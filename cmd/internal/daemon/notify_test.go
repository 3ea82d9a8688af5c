package daemon

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

type recNotifier struct {
	mu     sync.Mutex
	states []string
}

func (r *recNotifier) Notify(s string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, s)
	return nil
}

func (r *recNotifier) count(s string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, x := range r.states {
		if x == s {
			n++
		}
	}
	return n
}

func TestRunWatchdogPingsOnlyWhenHealthy(t *testing.T) {
	tests := []struct {
		name      string
		check     func(context.Context) error
		wantPings bool
	}{
		{name: "healthy", check: func(context.Context) error { return nil }, wantPings: true},
		{name: "failing", check: func(context.Context) error { return errors.New("ua stopped") }, wantPings: false},
		{name: "stalled", check: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }, wantPings: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := &recNotifier{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// The test drives the periods: the first check runs at once,
			// one more at each tick.
			tick := make(chan time.Time)
			done := make(chan struct{})
			go func() {
				defer close(done)
				runWatchdog(ctx, 20*time.Millisecond, tick, tc.check, n, func(string, ...any) {})
			}()
			for range 5 {
				tick <- time.Time{} // taken once the previous check is over
			}
			// Five checks are over; the sixth may run or not.
			cancel()
			<-done
			got := n.count("WATCHDOG=1")
			if tc.wantPings && got < 3 {
				t.Fatalf("got %d pings from 5 healthy checks, want at least 3", got)
			}
			if !tc.wantPings && got != 0 {
				t.Fatalf("got %d pings from an unhealthy daemon, want none", got)
			}
		})
	}
}
