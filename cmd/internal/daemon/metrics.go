package daemon

import (
	"context"
	"time"

	"github.com/telestra/telestra-sip/cmd/internal/metrics"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
	"github.com/telestra/telestra-sip/sip"
)

// metricsAccounts is the metrics' view of get-status of every account.
func (d *Daemon) metricsAccounts() []metrics.Account {
	sts, err := (&controller{d: d}).Status(context.Background(), "")
	if err != nil {
		return nil // an account a reload is removing: the next scrape has it right
	}
	out := make([]metrics.Account, 0, len(sts))
	for _, st := range sts {
		a := metrics.Account{Name: st.Account, RegisterCode: st.AccountStatus, Refused: st.Refused, Calls: make([]metrics.Call, 0, len(st.Calls))}
		for _, c := range st.Calls {
			a.Calls = append(a.Calls, metrics.Call{
				ID: c.CallID, Direction: c.Direction, Stopped: c.Stopped,
				PacketsSent: c.PacketsSent, PacketsReceived: c.PacketsReceived, PacketsLost: c.PacketsLost, JitterMs: c.JitterMs,
			})
		}
		out = append(out, a)
	}
	return out
}

func (d *Daemon) apiStats() metrics.APIStats {
	st := d.server.Stats()
	return metrics.APIStats{Clients: st.Clients, DroppedClients: st.DroppedClients, Commands: st.Commands, DroppedEvents: st.DroppedEvents}
}

// sipEdge is the SIP front layer's counters; d.ua is set before any
// listener that reads them is bound.
func (d *Daemon) sipEdge() metrics.SIPEdge {
	st := d.ua.EdgeStats()
	return metrics.SIPEdge{Malformed: st.Malformed, Rejected: st.Rejected, Dropped: st.Dropped,
		Rewritten: st.Rewritten, Answers: st.Answers, LogLines: st.LogLines}
}

// sampleInterval reads the calls at least twice per ended-call linger.
func sampleInterval(p *plan.Plan) time.Duration {
	return min(5*time.Second, max(p.SIP.EndedCallLinger.Duration/2, 100*time.Millisecond))
}

// observe feeds a UA event to the metrics; it runs on the SIP goroutine and
// only takes the metrics' short lock.
func (d *Daemon) observe(e sip.Event) {
	switch e.Kind {
	case sip.CallIncoming:
		d.metrics.CallIncoming(e.CallID)
	case sip.CallAnswered:
		d.metrics.CallAnswered(e.CallID)
	case sip.CallEnded:
		d.metrics.CallEnded(e.CallID, e.Reason, e.Code)
	}
}
