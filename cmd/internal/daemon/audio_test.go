package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/debugserver"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
	"github.com/telestra/telestra-sip/hw"
)

// fakeChannel is an hw.Channel whose health the test sets.
type fakeChannel struct {
	mu sync.Mutex
	st hw.Stats
}

func (f *fakeChannel) ReadFrame([]int16) bool { return false }
func (f *fakeChannel) WriteFrame([]int16)     {}
func (f *fakeChannel) Close() error           { f.mu.Lock(); f.st.Connected = false; f.mu.Unlock(); return nil }
func (f *fakeChannel) Stats() hw.Stats        { f.mu.Lock(); defer f.mu.Unlock(); return f.st }

// bareChannel has no Stats: it is not reported.
type bareChannel struct{ hw.Channel }

// A name's counters add up every channel opened under it, closed or not;
// its gauges are the newest open channel's; a name with no channel open
// keeps its counters and loses its gauges.
func TestAudioHealthOverReopens(t *testing.T) {
	h := newAudioHealth(hw.Format{Rate: 8000, Channels: 1})
	old := &fakeChannel{st: hw.Stats{Backend: "pulse", Connected: true, Reconnects: 2, Xruns: 3,
		PlayDropped: 800, CaptureDropped: 8000, PlayMargin: 20 * time.Millisecond, CaptureMargin: 25 * time.Millisecond}}
	repl := &fakeChannel{st: hw.Stats{Backend: "alsa", Connected: true, Xruns: 1, PlayDropped: 80, PlayMargin: 5 * time.Millisecond}}
	other := &fakeChannel{st: hw.Stats{Backend: "pulse", Connected: true, Reconnects: 1}}
	ch1Old := channelHealth{name: "ch1", open: true, reconnects: 2, xruns: 3, playbackDropped: 100 * time.Millisecond, captureDropped: time.Second,
		backend: "pulse", connected: true, playbackMargin: 20 * time.Millisecond, captureMargin: 25 * time.Millisecond}
	ch1Both := channelHealth{name: "ch1", open: true, reconnects: 2, xruns: 4, playbackDropped: 110 * time.Millisecond, captureDropped: time.Second,
		backend: "alsa", connected: true, playbackMargin: 5 * time.Millisecond}
	steps := []struct {
		name string
		do   func()
		want []channelHealth
	}{
		{name: "open", do: func() { h.opened("ch1", old); h.opened("ch0", bareChannel{}) }, want: []channelHealth{ch1Old}},
		{name: "a reload opens the replacement", do: func() { h.opened("ch1", repl) }, want: []channelHealth{ch1Both}},
		{name: "and closes the old one", do: func() { old.Close(); h.closed("ch1", old) }, want: []channelHealth{ch1Both}},
		{name: "the replacement counts on", do: func() { repl.mu.Lock(); repl.st.Xruns = 2; repl.mu.Unlock() },
			want: []channelHealth{{name: "ch1", open: true, reconnects: 2, xruns: 5, playbackDropped: 110 * time.Millisecond, captureDropped: time.Second,
				backend: "alsa", connected: true, playbackMargin: 5 * time.Millisecond}}},
		{name: "a second channel", do: func() { h.opened("ch2", other) }, want: []channelHealth{
			{name: "ch1", open: true, reconnects: 2, xruns: 5, playbackDropped: 110 * time.Millisecond, captureDropped: time.Second,
				backend: "alsa", connected: true, playbackMargin: 5 * time.Millisecond},
			{name: "ch2", open: true, reconnects: 1, backend: "pulse", connected: true}}},
		{name: "removed by a reload: counters only", do: func() { other.Close(); h.closed("ch2", other); h.closed("ch0", bareChannel{}) }, want: []channelHealth{
			{name: "ch1", open: true, reconnects: 2, xruns: 5, playbackDropped: 110 * time.Millisecond, captureDropped: time.Second,
				backend: "alsa", connected: true, playbackMargin: 5 * time.Millisecond},
			{name: "ch2", reconnects: 1}}},
		{name: "closing twice counts once", do: func() { h.closed("ch2", other) }, want: []channelHealth{
			{name: "ch1", open: true, reconnects: 2, xruns: 5, playbackDropped: 110 * time.Millisecond, captureDropped: time.Second,
				backend: "alsa", connected: true, playbackMargin: 5 * time.Millisecond},
			{name: "ch2", reconnects: 1}}},
	}
	for _, s := range steps {
		s.do()
		if got := h.snapshot(); !slices.Equal(got, s.want) {
			t.Fatalf("%s:\n got %+v\nwant %+v", s.name, got, s.want)
		}
	}
}

