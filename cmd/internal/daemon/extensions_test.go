package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
)

// log-level changes the running level; a reload, applied or rejected, puts
// the plan's back. The metrics endpoint serves and counts both reloads.
func TestLogLevelResetByReloadAndMetrics(t *testing.T) {
	planPath := filepath.Join(t.TempDir(), "sipplan.toml")
	apiPort, sipPort, metricsPort := freePort(t), freePort(t), freePort(t)
	writePlan(t, planPath, apiPort, sipPort)
	f, err := os.OpenFile(planPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "[metrics]\naddress = \"127.0.0.1:%d\"\n[log]\nlevel = \"warn\"\n", metricsPort)
	f.Close()
	p, err := plan.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	level := new(slog.LevelVar)
	reload := make(chan os.Signal, 1)
	n := &recNotifier{}
	d := newDaemon(Options{PlanPath: planPath, Plan: p, Log: discardLogger(), Level: level, Reload: reload, Notifier: n, Version: "1.0-test"})
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
	if level.Level() != slog.LevelWarn {
		t.Fatalf("level %v, want the plan's warn", level.Level())
	}

	cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
	defer ccancel()
	c, err := client.Dial(cctx, fmt.Sprintf("127.0.0.1:%d", apiPort))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pong, err := c.Pong(cctx)
	if err != nil || pong.Version != "1.0-test" {
		t.Fatalf("pong %s, %v", pong.Raw, err)
	}
	setDebug := func() {
		t.Helper()
		if got, err := c.LogLevel(cctx, "debug"); err != nil || got != "debug" || level.Level() != slog.LevelDebug {
			t.Fatalf("log-level debug: %q, %v; level %v", got, err, level.Level())
		}
	}
	reloadAndWait := func(readies int) {
		t.Helper()
		reload <- syscall.SIGHUP
		waitUntil(t, "READY=1 after the reload", func() bool { return n.count("READY=1") == readies })
	}

	setDebug()
	reloadAndWait(2)
	if level.Level() != slog.LevelWarn {
		t.Fatalf("after an applied reload: level %v, want the plan's warn", level.Level())
	}
	setDebug()
	good, _ := os.ReadFile(planPath)
	if err := os.WriteFile(planPath, []byte("[tcp-settings]\nport = \"x\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reloadAndWait(3)
	if level.Level() != slog.LevelWarn {
		t.Fatalf("after a rejected reload: level %v, want the running plan's warn", level.Level())
	}
	os.WriteFile(planPath, good, 0o600)

	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`telestra_sipd_reloads_total{result="applied"} 1`,
		`telestra_sipd_reloads_total{result="rejected"} 1`,
		`telestra_sipd_build_info{goversion="`,
		`version="1.0-test"} 1`,
		`telestra_sipd_account_registered{account="account-1"} 0`,
		`telestra_sipd_api_clients 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// A metrics port that cannot be bound fails the start, naming it, and
// leaves the API port free again.
func TestDaemonStartFailsOnBusyMetricsPort(t *testing.T) {
	planPath := filepath.Join(t.TempDir(), "sipplan.toml")
	apiPort, sipPort := freePort(t), freePort(t)
	writePlan(t, planPath, apiPort, sipPort)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p, err := plan.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	p.Metrics.Address = busy.Addr().String()
	n := &recNotifier{}
	err = Run(context.Background(), Options{PlanPath: planPath, Plan: p, Log: discardLogger(), Notifier: n})
	if err == nil || !strings.Contains(err.Error(), "metrics listener on "+busy.Addr().String()) {
		t.Fatalf("Run = %v, want an error naming the metrics listener", err)
	}
	if n.count("READY=1") != 0 {
		t.Fatal("READY=1 sent although the metrics port was not bound")
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", apiPort))
	if err != nil {
		t.Fatalf("API port still bound after the failed start: %v", err)
	}
	l.Close()
}
