package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/cmd/internal/daemon"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
)

type nopNotifier struct{}

func (nopNotifier) Notify(string) error { return nil }

func freeTCPUDPPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port >= 42200 && port <= 42299 {
			continue // reloadBase's RTP range: the plan would not validate
		}
		if u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

const reloadBase = `[tcp-settings]
address = "127.0.0.1"
port = %d
[sip-settings]
address = "127.0.0.1"
port = %d
[rtp-settings]
port-min = 42200
port-max = 42299
[accounts.account-1]
user = "3001"
register = false
%s`

// startDaemon runs the real daemon (loopback audio) on a plan in a temporary
// file until the test ends; it returns the plan's path and the API address.
func startDaemon(t *testing.T) (path, addr string, write func(extra string)) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "sipplan.toml")
	apiPort, sipPort := freeTCPUDPPort(t), freeTCPUDPPort(t)
	write = func(extra string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(fmt.Sprintf(reloadBase, apiPort, sipPort, extra)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("")
	p, err := plan.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- daemon.Run(ctx, daemon.Options{PlanPath: path, Plan: p,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Notifier: nopNotifier{}})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	})
	addr = fmt.Sprintf("127.0.0.1:%d", apiPort)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("daemon not listening: %v", err)
		}
	}
	return path, addr, write
}

// `telestra-sipctl reload` against the real daemon: what it prints where,
// and its exit code, for the unit's ExecReload.
func TestReloadCLI(t *testing.T) {
	path, addr, write := startDaemon(t)
	closed := freeTCPUDPPort(t)
	tests := []struct {
		name       string
		extra      string // appended to the plan; "!" + text: the whole file
		args       []string
		wantCode   int
		wantStdout string
		wantStderr []string
	}{
		{name: "nothing changed", wantCode: 0, wantStdout: "reloaded " + path + ": nothing changed\n"},
		{name: "applied with a summary", extra: "server = \"127.0.0.1:5999\"\n",
			// A server makes the account accept out-of-dialog requests from it
			// only: the summary says so.
			wantCode: 0, wantStdout: "reloaded " + path + ": 2 changes\n" +
				"  accounts.account-1.server = \"\" → \"127.0.0.1:5999\"\n" +
				"  accounts.account-1.accept-from = \"any\" → \"server\"\n"},
		{name: "warnings go to stderr", extra: "server = \"127.0.0.1:5999\"\n[audio.channels.ch1]\nsink = \"usb\"\n",
			wantCode: 0, wantStdout: "reloaded " + path + ": 1 change\n  audio.channels.ch1.sink = \"\" → \"usb\"\n",
			wantStderr: []string{"telestra-sipctl: warning: " + path + ":15: audio.channels.ch1.sink: ignored: the backend is \"loopback\""}},
		{name: "rejected with every problem", extra: "!port = 1\n[accounts.x]\nmax-calls = 0\n",
			wantCode: 1, wantStderr: []string{"reload rejected, telestra-sipd keeps the running plan:",
				"  " + path + ":1: port: unknown table or key", "accounts.x.user: required", "accounts.x.max-calls: must be at least 1"}},
		{name: "daemon not running", args: []string{"-addr", fmt.Sprintf("127.0.0.1:%d", closed), "reload"},
			wantCode: 2, wantStderr: []string{"connection refused", "is telestra-sipd running?"}},
		{name: "argument", args: []string{"-addr", addr, "reload", "now"}, wantCode: 64, wantStderr: []string{"reload: takes no arguments"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if raw, ok := strings.CutPrefix(tc.extra, "!"); ok {
				if err := os.WriteFile(path, []byte(raw), 0o600); err != nil {
					t.Fatal(err)
				}
			} else {
				write(tc.extra)
			}
			args := tc.args
			if args == nil {
				args = []string{"-addr", addr, "reload"}
			}
			code, stdout, stderr := runCLI(t, args...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, stdout, stderr)
			}
			if stdout != tc.wantStdout {
				t.Errorf("stdout\n%s\nwant\n%s", stdout, tc.wantStdout)
			}
			for _, w := range tc.wantStderr {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if tc.wantStderr == nil && stderr != "" {
				t.Errorf("stderr %q, want nothing", stderr)
			}
		})
	}
}
