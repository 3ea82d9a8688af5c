package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/sip"
)

// eventLoop is the daemon's event path: SIP events are queued here without
// ever blocking the SIP stack, and one goroutine hands them to the API hub in
// order. The watchdog probes this same path, so a stalled path stops the
// watchdog pings and systemd restarts the daemon.
type eventLoop struct {
	queue   chan func()
	dropped atomic.Uint64
	log     *slog.Logger
}

func newEventLoop(size int, log *slog.Logger) *eventLoop {
	return &eventLoop{queue: make(chan func(), size), log: log}
}

func (l *eventLoop) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-l.queue:
			f()
		}
	}
}

// post queues f without blocking; it reports false when the queue is full
// (the loop is stalled), in which case f is dropped and counted.
func (l *eventLoop) post(f func()) bool {
	select {
	case l.queue <- f:
		return true
	default:
		// Logged on the SIP goroutine: once, then every 1000th drop.
		if n := l.dropped.Add(1); n == 1 || n%1000 == 0 {
			l.log.Error("event path stalled: event dropped", "dropped_total", n)
		}
		return false
	}
}

// probe returns nil once everything queued before it has been handled.
func (l *eventLoop) probe(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case l.queue <- func() { close(done) }:
	case <-ctx.Done():
		return fmt.Errorf("event path: queue full: %w", ctx.Err())
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("event path: no progress: %w", ctx.Err())
	}
}

// onSIPEvent is the UA's event handler; it must not block.
func (d *Daemon) onSIPEvent(e sip.Event) {
	d.pokeStatus()
	ev := apiEvent(e)
	if ev == nil {
		return
	}
	srv := d.server
	d.events.post(func() { srv.Broadcast(ev) })
}

// apiEvent translates a UA event into the API event broadcast to clients.
func apiEvent(e sip.Event) any {
	switch e.Kind {
	case sip.CallIncoming:
		return api.CallIncoming{Account: e.Account, CallID: e.CallID, Caller: e.Caller, CallerName: e.CallerName}
	case sip.CallAnswered:
		return api.CallAnswered{Account: e.Account, CallID: e.CallID}
	case sip.CallEnded:
		return api.CallEnded{Account: e.Account, CallID: e.CallID, Reason: e.Reason, Code: e.Code}
	case sip.AccountFailed:
		msg := "Failed to log in to account: " + e.Account
		if e.Reason != "" {
			msg += ": " + e.Reason
		}
		return api.Fail{Account: e.Account, Error: msg}
	}
	return nil
}
