package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// AudioChannel is one audio channel's health, read at scrape time. The
// counters cover every channel opened under the name since the daemon
// started (a reload that reopens a channel does not reset them).
type AudioChannel struct {
	Name string
	// Open: a channel of this name is open now. Only then are its gauges
	// reported; the counters of one a reload removed stay.
	Open       bool
	Connected  bool
	Reconnects uint64
	Xruns      uint64
	// Audio dropped from the channel's queues, as playing time.
	PlaybackDropped, CaptureDropped time.Duration
	// The adaptive margins now.
	PlaybackMargin, CaptureMargin time.Duration
}

// Directions of audio, the `direction` label of the audio_* metrics.
const (
	DirPlayback = "playback"
	DirCapture  = "capture"
)

var (
	descAudioConnected = prometheus.NewDesc(namespace+"_audio_connected",
		"1 while the audio channel's device is usable (pulse: connected to the sound server; alsa: PCMs open; loopback: open), else 0.",
		[]string{"channel"}, nil)
	descAudioReconnects = prometheus.NewDesc(namespace+"_audio_reconnects_total",
		"Reconnections to the sound server (pulse) or reopens of the PCMs (alsa) after the audio channel's device failed.",
		[]string{"channel"}, nil)
	descAudioXruns = prometheus.NewDesc(namespace+"_audio_xruns_total",
		"Underruns and overruns the audio channel's device reported.",
		[]string{"channel"}, nil)
	descAudioDropped = prometheus.NewDesc(namespace+"_audio_dropped_seconds_total",
		"Audio dropped from the channel's queues during calls, in seconds of audio, by direction (playback: queue full, late audio after a reconnect or standing latency removed; capture: not read in time or standing latency removed).",
		[]string{"channel", "direction"}, nil)
	descAudioMargin = prometheus.NewDesc(namespace+"_audio_margin_seconds",
		"The audio channel's adaptive margin now, by direction: the low point of the buffer that the standing-latency trim keeps (adapted on pulse, fixed on alsa).",
		[]string{"channel", "direction"}, nil)
)

// audioCollector reports Sources.Audio at scrape time.
type audioCollector struct{ audio func() []AudioChannel }

func (c audioCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAudioConnected, descAudioReconnects, descAudioXruns, descAudioDropped, descAudioMargin} {
		ch <- d
	}
}

func (c audioCollector) Collect(ch chan<- prometheus.Metric) {
	if c.audio == nil {
		return
	}
	for _, a := range c.audio() {
		counter := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, append([]string{a.Name}, labels...)...)
		}
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{a.Name}, labels...)...)
		}
		counter(descAudioReconnects, float64(a.Reconnects))
		counter(descAudioXruns, float64(a.Xruns))
		counter(descAudioDropped, a.PlaybackDropped.Seconds(), DirPlayback)
		counter(descAudioDropped, a.CaptureDropped.Seconds(), DirCapture)
		if !a.Open {
			continue
		}
		connected := 0.0
		if a.Connected {
			connected = 1
		}
		gauge(descAudioConnected, connected)
		gauge(descAudioMargin, a.PlaybackMargin.Seconds(), DirPlayback)
		gauge(descAudioMargin, a.CaptureMargin.Seconds(), DirCapture)
	}
}
