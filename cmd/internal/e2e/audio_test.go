//go:build integration

package e2e

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// callAndListen: peer (sending a 440 Hz sine, recording what it hears) calls
// acc1, the test answers through the API, talks for d, the peer hangs up.
// It returns what the peer heard, without the first second (set-up, jitter
// buffers filling).
func callAndListen(t *testing.T, e *env, p *testpeers.Baresip, d time.Duration) testpeers.Audio {
	t.Helper()
	if err := p.Dial(e.uri("3001")); err != nil {
		t.Fatal(err)
	}
	in := wait(t, e.c, 10*time.Second, "call-incoming", event(api.EventCallIncoming, "acc1", -1))
	if err := e.c.AnswerCall(e.ctx, "acc1", in.CallID); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 5*time.Second, "call-answered", event(api.EventCallAnswered, "acc1", in.CallID))
	if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_ESTABLISHED"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(d)
	if err := p.Hangup(); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", in.CallID))
	if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_CLOSED"); err != nil {
		t.Fatal(err)
	}
	wavs := p.ReceivedWAVs()
	if len(wavs) != 1 {
		t.Fatalf("peer recordings %v, want one *-dec.wav", wavs)
	}
	a, err := testpeers.ReadWAV(wavs[0])
	if err != nil {
		t.Fatal(err)
	}
	if a.Seconds() < d.Seconds()-1 {
		t.Fatalf("peer recorded %.1f s of a %v call", a.Seconds(), d)
	}
	return a.Slice(1, a.Seconds()-0.2)
}

// expectTone fails unless a is mostly hz (dominant frequency within 2% and
// at least ratio of the energy at hz) and not silent.
func expectTone(t *testing.T, what string, a testpeers.Audio, hz, ratio float64) {
	t.Helper()
	f := testpeers.DominantFrequency(a.Samples, a.Rate)
	r := testpeers.ToneRatio(a.Samples, a.Rate, hz)
	rms := testpeers.RMS(a.Samples)
	t.Logf("%s: %.1f s, dominant %.1f Hz, %.0f Hz ratio %.3f, rms %.3f", what, a.Seconds(), f, hz, r, rms)
	if rms < 0.01 || math.Abs(f-hz) > hz*0.02 || r < ratio {
		t.Errorf("%s: dominant %.1f Hz (ratio at %.0f Hz %.3f, rms %.3f), want %.0f Hz", what, f, hz, r, rms, hz)
	}
}

