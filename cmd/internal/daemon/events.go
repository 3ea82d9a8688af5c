package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/sip"
)

// eventHub is the part of *api.Server the event path uses. SIP events are
// handed straight to the hub's queue, the one queue they cross on their
// way to the clients' own queues: Broadcast never blocks (so the UA may
// call it with its lock held, keeping each call's events in order), and
// the watchdog's Probe goes through that same queue.
type eventHub interface {
	Broadcast(api.Event)
	Probe(context.Context) error
}

// onSIPEvent is the UA's event handler; it must not block.
func (d *Daemon) onSIPEvent(e sip.Event) {
	d.observe(e)
	d.pokeStatus()
	if ev := apiEvent(e); ev != nil {
		d.hub.Broadcast(ev)
	}
}

// apiEvent translates a UA event into the API event broadcast to clients.
func apiEvent(e sip.Event) api.Event {
	switch e.Kind {
	case sip.CallIncoming:
		return api.CallIncoming{Account: e.Account, CallID: e.CallID, Caller: e.Caller, CallerName: e.CallerName}
	case sip.CallAnswered:
		ev := api.CallAnswered{Account: e.Account, CallID: e.CallID}
		if e.Replaces >= 0 {
			r := e.Replaces
			ev.Replaces = &r
		}
		return ev
	case sip.CallEnded:
		return api.CallEnded{Account: e.Account, CallID: e.CallID, Reason: e.Reason, Code: e.Code}
	case sip.DTMFReceived:
		return api.DTMF{Account: e.Account, CallID: e.CallID, Digit: string(e.Digit), DurationMs: int(e.Duration / time.Millisecond)}
	case sip.CallTransferred:
		return api.CallTransferred{Account: e.Account, CallID: e.CallID, NewCallID: e.NewCallID, Target: e.Target}
	case sip.TransferFailed:
		return api.Fail{Account: e.Account, Cmd: api.CmdTransferCall,
			Error: fmt.Sprintf("transfer of call %d to %s failed: %s", e.CallID, e.Target, e.Reason)}
	case sip.AccountFailed:
		msg := "Failed to log in to account: " + e.Account
		if e.Reason != "" {
			msg += ": " + e.Reason
		}
		return api.Fail{Account: e.Account, Error: msg}
	}
	return nil
}
