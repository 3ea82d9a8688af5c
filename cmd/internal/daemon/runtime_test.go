package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/cmd/internal/plan"
)

// Under systemd the daemon writes the API address to $RUNTIME_DIRECTORY,
// readable by everyone whatever the unit's UMask=0077, and removes it at exit.
func TestAPIAddressFile(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := t.TempDir()
	planPath := filepath.Join(t.TempDir(), "sipplan.toml")
	apiPort, sipPort := freePort(t), freePort(t)
	writePlan(t, planPath, apiPort, sipPort)
	p, err := plan.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	n := &recNotifier{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{PlanPath: planPath, Plan: p, Log: discardLogger(), Notifier: n, RuntimeDir: dir + ":/elsewhere"})
	}()
	path := filepath.Join(dir, APIAddressFile)
	for deadline := time.Now().Add(5 * time.Second); n.count("READY=1") == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no READY=1")
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("127.0.0.1:%d\n", apiPort); string(b) != want {
		t.Fatalf("api-address = %q, want %q", b, want)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o644 {
		t.Fatalf("mode %v, want 0644", st.Mode().Perm())
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("api-address left behind after exit: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
		t.Fatalf("files left in the runtime directory: %v", left)
	}
}

func TestConnectAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:3550":   "127.0.0.1:3550",
		"[::]:3550":      "127.0.0.1:3550",
		"127.0.0.2:3551": "127.0.0.2:3551",
		"[::1]:3552":     "[::1]:3552",
	} {
		a, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := connectAddr(a); got != want {
			t.Errorf("connectAddr(%s) = %s, want %s", in, got, want)
		}
	}
}
