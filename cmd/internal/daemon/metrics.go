package daemon

import (
	"context"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/debugserver"
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

// audioMetrics is every audio channel's health, for the metrics.
func (d *Daemon) audioMetrics() []metrics.AudioChannel {
	hs := d.audio.snapshot()
	out := make([]metrics.AudioChannel, 0, len(hs))
	for _, h := range hs {
		out = append(out, metrics.AudioChannel{Name: h.name, Open: h.open, Connected: h.connected,
			Reconnects: h.reconnects, Xruns: h.xruns,
			PlaybackDropped: h.playbackDropped, CaptureDropped: h.captureDropped,
			PlaybackMargin: h.playbackMargin, CaptureMargin: h.captureMargin})
	}
	return out
}

// debugAudio is the open audio channels' health, for /debug/stats.
func (d *Daemon) debugAudio() []debugserver.AudioChannel {
	hs := d.audio.snapshot()
	out := make([]debugserver.AudioChannel, 0, len(hs))
	for _, h := range hs {
		if h.open {
			out = append(out, debugserver.AudioChannel(apiAudio(h)))
		}
	}
	return out
}

// apiAudio is h as get-status's `audio` object.
func apiAudio(h channelHealth) api.Audio {
	return api.Audio{Channel: h.name, Backend: h.backend, Connected: h.connected, Reconnects: h.reconnects, Xruns: h.xruns,
		PlaybackDroppedS: round(h.playbackDropped.Seconds(), 3), CaptureDroppedS: round(h.captureDropped.Seconds(), 3),
		PlaybackMarginMs: round(ms(h.playbackMargin), 1), CaptureMarginMs: round(ms(h.captureMargin), 1)}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
