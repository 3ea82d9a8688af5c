//go:build integration

package e2e

import (
	"context"
	"fmt"
	"os"
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

// The Kamailio deployment example of docs/deploy-kamailio.md, run as is
// against the Kamailio configuration of testdata/kamailio with a
// system-wide-style PulseAudio: both positions register, call each other
// through the registrar (the caller's client leaves right after
// call-return, as telestra-sipctl call does), and the daemon stops during
// a call; nothing of it is a warning.
func TestDeployKamailioExample(t *testing.T) {
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
	d := testpeers.StartDaemonWith(t, text, testpeers.DaemonOptions{Env: pa.Env()})
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
	out2, err := c.MakeCall(ctx, "position-2", "3001")
	if err != nil {
		t.Fatal(err)
	}
	in2 := wait(t, c, 10*time.Second, "second call-incoming", event(api.EventCallIncoming, "position-1", -1))
	if err := c.AnswerCall(ctx, "position-1", in2.CallID); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 10*time.Second, "second call answered", event(api.EventCallAnswered, "position-2", out2))
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
	out, err := c.MakeCall(ctx, "account-1", "3002")
	if err != nil {
		t.Fatal(err)
	}
	in := wait(t, c, 10*time.Second, "call-incoming", event(api.EventCallIncoming, "account-2", -1))
	if err := c.AnswerCall(ctx, "account-2", in.CallID); err != nil {
		t.Fatal(err)
	}
	wait(t, c, 10*time.Second, "call-answered", event(api.EventCallAnswered, "account-1", out))
	waitCall(t, c, "account-1", out, "media flowing", func(cl api.Call) bool { return cl.PacketsReceived > 10 })
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(5 * time.Second); err != nil {
		t.Fatalf("daemon exit: %v", err)
	}
	quiet(t, d)
}
