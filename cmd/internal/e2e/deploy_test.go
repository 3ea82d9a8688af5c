//go:build integration

package e2e

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

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// setKeys returns the TOML text with the values of the given keys
// ("table.key") replaced, comments of those lines dropped; every key must
// be in the text, so the example file cannot drift from what the test sets.
func setKeys(t *testing.T, text string, values map[string]string) string {
	t.Helper()
	lines := strings.Split(text, "\n")
	table := ""
	seen := map[string]bool{}
	for i, l := range lines {
		s := strings.TrimSpace(l)
		if strings.HasPrefix(s, "[") {
			table = strings.Trim(s, "[]")
			continue
		}
		k, _, ok := strings.Cut(s, "=")
		if !ok || strings.HasPrefix(s, "#") {
			continue
		}
		key := table + "." + strings.TrimSpace(k)
		if v, ok := values[key]; ok {
			lines[i] = strings.TrimSpace(k) + " = " + v
			seen[key] = true
		}
	}
	for k := range values {
		if !seen[k] {
			t.Fatalf("the example plan has no %s", k)
		}
	}
	return strings.Join(lines, "\n")
}

// quiet fails the test if the daemon logged a warning or an error: normal
// operation logs none.
func quiet(t *testing.T, d *testpeers.Daemon) {
	t.Helper()
	for _, l := range strings.Split(d.Log(), "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
			t.Errorf("normal operation logged: %s", l)
		}
	}
}

// startKamailioExample runs testdata/deploy/kamailio.toml against the
// tests' Kamailio, with PulseAudio devices of the example's names.
func startKamailioExample(t *testing.T) (*testpeers.Kamailio, *testpeers.Pulse, *testpeers.Daemon) {
	t.Helper()
	k := testpeers.StartKamailio(t, testpeers.KamailioOptions{})
	pa := testpeers.StartPulse(t)
	for _, n := range []string{"headset-1", "headset-2"} {
		pa.NullSink("alsa_output." + n)
		pa.LoadModule("module-null-source", "source_name=alsa_input."+n, "rate=48000", "channels=1")
	}
	raw, err := os.ReadFile(filepath.Join(testpeers.RepoRoot(t), "testdata", "deploy", "kamailio.toml"))
	if err != nil {
		t.Fatal(err)
	}
	rtpMin, rtpMax := testpeers.FreeRTPRange(t, 40)
	text := setKeys(t, string(raw), map[string]string{
		"tcp-settings.port":          strconv.Itoa(testpeers.FreePort(t)),
		"sip-settings.address":       `"127.0.0.1"`,
		"sip-settings.port":          strconv.Itoa(testpeers.FreePort(t)),
		"rtp-settings.port-min":      strconv.Itoa(rtpMin),
		"rtp-settings.port-max":      strconv.Itoa(rtpMax),
		"audio.pulse-server":         q(pa.Server()),
		"accounts.position-1.server": q(k.Addr()),
		"accounts.position-2.server": q(k.Addr()),
	})
	return k, pa, testpeers.StartDaemonWith(t, text, testpeers.DaemonOptions{Env: pa.Env()})
}

// The audio check procedure of docs/audio.md, step by step with the same
// tools (pactl, parecord, sox) on the Kamailio example: a 1 kHz test
// source replaces position 1's microphone by a reload, and what position 2
// plays to its headset is recorded from the sink's monitor and measured.
func TestAudioCheckProcedure(t *testing.T) {
	parecord := testpeers.RequireBinary(t, "parecord", "pulseaudio-utils")
	sox := testpeers.RequireBinary(t, "sox", "sox")
	timeout := testpeers.RequireBinary(t, "timeout", "coreutils")
	_, pa, d := startKamailioExample(t)
	c := d.Client(t)
	waitRegistered(t, c, "position-1", 200)
	waitRegistered(t, c, "position-2", 200)

	// 1. The test source, and the plan pointed at it.
	pa.LoadModule("module-sine-source", "source_name=check_1k", "frequency=1000")
	b, err := os.ReadFile(d.PlanPath())
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(b), `source = "alsa_input.headset-1"`, `source = "check_1k"`, 1)
	if err := os.WriteFile(d.PlanPath(), []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := c.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Changes) != 1 || r.Changes[0].Text != `audio.channels.position-1.source = "alsa_input.headset-1" → "check_1k"` || r.Changes[0].Restart {
		t.Fatalf("reload changes %+v", r.Changes)
	}

	// 2. The call.
	out, in := callAcross(t, c, ctx, "position-1", "3002", "position-2")
	waitCall(t, c, "position-2", in.CallID, "media flowing", func(cl api.Call) bool { return cl.PacketsReceived > 25 })

	// 3. Record position 2's headset and measure.
	wav := filepath.Join(t.TempDir(), "position-2.wav")
	// timeout(1) ends parecord with SIGTERM, as in the documented command;
	// exit status 124 is that time-out. Without --latency-msec parecord asks
	// for the server's default fragment (2 s on PulseAudio), and a slow start
	// left it with nothing written when the time-out came.
	rec := exec.Command(timeout, "5", parecord, "--latency-msec=100", "-d", "alsa_output.headset-2.monitor", "--rate=8000", "--channels=1", "--file-format=wav", wav)
	rec.Env = append(os.Environ(), pa.Env()...)
	if out, err := rec.CombinedOutput(); err != nil && rec.ProcessState.ExitCode() != 124 {
		t.Fatalf("parecord: %v\n%s", err, out)
	}
	stat, err := exec.Command(sox, wav, "-n", "stat").CombinedOutput()
	if err != nil {
		t.Fatalf("sox: %v\n%s", err, stat)
	}
	freq, rms := soxStat(t, string(stat), "Rough   frequency"), soxStat(t, string(stat), "RMS     amplitude")
	t.Logf("position 2 hears: rough frequency %.0f Hz, RMS amplitude %.3f", freq, rms)
	if freq < 950 || freq > 1050 || rms < 0.01 {
		t.Fatalf("position 2 does not hear the 1 kHz tone: sox stat says\n%s", stat)
	}
	if err := c.HangupCall(ctx, "position-1", out, false); err != nil {
		t.Fatal(err)
	}
}

