package hw

import (
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var tel = Format{Rate: 8000, Channels: 1}

const frame20 = 160

func TestLoopbackModes(t *testing.T) {
	tests := []struct {
		name, mode, wantMode, wantErr string
	}{
		{name: "default is echo", mode: "", wantMode: "echo"},
		{name: "echo", mode: "echo", wantMode: "echo"},
		{name: "silence", mode: "silence", wantMode: "silence"},
		{name: "tone", mode: "tone:440", wantMode: "tone:440"},
		{name: "fractional tone", mode: "tone:1000.5", wantMode: "tone:1000.5"},
		{name: "tone above nyquist", mode: "tone:4000", wantErr: "0 < HZ < 4000"},
		{name: "tone not a number", mode: "tone:abc", wantErr: "tone:HZ"},
		{name: "unknown", mode: "noise", wantErr: `"echo", "tone:HZ" or "silence"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLoopback(tc.mode, tel)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if l.Mode() != tc.wantMode {
				t.Errorf("Mode = %q, want %q", l.Mode(), tc.wantMode)
			}
		})
	}
}

func TestLoopbackEchoOneFrameLater(t *testing.T) {
	l, err := NewLoopback("echo", tel)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]int16, frame20)
	// Media clock order per tick: read capture, then write playback.
	for tick := range 5 {
		ok := l.ReadFrame(got)
		if tick == 0 {
			if ok {
				t.Fatal("tick 0: ReadFrame returned a frame before anything was played")
			}
		} else {
			if !ok {
				t.Fatalf("tick %d: no frame", tick)
			}
			if want := seq((tick-1)*1000, frame20); !slices.Equal(got, want) {
				t.Fatalf("tick %d: captured frame starts %d, want the frame played at tick %d", tick, got[0], tick-1)
			}
		}
		l.WriteFrame(seq(tick*1000, frame20))
	}
	if ok := l.ReadFrame(got); !ok || got[0] != 4000 {
		t.Fatalf("last frame: ok=%v first=%d", ok, got[0])
	}
	if l.ReadFrame(got) {
		t.Fatal("queue should be empty")
	}
}

func TestLoopbackReadLeavesFrameUntouched(t *testing.T) {
	l, _ := NewLoopback("echo", tel)
	l.WriteFrame(seq(1, frame20-1)) // less than a frame
	got := slices.Repeat([]int16{7}, frame20)
	if l.ReadFrame(got) {
		t.Fatal("ReadFrame returned true with a partial frame queued")
	}
	if slices.ContainsFunc(got, func(v int16) bool { return v != 7 }) {
		t.Fatal("ReadFrame modified frame while returning false")
	}
}

func TestLoopbackQueueBoundedAndNonBlocking(t *testing.T) {
	l, _ := NewLoopback("echo", tel)
	const n = 1000 // far more than the queue holds
	start := time.Now()
	for i := range n {
		l.WriteFrame(slices.Repeat([]int16{int16(i)}, frame20))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("%d writes took %v", n, d)
	}
	got := make([]int16, frame20)
	var frames []int16
	for l.ReadFrame(got) {
		frames = append(frames, got[0])
	}
	if len(frames) != QueueFrames {
		t.Fatalf("queued %d frames, want %d (bounded)", len(frames), QueueFrames)
	}
	// Drop oldest: the newest QueueFrames frames survive, in order.
	for i, v := range frames {
		if want := int16(n - QueueFrames + i); v != want {
			t.Fatalf("frame %d is %d, want %d", i, v, want)
		}
	}
}

func TestLoopbackSilence(t *testing.T) {
	l, _ := NewLoopback("silence", tel)
	l.WriteFrame(seq(1, frame20)) // discarded (but tapped)
	got := slices.Repeat([]int16{7}, frame20)
	for range 3 {
		if !l.ReadFrame(got) {
			t.Fatal("silence must always deliver a frame")
		}
		if slices.ContainsFunc(got, func(v int16) bool { return v != 0 }) {
			t.Fatal("silence frame is not all zeros")
		}
	}
	if p := l.Played(); !slices.Equal(p, seq(1, frame20)) {
		t.Fatalf("Played = %d samples, want the written frame", len(p))
	}
}

func readSeconds(t *testing.T, c Channel, frameLen int, d time.Duration, rate int) []int16 {
	t.Helper()
	total := int(int64(rate) * int64(d) / int64(time.Second))
	out := make([]int16, 0, total)
	buf := make([]int16, frameLen)
	for len(out) < total {
		if !c.ReadFrame(buf) {
			t.Fatalf("ReadFrame returned false after %d samples", len(out))
		}
		out = append(out, buf...)
	}
	return out
}

func TestLoopbackTone(t *testing.T) {
	tests := []struct {
		name  string
		hz    float64
		frame int
		rate  int
	}{
		{name: "440 Hz 8 kHz 20 ms", hz: 440, frame: 160, rate: 8000},
		{name: "1000 Hz 8 kHz 20 ms", hz: 1000, frame: 160, rate: 8000},
		{name: "1000 Hz 8 kHz odd frames", hz: 1000, frame: 97, rate: 8000},
		{name: "3000 Hz 16 kHz", hz: 3000, frame: 320, rate: 16000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewLoopback("tone:"+trimFloat(tc.hz), Format{Rate: tc.rate, Channels: 1})
			if err != nil {
				t.Fatal(err)
			}
			s := readSeconds(t, l, tc.frame, time.Second, tc.rate)
			if r := Goertzel(s, tc.rate, tc.hz); r < 0.99 {
				t.Errorf("Goertzel(%v Hz) = %.3f, want ≥ 0.99", tc.hz, r)
			}
			if r := Goertzel(s, tc.rate, tc.hz*1.3); r > 0.01 {
				t.Errorf("Goertzel at a wrong frequency = %.3f, want ≈ 0", r)
			}
			wantRMS := ToneLevel / math.Sqrt2
			if r := RMS(s); math.Abs(r-wantRMS) > 0.002 {
				t.Errorf("RMS = %.4f, want %.4f (−12 dBFS sine)", r, wantRMS)
			}
			peak := slices.Max(s)
			if math.Abs(float64(peak)/32767-ToneLevel) > 0.002 {
				t.Errorf("peak %d, want %.0f", peak, ToneLevel*32767)
			}
			assertContinuousPhase(t, s, tc.hz, tc.rate)
		})
	}
}

func trimFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// assertContinuousPhase checks that no sample jumps more than a sine of this
// frequency can move between samples (a phase reset at a frame boundary would).
func assertContinuousPhase(t *testing.T, s []int16, hz float64, rate int) {
	t.Helper()
	maxStep := ToneLevel*32767*2*math.Sin(math.Pi*hz/float64(rate)) + 2
	for i := 1; i < len(s); i++ {
		if d := math.Abs(float64(s[i]) - float64(s[i-1])); d > maxStep {
			t.Fatalf("sample %d jumps by %.0f (max %.0f): phase not continuous", i, d, maxStep)
		}
	}
}

func TestLoopbackTapAndInject(t *testing.T) {
	l, _ := NewLoopback("tone:440", tel)
	inj := seq(100, frame20+40)
	l.Inject(inj)
	got := make([]int16, frame20)
	if !l.ReadFrame(got) || !slices.Equal(got, inj[:frame20]) {
		t.Fatalf("first frame is not the injected audio: %v", got[:4])
	}
	// The injected remainder (40 samples) is followed by the tone.
	if !l.ReadFrame(got) || !slices.Equal(got[:40], inj[frame20:]) {
		t.Fatal("injected remainder lost")
	}
	if got[40] != 0 || got[41] == 0 {
		t.Fatalf("tone should start at phase 0 after the injection: %v", got[40:44])
	}

	for i := range 3 {
		l.WriteFrame(seq(i*frame20, frame20))
	}
	if p := l.Played(); !slices.Equal(p, seq(0, 3*frame20)) {
		t.Fatalf("Played returned %d samples, want the 3 frames written", len(p))
	}
	if p := l.Played(); len(p) != 0 {
		t.Fatalf("second Played returned %d samples, want 0", len(p))
	}

	e, _ := NewLoopback("echo", tel)
	e.Inject(seq(5, frame20))
	if !e.ReadFrame(got) || got[0] != 5 {
		t.Fatal("echo: injected frame not captured")
	}
}

func TestLoopbackTapBounded(t *testing.T) {
	l, _ := NewLoopback("silence", tel)
	f := make([]int16, frame20)
	for range (tapSeconds + 5) * 50 {
		l.WriteFrame(f)
	}
	if n := len(l.Played()); n != tapSeconds*tel.Rate {
		t.Fatalf("tap kept %d samples, want %d", n, tapSeconds*tel.Rate)
	}
}

func TestLoopbackCloseIdempotent(t *testing.T) {
	before := runtime.NumGoroutine()
	c, err := Open(Config{Backend: "loopback", Format: tel, FrameTime: 20 * time.Millisecond}, ChannelConfig{Name: "a", Loopback: "tone:440"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if c.ReadFrame(make([]int16, frame20)) {
		t.Fatal("ReadFrame after Close returned a frame")
	}
	c.WriteFrame(make([]int16, frame20)) // must not panic or block
	if st := c.(*Loopback).Stats(); st.Connected || st.Backend != "loopback" {
		t.Fatalf("stats after Close: %+v", st)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("goroutines %d → %d after Close", before, after)
	}
}

func TestOpenErrors(t *testing.T) {
	const ms20 = 20 * time.Millisecond
	tests := []struct {
		name    string
		cfg     Config
		ch      ChannelConfig
		wantErr string
	}{
		{name: "unknown backend", cfg: Config{Backend: "oss", Format: tel, FrameTime: ms20}, wantErr: `unknown audio backend "oss"`},
		{name: "bad rate", cfg: Config{Backend: "loopback", Format: Format{Rate: 0, Channels: 1}, FrameTime: ms20}, wantErr: "rate 0 Hz"},
		{name: "bad channels", cfg: Config{Backend: "loopback", Format: Format{Rate: 8000}, FrameTime: ms20}, wantErr: "channels 0"},
		{name: "bad loopback mode", cfg: Config{Backend: "loopback", Format: tel, FrameTime: ms20}, ch: ChannelConfig{Loopback: "x"}, wantErr: `loopback mode "x"`},
		// The ptime is the plan's (plan.Default), never a default of hw's.
		{name: "no frame time", cfg: Config{Backend: "loopback", Format: tel}, wantErr: "frame time 0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.ch.Name = "ch1"
			_, err := Open(tc.cfg, tc.ch, nil)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), `"ch1"`) {
				t.Fatalf("err = %v, want containing %q and the channel name", err, tc.wantErr)
			}
		})
	}
}

func TestOpenLoopbackQueueFollowsFrameTime(t *testing.T) {
	c, err := Open(Config{Backend: "loopback", Format: tel, FrameTime: 10 * time.Millisecond}, ChannelConfig{Name: "a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	f := make([]int16, 80)
	for range 3 * QueueFrames {
		c.WriteFrame(f)
	}
	n := 0
	for c.ReadFrame(f) {
		n++
	}
	if n != QueueFrames {
		t.Fatalf("queue held %d 10 ms frames, want %d", n, QueueFrames)
	}
}
