//go:build integration

package hw

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// soundServer is a private sound server the pulse tests run against:
// PulseAudio itself or PipeWire with pipewire-pulse (RHEL 9's). Both have
// two 48 kHz mono null sinks, chan1 and chan2.
type soundServer interface {
	Server() string // for Config.PulseServer
	Dir() string    // private runtime directory
	kill()          // SIGKILL, like a crash
	start()         // (re)start, sinks included
	log() string
	pactl(args ...string) (string, error)
}

// forEachServer runs f against PulseAudio and against PipeWire.
func forEachServer(t *testing.T, f func(t *testing.T, srv soundServer)) {
	t.Run("pulseaudio", func(t *testing.T) { f(t, startPulse(t)) })
	t.Run("pipewire", func(t *testing.T) { f(t, startPipeWire(t)) })
}

func (s *paServer) Dir() string { return s.dir }

func (s *paServer) pactl(args ...string) (string, error) {
	out, err := exec.Command("pactl", append([]string{"-s", s.Server()}, args...)...).CombinedOutput()
	return string(out), err
}

// pwServer is PipeWire, WirePlumber and pipewire-pulse started headless
// with a private XDG_RUNTIME_DIR, HOME and XDG_STATE_HOME and a session
// D-Bus of their own (without D-Bus WirePlumber links nothing).
type pwServer struct {
	t   *testing.T
	dir string
	env []string

	dbus *exec.Cmd

	mu     sync.Mutex
	procs  []*exec.Cmd
	waits  []chan struct{}
	stderr bytes.Buffer
}