// soxStat reads one value of `sox FILE -n stat`.
func soxStat(t *testing.T, out, name string) float64 {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, name); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":")), 64)
			if err == nil {
				return f
			}
		}
	}
	t.Fatalf("sox stat has no %q:\n%s", name, out)
	return 0
}

// The Kamailio deployment example of docs/deploy-kamailio.md, run as is
// against the Kamailio configuration of testdata/kamailio with a
// system-wide-style PulseAudio: both positions register, call each other
// through the registrar (the caller's client leaves right after
// call-return, as telestra-sipctl call does), and the daemon stops during
// a call; nothing of it is a warning.
func TestDeployKamailioExample(t *testing.T) {
	_, _, d := startKamailioExample(t)
	c := d.Client(t)
	waitRegistered(t, c, "position-1", 200)
	waitRegistered(t, c, "position-2", 200)

	// telestra-sipctl call: connect, make-call, leave at call-return.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cli, err := client.Dial(ctx, d.APIAddr())
	if err != nil {
		t.Fatal(err)
	}
	out, err := cli.MakeCall(ctx, "position-1", "3002")
	cli.Close()
	if err != nil {
		t.Fatal(err)
	}
	in := wait(t, c, 10*time.Second, "call-incoming on position-2", event(api.EventCallIncoming, "position-2", -1))
	if in.Caller != "3001" {
		t.Errorf("caller %q, want 3001", in.Caller)
	}
	if err := c.AnswerCall(ctx, "position-2", in.CallID); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 10*time.Second, "call-answered of the caller", event(api.EventCallAnswered, "position-1", out))
	waitCall(t, c, "position-1", out, "media flowing", func(cl api.Call) bool { return cl.PacketsReceived > 10 })

	if err := c.HangupCall(ctx, "position-1", out, false); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 10*time.Second, "call-ended of the callee", event(api.EventCallEnded, "position-2", in.CallID))
	wait(t, c, 10*time.Second, "call-ended of the caller", event(api.EventCallEnded, "position-1", out))
	// Hanging up an ended call says so.
	err = c.HangupCall(ctx, "position-1", out, false)
	if want := fmt.Sprintf("call_id %d of account \"position-1\" has already ended", out); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("hangup of the ended call: %v, want %q", err, want)
	}

	// A stop during a call ends it (BYE) and un-registers, quietly.
	callAcross(t, c, ctx, "position-2", "3001", "position-1")
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(5 * time.Second); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}
	quiet(t, d)
}

// The README quick start: a call to the account itself is refused with a
// message that says what to dial instead, a local call between the two
// accounts works, and stopping during it logs no warning (both ends' BYEs
// cross on loopback).
func TestQuickstartIsQuiet(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testpeers.RepoRoot(t), "testdata", "quickstart.toml"))
	if err != nil {
		t.Fatal(err)
	}
	rtpMin, rtpMax := testpeers.FreeRTPRange(t, 40)
	text := setKeys(t, string(raw), map[string]string{
		"tcp-settings.port":     strconv.Itoa(testpeers.FreePort(t)),
		"sip-settings.port":     strconv.Itoa(testpeers.FreePort(t)),
		"rtp-settings.port-min": strconv.Itoa(rtpMin),
		"rtp-settings.port-max": strconv.Itoa(rtpMax),
	})
	d := testpeers.StartDaemon(t, text)
	c := d.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	_, err = c.MakeCall(ctx, "account-1", "3001")
	want := `account "account-1" cannot call itself ("3001" is its own user); call the user of another account of this daemon: 3002 (account-2); or a full sip: URI`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("call to itself: %v\nwant %q", err, want)
	}
	out, _ := callAcross(t, c, ctx, "account-1", "3002", "account-2")
	waitCall(t, c, "account-1", out, "media flowing", func(cl api.Call) bool { return cl.PacketsReceived > 10 })
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(5 * time.Second); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}
	quiet(t, d)
}
