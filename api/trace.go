package api

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// Extension commands of the SIP message trace.
const (
	// CmdTrace subscribes the client that sends it to `sip-message` events,
	// of one account or ("" or absent) of all; "on": false unsubscribes.
	CmdTrace = "trace"
	// CmdSIPTrace switches the trace to the daemon's log ("on": true or
	// false) until the next reload.
	CmdSIPTrace = "sip-trace"

	EventTrace      = "trace"       // the answer to trace
	EventSIPTrace   = "sip-trace"   // the answer to sip-trace
	EventSIPMessage = "sip-message" // one SIP message, to subscribed clients
)

// traceBacklog bounds the SIP messages waiting for the hub.
const traceBacklog = 1024

// Tracer is what the trace commands drive; the daemon implements it.
type Tracer interface {
	// SetSIPTrace switches the trace to the log.
	SetSIPTrace(on bool)
	// TraceClients says how many clients take sip-message events now; it
	// runs on the hub goroutine and must not block.
	TraceClients(n int)
}

// SIPMessage is a `sip-message` event.
type SIPMessage struct {
	Account   string
	Time      time.Time
	Sent      bool // false: received
	Transport string
	Local     string // address:port
	Remote    string
	CallID    string
	FirstLine string
	Message   string // start line, headers and body
}

type wireSIPMessage struct {
	Event     string `json:"event"`
	Account   string `json:"account"`
	Time      string `json:"time"`      // RFC 3339, UTC, microseconds
	Direction string `json:"direction"` // sent, received
	Transport string `json:"transport"`
	Local     string `json:"local"`
	Remote    string `json:"remote"`
	CallID    string `json:"sip_call_id"`
	FirstLine string `json:"first_line"`
	Message   string `json:"message"`
}

type wireTrace struct {
	Event   string `json:"event"`
	Account string `json:"account"`
	On      bool   `json:"on"`
	Tag     string `json:"tag,omitempty"`
}

func (m SIPMessage) wire() any {
	dir := "received"
	if m.Sent {
		dir = "sent"
	}
	return wireSIPMessage{EventSIPMessage, m.Account, m.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), dir,
		m.Transport, m.Local, m.Remote, m.CallID, m.FirstLine, m.Message}
}

// traceSub changes one client's subscription, on the hub goroutine.
type traceSub struct {
	c       *client
	account string
	on      bool
	tag     string
	done    chan struct{}
}

type traceState struct {
	msgs    chan SIPMessage
	dropped atomic.Uint64 // messages not delivered: backlog or a client's queue half full
}

// TraceSIP hands a SIP message to the subscribed clients. It never blocks:
// when the hub is behind, the message is dropped and counted.
func (s *Server) TraceSIP(m SIPMessage) {
	select {
	case s.trace.msgs <- m:
	default:
		s.traceDropped("the hub is not keeping up")
	}
}

// traceDropped counts a message not delivered, with a warning at the first
// and every 1000th.
func (s *Server) traceDropped(why string) {
	if n := s.trace.dropped.Add(1); n == 1 || n%1000 == 0 {
		s.log.Warn("SIP trace messages dropped: "+why, "dropped_total", n)
	}
}

// TraceDropped counts the sip-message events not delivered.
func (s *Server) TraceDropped() uint64 { return s.trace.dropped.Load() }

// runTraceCmd runs trace and sip-trace for c's reader goroutine.
func (s *Server) runTraceCmd(ctx context.Context, c *client, cmd Command) error {
	if s.opts.tracer == nil {
		return fmt.Errorf("%s: the SIP trace is not available in this server", cmd.Name)
	}
	if cmd.Name == CmdSIPTrace {
		s.opts.tracer.SetSIPTrace(cmd.On)
		s.reply(c, mustFrame(wireTrace{EventSIPTrace, "", cmd.On, cmd.Tag}))
		return nil
	}
	if cmd.Account != "" && cmd.On {
		if _, err := s.ctrl.Status(ctx, cmd.Account); err != nil {
			return err
		}
	}
	// The hub answers, so that the answer precedes the first sip-message.
	sub := &traceSub{c: c, account: cmd.Account, on: cmd.On, tag: cmd.Tag, done: make(chan struct{})}
	select {
	case s.events <- hubMsg{trace: sub}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-sub.done:
	case <-ctx.Done():
	}
	return nil
}

// tracers is the hub's set of subscribed clients and their account filter.
type tracers map[*client]string

func (s *Server) subscribe(t tracers, sub *traceSub) {
	before := len(t)
	if sub.on {
		t[sub.c] = sub.account
	} else {
		delete(t, sub.c)
	}
	s.enqueue(sub.c, mustFrame(wireTrace{EventTrace, sub.account, sub.on, sub.tag}))
	close(sub.done)
	if len(t) != before {
		s.opts.tracer.TraceClients(len(t))
	}
}

func (s *Server) forget(t tracers, c *client) {
	if _, ok := t[c]; ok {
		delete(t, c)
		s.opts.tracer.TraceClients(len(t))
	}
}

// fanOutTrace queues m for the clients that asked for its account. A trace
// fills no more than half a client's queue: beyond that the message is
// dropped for that client, which stays connected for the documented events.
func (s *Server) fanOutTrace(t tracers, m SIPMessage) {
	var frame []byte
	for c, acct := range t {
		if acct != "" && acct != m.Account {
			continue
		}
		if frame == nil {
			var err error
			if frame, err = encodeEvent(m); err != nil {
				return
			}
		}
		c.mu.Lock()
		room := len(c.queue) < c.max/2
		queued := false
		if room {
			queued, _ = c.pushLocked(frame)
		}
		c.mu.Unlock()
		if !queued {
			s.traceDropped("a trace client does not read fast enough")
		}
	}
}
