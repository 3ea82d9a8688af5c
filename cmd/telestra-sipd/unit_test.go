package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unitFile reads the [Service] keys of the packaged unit (last value wins,
// as systemd does for these keys).
func unitFile(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../../packaging/telestra-sipd.service")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	keys := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = line
		case section == "[Service]":
			k, v, _ := strings.Cut(line, "=")
			keys[k] = v
		}
	}
	return keys
}

func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The daemon speaks sd_notify the way the packaged unit expects: the test
// plays systemd with the unit's own settings (Type=notify, NotifyAccess=main,
// WatchdogSec, TimeoutStopSec; SIGHUP is what `kill -HUP` sends, the unit's
// ExecReload uses telestra-sipctl reload) against the built binary.
func TestDaemonMatchesPackagedUnit(t *testing.T) {
	unit := unitFile(t)
	for k, want := range map[string]string{"Type": "notify", "NotifyAccess": "main", "ExecReload": "/usr/bin/telestra-sipctl reload", "RestartPreventExitStatus": "78"} {
		if unit[k] != want {
			t.Fatalf("unit %s=%q, want %q", k, unit[k], want)
		}
	}
	watchdog, err := time.ParseDuration(unit["WatchdogSec"])
	if err != nil || watchdog <= 0 {
		t.Fatalf("unit WatchdogSec=%q: %v", unit["WatchdogSec"], err)
	}
	stopTimeout, err := time.ParseDuration(unit["TimeoutStopSec"])
	if err != nil {
		t.Fatalf("unit TimeoutStopSec=%q: %v", unit["TimeoutStopSec"], err)
	}
	exec0 := strings.Fields(unit["ExecStart"])
	if len(exec0) != 3 || filepath.Base(exec0[0]) != "telestra-sipd" || exec0[1] != "-plan" {
		t.Fatalf("unexpected ExecStart %q", unit["ExecStart"])
	}

	dir := t.TempDir()
	bin := filepath.Join(dir, "telestra-sipd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	planPath := filepath.Join(dir, "sipplan.toml")
	plan := fmt.Sprintf(`[tcp-settings]
address = "127.0.0.1"
port = %d
[sip-settings]
address = "127.0.0.1"
port = %d
[rtp-settings]
port-min = 42400
port-max = 42499
[accounts.account-1]
user = "3001"
register = false
`, freeLoopbackPort(t), freeLoopbackPort(t))
	if err := os.WriteFile(planPath, []byte(plan), 0o600); err != nil {
		t.Fatal(err)
	}

	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	states := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(states)
				return
			}
			states <- string(buf[:n])
		}
	}()

	cmd := exec.Command(bin, "-plan", planPath)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, fmt.Sprintf("WATCHDOG_USEC=%d", watchdog.Microseconds()))
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	}()

	expect := func(want string, within time.Duration) {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case s := <-states:
				if s == want {
					return
				}
			case <-deadline:
				t.Fatalf("no %s within %v", want, within)
			}
		}
	}
	expect("READY=1", 10*time.Second)
	// The first ping must come well inside WatchdogSec, or systemd kills us.
	expect("WATCHDOG=1", watchdog/2)

	cmd.Process.Signal(syscall.SIGHUP) // kill -HUP, as an operator may
	expect("RELOADING=1", 5*time.Second)
	expect("READY=1", 5*time.Second)

	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM) // systemctl stop
	expect("STOPPING=1", 2*time.Second)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(min(2*time.Second, stopTimeout)):
		t.Fatalf("still running %v after SIGTERM", time.Since(start))
	}
}
