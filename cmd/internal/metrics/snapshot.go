package metrics

import (
	"context"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// rtpCounts are the packet counters of one call or one account.
type rtpCounts struct{ sent, received, lost uint64 }

func (a *rtpCounts) add(b rtpCounts) {
	a.sent += b.sent
	a.received += b.received
	a.lost += b.lost
}

// rtpTotals turns the per-call counters of snapshots, which vanish when an
// ended call stops being listed, into per-account counters that only grow:
// a call's last seen counts are added to its account's total once the call
// is gone from a snapshot.
type rtpTotals struct {
	live map[int]liveCall     // by call ID: calls in the latest snapshot
	done map[string]rtpCounts // by account: calls no longer listed
}

type liveCall struct {
	account string
	rtpCounts
}

func newRTPTotals() rtpTotals {
	return rtpTotals{live: map[int]liveCall{}, done: map[string]rtpCounts{}}
}

// update folds a snapshot of every account in; the caller holds m.mu.
func (t *rtpTotals) update(accts []Account) {
	seen := make(map[int]bool, len(t.live))
	for _, a := range accts {
		for _, c := range a.Calls {
			seen[c.ID] = true
			lc := t.live[c.ID]
			// Counters of a call never go down, even when a report does.
			t.live[c.ID] = liveCall{a.Name, rtpCounts{
				max(lc.sent, c.PacketsSent), max(lc.received, c.PacketsReceived), max(lc.lost, c.PacketsLost)}}
		}
	}
	for id, lc := range t.live {
		if !seen[id] {
			d := t.done[lc.account]
			d.add(lc.rtpCounts)
			t.done[lc.account] = d
			delete(t.live, id)
		}
	}
}

// byAccount is every account's total so far.
func (t *rtpTotals) byAccount() map[string]rtpCounts {
	out := make(map[string]rtpCounts, len(t.done))
	for a, d := range t.done {
		out[a] = d
	}
	for _, lc := range t.live {
		d := out[lc.account]
		d.add(lc.rtpCounts)
		out[lc.account] = d
	}
	return out
}

// Sample folds a snapshot into the RTP totals. The daemon runs it every few
// seconds (RunSampler) so that a call's last counts are seen before its
// ended entry stops being listed, whatever the scrape interval.
func (m *Metrics) Sample() []Account {
	// One sample at a time, taken and folded in order: folding an older
	// snapshot after a newer one would count a call that started between
	// them as gone, and then again.
	m.sampleMu.Lock()
	defer m.sampleMu.Unlock()
	var accts []Account
	if m.src.Accounts != nil {
		accts = m.src.Accounts()
	}
	m.mu.Lock()
	m.rtp.update(accts)
	m.mu.Unlock()
	return accts
}

// RunSampler calls Sample until ctx ends, interval() after each, so a
// reload's ended-call-linger sets the next wait. interval should be below
// [sip-settings] ended-call-linger.
func (m *Metrics) RunSampler(ctx context.Context, interval func() time.Duration) {
	t := time.NewTimer(interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.Sample()
			t.Reset(interval())
		}
	}
}