func TestSamplesTime(t *testing.T) {
	year := 365 * 24 * time.Hour
	tests := []struct {
		name    string
		f       hw.Format
		samples uint64
		want    time.Duration
	}{
		{name: "one frame at 8 kHz", f: hw.Format{Rate: 8000, Channels: 1}, samples: 160, want: 20 * time.Millisecond},
		{name: "wideband", f: hw.Format{Rate: 16000, Channels: 1}, samples: 8000, want: 500 * time.Millisecond},
		{name: "stereo", f: hw.Format{Rate: 8000, Channels: 2}, samples: 16000, want: time.Second},
		{name: "a year does not overflow", f: hw.Format{Rate: 8000, Channels: 1}, samples: 8000 * uint64(year/time.Second), want: year},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newAudioHealth(tt.f).samplesTime(tt.samples); got != tt.want {
				t.Errorf("samplesTime(%d) = %v, want %v", tt.samples, got, tt.want)
			}
		})
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// audioPlan is a plan with a loopback channel per mode, ch1, ch2, ..., each
// the channel of one account.
func audioPlan(apiPort, sipPort int, modes ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[tcp-settings]\naddress = \"127.0.0.1\"\nport = %d\n[sip-settings]\naddress = \"127.0.0.1\"\nport = %d\n"+
		"[rtp-settings]\nport-min = 42100\nport-max = 42199\n[audio]\nbackend = \"loopback\"\n", apiPort, sipPort)
	for i, m := range modes {
		fmt.Fprintf(&b, "[audio.channels.ch%d]\nloopback = %q\n", i+1, m)
	}
	for i := range modes {
		fmt.Fprintf(&b, "[accounts.account-%d]\nuser = \"300%d\"\nserver = \"\"\nregister = false\nchannel = \"ch%d\"\n", i+1, i+1, i+1)
	}
	return b.String()
}

