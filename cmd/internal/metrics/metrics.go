// Package metrics exposes the daemon's state to Prometheus: what it already
// sees (call events, status snapshots, API counters), served on
// [metrics] address. It is fed, never asked: the SIP path calls its event
// methods, which take a short lock and do no I/O, and the state of accounts,
// calls and RTP is read from snapshots at scrape time and by a sampler.
//
//	SIP events ──▶ Call*() ─┐
//	                        ├─▶ registry ──▶ GET /metrics
//	Sources.Accounts ─▶ snapshot (scrape, sampler)
//	Sources.API ──────▶ scrape
//	Sources.SIPEdge ──▶ scrape
//	Sources.Audio ────▶ scrape
package metrics

import (
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "telestra_sipd"

// Account is one account's state as get-status reports it.
type Account struct {
	Name         string
	RegisterCode int    // final code of the latest REGISTER; 0: none
	Refused      uint64 // out-of-dialog requests refused from untrusted sources (only grows)
	Calls        []Call
}

// Call is one call of an Account.
type Call struct {
	ID              int
	Direction       string // in out
	Stopped         bool   // ended, still listed
	PacketsSent     uint64
	PacketsReceived uint64
	PacketsLost     uint64
	JitterMs        float64
}

// APIStats are the API server's counters.
type APIStats struct {
	Clients        int
	DroppedClients uint64
	Commands       uint64
	DroppedEvents  uint64
}

// SIPEdge are the counters of the SIP front layer (sip/edge): malformed
// and refused traffic answered or dropped before the SIP stack.
type SIPEdge struct {
	Malformed uint64 // messages that could not be parsed
	Rejected  uint64 // well-formed requests refused statelessly
	Dropped   uint64 // messages dropped without an answer
	Rewritten uint64 // valid requests rewritten for the stack
	Answers   uint64 // stateless answers sent
	LogLines  uint64 // log lines written about rejected traffic
}

// Sources are read at scrape time (and Accounts by the sampler). All must
// be safe to call from any goroutine; a nil one is not reported.
type Sources struct {
	Accounts func() []Account
	API      func() APIStats
	SIPEdge  func() SIPEdge
	Audio    func() []AudioChannel
}

// Call results, the `result` label of calls_finished_total.
const (
	ResultAnswered  = "answered"  // established, then ended
	ResultRejected  = "rejected"  // a 4xx-6xx final answer (sent or received)
	ResultCancelled = "cancelled" // CANCEL before an answer (487)
	ResultNoAnswer  = "no_answer" // ring time-out (408)
	ResultFailed    = "failed"    // ended before an answer for another reason (shutdown, transport)
)

// Metrics holds the daemon's collectors.
type Metrics struct {
	reg *prometheus.Registry
	src Sources
	now func() time.Time

	finished *prometheus.CounterVec   // direction, result
	setup    *prometheus.HistogramVec // direction
	reloads  *prometheus.CounterVec   // result

	// sampleMu orders samples (Sample); it is never taken by the event
	// methods, so the SIP path never waits for a snapshot.
	sampleMu sync.Mutex
	mu       sync.Mutex
	calls    map[int]*callTrack // calls between their first event and call-ended
	rtp      rtpTotals          // see snapshot.go
}

// callTrack is what the call events tell about a call still going.
type callTrack struct {
	direction string
	began     time.Time // INVITE sent (out) or received (in)
	answered  bool
}

// New returns the collectors registered on a registry of their own (no
// global state): build_info with version, Go and process metrics, and the
// daemon's.
func New(version string, src Sources, opts ...Option) *Metrics {
	m := &Metrics{
		reg:   prometheus.NewRegistry(),
		src:   src,
		now:   time.Now,
		calls: map[int]*callTrack{},
		rtp:   newRTPTotals(),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "calls_finished_total",
			Help: "Calls that ended, by direction (in, out) and result (answered, rejected, cancelled, no_answer, failed).",
		}, []string{"direction", "result"}),
		setup: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "call_setup_seconds",
			Help: "Time from the INVITE (sent for out, received for in) to the call being established.",
			// From a LAN answer to a long ring.
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"direction"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "reloads_total",
			Help: "Plan reloads (SIGHUP), by result (applied, rejected).",
		}, []string{"result"}),
	}
	for _, o := range opts {
		o(m)
	}
	for _, dir := range []string{"in", "out"} {
		for _, r := range []string{ResultAnswered, ResultRejected, ResultCancelled, ResultNoAnswer, ResultFailed} {
			m.finished.WithLabelValues(dir, r) // present at 0 before the first call
		}
	}
	m.reloads.WithLabelValues("applied")
	m.reloads.WithLabelValues("rejected")
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the labels say which build runs.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	buildInfo.Set(1)
	m.reg.MustRegister(
		buildInfo, m.finished, m.setup, m.reloads,
		&snapshotCollector{m: m}, audioCollector{audio: src.Audio},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Option configures New.
type Option func(*Metrics)

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(m *Metrics) { m.now = now } }

// Registry is the registry the collectors are on (for serving and tests).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// CallPlaced records an outgoing call whose INVITE is being sent.
func (m *Metrics) CallPlaced(id int) { m.begin(id, "out") }

// CallIncoming records an incoming call (its INVITE arrived).
func (m *Metrics) CallIncoming(id int) { m.begin(id, "in") }

func (m *Metrics) begin(id int, dir string) {
	now := m.now()
	m.mu.Lock()
	m.calls[id] = &callTrack{direction: dir, began: now}
	m.mu.Unlock()
}

// CallAnswered records that the call became established.
func (m *Metrics) CallAnswered(id int) {
	now := m.now()
	m.mu.Lock()
	c, ok := m.calls[id]
	first := ok && !c.answered
	if first {
		c.answered = true
	}
	m.mu.Unlock()
	if first {
		m.setup.WithLabelValues(c.direction).Observe(now.Sub(c.began).Seconds())
	}
}

// CallEnded records the end of a call with its call-ended reason and code.
func (m *Metrics) CallEnded(id int, reason string, code int) {
	m.mu.Lock()
	c, ok := m.calls[id]
	delete(m.calls, id)
	m.mu.Unlock()
	if !ok {
		// Began before the metrics saw it: only outgoing calls can, as
		// CallPlaced comes from the API path.
		c = &callTrack{direction: "out"}
	}
	m.finished.WithLabelValues(c.direction, result(c.answered, reason, code)).Inc()
}

// result classifies an ended call.
func result(answered bool, reason string, code int) string {
	switch {
	case answered:
		return ResultAnswered
	case code == 487 || reason == "cancelled":
		return ResultCancelled
	case code == 408 || reason == "no answer":
		return ResultNoAnswer
	case code >= 400 && code <= 699:
		return ResultRejected
	}
	return ResultFailed
}

// Reload records a plan reload.
func (m *Metrics) Reload(applied bool) {
	r := "rejected"
	if applied {
		r = "applied"
	}
	m.reloads.WithLabelValues(r).Inc()
}