var (
	descRegistered = prometheus.NewDesc(namespace+"_account_registered",
		"1 when the account's latest REGISTER got 200 OK, else 0.", []string{"account"}, nil)
	descRegCode = prometheus.NewDesc(namespace+"_account_register_status_code",
		"Final SIP status code of the account's latest REGISTER (get-status account_status); 0: none.", []string{"account"}, nil)
	descRefused = prometheus.NewDesc(namespace+"_sip_untrusted_refused_total",
		"Out-of-dialog SIP requests for the account refused because of their source (accept-from), answered 403 or dropped.", []string{"account"}, nil)
	descActive = prometheus.NewDesc(namespace+"_calls_active",
		"Calls not yet ended, by account and direction (in, out).", []string{"account", "direction"}, nil)
	descSent = prometheus.NewDesc(namespace+"_rtp_packets_sent_total",
		"RTP packets sent, over every call of the account.", []string{"account"}, nil)
	descRecv = prometheus.NewDesc(namespace+"_rtp_packets_received_total",
		"RTP packets received, over every call of the account.", []string{"account"}, nil)
	descLost = prometheus.NewDesc(namespace+"_rtp_packets_lost_total",
		"RTP packets lost (sequence gaps), over every call of the account.", []string{"account"}, nil)
	descJitter = prometheus.NewDesc(namespace+"_rtp_jitter_seconds",
		"Highest RFC 3550 interarrival jitter among the account's calls not yet ended; 0 without one.", []string{"account"}, nil)
	descClients = prometheus.NewDesc(namespace+"_api_clients",
		"API clients connected.", nil, nil)
	descDropped = prometheus.NewDesc(namespace+"_api_clients_dropped_total",
		"API clients disconnected because they did not read (queue full or a write timed out).", nil, nil)
	descCommands = prometheus.NewDesc(namespace+"_api_commands_total",
		"API messages received, valid or not.", nil, nil)
	descEvDropped = prometheus.NewDesc(namespace+"_api_events_dropped_total",
		"Broadcast events lost because the API hub did not keep up.", nil, nil)

	// The SIP front layer's counters (docs/sip.md, conformance).
	descSIPMalformed = prometheus.NewDesc(namespace+"_sip_messages_malformed_total",
		"SIP messages that could not be parsed (answered 400, 416 or 513, or dropped).", nil, nil)
	descSIPRejected = prometheus.NewDesc(namespace+"_sip_requests_rejected_total",
		"Well-formed SIP requests refused statelessly (505, 400, 416, 420, 415, 406).", nil, nil)
	descSIPDropped = prometheus.NewDesc(namespace+"_sip_messages_dropped_total",
		"SIP messages dropped without an answer (stray responses and ACKs, no Via, answer rate limit).", nil, nil)
	descSIPRewritten = prometheus.NewDesc(namespace+"_sip_requests_rewritten_total",
		"Valid SIP requests rewritten into a form the stack takes (LWS in parameters, RFC 2543 identifiers).", nil, nil)
	descSIPAnswers = prometheus.NewDesc(namespace+"_sip_stateless_responses_total",
		"Responses sent statelessly to malformed or refused SIP requests.", nil, nil)
	descSIPLogLines = prometheus.NewDesc(namespace+"_sip_rejected_log_lines_total",
		"Log lines written about malformed or refused SIP traffic (rate-limited per source and reason).", nil, nil)
)

// snapshotCollector reports what a snapshot shows at scrape time.
type snapshotCollector struct{ m *Metrics }

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRegistered, descRegCode, descRefused, descActive, descSent, descRecv, descLost, descJitter,
		descClients, descDropped, descCommands, descEvDropped,
		descSIPMalformed, descSIPRejected, descSIPDropped, descSIPRewritten, descSIPAnswers, descSIPLogLines} {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	accts := m.Sample()
	m.mu.Lock()
	totals := m.rtp.byAccount()
	m.mu.Unlock()

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	listed := map[string]bool{}
	for _, a := range accts {
		listed[a.Name] = true
		reg := 0.0
		if a.RegisterCode == 200 {
			reg = 1
		}
		gauge(descRegistered, reg, a.Name)
		gauge(descRegCode, float64(a.RegisterCode), a.Name)
		counter(descRefused, float64(a.Refused), a.Name)
		active := map[string]int{"in": 0, "out": 0}
		jitter := 0.0
		for _, call := range a.Calls {
			if call.Stopped {
				continue
			}
			active[call.Direction]++
			jitter = max(jitter, call.JitterMs/1000)
		}
		for _, dir := range []string{"in", "out"} {
			gauge(descActive, float64(active[dir]), a.Name, dir)
		}
		gauge(descJitter, jitter, a.Name)
	}
	// Totals of every account that had calls, also one a reload removed.
	names := make([]string, 0, len(totals))
	for name := range listed {
		names = append(names, name)
	}
	for name := range totals {
		if !listed[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		t := totals[name]
		counter(descSent, float64(t.sent), name)
		counter(descRecv, float64(t.received), name)
		counter(descLost, float64(t.lost), name)
	}
	if m.src.API != nil {
		st := m.src.API()
		gauge(descClients, float64(st.Clients))
		counter(descDropped, float64(st.DroppedClients))
		counter(descCommands, float64(st.Commands))
		counter(descEvDropped, float64(st.DroppedEvents))
	}
	if m.src.SIPEdge != nil {
		st := m.src.SIPEdge()
		counter(descSIPMalformed, float64(st.Malformed))
		counter(descSIPRejected, float64(st.Rejected))
		counter(descSIPDropped, float64(st.Dropped))
		counter(descSIPRewritten, float64(st.Rewritten))
		counter(descSIPAnswers, float64(st.Answers))
		counter(descSIPLogLines, float64(st.LogLines))
	}
}