// playLoop plays a long tone into a pulse sink until the test ends.
func playLoop(t *testing.T, pa *testpeers.Pulse, sink string, hz float64) {
	t.Helper()
	paplay := testpeers.RequireBinary(t, "paplay", "pulseaudio-utils")
	wav := filepath.Join(t.TempDir(), "tone.wav")
	if err := testpeers.WriteToneWAV(wav, 48000, hz, 0.5, 120); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(paplay, "-d", sink, wav)
	cmd.Env = append(os.Environ(), pa.Env()...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// TestAudio: a peer hears its own 440 Hz back from an echo channel, and a
// 1 kHz tone from a tone channel, with each audio backend: the loopback
// fake, PulseAudio and PipeWire's pipewire-pulse (null sinks; echo = the
// sink's monitor as the source) and ALSA through ALSA's pulse plugin.
func TestAudio(t *testing.T) {
	tests := []struct {
		name     string
		backend  string
		tone     bool // a 1 kHz channel instead of an echo channel
		pipewire bool // pipewire-pulse (RHEL 9) instead of PulseAudio
	}{
		{name: "loopback echo", backend: "loopback"},
		{name: "loopback tone", backend: "loopback", tone: true},
		{name: "pulse echo", backend: "pulse"},
		{name: "pulse tone", backend: "pulse", tone: true},
		{name: "pipewire echo", backend: "pulse", pipewire: true},
		{name: "pipewire tone", backend: "pulse", pipewire: true, tone: true},
		{name: "alsa echo", backend: "alsa"},
		{name: "alsa tone", backend: "alsa", tone: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			p := e.peer("3002", testpeers.BaresipOptions{Source: "ausine,440", Record: true})
			pl := &plan{Accounts: []account{e.user("acc1", "3001")}, Backend: tc.backend}
			var opts testpeers.DaemonOptions
			switch tc.backend {
			case "loopback":
				lb := "echo"
				if tc.tone {
					lb = "tone:1000"
				}
				pl.Channels = []channel{{Name: "ch1", Loopback: lb}}
			case "pulse", "alsa":
				start := testpeers.StartPulse
				if tc.pipewire {
					start = testpeers.StartPipeWire
				}
				pa := start(t)
				pa.NullSink("chan1")
				src := "chan1.monitor" // what the daemon plays comes back
				if tc.tone {
					pa.NullSink("tone")
					playLoop(t, pa, "tone", 1000)
					src = "tone.monitor"
				}
				if tc.backend == "pulse" {
					pl.PulseServer = pa.Server()
					pl.Channels = []channel{{Name: "ch1", Sink: "chan1", Source: src}}
				} else {
					home := t.TempDir()
					pa.WriteAsoundrc(home, map[string]string{"chan1out": "chan1", "chan1in": src})
					opts.Env = append(pa.Env(), "HOME="+home)
					pl.Channels = []channel{{Name: "ch1", Sink: "chan1out", Source: "chan1in"}}
				}
			}
			e.startWith(pl, opts)
			waitRegistered(t, e.c, "acc1", 200)
			heard := callAndListen(t, e, p, 4*time.Second)
			if tc.tone {
				expectTone(t, "peer heard", heard, 1000, 0.8)
			} else {
				expectTone(t, "peer heard", heard, 440, 0.7)
			}
		})
	}
}

// TestAudioSwitch: two peers send 440 and 880 Hz to one account whose
// channel is a pulse null sink (recorded from its monitor): the channel
// carries only the active call, and follows switch-call.
func TestAudioSwitch(t *testing.T) {
	e := newEnv(t)
	p1 := e.peer("3002", testpeers.BaresipOptions{Source: "ausine,440"})
	p2 := e.peer("3003", testpeers.BaresipOptions{Source: "ausine,880"})
	pa := testpeers.StartPulse(t)
	pa.NullSink("chan1")
	pa.NullSink("quiet") // nobody plays here: the channel sends silence
	e.start(&plan{
		Accounts:    []account{e.user("acc1", "3001")},
		Backend:     "pulse",
		PulseServer: pa.Server(),
		Channels:    []channel{{Name: "ch1", Sink: "chan1", Source: "quiet.monitor"}},
	})
	rec := pa.Record("chan1.monitor", 8000)
	waitRegistered(t, e.c, "acc1", 200)

	answer := func(p *testpeers.Baresip) int {
		t.Helper()
		if err := p.Dial(e.uri("3001")); err != nil {
			t.Fatal(err)
		}
		in := wait(t, e.c, 10*time.Second, "call-incoming from "+p.Ext(), func(m client.Message) bool {
			return m.Event == api.EventCallIncoming && m.Caller == p.Ext()
		})
		if err := e.c.AnswerCall(e.ctx, "acc1", in.CallID); err != nil {
			t.Fatal(err)
		}
		wait(t, e.c, 5*time.Second, "call-answered", event(api.EventCallAnswered, "acc1", in.CallID))
		return in.CallID
	}
	// listen returns d of what the channel plays from 1 s on (re-INVITE,
	// jitter buffer), by the recording's own clock: parec may lag.
	listen := func(d time.Duration) testpeers.Audio {
		t.Helper()
		time.Sleep(time.Second)
		from := rec.Audio().Seconds()
		deadline := time.Now().Add(d + 3*time.Second)
		for rec.Audio().Seconds() < from+d.Seconds() {
			if time.Now().After(deadline) {
				t.Fatalf("parec recorded %.1f s of %v", rec.Audio().Seconds()-from, d)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return rec.Audio().Slice(from, from+d.Seconds())
	}
	only := func(what string, a testpeers.Audio, hz, other float64) {
		t.Helper()
		expectTone(t, what, a, hz, 0.7)
		if r := testpeers.ToneRatio(a.Samples, a.Rate, other); r > 0.05 {
			t.Errorf("%s: %.0f Hz ratio %.3f, want none of the held call", what, other, r)
		}
	}

	id1 := answer(p1)
	only("first call active", listen(2*time.Second), 440, 880)
	id2 := answer(p2) // holds the first call
	only("second call answered", listen(2*time.Second), 880, 440)
	if err := e.c.SwitchCall(e.ctx, "acc1", id1); err != nil {
		t.Fatal(err)
	}
	only("switched to the first", listen(2*time.Second), 440, 880)
	if err := e.c.SwitchCall(e.ctx, "acc1", id2); err != nil {
		t.Fatal(err)
	}
	only("switched to the second", listen(2*time.Second), 880, 440)
}

// TestRTPTimeout: the peer stops sending RTP (its process is stopped): the
// call ends with reason "rtp timeout" after the plan's 3 s.
func TestRTPTimeout(t *testing.T) {
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}, RTPTimeout: "3s"})
	waitRegistered(t, e.c, "acc1", 200)
	id := e.callOut(t, "acc1", "3002")
	time.Sleep(time.Second)
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Continue() })
	start := time.Now()
	ended := wait(t, e.c, 10*time.Second, "call-ended (rtp timeout)", event(api.EventCallEnded, "acc1", id))
	took := time.Since(start)
	t.Logf("call-ended %v after the peer stopped: reason %q code %d", took.Round(time.Millisecond), ended.Reason, ended.Code)
	if !strings.Contains(strings.ToLower(ended.Reason), "rtp timeout") {
		t.Errorf("call-ended reason %q, want \"rtp timeout\"", ended.Reason)
	}
	if took < 2500*time.Millisecond || took > 6*time.Second {
		t.Errorf("call ended %v after RTP stopped, want about 3 s", took)
	}
	// The peer, woken up, gets the daemon's BYE.
	if err := p.Continue(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.WaitEvent(peerCtx(t, 10*time.Second), "CALL_CLOSED"); err != nil {
		t.Error(err)
	}
}
