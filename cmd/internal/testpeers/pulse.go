package testpeers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Pulse is a private PulseAudio server (no sound card, anonymous auth on its
// own unix socket) for audio tests.
type Pulse struct {
	t      testing.TB
	dir    string // short: it holds the socket
	logDir string
	socket string
	proc   *proc
	pactl  string
	bin    string // StartPulse's server: what Restart runs again
}

// StartPulse starts a PulseAudio server of its own and waits until pactl
// can talk to it. Add sinks with NullSink. Stopped in t.Cleanup.
func StartPulse(t testing.TB) *Pulse {
	t.Helper()
	bin := RequireBinary(t, "pulseaudio", "pulseaudio")
	p := &Pulse{t: t, pactl: RequireBinary(t, "pactl", "pulseaudio-utils"), bin: bin}
	RequireBinary(t, "parec", "pulseaudio-utils")
	dir, err := os.MkdirTemp("", "pa")
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	p.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	p.logDir = LogDir(t, "pulse")
	p.socket = filepath.Join(dir, "native")
	p.launch()
	return p
}

// launch starts the PulseAudio server on p.socket and waits until it answers.
func (p *Pulse) launch() {
	t := p.t
	t.Helper()
	pr, err := startProc("pulseaudio", p.dir, filepath.Join(p.logDir, "pulseaudio.log"),
		[]string{"XDG_RUNTIME_DIR=" + p.dir, "HOME=" + p.dir},
		p.bin, "-n", "--daemonize=no", "--use-pid-file=no", "--exit-idle-time=-1", "--disallow-exit",
		"--log-level=error", "--log-target=stderr",
		"--load=module-native-protocol-unix auth-anonymous=1 socket="+p.socket)
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	p.proc = pr
	t.Cleanup(func() {
		if err := pr.stop(3 * time.Second); err != nil {
			t.Errorf("testpeers: %v", err)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pr.exited() {
			t.Fatalf("testpeers: pulseaudio exited during start-up (%v); log:\n%s", pr.waitErr, tail(pr.logPath, 20))
		}
		if _, err := p.Pactl("info"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testpeers: pulseaudio not answering after 10 s; log:\n%s", tail(pr.logPath, 20))
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// Kill SIGKILLs the server, as a crash would, and waits until it is gone:
// its clients lose their connection. Restart brings it back.
func (p *Pulse) Kill() {
	p.t.Helper()
	if err := p.proc.signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("testpeers: %v", err)
	}
	<-p.proc.done
}

// Restart starts a killed StartPulse server again on the same socket,
// without the modules loaded since (add the sinks again).
func (p *Pulse) Restart() {
	p.t.Helper()
	if p.bin == "" || !p.proc.exited() {
		p.t.Fatalf("testpeers: Restart is for a killed StartPulse server")
	}
	p.launch()
}

// StartPipeWire starts RHEL 9's sound server instead: pipewire, wireplumber
// and pipewire-pulse, headless, with a private XDG_RUNTIME_DIR, HOME and
// XDG_STATE_HOME and a session D-Bus of their own (without one WirePlumber
// links nothing and playback times out). It speaks the PulseAudio protocol
// on dir/pulse/native, so every Pulse method works the same. Stopped in
// t.Cleanup.
func StartPipeWire(t testing.TB) *Pulse {
	t.Helper()
	bins := map[string]string{}
	for name, pkg := range map[string]string{"dbus-daemon": "dbus", "pipewire": "pipewire",
		"wireplumber": "wireplumber", "pipewire-pulse": "pipewire-pulse"} {
		bins[name] = RequireBinary(t, name, pkg)
	}
	p := &Pulse{t: t, pactl: RequireBinary(t, "pactl", "pulseaudio-utils")}
	RequireBinary(t, "parec", "pulseaudio-utils")
	dir, err := os.MkdirTemp("", "pw")
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, d := range []string{"state", "config"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatalf("testpeers: %v", err)
		}
	}
	p.dir = dir
	p.logDir = LogDir(t, "pipewire")
	p.socket = filepath.Join(dir, "pulse", "native")
	bus := filepath.Join(dir, "bus")
	env := []string{"XDG_RUNTIME_DIR=" + dir, "HOME=" + dir, "XDG_STATE_HOME=" + filepath.Join(dir, "state"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"), "DBUS_SESSION_BUS_ADDRESS=unix:path=" + bus,
		"PIPEWIRE_RUNTIME_DIR=" + dir, "DISPLAY=", "WAYLAND_DISPLAY="}
	var procs []*proc
	t.Cleanup(func() {
		for i := len(procs) - 1; i >= 0; i-- {
			if err := procs[i].stop(3 * time.Second); err != nil {
				t.Errorf("testpeers: %v", err)
			}
		}
	})
	wait := func(what string, ok func() bool) {
		deadline := time.Now().Add(10 * time.Second)
		for !ok() {
			for _, pr := range procs {
				if pr.exited() {
					t.Fatalf("testpeers: %s exited during start-up (%v); log:\n%s", pr.name, pr.waitErr, tail(pr.logPath, 20))
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("testpeers: %s not ready after 10 s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	exists := func(path string) func() bool {
		return func() bool { _, err := os.Stat(path); return err == nil }
	}
	for _, c := range []struct {
		name  string
		args  []string
		ready func() bool
	}{
		{"dbus-daemon", []string{"--session", "--address=unix:path=" + bus, "--nofork", "--nopidfile"}, exists(bus)},
		{"pipewire", nil, exists(filepath.Join(dir, "pipewire-0"))},
		{"wireplumber", nil, func() bool { return true }},
		{"pipewire-pulse", nil, func() bool { _, err := p.Pactl("info"); return err == nil }},
	} {
		pr, err := startProc(c.name, dir, filepath.Join(p.logDir, c.name+".log"), env, bins[c.name], c.args...)
		if err != nil {
			t.Fatalf("testpeers: %v", err)
		}
		procs = append(procs, pr)
		wait(c.name, c.ready)
	}
	p.proc = procs[len(procs)-1]
	return p
}

// Server is the PULSE_SERVER value ("unix:/.../native"), also what the
// plan's [audio] pulse-server takes.
func (p *Pulse) Server() string { return "unix:" + p.socket }

// PipeWireEnv is the environment a native PipeWire client (pw-link,
// pw-record) needs to reach a server from StartPipeWire.
func (p *Pulse) PipeWireEnv() []string {
	return []string{"XDG_RUNTIME_DIR=" + p.dir, "PIPEWIRE_RUNTIME_DIR=" + p.dir}
}

// Env is the environment a client process needs to reach this server.
func (p *Pulse) Env() []string {
	return []string{"PULSE_SERVER=" + p.Server(), "PULSE_RUNTIME_PATH=" + p.dir}
}

// Pactl runs pactl against this server.
func (p *Pulse) Pactl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.pactl, args...)
	cmd.Env = append(os.Environ(), p.Env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("pactl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// LoadModule loads a module and returns its index.
func (p *Pulse) LoadModule(name string, args ...string) int {
	p.t.Helper()
	out, err := p.Pactl(append([]string{"load-module", name}, args...)...)
	if err != nil {
		p.t.Fatalf("testpeers: %v", err)
	}
	idx, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		p.t.Fatalf("testpeers: load-module %s: unexpected output %q", name, out)
	}
	return idx
}

// NullSink creates a null sink NAME (48 kHz mono s16); its monitor source
// is NAME.monitor.
func (p *Pulse) NullSink(name string) {
	p.t.Helper()
	p.LoadModule("module-null-sink", "sink_name="+name, "rate=48000", "channels=1", "format=s16le")
	// pipewire-pulse lists a new sink once its session manager has seen it.
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := p.Pactl("list", "short", "sinks")
		if err == nil && strings.Contains(out, "\t"+name+"\t") {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("testpeers: null sink %s not listed after 5 s: %s", name, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Loopback copies source into sink continuously (module-loopback), e.g. a
// null sink's monitor into a second sink, so what is played comes back as
// capture on that sink's monitor.
func (p *Pulse) Loopback(source, sink string) {
	p.t.Helper()
	p.LoadModule("module-loopback", "source="+source, "sink="+sink, "latency_msec=20", "source_dont_move=true", "sink_dont_move=true")
}

// Recording is a running parec.
type Recording struct {
	p    *Pulse
	path string
	rate int
	proc *proc
}

// Record starts recording source (e.g. "chan1.monitor") at rate, mono s16.
func (p *Pulse) Record(source string, rate int) *Recording {
	p.t.Helper()
	parec := RequireBinary(p.t, "parec", "pulseaudio-utils")
	path := filepath.Join(p.logDir, "rec-"+strings.ReplaceAll(source, "/", "_")+"-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".raw")
	// parec writes raw samples to stdout; startProc sends stdout to the file.
	pr, err := startProc("parec "+source, p.dir, path, p.Env(), parec,
		"-d", source, "--raw", "--rate="+strconv.Itoa(rate), "--channels=1", "--format=s16le", "--latency-msec=20")
	if err != nil {
		p.t.Fatalf("testpeers: %v", err)
	}
	r := &Recording{p: p, path: path, rate: rate, proc: pr}
	p.t.Cleanup(func() { _ = pr.stop(2 * time.Second) })
	return r
}

// Audio returns what has been recorded so far (the recording goes on).
func (r *Recording) Audio() Audio {
	b, err := os.ReadFile(r.path)
	if err != nil {
		r.p.t.Fatalf("testpeers: %v", err)
	}
	b = b[:len(b)&^1]
	return Audio{Rate: r.rate, Samples: s16ToMono(b, 1)}
}

// Stop ends the recording and returns everything recorded.
func (r *Recording) Stop() Audio {
	_ = r.proc.stop(2 * time.Second)
	return r.Audio()
}

// WriteAsoundrc writes $home/.asoundrc with one ALSA PCM per entry, each
// routed to a PulseAudio device of this server through ALSA's pulse plugin
// (libasound2-plugins): pcm NAME { type pulse; device DEVICE }.
func (p *Pulse) WriteAsoundrc(home string, pcms map[string]string) {
	p.t.Helper()
	if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so"); err != nil {
		if m, _ := filepath.Glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so"); len(m) == 0 {
			p.t.Fatalf("testpeers: ALSA pulse plugin missing: install the Debian package \"libasound2-plugins\" (as root: .ci/deps)")
		}
	}
	var b strings.Builder
	for name, dev := range pcms {
		fmt.Fprintf(&b, "pcm.%s {\n\ttype pulse\n\tdevice %q\n\tserver %q\n}\n", name, dev, p.Server())
	}
	if err := os.WriteFile(filepath.Join(home, ".asoundrc"), []byte(b.String()), 0o644); err != nil {
		p.t.Fatalf("testpeers: %v", err)
	}
}
