package metrics

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeSources returns what the test set, as the daemon's snapshot would.
type fakeSources struct {
	mu    sync.Mutex
	accts []Account
	api   APIStats
	edge  SIPEdge
	audio []AudioChannel
}

func (f *fakeSources) set(a ...Account) {
	f.mu.Lock()
	f.accts = a
	f.mu.Unlock()
}

func (f *fakeSources) sources() Sources {
	return Sources{
		Accounts: func() []Account { f.mu.Lock(); defer f.mu.Unlock(); return append([]Account(nil), f.accts...) },
		API:      func() APIStats { f.mu.Lock(); defer f.mu.Unlock(); return f.api },
		SIPEdge:  func() SIPEdge { f.mu.Lock(); defer f.mu.Unlock(); return f.edge },
		Audio: func() []AudioChannel {
			f.mu.Lock()
			defer f.mu.Unlock()
			return append([]AudioChannel(nil), f.audio...)
		},
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestCallResults(t *testing.T) {
	tests := []struct {
		name     string
		answered bool
		reason   string
		code     int
		want     string
	}{
		{name: "answered then hung up", answered: true, reason: "remote hangup", want: ResultAnswered},
		{name: "answered, rtp timeout", answered: true, reason: "rtp timeout", want: ResultAnswered},
		{name: "busy", reason: "486 Busy Here", code: 486, want: ResultRejected},
		{name: "declined", reason: "declined", code: 603, want: ResultRejected},
		{name: "not found", reason: "404 Not Found", code: 404, want: ResultRejected},
		{name: "cancelled by us", reason: "cancelled", want: ResultCancelled},
		{name: "cancelled by the caller", reason: "487 Request Terminated", code: 487, want: ResultCancelled},
		{name: "ring time-out", reason: "no answer", code: 408, want: ResultNoAnswer},
		{name: "shutdown", reason: "shutdown", want: ResultFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := result(tt.answered, tt.reason, tt.code); got != tt.want {
				t.Errorf("result = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestEventsAndSnapshots(t *testing.T) {
	clk := &clock{t: time.Unix(1000, 0)}
	src := &fakeSources{api: APIStats{Clients: 2, DroppedClients: 1, Commands: 40}}
	m := New("1.2.3", src.sources(), WithClock(clk.now))

	// Call 0 out, answered after 300 ms; call 1 in, rejected.
	m.CallPlaced(0)
	clk.t = clk.t.Add(300 * time.Millisecond)
	m.CallAnswered(0)
	m.CallAnswered(0) // a second answered event (re-INVITE) counts once
	m.CallIncoming(1)
	src.set(Account{Name: "a1", RegisterCode: 200, Calls: []Call{
		{ID: 0, Direction: "out", PacketsSent: 100, PacketsReceived: 90, PacketsLost: 2, JitterMs: 4},
		{ID: 1, Direction: "in"},
	}}, Account{Name: "a2", RegisterCode: 403})
	m.Sample()
	m.CallEnded(1, "486 Busy Here", 486)
	// Call 0 goes on, then ends and is no longer listed: its last counts
	// stay in the totals.
	src.set(Account{Name: "a1", RegisterCode: 200, Calls: []Call{
		{ID: 0, Direction: "out", Stopped: true, PacketsSent: 250, PacketsReceived: 240, PacketsLost: 3, JitterMs: 2},
	}}, Account{Name: "a2", RegisterCode: 403})
	m.Sample()
	m.CallEnded(0, "local hangup", 0)
	src.set(Account{Name: "a1", RegisterCode: 200}, Account{Name: "a2", RegisterCode: 403})
	m.Reload(true)
	m.Reload(false)
	m.Reload(false)

	want := `
# HELP telestra_sipd_account_registered 1 when the account's latest REGISTER got 200 OK, else 0.
# TYPE telestra_sipd_account_registered gauge
telestra_sipd_account_registered{account="a1"} 1
telestra_sipd_account_registered{account="a2"} 0
# HELP telestra_sipd_calls_active Calls not yet ended, by account and direction (in, out).
# TYPE telestra_sipd_calls_active gauge
telestra_sipd_calls_active{account="a1",direction="in"} 0
telestra_sipd_calls_active{account="a1",direction="out"} 0
telestra_sipd_calls_active{account="a2",direction="in"} 0
telestra_sipd_calls_active{account="a2",direction="out"} 0
# HELP telestra_sipd_calls_finished_total Calls that ended, by direction (in, out) and result (answered, rejected, cancelled, no_answer, failed).
# TYPE telestra_sipd_calls_finished_total counter
telestra_sipd_calls_finished_total{direction="in",result="answered"} 0
telestra_sipd_calls_finished_total{direction="in",result="cancelled"} 0
telestra_sipd_calls_finished_total{direction="in",result="failed"} 0
telestra_sipd_calls_finished_total{direction="in",result="no_answer"} 0
telestra_sipd_calls_finished_total{direction="in",result="rejected"} 1
telestra_sipd_calls_finished_total{direction="out",result="answered"} 1
telestra_sipd_calls_finished_total{direction="out",result="cancelled"} 0
telestra_sipd_calls_finished_total{direction="out",result="failed"} 0
telestra_sipd_calls_finished_total{direction="out",result="no_answer"} 0
telestra_sipd_calls_finished_total{direction="out",result="rejected"} 0
# HELP telestra_sipd_rtp_packets_sent_total RTP packets sent, over every call of the account.
# TYPE telestra_sipd_rtp_packets_sent_total counter
telestra_sipd_rtp_packets_sent_total{account="a1"} 250
telestra_sipd_rtp_packets_sent_total{account="a2"} 0
# HELP telestra_sipd_rtp_packets_lost_total RTP packets lost (sequence gaps), over every call of the account.
# TYPE telestra_sipd_rtp_packets_lost_total counter
telestra_sipd_rtp_packets_lost_total{account="a1"} 3
telestra_sipd_rtp_packets_lost_total{account="a2"} 0
# HELP telestra_sipd_reloads_total Plan reloads (SIGHUP), by result (applied, rejected).
# TYPE telestra_sipd_reloads_total counter
telestra_sipd_reloads_total{result="applied"} 1
telestra_sipd_reloads_total{result="rejected"} 2
# HELP telestra_sipd_api_clients API clients connected.
# TYPE telestra_sipd_api_clients gauge
telestra_sipd_api_clients 2
# HELP telestra_sipd_api_clients_dropped_total API clients disconnected because they did not read (queue full or a write timed out).
# TYPE telestra_sipd_api_clients_dropped_total counter
telestra_sipd_api_clients_dropped_total 1
`
	names := []string{"telestra_sipd_account_registered", "telestra_sipd_calls_active", "telestra_sipd_calls_finished_total",
		"telestra_sipd_rtp_packets_sent_total", "telestra_sipd_rtp_packets_lost_total", "telestra_sipd_reloads_total",
		"telestra_sipd_api_clients", "telestra_sipd_api_clients_dropped_total"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	// The set-up time of the answered call: 0.3 s in the 0.5 bucket.
	if got := testutil.CollectAndCount(m.setup); got != 1 {
		t.Fatalf("set-up histograms: %d, want 1 (out)", got)
	}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(`
# HELP telestra_sipd_call_setup_seconds Time from the INVITE (sent for out, received for in) to the call being established.
# TYPE telestra_sipd_call_setup_seconds histogram
telestra_sipd_call_setup_seconds_bucket{direction="out",le="0.01"} 0
telestra_sipd_call_setup_seconds_bucket{direction="out",le="0.025"} 0
telestra_sipd_call_setup_seconds_bucket{direction="out",le="0.05"} 0
telestra_sipd_call_setup_seconds_bucket{direction="out",le="0.1"} 0
telestra_sipd_call_setup_seconds_bucket{direction="out",le="0.25"} 0
telestra_sipd_call_setup_seconds_bucket{direction="out",le="0.5"} 1
telestra_sipd_call_setup_seconds_bucket{direction="out",le="1"} 1
telestra_sipd_call_setup_seconds_bucket{direction="out",le="2.5"} 1
telestra_sipd_call_setup_seconds_bucket{direction="out",le="5"} 1
telestra_sipd_call_setup_seconds_bucket{direction="out",le="10"} 1
telestra_sipd_call_setup_seconds_bucket{direction="out",le="30"} 1
telestra_sipd_call_setup_seconds_bucket{direction="out",le="60"} 1
telestra_sipd_call_setup_seconds_bucket{direction="out",le="+Inf"} 1
telestra_sipd_call_setup_seconds_sum{direction="out"} 0.3
telestra_sipd_call_setup_seconds_count{direction="out"} 1
`), "telestra_sipd_call_setup_seconds"); err != nil {
		t.Fatal(err)
	}
}

// Jitter and active calls come from the snapshot of the scrape itself.
func TestActiveCallsAndJitter(t *testing.T) {
	src := &fakeSources{}
	m := New("dev", src.sources())
	src.set(Account{Name: "a1", RegisterCode: 200, Calls: []Call{
		{ID: 3, Direction: "in", JitterMs: 1.5},
		{ID: 4, Direction: "out", JitterMs: 12},
		{ID: 2, Direction: "out", Stopped: true, JitterMs: 90}, // ended: not counted
	}})
	want := `
# HELP telestra_sipd_calls_active Calls not yet ended, by account and direction (in, out).
# TYPE telestra_sipd_calls_active gauge
telestra_sipd_calls_active{account="a1",direction="in"} 1
telestra_sipd_calls_active{account="a1",direction="out"} 1
# HELP telestra_sipd_rtp_jitter_seconds Highest RFC 3550 interarrival jitter among the account's calls not yet ended; 0 without one.
# TYPE telestra_sipd_rtp_jitter_seconds gauge
telestra_sipd_rtp_jitter_seconds{account="a1"} 0.012
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "telestra_sipd_calls_active", "telestra_sipd_rtp_jitter_seconds"); err != nil {
		t.Fatal(err)
	}
}

// The SIP front layer's counters are reported as they stand at the scrape.
func TestSIPEdgeCounters(t *testing.T) {
	src := &fakeSources{edge: SIPEdge{Malformed: 7, Rejected: 3, Dropped: 2, Rewritten: 1, Answers: 8, LogLines: 4}}
	m := New("dev", src.sources())
	want := `
# HELP telestra_sipd_sip_messages_malformed_total SIP messages that could not be parsed (answered 400, 416 or 513, or dropped).
# TYPE telestra_sipd_sip_messages_malformed_total counter
telestra_sipd_sip_messages_malformed_total 7
# HELP telestra_sipd_sip_requests_rejected_total Well-formed SIP requests refused statelessly (505, 400, 416, 420, 415, 406).
# TYPE telestra_sipd_sip_requests_rejected_total counter
telestra_sipd_sip_requests_rejected_total 3
# HELP telestra_sipd_sip_messages_dropped_total SIP messages dropped without an answer (stray responses and ACKs, no Via, answer rate limit).
# TYPE telestra_sipd_sip_messages_dropped_total counter
telestra_sipd_sip_messages_dropped_total 2
# HELP telestra_sipd_sip_requests_rewritten_total Valid SIP requests rewritten into a form the stack takes (LWS in parameters, RFC 2543 identifiers).
# TYPE telestra_sipd_sip_requests_rewritten_total counter
telestra_sipd_sip_requests_rewritten_total 1
# HELP telestra_sipd_sip_stateless_responses_total Responses sent statelessly to malformed or refused SIP requests.
# TYPE telestra_sipd_sip_stateless_responses_total counter
telestra_sipd_sip_stateless_responses_total 8
# HELP telestra_sipd_sip_rejected_log_lines_total Log lines written about malformed or refused SIP traffic (rate-limited per source and reason).
# TYPE telestra_sipd_sip_rejected_log_lines_total counter
telestra_sipd_sip_rejected_log_lines_total 4
`
	names := []string{"telestra_sipd_sip_messages_malformed_total", "telestra_sipd_sip_requests_rejected_total",
		"telestra_sipd_sip_messages_dropped_total", "telestra_sipd_sip_requests_rewritten_total",
		"telestra_sipd_sip_stateless_responses_total", "telestra_sipd_sip_rejected_log_lines_total"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
}

// Each audio channel's health is reported as it stands at the scrape; a
// channel a reload removed keeps its counters but has no gauges.
func TestAudioChannels(t *testing.T) {
	src := &fakeSources{audio: []AudioChannel{
		{Name: "ch1", Open: true, Connected: false, Reconnects: 40, Xruns: 3,
			PlaybackDropped: 250 * time.Millisecond, CaptureDropped: 20 * time.Millisecond,
			PlaybackMargin: 15 * time.Millisecond, CaptureMargin: 20 * time.Millisecond},
		{Name: "ch2", Open: true, Connected: true},
		{Name: "old", Xruns: 7, PlaybackDropped: time.Second},
	}}
	m := New("dev", src.sources())
	want := `
# HELP telestra_sipd_audio_connected 1 while the audio channel's device is usable (pulse: connected to the sound server; alsa: PCMs open; loopback: open), else 0.
# TYPE telestra_sipd_audio_connected gauge
telestra_sipd_audio_connected{channel="ch1"} 0
telestra_sipd_audio_connected{channel="ch2"} 1
# HELP telestra_sipd_audio_reconnects_total Reconnections to the sound server (pulse) or reopens of the PCMs (alsa) after the audio channel's device failed.
# TYPE telestra_sipd_audio_reconnects_total counter
telestra_sipd_audio_reconnects_total{channel="ch1"} 40
telestra_sipd_audio_reconnects_total{channel="ch2"} 0
telestra_sipd_audio_reconnects_total{channel="old"} 0
# HELP telestra_sipd_audio_xruns_total Underruns and overruns the audio channel's device reported.
# TYPE telestra_sipd_audio_xruns_total counter
telestra_sipd_audio_xruns_total{channel="ch1"} 3
telestra_sipd_audio_xruns_total{channel="ch2"} 0
telestra_sipd_audio_xruns_total{channel="old"} 7
# HELP telestra_sipd_audio_dropped_seconds_total Audio dropped from the channel's queues during calls, in seconds of audio, by direction (playback: queue full, late audio after a reconnect or standing latency removed; capture: not read in time or standing latency removed).
# TYPE telestra_sipd_audio_dropped_seconds_total counter
telestra_sipd_audio_dropped_seconds_total{channel="ch1",direction="capture"} 0.02
telestra_sipd_audio_dropped_seconds_total{channel="ch1",direction="playback"} 0.25
telestra_sipd_audio_dropped_seconds_total{channel="ch2",direction="capture"} 0
telestra_sipd_audio_dropped_seconds_total{channel="ch2",direction="playback"} 0
telestra_sipd_audio_dropped_seconds_total{channel="old",direction="capture"} 0
telestra_sipd_audio_dropped_seconds_total{channel="old",direction="playback"} 1
# HELP telestra_sipd_audio_margin_seconds The audio channel's adaptive margin now, by direction: the low point of the buffer that the standing-latency trim keeps (adapted on pulse, fixed on alsa).
# TYPE telestra_sipd_audio_margin_seconds gauge
telestra_sipd_audio_margin_seconds{channel="ch1",direction="capture"} 0.02
telestra_sipd_audio_margin_seconds{channel="ch1",direction="playback"} 0.015
telestra_sipd_audio_margin_seconds{channel="ch2",direction="capture"} 0
telestra_sipd_audio_margin_seconds{channel="ch2",direction="playback"} 0
`
	names := []string{"telestra_sipd_audio_connected", "telestra_sipd_audio_reconnects_total", "telestra_sipd_audio_xruns_total",
		"telestra_sipd_audio_dropped_seconds_total", "telestra_sipd_audio_margin_seconds"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	// Without an audio source there is nothing to report.
	if n, err := testutil.GatherAndCount(New("dev", Sources{}).Registry(), names...); err != nil || n != 0 {
		t.Fatalf("no Audio source: %d audio series, %v", n, err)
	}
}

// The metrics pass the Prometheus linter (the rules promtool check metrics
// applies).
func TestLint(t *testing.T) {
	src := &fakeSources{}
	src.set(Account{Name: "a1", RegisterCode: 200, Calls: []Call{{ID: 1, Direction: "in"}}})
	src.audio = []AudioChannel{{Name: "ch1", Open: true, Connected: true, Reconnects: 1}}
	m := New("dev", src.sources())
	m.CallIncoming(1)
	m.CallAnswered(1)
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}
