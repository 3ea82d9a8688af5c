package sip

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves: timers fire on Advance only.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[*fakeTimer]struct{}
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), timers: map[*fakeTimer]struct{}{}}
}

type fakeTimer struct {
	clk *fakeClock
	at  time.Time
	c   chan time.Time
	f   func()
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) timer {
	return c.add(&fakeTimer{clk: c, c: make(chan time.Time, 1)}, d)
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) timer {
	return c.add(&fakeTimer{clk: c, f: f}, d)
}

func (c *fakeClock) add(t *fakeTimer, d time.Duration) *fakeTimer {
	c.mu.Lock()
	t.at = c.now.Add(d)
	c.timers[t] = struct{}{}
	c.mu.Unlock()
	if d <= 0 {
		c.Advance(0)
	}
	return t
}

// Advance moves the clock by d and fires the timers that are due, in order.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	now := c.now
	var due []*fakeTimer
	for t := range c.timers {
		if !t.at.After(now) {
			due = append(due, t)
			delete(c.timers, t)
		}
	}
	c.mu.Unlock()
	for i := 1; i < len(due); i++ {
		for j := i; j > 0 && due[j].at.Before(due[j-1].at); j-- {
			due[j], due[j-1] = due[j-1], due[j]
		}
	}
	for _, t := range due {
		if t.f != nil {
			go t.f()
			continue
		}
		select {
		case t.c <- now:
		default:
		}
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

// Stop also drops a fire not yet received, as time.Timer does since Go 1.23.
func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	_, ok := t.clk.timers[t]
	delete(t.clk.timers, t)
	if t.c != nil {
		select {
		case <-t.c:
		default:
		}
	}
	return ok
}

func (t *fakeTimer) Reset(d time.Duration) bool {
	was := t.Stop()
	t.clk.add(t, d)
	return was
}

// advanceUntil moves clk by step until f holds, polling the real world
// (SIP messages are real) in between.
func advanceUntil(t *testing.T, clk *fakeClock, step time.Duration, what string, f func() bool) {
	t.Helper()
	eventually(t, what, 5*time.Second, func() bool {
		if f() {
			return true
		}
		clk.Advance(step)
		return false
	})
}

func TestFakeClock(t *testing.T) {
	clk := newFakeClock()
	start := clk.Now()
	tm := clk.NewTimer(time.Second)
	fired := make(chan struct{})
	clk.AfterFunc(2*time.Second, func() { close(fired) })
	stopped := clk.NewTimer(time.Second)
	if !stopped.Stop() {
		t.Error("Stop of a pending timer reported false")
	}
	clk.Advance(999 * time.Millisecond)
	select {
	case <-tm.C():
		t.Fatal("timer fired early")
	default:
	}
	clk.Advance(time.Millisecond)
	select {
	case at := <-tm.C():
		if at.Sub(start) != time.Second {
			t.Errorf("fired at +%v", at.Sub(start))
		}
	default:
		t.Fatal("timer did not fire at its time")
	}
	select {
	case <-stopped.C():
		t.Error("stopped timer fired")
	default:
	}
	tm.Reset(time.Second)
	clk.Advance(time.Second)
	<-tm.C()
	<-fired
}
