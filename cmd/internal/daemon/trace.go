package daemon

import (
	"sync"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/sip"
)

// tracer decides whether the UA traces SIP messages: while the log trace
// is on ([log] sip-trace, or the sip-trace command until a reload) or an
// API client subscribed with trace. It implements api.Tracer.
type tracer struct {
	d *Daemon

	mu      sync.Mutex
	log     bool
	clients int
}

var _ api.Tracer = (*tracer)(nil)

func (t *tracer) SetSIPTrace(on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.log = on
	t.applyLocked()
}

func (t *tracer) TraceClients(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clients = n
	t.applyLocked()
}

// applyLocked only swaps a pointer in the UA: nothing here waits.
func (t *tracer) applyLocked() {
	if t.log || t.clients > 0 {
		t.d.ua.SetTrace(t.message)
	} else {
		t.d.ua.SetTrace(nil)
	}
}

// message runs on the UA's trace goroutine.
func (t *tracer) message(m sip.TraceMessage) {
	t.mu.Lock()
	toLog, toClients := t.log, t.clients > 0
	t.mu.Unlock()
	dir := "received"
	if m.Sent {
		dir = "sent"
	}
	if toLog {
		t.d.log.Debug("SIP message", "component", "sip-trace", "direction", dir, "transport", m.Transport,
			"local", m.Local, "remote", m.Remote, "account", m.Account, "sip_call_id", m.CallID,
			"first_line", m.FirstLine, "sip_message", string(m.Data))
	}
	if toClients {
		t.d.server.TraceSIP(api.SIPMessage{
			Account: m.Account, Time: m.Time, Sent: m.Sent, Transport: m.Transport, Local: m.Local,
			Remote: m.Remote, CallID: m.CallID, FirstLine: m.FirstLine, Message: string(m.Data),
		})
	}
}
