//go:build integration

package hw

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// paServer is a private PulseAudio instance with two 48 kHz mono null sinks,
// chan1 and chan2, on its own socket. It runs as a child of the test.
type paServer struct {
	t      *testing.T
	dir    string
	socket string

	mu     sync.Mutex
	cmd    *exec.Cmd
	stderr bytes.Buffer
	exited chan struct{}
}

func needTools(t *testing.T, tools ...[2]string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool[0]); err != nil {
			t.Fatalf("%s not found: install the Debian package %s (apt-get install %s)", tool[0], tool[1], tool[1])
		}
	}
}

func startPulse(t *testing.T) *paServer {
	t.Helper()
	dir, err := os.MkdirTemp("", "hw-pulse-") // short path: unix socket names are limited to 107 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return startPulseIn(t, dir)
}

// startPulseIn starts the server with its socket at dir/native.
func startPulseIn(t *testing.T, dir string) *paServer {
	t.Helper()
	needTools(t, [2]string{"pulseaudio", "pulseaudio"}, [2]string{"pactl", "pulseaudio-utils"})
	s := &paServer{t: t, dir: dir, socket: filepath.Join(dir, "native")}
	t.Cleanup(s.kill)
	s.start()
	return s
}

// Server is the string for Config.PulseServer.
func (s *paServer) Server() string { return "unix:" + s.socket }

