package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFlags(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[tcp-settings]\nprot = 1\n[rtp-settings]\nport-min = 17001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	warn := filepath.Join(dir, "warn.toml")
	if err := os.WriteFile(warn, []byte("[audio.channels.ch1]\nsink = \"usb\"\n[accounts.a]\nuser = \"1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr []string
	}{
		{name: "version", args: []string{"-version"}, wantCode: 0, wantStdout: "telestra-sipd "},
		{name: "check quick-start plan", args: []string{"-check", "-plan", "../../testdata/quickstart.toml"}, wantCode: 0, wantStdout: "OK\n"},
		{name: "check packaged default", args: []string{"-check", "-plan", "../../packaging/sipplan.toml"}, wantCode: 0, wantStdout: "OK\n"},
		{name: "check reports every problem", args: []string{"-check", "-plan", bad}, wantCode: 1,
			wantStderr: []string{"tcp-settings.prot", "rtp-settings.port-min", bad + ":2"}},
		{name: "check missing file", args: []string{"-check", "-plan", filepath.Join(dir, "none.toml")}, wantCode: 1,
			wantStderr: []string{"none.toml"}},
		{name: "start on an invalid plan exits 78 with every problem", args: []string{"-plan", bad}, wantCode: 78,
			wantStderr: []string{"level=ERROR", "SIP plan invalid: " + bad + ":2", "rtp-settings.port-min"}},
		{name: "check warns about settings without effect", args: []string{"-check", "-plan", warn}, wantCode: 0, wantStdout: "OK (1 warning)\n",
			wantStderr: []string{warn + `:2: audio.channels.ch1.sink: warning: ignored: the backend is "loopback", the default`}},
		{name: "stray argument", args: []string{"extra"}, wantCode: 64, wantStderr: []string{`unexpected argument "extra"`, "telestra-sipd -h"}},
		{name: "plan without -plan", args: []string{"-check", "my.toml"}, wantCode: 64,
			wantStderr: []string{`unexpected argument "my.toml": give the plan with -plan, e.g. telestra-sipd -check -plan my.toml`}},
		{name: "devices without check", args: []string{"-devices"}, wantCode: 64, wantStderr: []string{"-devices only goes with -check"}},
		{name: "debug endpoint not loopback", args: []string{"-debug-addr", "0.0.0.0:0", "-plan", "../../testdata/quickstart.toml"}, wantCode: 1,
			wantStderr: []string{"only loopback"}},
		{name: "unknown flag", args: []string{"-bogus"}, wantCode: 64, wantStderr: []string{"bogus"}},
		{name: "help", args: []string{"-h"}, wantCode: 0, wantStdout: "usage: telestra-sipd [-plan FILE]\n"},
		{name: "help long", args: []string{"--help"}, wantCode: 0, wantStdout: "usage: telestra-sipd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, &out, &errb)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tc.wantCode, errb.String())
			}
			if !strings.HasPrefix(out.String(), tc.wantStdout) || tc.wantStdout == "" && out.Len() > 0 {
				t.Errorf("stdout %q, want prefix %q", out.String(), tc.wantStdout)
			}
			if tc.wantStderr == nil && errb.Len() > 0 {
				t.Errorf("stderr %q, want nothing", errb.String())
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr %q lacks %q", errb.String(), w)
				}
			}
		})
	}
}
