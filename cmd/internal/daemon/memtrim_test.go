package daemon

import (
	"context"
	"testing"
	"time"
)

func TestMemTrimmer(t *testing.T) {
	var alloc uint64
	frees := 0
	m := newMemTrimmer()
	m.allocated = func() uint64 { return alloc }
	m.free = func() { frees++ }
	ticks := int(trimQuiet / trimCheck)
	// run advances by n samples, allocating perTick before each.
	run := func(n int, perTick uint64) (trims int) {
		for range n {
			alloc += perTick
			if m.sample() {
				trims++
			}
		}
		return trims
	}

	tests := []struct {
		name      string
		n         int
		perTick   uint64
		wantTrims int
	}{
		{name: "idle from start: nothing to hand back", n: 3 * ticks, perTick: 1 << 10},
		{name: "a burst: no trim while it lasts", n: ticks, perTick: 8 << 20},
		{name: "quiet after the burst: one trim once trimQuiet has passed", n: ticks + 1, perTick: 1 << 10, wantTrims: 1},
		{name: "staying quiet: no second trim", n: 5 * ticks, perTick: 1 << 10},
		{name: "steady traffic above the quiet rate never trims", n: 10 * ticks, perTick: 2 << 20},
		{name: "quiet again after it: one trim", n: ticks + 1, perTick: 0, wantTrims: 1},
		{name: "a small burst below trimBurst: no trim", n: 2 * ticks, perTick: (trimBurst / 4) / uint64(2*ticks)},
	}
	for _, tc := range tests {
		before := frees
		if got := run(tc.n, tc.perTick); got != tc.wantTrims || frees-before != tc.wantTrims {
			t.Errorf("%s: %d trims, want %d", tc.name, got, tc.wantTrims)
		}
	}
}

func TestMemTrimmerRealMetric(t *testing.T) {
	m := newMemTrimmer()
	a := m.allocated()
	_ = make([]byte, 1<<20)
	if b := m.allocated(); a == 0 || b < a {
		t.Errorf("allocated: %d then %d, want a growing count", a, b)
	}
}

func TestMemTrimmerRunStops(t *testing.T) {
	m := newMemTrimmer()
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.run(ctx, tick); close(done) }()
	tick <- time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}
