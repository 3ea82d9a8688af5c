//go:build integration && cgo

package hw

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func needALSAPulsePlugin(t *testing.T) {
	t.Helper()
	matches, _ := filepath.Glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so")
	more, _ := filepath.Glob("/usr/lib*/alsa-lib/libasound_module_pcm_pulse.so")
	if len(matches)+len(more) == 0 {
		t.Fatal("ALSA pulse plugin (libasound_module_pcm_pulse.so) not found: install the Debian package libasound2-plugins")
	}
}

func alsaConfig() Config {
	return Config{
		Backend:   "alsa",
		Format:    Format{Rate: 8000, Channels: 1},
		FrameTime: 20 * time.Millisecond,
		Buffer:    20 * time.Millisecond,
	}
}

func openALSAPair(t *testing.T) (a, b Channel) {
	t.Helper()
	log := testLogger(t)
	a, err := Open(alsaConfig(), ChannelConfig{Name: "a", Sink: "chan1", Source: "chan2mon"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err = Open(alsaConfig(), ChannelConfig{Name: "b", Sink: "chan2", Source: "chan1mon"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

// waitDuplex runs both directions until each hears its tone, for at most d.
func waitDuplex(t *testing.T, a, b Channel, hzA, hzB float64, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		ab, ba := duplex(a, b, hzA, hzB, 300*time.Millisecond)
		s1, s2 := ab.last(200*time.Millisecond), ba.last(200*time.Millisecond)
		if len(s1) >= 1600 && len(s2) >= 1600 && Goertzel(s1, 8000, hzA) > 0.9 && Goertzel(s2, 8000, hzB) > 0.9 {
			return time.Since(start)
		}
	}
	t.Fatalf("no %v/%v Hz tones both ways after %v", hzA, hzB, d)
	return 0
}

// TestALSAToneThroughPlugAndPulse plays 1000 Hz from a to PCM chan1 and
// 440 Hz from b to chan2 through ALSA plug and the pulse plugin (PulseAudio
// resamples 8 → 48 kHz); each records the other's sink monitor through ALSA.
func TestALSAToneThroughPlugAndPulse(t *testing.T) {
	needALSAPulsePlugin(t)
	startPulseIn(t, alsaPulseDir)
	a, b := openALSAPair(t)
	t.Logf("first audio both ways after %v", waitDuplex(t, a, b, 1000, 440, 6*time.Second).Round(time.Millisecond))
	ab, ba := duplex(a, b, 1000, 440, 1500*time.Millisecond)
	checkTone(t, "chan1 monitor via ALSA (a → b)", ab.last(time.Second), 1000)
	checkTone(t, "chan2 monitor via ALSA (b → a)", ba.last(time.Second), 440)
	for _, c := range []*clock{ab, ba} {
		if c.slowest > 5*time.Millisecond {
			t.Errorf("slowest ReadFrame/WriteFrame took %v; they must not block", c.slowest)
		}
	}
	if r := Goertzel(ab.last(time.Second), 8000, 440); r > 0.01 {
		t.Errorf("440 Hz leaked into chan1 (ratio %.3f)", r)
	}
}

func TestALSAReopensAfterDeviceFailure(t *testing.T) {
	needALSAPulsePlugin(t)
	srv := startPulseIn(t, alsaPulseDir)
	a, b := openALSAPair(t)
	waitDuplex(t, a, b, 1000, 440, 6*time.Second)
	srv.kill() // the pulse plugin's PCMs fail: the channel must reopen them
	outage := newClock(1000, a, b)
	outage.run(time.Second)
	if st := a.(*alsaChannel).Stats(); st.Connected {
		t.Errorf("stats say connected with the server gone: %+v", st)
	}
	if outage.slowest > 5*time.Millisecond {
		t.Errorf("slowest call during the outage %v; must not block", outage.slowest)
	}
	srv.start()
	t.Logf("audio both ways again %v after the restart", waitDuplex(t, a, b, 1000, 440, 15*time.Second).Round(time.Millisecond))
	for _, c := range []Channel{a, b} {
		st := c.(interface{ Stats() Stats }).Stats()
		t.Logf("%+v", st)
		if !st.Connected || st.Reconnects < 1 || st.Backend != "alsa" {
			t.Errorf("stats %+v: want connected after at least one reopen", st)
		}
	}
}

func TestALSACloseIsPromptAndStopsGoroutines(t *testing.T) {
	needALSAPulsePlugin(t)
	srv := startPulseIn(t, alsaPulseDir)
	before := runtime.NumGoroutine()
	a, err := Open(alsaConfig(), ChannelConfig{Name: "a", Sink: "chan1", Source: "chan1mon"}, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	newClock(1000, a, a).run(200 * time.Millisecond)
	srv.kill()
	newClock(1000, a, a).run(200 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- a.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Close hung")
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	waitGoroutines(t, before)
}

func TestALSAOpenErrors(t *testing.T) {
	needALSAPulsePlugin(t)
	startPulseIn(t, alsaPulseDir)
	for _, tc := range []struct {
		name    string
		ch      ChannelConfig
		wantErr []string
	}{
		{name: "unknown playback PCM", ch: ChannelConfig{Name: "x", Sink: "nosuch", Source: "chan1mon"}, wantErr: []string{`playback PCM "nosuch"`, "aplay -L"}},
		{name: "unknown capture PCM", ch: ChannelConfig{Name: "x", Sink: "chan1", Source: "nosuch"}, wantErr: []string{`capture PCM "nosuch"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := Open(alsaConfig(), tc.ch, nil)
			if err == nil {
				ch.Close()
				t.Fatal("Open succeeded")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want it to contain %q", err, w)
				}
			}
		})
	}
}

// TestALSAOpensRateConvertingPlug opens 8 kHz on a plug whose slave only
// takes 48 kHz: snd_pcm_set_params must allow soft resampling.
func TestALSAOpensRateConvertingPlug(t *testing.T) {
	a, err := Open(alsaConfig(), ChannelConfig{Name: "n", Sink: "null48", Source: "null48"}, testLogger(t))
	if err != nil {
		t.Fatalf("open 8 kHz on a 48 kHz plug: %v", err)
	}
	c := newClock(1000, a, a)
	c.run(300 * time.Millisecond)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if c.frames < 5 {
		t.Errorf("captured %d frames from the null PCM in 300 ms", c.frames)
	}
}
