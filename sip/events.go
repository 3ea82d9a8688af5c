// events.go owns what the UA reports to its owner: the Event type and the
// queue that hands events to the handler without blocking a SIP goroutine.
package sip

import (
	"strconv"
	"sync"
)

// EventKind says what happened.
type EventKind int

const (
	CallIncoming  EventKind = iota + 1 // Caller, CallerName set
	CallAnswered                       // the call became established (either side answered)
	CallEnded                          // Reason, Code set
	AccountFailed                      // a REGISTER was rejected or timed out; Reason, Code set
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
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// Event is delivered to the handler given to New. The handler must not
// block; events of one call are delivered in order.
type Event struct {
	Kind       EventKind
	Account    string
	CallID     int
	Caller     string
	CallerName string
	Reason     string
	Code       int
}

// emitLocked queues an event; called with u.mu held so that the events of
// one call keep the order of its state changes.
func (u *UA) emitLocked(e Event) {
	u.events.push(e)
}

// eventQueue decouples the SIP goroutines from the event handler: pushing
// never blocks, and one goroutine delivers in order.
type eventQueue struct {
	fn     func(Event)
	mu     sync.Mutex
	q      []Event
	closed bool
	signal chan struct{}
}

func newEventQueue(fn func(Event)) *eventQueue {
	return &eventQueue{fn: fn, signal: make(chan struct{}, 1)}
}

func (q *eventQueue) push(e Event) {
	q.mu.Lock()
	q.q = append(q.q, e)
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

// run delivers events until close, then delivers what is left and returns.
func (q *eventQueue) run() {
	for range q.signal {
		for {
			q.mu.Lock()
			batch := q.q
			q.q = nil
			closed := q.closed
			q.mu.Unlock()
			for _, e := range batch {
				q.fn(e)
			}
			if len(batch) == 0 {
				if closed {
					return
				}
				break
			}
		}
	}
}
