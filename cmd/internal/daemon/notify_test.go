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
			ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
			defer cancel()
			runWatchdog(ctx, 20*time.Millisecond, tc.check, n, func(string, ...any) {})
			got := n.count("WATCHDOG=1")
			if tc.wantPings && got < 3 {
				t.Fatalf("got %d pings in 120ms at a 20ms period, want at least 3", got)
			}
			if !tc.wantPings && got != 0 {
				t.Fatalf("got %d pings from an unhealthy daemon, want none", got)
			}
		})
	}
}