func startPipeWire(t *testing.T) *pwServer {
	t.Helper()
	needTools(t, [2]string{"pipewire", "pipewire"}, [2]string{"wireplumber", "wireplumber"},
		[2]string{"pipewire-pulse", "pipewire-pulse"}, [2]string{"pw-cli", "pipewire-bin"},
		[2]string{"dbus-daemon", "dbus"}, [2]string{"pactl", "pulseaudio-utils"})
	dir, err := os.MkdirTemp("", "hw-pw-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &pwServer{t: t, dir: dir}
	for _, d := range []string{"state", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	bus := "unix:path=" + filepath.Join(dir, "bus")
	s.env = append(os.Environ(), "XDG_RUNTIME_DIR="+dir, "HOME="+dir, "XDG_STATE_HOME="+filepath.Join(dir, "state"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "DBUS_SESSION_BUS_ADDRESS="+bus, "PIPEWIRE_RUNTIME_DIR="+dir,
		"DISPLAY=", "WAYLAND_DISPLAY=")
	s.dbus = exec.Command("dbus-daemon", "--session", "--address="+bus, "--nofork", "--nopidfile")
	s.dbus.Env = s.env
	s.dbus.Stderr = &lockedWriter{mu: &s.mu, w: &s.stderr}
	if err := s.dbus.Start(); err != nil {
		t.Fatalf("start dbus-daemon: %v", err)
	}
	t.Cleanup(func() { s.dbus.Process.Kill(); s.dbus.Wait() })
	waitFile(t, filepath.Join(dir, "bus"), 5*time.Second)
	t.Cleanup(s.kill)
	s.start()
	return s
}

func waitFile(t *testing.T, path string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %v", path, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *pwServer) Server() string { return "unix:" + filepath.Join(s.dir, "pulse", "native") }
func (s *pwServer) Dir() string    { return s.dir }

func (s *pwServer) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stderr.String()
}

func (s *pwServer) pactl(args ...string) (string, error) {
	cmd := exec.Command("pactl", append([]string{"-s", s.Server()}, args...)...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *pwServer) start() {
	s.t.Helper()
	t0 := time.Now()
	for _, name := range []string{"pipewire", "wireplumber", "pipewire-pulse"} {
		cmd := exec.Command(name)
		cmd.Env = s.env
		cmd.Dir = s.dir
		cmd.Stderr = &lockedWriter{mu: &s.mu, w: &s.stderr}
		if err := cmd.Start(); err != nil {
			s.t.Fatalf("start %s: %v", name, err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		s.mu.Lock()
		s.procs = append(s.procs, cmd)
		s.waits = append(s.waits, done)
		s.mu.Unlock()
		if name == "pipewire" {
			waitFile(s.t, filepath.Join(s.dir, "pipewire-0"), 5*time.Second)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := s.pactl("info"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("pipewire-pulse not answering after 10 s; log: %s", s.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, sink := range []string{"chan1", "chan2"} {
		if out, err := s.pactl("load-module", "module-null-sink", "sink_name="+sink, "rate=48000", "channels=1"); err != nil {
			s.t.Fatalf("null sink %s: %v %s", sink, err, out)
		}
	}
	// The sinks exist for pipewire-pulse once WirePlumber has seen them.
	for {
		out, _ := s.pactl("list", "short", "sinks")
		if strings.Contains(out, "chan1") && strings.Contains(out, "chan2") {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("null sinks not listed after 10 s: %s; log: %s", out, s.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Logf("pipewire + wireplumber + pipewire-pulse ready with two null sinks in %v", time.Since(t0).Round(time.Millisecond))
}

// kill SIGKILLs the three daemons (the session bus stays) and waits.
func (s *pwServer) kill() {
	s.mu.Lock()
	procs, waits := s.procs, s.waits
	s.procs, s.waits = nil, nil
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Process.Signal(syscall.SIGKILL)
		<-waits[i]
	}
	// A restarted pipewire must be able to bind its sockets again.
	for _, f := range []string{"pipewire-0", "pipewire-0.lock", "pipewire-0-manager", "pipewire-0-manager.lock"} {
		os.Remove(filepath.Join(s.dir, f))
	}
	os.RemoveAll(filepath.Join(s.dir, "pulse"))
}

// sinkInput returns pactl's description of the playback stream whose
// media.name is name ("" when there is none).
func sinkInput(srv soundServer, name string) string {
	out, _ := srv.pactl("list", "sink-inputs")
	for _, blk := range strings.Split(out, "\n\n") {
		if strings.Contains(blk, fmt.Sprintf("media.name = %q", name)) {
			return blk
		}
	}
	return ""
}

// volumePercent is the first "NN%" of the Volume: line of a pactl block.
func volumePercent(blk string) string {
	for _, l := range strings.Split(blk, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "Volume:") {
			continue
		}
		for _, f := range strings.Fields(l) {
			if strings.HasSuffix(f, "%") {
				return f
			}
		}
	}
	return "?"
}

// Two channels' volumes stay apart across a daemon restart under
// WirePlumber, which restores a stream's volume by its identity.
func TestPipeWireChannelVolumesStayApart(t *testing.T) {
	srv := startPipeWire(t)
	cfg := pulseConfig(srv)
	log := testLogger(t)
	open := func() (a, b Channel) {
		a, err := Open(cfg, ChannelConfig{Name: "a", Sink: "chan1", Source: "chan2.monitor"}, log)
		if err != nil {
			t.Fatal(err)
		}
		b, err = Open(cfg, ChannelConfig{Name: "b", Sink: "chan2", Source: "chan1.monitor"}, log)
		if err != nil {
			a.Close()
			t.Fatal(err)
		}
		newClock(440, a, b).run(200 * time.Millisecond)
		return a, b
	}
	waitInput := func(name string) string {
		deadline := time.Now().Add(5 * time.Second)
		for {
			if blk := sinkInput(srv, name); blk != "" {
				return blk
			}
			if time.Now().After(deadline) {
				out, _ := srv.pactl("list", "sink-inputs")
				t.Fatalf("no sink input %q: %s", name, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	a, b := open()
	blk := waitInput("telestra-sip a")
	var idx string
	fmt.Sscanf(strings.TrimSpace(blk), "Sink Input #%s", &idx)
	if out, err := srv.pactl("set-sink-input-volume", idx, "30%"); err != nil {
		t.Fatalf("set volume: %v %s", err, out)
	}
	// WirePlumber writes its state a moment after the change.
	state := filepath.Join(srv.Dir(), "state", "wireplumber", "restore-stream")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(state)
		if strings.Contains(string(b), "telestra-sipd.a") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("WirePlumber stored no state for channel a: %q", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	a.Close()
	b.Close()

	a, b = open()
	defer a.Close()
	defer b.Close()
	va, vb := volumePercent(waitInput("telestra-sip a")), volumePercent(waitInput("telestra-sip b"))
	t.Logf("after the restart: channel a %s, channel b %s", va, vb)
	if va != "30%" || vb != "100%" {
		st, _ := os.ReadFile(state)
		t.Fatalf("volumes after the restart: a %s (want 30%%), b %s (want 100%%); state:\n%s", va, vb, st)
	}
}
