//go:build integration

package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// metricValue is the value of the series of name whose channel label is
// channel (and direction, when given), and whether the registry has it.
func metricValue(t *testing.T, d *Daemon, name, channel, direction string) (float64, bool) {
	t.Helper()
	mfs, err := d.metrics.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if (l.GetName() == "channel" && l.GetValue() != channel) || (l.GetName() == "direction" && l.GetValue() != direction) {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// A pulse channel whose sound server crashes shows connected 0 in the
// metrics and get-status, then connected 1 and one reconnect once the
// server is back: the daemon reports the channel's own counters.
func TestPulseChannelHealthAcrossServerRestart(t *testing.T) {
	pa := testpeers.StartPulse(t)
	pa.NullSink("desk1")
	planPath := filepath.Join(t.TempDir(), "sipplan.toml")
	apiPort, sipPort := freePort(t), freePort(t)
	body := fmt.Sprintf("[tcp-settings]\naddress = \"127.0.0.1\"\nport = %d\n[sip-settings]\naddress = \"127.0.0.1\"\nport = %d\n"+
		"[rtp-settings]\nport-min = 42100\nport-max = 42199\n[audio]\nbackend = \"pulse\"\npulse-server = %q\n"+
		"[audio.channels.ch1]\nsink = \"desk1\"\nsource = \"desk1.monitor\"\n"+
		"[accounts.account-1]\nuser = \"3001\"\nserver = \"\"\nregister = false\nchannel = \"ch1\"\n", apiPort, sipPort, pa.Server())
	if err := os.WriteFile(planPath, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	n := &recNotifier{}
	d := newDaemon(Options{PlanPath: planPath, Plan: p, Log: discardLogger(), Notifier: n})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	waitUntil(t, "READY=1", func() bool { return n.count("READY=1") == 1 })
	cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
	defer ccancel()
	c, err := client.Dial(cctx, fmt.Sprintf("127.0.0.1:%d", apiPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	// waitFor polls the metrics for ch1's name series (with direction, for
	// the by-direction ones) until it reads want.
	waitFor := func(name string, want float64, within time.Duration) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			v, ok := metricValue(t, d, name, "ch1", "")
			if ok && v == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s{channel=\"ch1\"} = %v (present %t) after %v, want %v", name, v, ok, within, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	status := func() (connected bool, reconnects uint64) {
		t.Helper()
		sts, err := c.GetStatus(cctx, "account-1")
		if err != nil || len(sts) != 1 || sts[0].Audio == nil || sts[0].Audio.Channel != "ch1" || sts[0].Audio.Backend != "pulse" {
			t.Fatalf("get-status: %+v, %v; want the audio of ch1 (pulse)", sts, err)
		}
		return sts[0].Audio.Connected, sts[0].Audio.Reconnects
	}

	waitFor("telestra_sipd_audio_connected", 1, time.Second)
	waitFor("telestra_sipd_audio_reconnects_total", 0, 0)
	if ok, _ := status(); !ok {
		t.Fatal("get-status: ch1 not connected after the start")
	}
	margin, _ := metricValue(t, d, "telestra_sipd_audio_margin_seconds", "ch1", "playback")

	start := time.Now()
	pa.Kill()
	waitFor("telestra_sipd_audio_connected", 0, 2*time.Second)
	t.Logf("connected 0 %v after the kill", time.Since(start).Round(time.Millisecond))
	if ok, _ := status(); ok {
		t.Error("get-status: ch1 connected with its server gone")
	}

	start = time.Now()
	pa.Restart()
	pa.NullSink("desk1")
	waitFor("telestra_sipd_audio_connected", 1, 8*time.Second)
	waitFor("telestra_sipd_audio_reconnects_total", 1, 0)
	t.Logf("connected 1 %v after the restart", time.Since(start).Round(time.Millisecond))
	if ok, r := status(); !ok || r != 1 {
		t.Errorf("get-status after the restart: connected %t, reconnects %d; want true, 1", ok, r)
	}
	if m, ok := metricValue(t, d, "telestra_sipd_audio_margin_seconds", "ch1", "playback"); !ok || m <= 0 {
		t.Errorf("playback margin %v s (present %t) after the restart; was %v s", m, ok, margin)
	}
}
