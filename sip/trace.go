// trace.go is the SIP message trace: every message the edge's sockets carry
// is copied into a bounded queue and handed, on the UA's trace goroutine,
// to the function SetTrace installed. The SIP path never waits for it: when
// the queue is full a message is dropped and counted.
package sip

import (
	"bytes"
	"net"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/telestra/telestra-sip/sip/edge"
)

// TraceMessage is one SIP message as sent or received.
type TraceMessage struct {
	Time      time.Time
	Sent      bool   // false: received
	Transport string // udp, tcp
	Local     string // address:port
	Remote    string
	Account   string // the account it belongs to; "" when none matches
	CallID    string // the SIP Call-ID
	FirstLine string // request line or status line
	Data      []byte // the whole message: start line, headers, body
}

// traceQueue bounds the messages waiting for the trace goroutine.
const traceQueue = 1024

type traceState struct {
	fn      atomic.Pointer[func(TraceMessage)]
	queue   chan TraceMessage
	dropped atomic.Uint64
}

// SetTrace installs f to receive every SIP message (nil: trace off, the
// default). f runs on one goroutine of the UA, in wire order per socket,
// and should not block for long: meanwhile messages queue, then drop.
func (u *UA) SetTrace(f func(TraceMessage)) {
	if f == nil {
		u.trace.fn.Store(nil)
		return
	}
	u.trace.fn.Store(&f)
}

// TraceDropped counts messages the trace dropped because its queue was full.
func (u *UA) TraceDropped() uint64 { return u.trace.dropped.Load() }

// tap runs on the socket goroutines (edge.Tap): copy and queue, never wait.
func (u *UA) tap(w edge.Wire) {
	if u.trace.fn.Load() == nil {
		return
	}
	m := TraceMessage{
		Time: time.Now(), Sent: w.Sent, Transport: w.Transport,
		Local: addrText(w.Local), Remote: addrText(w.Remote), Data: bytes.Clone(w.Data),
	}
	select {
	case u.trace.queue <- m:
	default:
		if n := u.trace.dropped.Add(1); n == 1 || n%1000 == 0 {
			u.log.Warn("SIP trace dropped messages: its reader is not keeping up", "dropped_total", n)
		}
	}
}

// traceLoop is the trace goroutine, owned by the UA until its context ends.
func (u *UA) traceLoop() {
	for {
		select {
		case <-u.ctx.Done():
			return
		case m := <-u.trace.queue:
			f := u.trace.fn.Load()
			if f == nil {
				continue // switched off while queued
			}
			m.FirstLine, m.CallID = traceHeaders(m.Data)
			m.Account = u.traceAccount(m)
			(*f)(m)
		}
	}
}

// traceHeaders reads the start line and the Call-ID (or its compact form
// i), made printable: they come from the wire before the edge vetted them
// and end up in log lines and terminals.
func traceHeaders(b []byte) (first, callID string) {
	head, _, _ := bytes.Cut(b, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\n")
	first = printable(strings.TrimRight(lines[0], "\r"))
	for _, l := range lines[1:] {
		name, val, ok := strings.Cut(strings.TrimRight(l, "\r"), ":")
		if !ok {
			continue
		}
		name = strings.TrimSpace(name)
		if strings.EqualFold(name, "Call-ID") || name == "i" || name == "I" {
			return first, strings.TrimSpace(printable(val))
		}
	}
	return first, ""
}

// printable replaces control characters and invalid UTF-8 with '?'.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

// traceAccount finds the account of a message. The user of To (received)
// or From (sent) of a request, the other way round of a response, is our
// party in it; an account with that user wins, the one whose call or
// registration has the message's Call-ID first (a local call between two
// of our accounts has both sides' calls under one Call-ID). Without such a
// user (a PBX rewrote To to a DID) the Call-ID decides alone.
func (u *UA) traceAccount(m TraceMessage) string {
	ours := "To"
	if m.Sent != strings.HasPrefix(m.FirstLine, "SIP/") {
		ours = "From"
	}
	user := headerUser(m.Data, ours)
	u.mu.Lock()
	defer u.mu.Unlock()
	byCallID := map[*account]bool{}
	var first *account
	if m.CallID != "" {
		for k, c := range u.dialogs {
			if strings.HasPrefix(k, m.CallID+"|") {
				byCallID[c.acct] = true
				first = c.acct
			}
		}
		for _, a := range u.accounts {
			if a.regCallID == m.CallID {
				byCallID[a] = true
				first = a
			}
		}
	}
	var byUser *account
	for _, a := range u.accounts {
		if user == "" || a.eff.User != user {
			continue
		}
		if byCallID[a] {
			return a.plan.Name
		}
		if byUser == nil {
			byUser = a
		}
	}
	switch {
	case byUser != nil:
		return byUser.plan.Name
	case first != nil:
		return first.plan.Name
	}
	return ""
}

// headerUser is the user part of the URI in header name (To or From, or
// their compact forms t and f).
func headerUser(b []byte, name string) string {
	head, _, _ := bytes.Cut(b, []byte("\r\n\r\n"))
	compact := strings.ToLower(name[:1])
	for _, l := range strings.Split(string(head), "\n")[1:] {
		n, val, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n = strings.TrimSpace(n)
		if !strings.EqualFold(n, name) && !strings.EqualFold(n, compact) {
			continue
		}
		_, rest, ok := strings.Cut(val, "sip:")
		if !ok {
			_, rest, ok = strings.Cut(val, "sips:")
		}
		if !ok {
			return ""
		}
		user, _, found := strings.Cut(rest, "@")
		if !found {
			return ""
		}
		return printable(user)
	}
	return ""
}

func addrText(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
