package daemon

import (
	"context"
	"io"
	"log/slog"
	"sync"

	"github.com/telestra/telestra-sip/sip"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func sipAccountFailed(account, reason string) sip.Event {
	return sip.Event{Kind: sip.AccountFailed, Account: account, Reason: reason, Code: 403}
}

// stallingHub stands between the event path and the real hub: while
// stalled, the events and probes that cross it wait, as they would behind
// a wedged hub.
type stallingHub struct {
	eventHub
	mu    sync.Mutex
	block chan struct{}
}

func (h *stallingHub) stall(until chan struct{}) {
	h.mu.Lock()
	h.block = until
	h.mu.Unlock()
}

func (h *stallingHub) wait(ctx context.Context) error {
	h.mu.Lock()
	b := h.block
	h.mu.Unlock()
	if b == nil {
		return nil
	}
	select {
	case <-b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *stallingHub) Probe(ctx context.Context) error {
	if err := h.wait(ctx); err != nil {
		return err
	}
	return h.eventHub.Probe(ctx)
}
