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

func TestEventLoopProbe(t *testing.T) {
	l := newEventLoop(4, discardLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); l.run(ctx) }()

	pctx, pcancel := context.WithTimeout(ctx, time.Second)
	if err := l.probe(pctx); err != nil {
		t.Fatalf("probe of an idle loop: %v", err)
	}
	pcancel()

	// Stall the loop: the probe must fail, and posts beyond the queue drop
	// instead of blocking the caller (the SIP stack).
	block := make(chan struct{})
	l.post(func() { <-block })
	pctx, pcancel = context.WithTimeout(ctx, 50*time.Millisecond)
	if err := l.probe(pctx); err == nil {
		t.Fatal("probe succeeded while the event path was stalled")
	}
	pcancel()
	start := time.Now()
	for i := 0; i < 10; i++ {
		l.post(func() {})
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Fatalf("post blocked for %v on a stalled loop", d)
	}
	if l.dropped.Load() == 0 {
		t.Fatal("no drop counted on a full queue")
	}
	close(block)
	cancel()
	<-done
}
