// Package hw connects the appliance's audio channels to the rest of the
// daemon. A Channel is a pair of bounded frame queues (capture and playback)
// moved to and from the device by goroutines the Channel owns; the call's
// media clock drives both queues, so neither method ever blocks.
package hw

import "time"

// Format describes signed 16-bit little-endian interleaved PCM.
type Format struct {
	Rate     int // samples per second per channel, e.g. 8000
	Channels int // 1 for the telephone path
}

// FrameSamples is the number of int16 samples in one frame of duration d.
func (f Format) FrameSamples(d time.Duration) int {
	return int(int64(f.Rate) * int64(f.Channels) * int64(d) / int64(time.Second))
}

// Channel is one audio channel of the appliance.
type Channel interface {
	// ReadFrame fills frame with the oldest captured samples. It returns
	// false, leaving frame untouched, when less than a full frame is queued;
	// the caller then sends silence or conceals.
	ReadFrame(frame []int16) bool
	// WriteFrame queues frame for playback. When the queue is full the
	// oldest queued audio is dropped, so a stalled device never stalls RTP.
	WriteFrame(frame []int16)
	// Close stops the channel's goroutines and releases the device.
	Close() error
}

// ChannelConfig is one [audio.channels.NAME] table of the SIP plan.
type ChannelConfig struct {
	Name     string
	Sink     string // pulse sink or ALSA playback PCM
	Source   string // pulse source or ALSA capture PCM
	Loopback string // loopback backend only: "echo", "tone:HZ", "silence"
}

// Config selects the backend and the stream format for every channel.
type Config struct {
	Backend     string // "loopback", "pulse", "alsa"
	PulseServer string // empty: the default server
	// PipeWireQuantum is the graph period, in samples at 48 kHz, the pulse
	// backend asks pipewire-pulse for (see pipeWireQuantum); 0:
	// DefaultPipeWireQuantum. Unused with PulseAudio.
	PipeWireQuantum int
	Format          Format        // the codec's format: 8 kHz mono for G.711
	FrameTime       time.Duration // ptime, e.g. 20ms (the daemon's, from the plan); 0 is rejected
	Buffer          time.Duration // device buffer target, e.g. 20ms; 0: one frame, the minimum
	// ServerWait: how long Open waits for a pulse server that is not
	// running yet (boot order, a user session still starting); 0: fail at
	// once. Later losses are always retried.
	ServerWait time.Duration
}

// Stats is a snapshot of a channel's health counters, for status reports
// (the daemon's metrics, get-status, /debug/stats). Every backend's Channel
// has a Stats() Stats method; declare the interface where it is consumed.
type Stats struct {
	Backend     string // "loopback", "pulse", "alsa"
	Connected   bool   // device usable now (pulse connected, ALSA PCMs open, loopback not closed)
	Reconnects  uint64 // pulse reconnections / ALSA reopens after a failure
	Xruns       uint64 // underruns and overruns the device reported
	PlayDropped uint64 // samples dropped from the playback queue (full, or standing latency removed)
	// CaptureDropped: samples dropped from the capture queue while calls
	// read it (not read in time, or standing latency removed). On pulse
	// and alsa, what the device captures between calls, when nobody
	// reads, is not counted.
	CaptureDropped uint64
	// The adaptive margins now (pulse; fixed on ALSA): the low point of
	// the playback buffer (queue and server) and of the capture queue
	// that the standing-latency trim keeps.
	PlayMargin, CaptureMargin time.Duration
}