// Every audio channel's health reaches the operator three ways: the
// Prometheus metrics, /debug/stats and get-status's `audio`; a reload that
// reopens a channel keeps its counters and shows the new channel's gauges.
func TestAudioHealthExposed(t *testing.T) {
	planPath := filepath.Join(t.TempDir(), "sipplan.toml")
	apiPort, sipPort := freePort(t), freePort(t)
	if err := os.WriteFile(planPath, []byte(audioPlan(apiPort, sipPort, "echo", "silence")), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	n := &recNotifier{}
	reload := make(chan os.Signal, 1)
	d := newDaemon(Options{PlanPath: planPath, Plan: p, Log: discardLogger(), Notifier: n, Reload: reload,
		DebugAddr: "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	waitUntil(t, "READY=1", func() bool { return n.count("READY=1") == 1 })
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	c, err := client.Dial(cctx, fmt.Sprintf("127.0.0.1:%d", apiPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// 100 ms of audio over what ch1's capture queue holds (10 frames of
	// 20 ms at 8 kHz): the oldest 800 samples are dropped.
	overflow := func(t *testing.T) hw.Channel {
		t.Helper()
		ch := d.channels["ch1"].ch // run's goroutine is waiting: READY=1 was sent after it wrote
		ch.(*hw.Loopback).Inject(make([]int16, hw.QueueFrames*160+800))
		return ch
	}
	first := overflow(t)

	check := func(t *testing.T, metrics string, debug []debugserver.AudioChannel, status map[string]*api.Audio) {
		t.Helper()
		if err := testutil.GatherAndCompare(d.metrics.Registry(), strings.NewReader(metrics),
			"telestra_sipd_audio_connected", "telestra_sipd_audio_reconnects_total", "telestra_sipd_audio_dropped_seconds_total"); err != nil {
			t.Error(err)
		}
		body := httpGet(t, "http://"+d.debugAddr.String()+"/debug/stats")
		var st debugserver.Stats
		if err := json.Unmarshal([]byte(body), &st); err != nil || !slices.Equal(st.Audio, debug) {
			t.Errorf("/debug/stats audio %+v (%v), want %+v:\n%s", st.Audio, err, debug, body)
		}
		sts, err := c.GetStatus(cctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(sts) != len(status) {
			t.Errorf("%d statuses, want %d", len(sts), len(status))
		}
		for _, s := range sts {
			if want := status[s.Account]; s.Audio == nil || *s.Audio != *want {
				t.Errorf("get-status %s audio %+v, want %+v", s.Account, s.Audio, want)
			}
		}
	}
	ch1 := api.Audio{Channel: "ch1", Backend: "loopback", Connected: true, CaptureDroppedS: 0.1}
	ch2 := api.Audio{Channel: "ch2", Backend: "loopback", Connected: true}
	t.Run("started", func(t *testing.T) {
		check(t, `
# HELP telestra_sipd_audio_connected 1 while the audio channel's device is usable (pulse: connected to the sound server; alsa: PCMs open; loopback: open), else 0.
# TYPE telestra_sipd_audio_connected gauge
telestra_sipd_audio_connected{channel="ch1"} 1
telestra_sipd_audio_connected{channel="ch2"} 1
# HELP telestra_sipd_audio_reconnects_total Reconnections to the sound server (pulse) or reopens of the PCMs (alsa) after the audio channel's device failed.
# TYPE telestra_sipd_audio_reconnects_total counter
telestra_sipd_audio_reconnects_total{channel="ch1"} 0
telestra_sipd_audio_reconnects_total{channel="ch2"} 0
# HELP telestra_sipd_audio_dropped_seconds_total Audio dropped from the channel's queues during calls, in seconds of audio, by direction (playback: queue full, late audio after a reconnect or standing latency removed; capture: not read in time or standing latency removed).
# TYPE telestra_sipd_audio_dropped_seconds_total counter
telestra_sipd_audio_dropped_seconds_total{channel="ch1",direction="capture"} 0.1
telestra_sipd_audio_dropped_seconds_total{channel="ch1",direction="playback"} 0
telestra_sipd_audio_dropped_seconds_total{channel="ch2",direction="capture"} 0
telestra_sipd_audio_dropped_seconds_total{channel="ch2",direction="playback"} 0
`, []debugserver.AudioChannel{debugserver.AudioChannel(ch1), debugserver.AudioChannel(ch2)},
			map[string]*api.Audio{"account-1": &ch1, "account-2": &ch2})
	})

	// ch1 changes mode (a new channel) and ch2 goes with its account.
	if err := os.WriteFile(planPath, []byte(audioPlan(apiPort, sipPort, "silence")), 0o600); err != nil {
		t.Fatal(err)
	}
	reload <- syscall.SIGHUP
	waitUntil(t, "READY=1 after the reload", func() bool { return n.count("READY=1") == 2 })
	if second := overflow(t); second == first {
		t.Fatal("the reload did not reopen ch1")
	}
	if first.(statsReader).Stats().Connected {
		t.Fatal("the reload left the old ch1 open")
	}
	ch1.CaptureDroppedS = 0.2 // 0.1 s on each channel opened as ch1
	t.Run("reopened", func(t *testing.T) {
		check(t, `
# HELP telestra_sipd_audio_connected 1 while the audio channel's device is usable (pulse: connected to the sound server; alsa: PCMs open; loopback: open), else 0.
# TYPE telestra_sipd_audio_connected gauge
telestra_sipd_audio_connected{channel="ch1"} 1
# HELP telestra_sipd_audio_reconnects_total Reconnections to the sound server (pulse) or reopens of the PCMs (alsa) after the audio channel's device failed.
# TYPE telestra_sipd_audio_reconnects_total counter
telestra_sipd_audio_reconnects_total{channel="ch1"} 0
telestra_sipd_audio_reconnects_total{channel="ch2"} 0
# HELP telestra_sipd_audio_dropped_seconds_total Audio dropped from the channel's queues during calls, in seconds of audio, by direction (playback: queue full, late audio after a reconnect or standing latency removed; capture: not read in time or standing latency removed).
# TYPE telestra_sipd_audio_dropped_seconds_total counter
telestra_sipd_audio_dropped_seconds_total{channel="ch1",direction="capture"} 0.2
telestra_sipd_audio_dropped_seconds_total{channel="ch1",direction="playback"} 0
telestra_sipd_audio_dropped_seconds_total{channel="ch2",direction="capture"} 0
telestra_sipd_audio_dropped_seconds_total{channel="ch2",direction="playback"} 0
`, []debugserver.AudioChannel{debugserver.AudioChannel(ch1)}, map[string]*api.Audio{"account-1": &ch1})
	})
}
