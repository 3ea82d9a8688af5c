//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// TestAudioLatency measures channel → RTP → channel through a call, on
// PulseAudio and on pipewire-pulse, by tone bursts recorded on one clock:
// a stereo null sink "probe" whose left channel is what the host plays into
// channel 1's source (remapped sink in1 → probe left, remapped source of
// probe's left monitor) and whose right channel is what channel 2 plays
// (remapped sink out2 → probe right). acc1 (channel 1) calls acc2 (channel 2)
// directly; a burst's latency is its onset on the right minus its onset on
// the left of the one recording of probe.monitor. The figure is logged, not
// judged: it is a measurement on a shared VM (docs/audio.md), and only a
// missing path fails.
//
// On PipeWire the remapped sink and source are loopback nodes that each
// hold audio for a graph cycle of their own, inside the measured path but
// no part of the daemon's. There a second recording (pw-record, linked by
// pw-link) takes the two channels' own ports on one clock: in1src's
// capture port (what channel 1 records) and out2's monitor port (what
// channel 2 plays), and gives the figure without the probe's loopbacks.
//
// $LATENCY_RTP_SETTINGS adds [rtp-settings] lines to the plan, to measure
// other settings (e.g. 'ptime = "10ms"').
func TestAudioLatency(t *testing.T) {
	for _, srv := range []struct {
		name  string
		start func(testing.TB) *testpeers.Pulse
	}{{"pulseaudio", testpeers.StartPulse}, {"pipewire", testpeers.StartPipeWire}} {
		t.Run(srv.name, func(t *testing.T) {
			pa := srv.start(t)
			pa.LoadModule("module-null-sink", "sink_name=probe", "rate=48000", "channels=2", "channel_map=front-left,front-right")
			pa.LoadModule("module-remap-sink", "sink_name=in1", "master=probe", "channels=1", "channel_map=mono", "master_channel_map=front-left", "remix=no")
			pa.LoadModule("module-remap-sink", "sink_name=out2", "master=probe", "channels=1", "channel_map=mono", "master_channel_map=front-right", "remix=no")
			pa.LoadModule("module-remap-source", "source_name=in1src", "master=probe.monitor", "channels=1", "channel_map=mono", "master_channel_map=front-left", "remix=no")
			pa.NullSink("far1")  // channel 1 plays the far end (silence) here
			pa.NullSink("quiet") // channel 2 hears silence
			e := newEnv(t)
			pl := &plan{Backend: "pulse", PulseServer: pa.Server(), RTPExtra: os.Getenv("LATENCY_RTP_SETTINGS"),
				Accounts: []account{
					{Name: "acc1", User: "3001", Pass: "x", NoRegister: true, Channel: "ch1"},
					{Name: "acc2", User: "3002", Pass: "x", NoRegister: true, Channel: "ch2"},
				},
				Channels: []channel{{Name: "ch1", Sink: "far1", Source: "in1src"}, {Name: "ch2", Sink: "out2", Source: "quiet.monitor"}}}
			e.start(pl)
			// The recorders start before the call: a node joining PipeWire's
			// graph re-plans it (its quantum among them), a hiccup the
			// channels' margins would answer by rising for the rest of the
			// measurement, an artefact of the instrument, not of the path.
			rec := filepath.Join(t.TempDir(), "probe.raw")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			parec := exec.CommandContext(ctx, testpeers.RequireBinary(t, "parec", "pulseaudio-utils"),
				"-d", "probe.monitor", "--raw", "--rate=8000", "--channels=2", "--format=s16le", "--latency-msec=20")
			parec.Env = append(os.Environ(), pa.Env()...)
			f, err := os.Create(rec)
			if err != nil {
				t.Fatal(err)
			}
			parec.Stdout = f
			if err := parec.Start(); err != nil {
				t.Fatal(err)
			}
			var ports *portRecording
			if srv.name == "pipewire" {
				ports = recordPorts(t, pa, "in1src:capture_MONO", "out2:monitor_MONO")
			}

			// 8 bursts of 100 ms of 1 kHz, one per second, after 3 s of silence:
			// the player too joins before the call, which is up within them.
			wav := filepath.Join(t.TempDir(), "bursts.wav")
			var s []int16
			s = append(s, make([]int16, 2*48000)...)
			for i := 0; i < 9; i++ {
				s = append(s, make([]int16, 48000-4800)...)
				if i > 0 {
					s = append(s, testpeers.Sine(48000, 1000, 0.5, 0.1)...)
				} else {
					s = append(s, make([]int16, 4800)...)
				}
			}
			var b bytes.Buffer
			if err := testpeers.WriteWAV(&b, 48000, s); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(wav, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			play := exec.Command(testpeers.RequireBinary(t, "paplay", "pulseaudio-utils"), "-d", "in1", wav)
			play.Env = parec.Env
			var playOut bytes.Buffer
			play.Stdout, play.Stderr = &playOut, &playOut
			if err := play.Start(); err != nil {
				t.Fatalf("paplay: %v", err)
			}
			defer func() { _ = play.Process.Kill() }() // a failed call leaves it playing
			id, err := e.c.MakeCall(e.ctx, "acc1", "3002")
			if err != nil {
				t.Fatal(err)
			}
			in := wait(t, e.c, 10*time.Second, "call-incoming", event(api.EventCallIncoming, "acc2", -1))
			if err := e.c.AnswerCall(e.ctx, "acc2", in.CallID); err != nil {
				t.Fatal(err)
			}
			wait(t, e.c, 5*time.Second, "call-answered", event(api.EventCallAnswered, "acc1", id))
			if err := play.Wait(); err != nil {
				t.Fatalf("paplay: %v %s", err, playOut.Bytes())
			}
			time.Sleep(500 * time.Millisecond)
			cancel()
			parec.Wait()
			f.Close()
			raw, _ := os.ReadFile(rec)
			lat := burstOnsets(raw, 8000)
			t.Logf("%s: channel → RTP → channel latency of %d bursts: median %v (all %v)", srv.name, len(lat), medianDur(lat), lat)
			// What the channels went through explains the figure: margins
			// above their start mean this machine starved a direction.
			if sts, err := e.c.GetStatus(e.ctx, ""); err == nil {
				for _, st := range sts {
					if a := st.Audio; a != nil {
						t.Logf("%s: %s: xruns %d, dropped play %.3f s capture %.3f s, margins play %.1f ms capture %.1f ms",
							srv.name, a.Channel, a.Xruns, a.PlaybackDroppedS, a.CaptureDroppedS, a.PlaybackMarginMs, a.CaptureMarginMs)
					}
				}
			}
			// Under -race on a loaded machine the daemon is slow enough to
			// lose a few bursts in queue trims; the path itself must work.
			if len(lat) < 3 {
				t.Fatalf("found %d of 8 bursts on both sides of the probe (%d bytes recorded)", len(lat), len(raw))
			}
			if ports != nil {
				raw := ports.stop()
				lat := burstOnsets(raw, 48000)
				t.Logf("%s: channel 1's source port → channel 2's sink port (without the probe's loopbacks), %d bursts: median %v (all %v)",
					srv.name, len(lat), medianDur(lat), lat)
				if len(lat) < 3 {
					t.Fatalf("found %d of 8 bursts on the two ports (%d bytes recorded)", len(lat), len(raw))
				}
			}
		})
	}
}

// portRecording is a pw-record of two PipeWire ports as one stereo stream.
type portRecording struct {
	t    *testing.T
	cmd  *exec.Cmd
	path string
}

// recordPorts records the output ports left and right (pw-link names) of
// a StartPipeWire server on one clock: a pw-record node that links to
// nothing by itself, linked to the two ports. stop ends it and returns the
// interleaved s16le samples at 48 kHz.
func recordPorts(t *testing.T, pa *testpeers.Pulse, left, right string) *portRecording {
	t.Helper()
	link := testpeers.RequireBinary(t, "pw-link", "pipewire-bin")
	r := &portRecording{t: t, path: filepath.Join(t.TempDir(), "ports.wav")}
	r.cmd = exec.Command(testpeers.RequireBinary(t, "pw-record", "pipewire-bin"), "--target", "0",
		"--rate", "48000", "--channels", "2", "--channel-map", "FL,FR", "--format", "s16",
		"--latency", "1024", "-P", "{ node.name = latency-probe }", r.path)
	r.cmd.Env = append(os.Environ(), pa.PipeWireEnv()...)
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.cmd.Process.Kill(); _ = r.cmd.Wait() })
	for _, l := range [][2]string{{left, "latency-probe:input_FL"}, {right, "latency-probe:input_FR"}} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			cmd := exec.Command(link, l[0], l[1])
			cmd.Env = r.cmd.Env
			out, err := cmd.CombinedOutput()
			if err == nil {
				break
			}
			if time.Now().After(deadline) { // the recorder's node not there yet, or a port missing
				t.Fatalf("pw-link %s %s: %v %s", l[0], l[1], err, out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return r
}

func (r *portRecording) stop() []byte {
	_ = r.cmd.Process.Signal(os.Interrupt) // pw-record finishes the file
	_ = r.cmd.Wait()
	b, err := os.ReadFile(r.path)
	if err != nil {
		r.t.Fatal(err)
	}
	i := bytes.Index(b, []byte("data"))
	if i < 0 || i+8 > len(b) {
		r.t.Fatalf("pw-record wrote no WAV data chunk (%d bytes)", len(b))
	}
	return b[i+8:]
}

// burstOnsets pairs each burst's onset on the left channel of interleaved
// s16le stereo with the next onset on the right and returns the delays.
func burstOnsets(raw []byte, rate int) []time.Duration {
	n := len(raw) / 4
	left, right := make([]int16, n), make([]int16, n)
	for i := 0; i < n; i++ {
		left[i] = int16(binary.LittleEndian.Uint16(raw[4*i:]))
		right[i] = int16(binary.LittleEndian.Uint16(raw[4*i+2:]))
	}
	const thr = 4000 // of a 0.5 × 32767 burst; G.711 and resampling keep it well above
	onsets := func(x []int16) []int {
		var out []int
		for i := 0; i < len(x); i++ {
			if x[i] > thr || x[i] < -thr {
				out = append(out, i)
				i += rate / 2 // one onset per burst
			}
		}
		return out
	}
	l, r := onsets(left), onsets(right)
	var lat []time.Duration
	for _, a := range l {
		for _, b := range r {
			if b >= a && b-a < rate*9/10 { // bursts are 1 s apart
				lat = append(lat, time.Duration(b-a)*time.Second/time.Duration(rate))
				break
			}
		}
	}
	return lat
}

func medianDur(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
