// events.go owns what the UA reports to its owner: the Event type and its
// hand-off to the owner's handler.
package sip

import (
	"strconv"
	"time"
)

// EventKind says what happened.
type EventKind int

const (
	CallIncoming    EventKind = iota + 1 // Caller, CallerName set
	CallAnswered                         // the call became established (either side answered)
	CallEnded                            // Reason, Code set
	AccountFailed                        // a REGISTER was rejected or timed out; Reason, Code set
	DTMFReceived                         // a digit arrived (RFC 4733 or INFO); Digit, Duration set
	CallTransferred                      // the peer referred CallID to Target; NewCallID is the call placed there
	TransferFailed                       // our transfer of CallID to Target failed; Reason, Code set; the call goes on
)

func (k EventKind) String() string {
	switch k {
	case CallIncoming:
		return "CallIncoming"
	case CallAnswered:
		return "CallAnswered"
	case CallEnded:
		return "CallEnded"
	case AccountFailed:
		return "AccountFailed"
	case DTMFReceived:
		return "DTMFReceived"
	case CallTransferred:
		return "CallTransferred"
	case TransferFailed:
		return "TransferFailed"
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is delivered to the handler given to New; the events of one call
// or account come in the order of the changes that caused them. The
// handler is called with a UA lock held and from several goroutines: it
// must not block and must not call the UA.
type Event struct {
	Kind       EventKind
	Account    string
	CallID     int
	Caller     string
	CallerName string
	Reason     string
	Code       int
	Digit      rune          // DTMFReceived
	Duration   time.Duration // DTMFReceived: how long the digit lasted; 0: not given
	NewCallID  int           // CallTransferred
	Target     string        // CallTransferred, TransferFailed: the Refer-To URI
	Replaces   int           // CallAnswered: the call this one replaced (RFC 3891); -1: none
}

// emitLocked hands an event to the handler. It is called with the call's
// lock held (UA.mu for an account's event, and for CallIncoming while the
// call enters the tables), so the events of a call keep the order of its
// phase changes; only CallEnded, the last, is handed over by emit after
// the call's media session closed. The handler must neither block nor call the UA, and may be
// called from several goroutines at once (the daemon's hands the event to
// the API hub's queue, which never blocks).
func (u *UA) emitLocked(e Event) {
	u.onEvent(e)
}

// emit is emitLocked for an event that no other can race: a call's
// CallEnded.
func (u *UA) emit(e Event) { u.onEvent(e) }
