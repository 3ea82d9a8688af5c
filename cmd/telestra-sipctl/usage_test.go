package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Help, usage errors and unknown commands: the right stream and exit code,
// and never an address lookup (the plan given does not exist, so a lookup
// would end in "no API address" and exit 2).
func TestUsage(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.toml")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		stdout   []string // substrings; nil: stdout must be empty
		stderr   []string // substrings; nil: stderr must be empty
	}{
		{name: "-h", args: []string{"-h"}, stdout: []string{"usage: telestra-sipctl [OPTIONS] COMMAND", "reload", "exit status:"}},
		{name: "--help", args: []string{"--help"}, stdout: []string{"usage: telestra-sipctl [OPTIONS] COMMAND"}},
		{name: "help", args: []string{"help"}, stdout: []string{"usage: telestra-sipctl [OPTIONS] COMMAND", "help [COMMAND]"}},
		{name: "help with -plan", args: []string{"-plan", missing, "help"}, stdout: []string{"commands:"}},
		{name: "help COMMAND", args: []string{"help", "hangup"}, stdout: []string{"usage: telestra-sipctl [OPTIONS] hangup [--decline] ACCOUNT CALL_ID"}},
		{name: "COMMAND -h", args: []string{"status", "-h"}, stdout: []string{"usage: telestra-sipctl [OPTIONS] status [--json] [ACCOUNT]", "--json prints"}},
		{name: "call -h", args: []string{"-plan", missing, "call", "-h"}, stdout: []string{"usage: telestra-sipctl [OPTIONS] call ACCOUNT NUM"}},
		{name: "COMMAND --help after args", args: []string{"hangup", "a", "1", "--help"}, stdout: []string{"hangup [--decline] ACCOUNT CALL_ID"}},
		{name: "reload -h", args: []string{"reload", "-h"}, stdout: []string{"ExecReload"}},
		{name: "version flag", args: []string{"-version"}, stdout: []string{"telestra-sipctl dev\n"}},
		{name: "no command", args: nil, wantCode: 64, stderr: []string{"no command given; the commands are status, events,", "Run 'telestra-sipctl -h'"}},
		{name: "typo", args: []string{"-plan", missing, "stauts"}, wantCode: 64, stderr: []string{`unknown command "stauts": did you mean "status"?`}},
		{name: "API name", args: []string{"get-status"}, wantCode: 64, stderr: []string{`unknown command "get-status": did you mean "status"?`}},
		{name: "unknown", args: []string{"frobnicate"}, wantCode: 64, stderr: []string{`unknown command "frobnicate"; the commands are`}},
		{name: "help unknown", args: []string{"help", "frob"}, wantCode: 64, stderr: []string{`unknown command "frob"`}},
		{name: "bad flag", args: []string{"-bogus", "status"}, wantCode: 64, stderr: []string{"flag provided but not defined: -bogus"}},
		{name: "bad command flag", args: []string{"-plan", missing, "status", "--jsno"}, wantCode: 64,
			stderr: []string{"status: flag provided but not defined: -jsno", "usage: telestra-sipctl status [--json] [ACCOUNT]"}},
		{name: "too many args", args: []string{"-plan", missing, "logout", "a", "b"}, wantCode: 64, stderr: []string{"logout: needs ACCOUNT"}},
		{name: "bad call id", args: []string{"-plan", missing, "hangup", "a", "-1"}, wantCode: 64, stderr: []string{"flag provided but not defined: -1"}},
		{name: "bad call id text", args: []string{"-plan", missing, "switch", "a", "one"}, wantCode: 64, stderr: []string{`CALL_ID "one" is not a call ID`}},
		{name: "addr and plan", args: []string{"-addr", "127.0.0.1:1", "status", "-plan", "x"}, wantCode: 64, stderr: []string{"give -addr or -plan, not both"}},
		{name: "bad addr", args: []string{"status", "-addr", "localhost"}, wantCode: 64, stderr: []string{`-addr "localhost": want HOST:PORT`}},
		{name: "bad timeout", args: []string{"status", "-timeout", "0s"}, wantCode: 64, stderr: []string{"-timeout 0s: must be positive"}},
		{name: "lookup only when connecting", args: []string{"-plan", missing, "status"}, wantCode: 2, stderr: []string{"no API address: read SIP plan", "none.toml"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runOpts(context.Background(), tc.args, &out, &errb, func(c *cli) {
				c.runtimeFile, c.defaultPlan = missing, missing
			})
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, out.String(), errb.String())
			}
			for _, s := range []struct {
				name string
				got  string
				want []string
			}{{"stdout", out.String(), tc.stdout}, {"stderr", errb.String(), tc.stderr}} {
				if s.want == nil && s.got != "" {
					t.Errorf("%s %q, want nothing", s.name, s.got)
				}
				for _, w := range s.want {
					if !strings.Contains(s.got, w) {
						t.Errorf("%s %q lacks %q", s.name, s.got, w)
					}
				}
			}
		})
	}
}

// Without -addr or -plan the CLI finds the daemon through the runtime file,
// else the default plan, else 127.0.0.1:3550; it never needs the plan.
func TestAddressLookup(t *testing.T) {
	s, ctrl := startServer(t)
	dir := t.TempDir()
	runtime := filepath.Join(dir, "api-address")
	missing := filepath.Join(dir, "none")
	if err := os.WriteFile(runtime, []byte(s.Addr().String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	port := s.Addr().(*net.TCPAddr).Port
	planPath := filepath.Join(dir, "sipplan.toml")
	if err := os.WriteFile(planPath, []byte(fmt.Sprintf("[tcp-settings]\nport = %d\n[accounts.a]\nuser = \"1\"\n", port)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name             string
		runtime, defPlan string
		wantCode         int
		wantErr          string
	}{
		{name: "runtime file", runtime: runtime, defPlan: missing},
		{name: "default plan when no runtime file", runtime: missing, defPlan: planPath},
		{name: "runtime file wins", runtime: runtime, defPlan: filepath.Join(dir)},
		{name: "fallback", runtime: missing, defPlan: missing, wantCode: 2,
			wantErr: "127.0.0.1:3550 is the default, as " + missing + " (written by telestra-sipd under systemd) is missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runOpts(context.Background(), []string{"-timeout", "1s", "call", "account-1", "7"}, &out, &errb, func(c *cli) {
				c.runtimeFile, c.defaultPlan = tc.runtime, tc.defPlan
			})
			if code != tc.wantCode || !strings.Contains(errb.String(), tc.wantErr) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errb.String(), tc.wantCode, tc.wantErr)
			}
			if code == 0 && (out.String() != "42\n" || ctrl.last() != "make-call account-1 7") {
				t.Fatalf("stdout %q, controller %q", out.String(), ctrl.last())
			}
		})
	}
}

// A plan the operator may not read says why and what to do instead (the
// tests run as root in CI, where no file is unreadable, so the error is
// made here).
func TestPlanPermissionHint(t *testing.T) {
	err := explainPlanErr(fmt.Errorf("read SIP plan: %w", &fs.PathError{Op: "open", Path: "/etc/telestra/sipplan.toml", Err: fs.ErrPermission}))
	if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "leave -plan out to use /run/telestra-sip/api-address, or give -addr HOST:PORT") {
		t.Fatalf("got %v", err)
	}
}