func (s *paServer) start() {
	s.t.Helper()
	s.mu.Lock()
	cmd := exec.Command("pulseaudio", "-n", "--daemonize=no", "--use-pid-file=no",
		"--exit-idle-time=-1", "--disallow-exit", "--log-level=error", "--log-target=stderr",
		"--load=module-native-protocol-unix auth-anonymous=1 socket="+s.socket,
		"--load=module-null-sink sink_name=chan1 rate=48000 channels=1",
		"--load=module-null-sink sink_name=chan2 rate=48000 channels=1")
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+s.dir, "HOME="+s.dir)
	s.stderr.Reset()
	cmd.Stderr = &lockedWriter{mu: &s.mu, w: &s.stderr}
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("start pulseaudio: %v", err)
	}
	s.cmd = cmd
	exited := make(chan struct{})
	s.exited = exited
	s.mu.Unlock()
	go func() { cmd.Wait(); close(exited) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		out, err := exec.Command("pactl", "-s", s.Server(), "info").CombinedOutput()
		if err == nil {
			return
		}
		select {
		case <-exited:
			s.t.Fatalf("pulseaudio exited during start-up: %s", s.log())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("pulseaudio not ready after 10 s: pactl info: %v %s; server log: %s", err, out, s.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s *paServer) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

// kill SIGKILLs the server, like a crash, and waits for it to exit.
func (s *paServer) kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func pulseConfig(s soundServer) Config {
	return Config{
		Backend:     "pulse",
		PulseServer: s.Server(),
		Format:      Format{Rate: 8000, Channels: 1},
		FrameTime:   20 * time.Millisecond,
		Buffer:      20 * time.Millisecond,
	}
}

// clock plays the role of sip/media's media clock: every 20 ms it writes
// one tone frame to play (if not nil) and reads one frame from rec (if not
// nil). It records the slowest ReadFrame/WriteFrame call.
type clock struct {
	gen     *toneGen
	play    Channel
	rec     Channel
	got     []int16
	frames  int // ReadFrame calls that returned a frame
	slowest time.Duration
}

func newClock(hz float64, play, rec Channel) *clock {
	c := &clock{play: play, rec: rec}
	if hz > 0 {
		c.gen = newToneGen(hz, 8000, ToneLevel)
	}
	return c
}

func (c *clock) run(d time.Duration) {
	frame := make([]int16, frame20)
	in := make([]int16, frame20)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	total := int(d / (20 * time.Millisecond))
	done := 0
	// Like a real media clock, catch up on ticks the scheduler delayed so
	// that exactly one frame per 20 ms of wall time moves each way.
	for now := range tick.C {
		due := min(total, int(now.Sub(start)/(20*time.Millisecond)))
		for ; done < due; done++ {
			c.tick(frame, in)
		}
		if done >= total {
			return
		}
	}
}

func (c *clock) tick(frame, in []int16) {
	if c.play != nil {
		if c.gen != nil {
			c.gen.fill(frame, 1)
		}
		t0 := time.Now()
		c.play.WriteFrame(frame)
		c.slowest = max(c.slowest, time.Since(t0))
	}
	if c.rec != nil {
		t0 := time.Now()
		ok := c.rec.ReadFrame(in)
		c.slowest = max(c.slowest, time.Since(t0))
		if ok {
			c.got = append(c.got, in...)
			c.frames++
		}
	}
}

// last returns the final d of captured audio at 8 kHz.
func (c *clock) last(d time.Duration) []int16 {
	n := int(8000 * d / time.Second)
	if len(c.got) < n {
		return c.got
	}
	return c.got[len(c.got)-n:]
}

func openPair(t *testing.T, cfg Config, log *slog.Logger) (a, b Channel) {
	t.Helper()
	// a plays to chan1 and records chan2's monitor; b the other way round.
	a, err := Open(cfg, ChannelConfig{Name: "a", Sink: "chan1", Source: "chan2.monitor"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err = Open(cfg, ChannelConfig{Name: "b", Sink: "chan2", Source: "chan1.monitor"}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

// waitTone runs the clock until rec hears hz from play, for at most d. A
// fresh null sink sleeps up to 2 s before it adopts the low latency of its
// first stream, so the first audio can take that long.
func waitTone(t *testing.T, play, rec Channel, hz float64, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < d {
		c := newClock(hz, play, rec)
		c.run(300 * time.Millisecond)
		if s := c.last(200 * time.Millisecond); len(s) >= 1600 && Goertzel(s, 8000, hz) > 0.9 {
			return time.Since(start)
		}
	}
	t.Fatalf("no %v Hz tone after %v", hz, d)
	return 0
}

// checkTone checks that s (8 kHz) is a clean tone at hz with the level
// that was sent. It judges 100 ms windows: this VM's scheduler stalls can
// glitch a few of them (each stall is an underrun or a dropped burst), which
// must not hide whether the right tone arrived at the right level.
func checkTone(t *testing.T, what string, s []int16, hz float64) {
	t.Helper()
	const win = 800
	if len(s) < 5*win {
		t.Fatalf("%s: only %d samples captured", what, len(s))
	}
	want := ToneLevel / math.Sqrt2
	var good, total int
	var rmsSum float64
	for i := 0; i+win <= len(s); i += win {
		w := s[i : i+win]
		total++
		if Goertzel(w, 8000, hz) > 0.95 {
			good++
			rmsSum += RMS(w)
		}
	}
	t.Logf("%s: %d samples, Goertzel(%v Hz)=%.3f overall, %d/%d clean 100 ms windows, RMS %.4f (sent %.4f)",
		what, len(s), hz, Goertzel(s, 8000, hz), good, total, RMS(s), want)
	if good*10 < total*7 {
		t.Fatalf("%s: only %d of %d 100 ms windows hold a clean %v Hz tone, want ≥ 70%%", what, good, total, hz)
	}
	if rms := rmsSum / float64(good); math.Abs(rms-want) > 0.02 {
		t.Errorf("%s: RMS %.4f, want %.4f ± 0.02 (unity gain)", what, rms, want)
	}
}

// duplex runs two media clocks at once for d: a plays hzA to b, b plays hzB
// to a. It returns the two clocks (a→b, b→a).
func duplex(a, b Channel, hzA, hzB float64, d time.Duration) (ab, ba *clock) {
	ab, ba = newClock(hzA, a, b), newClock(hzB, b, a)
	done := make(chan struct{})
	go func() { ba.run(d); close(done) }()
	ab.run(d)
	<-done
	return ab, ba
}

// TestPulseToneThroughNullSink plays 440 Hz from a to sink chan1 and 1000 Hz
// from b to sink chan2 at the same time; b records chan1.monitor and a
// records chan2.monitor. The default sink is chan1, so a hears 1000 Hz only
// if the configured sink names are honoured.
func TestPulseToneThroughNullSink(t *testing.T) { forEachServer(t, testPulseToneThroughNullSink) }

func testPulseToneThroughNullSink(t *testing.T, srv soundServer) {
	a, b := openPair(t, pulseConfig(srv), testLogger(t))
	start := time.Now()
	for {
		ab, ba := duplex(a, b, 440, 1000, 300*time.Millisecond)
		s1, s2 := ab.last(200*time.Millisecond), ba.last(200*time.Millisecond)
		if len(s1) >= 1600 && len(s2) >= 1600 && Goertzel(s1, 8000, 440) > 0.9 && Goertzel(s2, 8000, 1000) > 0.9 {
			break
		}
		// PipeWire links new streams through WirePlumber, which on a
		// loaded machine (and with -race) can take several seconds.
		if time.Since(start) > 12*time.Second {
			t.Fatalf("no tones in both directions after 12 s; server log: %s", srv.log())
		}
	}
	// A fresh null sink sleeps up to 2 s before it adopts the low latency of
	// its first stream, hence the wait above.
	t.Logf("first audio both ways after %v", time.Since(start).Round(time.Millisecond))
	ab, ba := duplex(a, b, 440, 1000, 1500*time.Millisecond)
	t.Logf("stats: a %+v, b %+v", a.(*pulseChannel).Stats(), b.(*pulseChannel).Stats())
	for _, tc := range []struct {
		name      string
		c         *clock
		hz, other float64
	}{
		{name: "chan1.monitor (a → b)", c: ab, hz: 440, other: 1000},
		{name: "chan2.monitor (b → a)", c: ba, hz: 1000, other: 440},
	} {
		s := tc.c.last(time.Second)
		checkTone(t, tc.name, s, tc.hz)
		if r := Goertzel(s, 8000, tc.other); r > 0.01 {
			t.Errorf("%s: %v Hz from the other channel leaked in (ratio %.3f)", tc.name, tc.other, r)
		}
		// Queue locks only: a call that waited for the server would take
		// a frame time or more; scheduler preemption under -race on a
		// loaded 2-core VM reaches a few ms.
		if tc.c.slowest > 15*time.Millisecond {
			t.Errorf("%s: slowest ReadFrame/WriteFrame took %v; they must not block", tc.name, tc.c.slowest)
		}
	}
}

func TestPulseRecoversAfterServerRestart(t *testing.T) {
	forEachServer(t, testPulseRecoversAfterServerRestart)
}

func testPulseRecoversAfterServerRestart(t *testing.T, srv soundServer) {
	a, b := openPair(t, pulseConfig(srv), testLogger(t))
	pa, pb := a.(*pulseChannel), b.(*pulseChannel)

	t.Logf("first audio after %v", waitTone(t, a, b, 440, 5*time.Second).Round(time.Millisecond))
	c := newClock(440, a, b)
	c.run(time.Second)
	checkTone(t, "before the restart", c.last(500*time.Millisecond), 440)

	srv.kill()
	// The media clock keeps running through the outage; nothing blocks.
	outage := newClock(440, a, b)
	outage.run(time.Second)
	if outage.slowest > 15*time.Millisecond {
		t.Errorf("slowest call during the outage %v; must not block", outage.slowest)
	}
	if st := pa.Stats(); st.Connected {
		t.Errorf("stats say connected with the server gone: %+v", st)
	}
	if outage.frames > QueueFrames {
		t.Errorf("captured %d frames with no server", outage.frames)
	}

	start := time.Now()
	srv.start()
	// Same Channel values, no reopen: wait for audio to flow again.
	waitTone(t, a, b, 440, 15*time.Second)
	t.Logf("audio flowing again %v after the restart", time.Since(start).Round(10*time.Millisecond))
	final := newClock(440, a, b)
	final.run(time.Second)
	checkTone(t, "after the restart", final.last(500*time.Millisecond), 440)
	for _, p := range []*pulseChannel{pa, pb} {
		st := p.Stats()
		t.Logf("%s: %+v", p.ch.Name, st)
		if !st.Connected || st.Reconnects != 1 || st.Backend != "pulse" {
			t.Errorf("channel %s stats %+v, want connected after exactly one reconnect", p.ch.Name, st)
		}
	}
}

func TestPulseCloseWhileServerGone(t *testing.T) { forEachServer(t, testPulseCloseWhileServerGone) }

func testPulseCloseWhileServerGone(t *testing.T, srv soundServer) {
	before := runtime.NumGoroutine()
	a, b := openPair(t, pulseConfig(srv), testLogger(t))
	newClock(440, a, b).run(300 * time.Millisecond)
	srv.kill()
	newClock(440, a, b).run(300 * time.Millisecond) // now reconnecting with back-off

	done := make(chan error, 2)
	go func() { done <- a.Close() }()
	go func() { done <- b.Close() }()
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Close: %v", err)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("Close hung with the server gone")
		}
	}
	if err := a.Close(); err != nil { // idempotent
		t.Errorf("second Close: %v", err)
	}
	waitGoroutines(t, before)
}

// waitGoroutines waits for the goroutine count to fall back to n: the proto
// read loop exits just after its connection is closed.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, want ≤ %d after Close:\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPulseOpenErrors(t *testing.T) { forEachServer(t, testPulseOpenErrors) }

func testPulseOpenErrors(t *testing.T, srv soundServer) {
	cfg := pulseConfig(srv)
	gone := cfg
	gone.PulseServer = "unix:" + filepath.Join(srv.Dir(), "nothing-here")
	for _, tc := range []struct {
		name    string
		cfg     Config
		ch      ChannelConfig
		wantErr []string
	}{
		{name: "unknown sink", cfg: cfg, ch: ChannelConfig{Name: "x", Sink: "nosuch", Source: "chan1.monitor"}, wantErr: []string{`sink "nosuch"`, "pactl list short sinks"}},
		{name: "unknown source", cfg: cfg, ch: ChannelConfig{Name: "x", Sink: "chan1", Source: "nosuch"}, wantErr: []string{`source "nosuch"`, "pactl list short sources"}},
		{name: "no server", cfg: gone, ch: ChannelConfig{Name: "x"}, wantErr: []string{"is PulseAudio or pipewire-pulse running", "nothing-here"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ch, err := Open(tc.cfg, tc.ch, nil)
			if ctx.Err() != nil {
				t.Error("Open took more than 5 s")
			}
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

// A server that starts after Open is waited for (ServerWait), and one that
// never comes fails Open once the wait is over.
func TestPulseWaitsForLateServer(t *testing.T) {
	dir, err := os.MkdirTemp("", "hw-pulse-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := Config{Backend: "pulse", PulseServer: "unix:" + filepath.Join(dir, "native"),
		Format: Format{Rate: 8000, Channels: 1}, FrameTime: 20 * time.Millisecond, Buffer: 20 * time.Millisecond,
		ServerWait: 10 * time.Second}

	t.Run("never comes", func(t *testing.T) {
		c := cfg
		c.ServerWait = 500 * time.Millisecond
		start := time.Now()
		_, err := Open(c, ChannelConfig{Name: "x"}, testLogger(t))
		if err == nil || !strings.Contains(err.Error(), "waited") || time.Since(start) < 300*time.Millisecond {
			t.Fatalf("Open = %v after %v, want a failure after waiting ~500ms", err, time.Since(start))
		}
	})
	t.Run("comes late", func(t *testing.T) {
		type result struct {
			ch  Channel
			err error
		}
		done := make(chan result, 1)
		go func() {
			ch, err := Open(cfg, ChannelConfig{Name: "a", Sink: "chan1", Source: "chan2.monitor"}, testLogger(t))
			done <- result{ch, err}
		}()
		time.Sleep(700 * time.Millisecond)
		select {
		case r := <-done:
			t.Fatalf("Open returned before the server started: %v", r.err)
		default:
		}
		srv := startPulseIn(t, dir)
		r := <-done
		if r.err != nil {
			t.Fatalf("Open after the late start: %v; server log: %s", r.err, srv.log())
		}
		defer r.ch.Close()
		b, err := Open(cfg, ChannelConfig{Name: "b", Sink: "chan2", Source: "chan1.monitor"}, testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		waitTone(t, r.ch, b, 440, 5*time.Second)
	})
}
