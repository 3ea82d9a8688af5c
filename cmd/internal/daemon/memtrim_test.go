package daemon

import (
	"context"
	"testing"
	"time"
)

func TestMemTrimmer(t *testing.T) {
	clock := time.Unix(1000, 0)
	frees := 0
	m := newMemTrimmer()
	m.now = func() time.Time { return clock }
	m.free = func() { frees++ }
	step := func(d time.Duration) { clock = clock.Add(d) }

	tests := []struct {
		name      string
		do        func()
		wantTrim  bool
		wantFrees int
	}{
		{name: "idle from start: nothing to hand back", do: func() { step(time.Hour) }, wantFrees: 0},
		{name: "activity, not yet quiet", do: func() { m.touch(); step(trimQuiet - time.Second) }, wantFrees: 0},
		{name: "quiet after activity", do: func() { step(time.Second) }, wantTrim: true, wantFrees: 1},
		{name: "once per burst", do: func() { step(time.Hour) }, wantFrees: 1},
		{name: "continuous traffic never trims", do: func() {
			for range 20 {
				m.touch()
				step(trimQuiet / 2)
				if m.check() {
					t.Error("trimmed during traffic")
				}
			}
		}, wantFrees: 1},
		{name: "next burst trims again", do: func() { step(trimQuiet) }, wantTrim: true, wantFrees: 2},
	}
	for _, tc := range tests {
		tc.do()
		if got := m.check(); got != tc.wantTrim || frees != tc.wantFrees {
			t.Errorf("%s: trimmed %t (want %t), frees %d (want %d)", tc.name, got, tc.wantTrim, frees, tc.wantFrees)
		}
	}
}

func TestMemTrimmerRunStops(t *testing.T) {
	m := newMemTrimmer()
	freed := make(chan struct{}, 1)
	m.free = func() { freed <- struct{}{} }
	m.quiet = 0
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.run(ctx, tick); close(done) }()
	m.touch()
	tick <- time.Now()
	select {
	case <-freed:
	case <-time.After(5 * time.Second):
		t.Fatal("no trim on a tick after activity")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}
