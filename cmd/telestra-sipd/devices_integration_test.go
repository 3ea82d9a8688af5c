//go:build integration

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// -check -devices opens every channel on a real PulseAudio: a plan whose
// sink exists passes, one naming a missing sink fails with the channel, the
// backend and the device (what ExecStartPre shows in systemctl status).
func TestCheckDevicesPulse(t *testing.T) {
	pa := testpeers.StartPulse(t)
	pa.NullSink("desk1")
	dir := t.TempDir()
	write := func(name, channels string) string {
		path := filepath.Join(dir, name)
		body := fmt.Sprintf("[audio]\nbackend = \"pulse\"\npulse-server = %q\n%s[accounts.a]\nuser = \"1\"\nchannel = \"ch1\"\n", pa.Server(), channels)
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	good := write("good.toml", "[audio.channels.ch1]\nsink = \"desk1\"\nsource = \"desk1.monitor\"\n")
	bad := write("bad.toml", "[audio.channels.ch1]\nsink = \"desk1\"\nsource = \"desk1.monitor\"\n[audio.channels.ch2]\nsink = \"no-such-sink\"\n")
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr []string
	}{
		{name: "devices present", args: []string{"-check", "-devices", "-plan", good}, wantStdout: "OK\n"},
		{name: "sink missing", args: []string{"-check", "-devices", "-plan", bad}, wantCode: 1,
			wantStderr: []string{bad + ": audio.channels.ch2 (pulse backend, sink=no-such-sink source=default): ", "no-such-sink"}},
		{name: "without -devices the plan alone is checked", args: []string{"-check", "-plan", bad}, wantStdout: "OK\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			if code != tc.wantCode || out.String() != tc.wantStdout {
				t.Fatalf("exit %d stdout %q, want %d %q; stderr:\n%s", code, out.String(), tc.wantCode, tc.wantStdout, errb.String())
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
			if strings.Contains(errb.String(), "ch1") {
				t.Errorf("stderr names the channel that opened:\n%s", errb.String())
			}
		})
	}
}
