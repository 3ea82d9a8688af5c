package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
)

// reloadPlan is writePlan's plan with extra TOML appended and the SIP port
// given.
func reloadPlan(t *testing.T, path string, apiPort, sipPort int, extra string) {
	t.Helper()
	writePlan(t, path, apiPort, sipPort)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(extra); err != nil {
		t.Fatal(err)
	}
}

// The reload extension answers only once the plan is applied, with every
// change, or rejected, with every problem; settings that need a restart are
// compared with what is running, so a reverted edit is no longer reported.
func TestReloadCommand(t *testing.T) {
	planPath := filepath.Join(t.TempDir(), "sipplan.toml")
	apiPort, sipPort := freePort(t), freePort(t)
	writePlan(t, planPath, apiPort, sipPort)
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

	var cl *client.Client
	for deadline := time.Now().Add(5 * time.Second); ; {
		cl, err = client.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", apiPort))
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer cl.Close()
	reload := func() (api.Reloaded, error) {
		t.Helper()
		rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
		defer rcancel()
		return cl.Reload(rctx)
	}
	texts := func(r api.Reloaded) []string {
		var out []string
		for _, c := range r.Changes {
			out = append(out, c.Text)
		}
		return out
	}
	otherSIP := freePort(t)

	steps := []struct {
		name      string
		sipPort   int
		extra     string
		raw       string // the whole file instead
		want      []string
		wantProbs []string
	}{
		{name: "unchanged", sipPort: sipPort, want: nil},
		{name: "account added and changed, SIP port moved", sipPort: otherSIP,
			extra: "display-name = \"Front desk\"\n[accounts.account-2]\nuser = \"3002\"\nregister = false\n" +
				"channel = \"ch2\"\n[audio.channels.ch2]\nloopback = \"silence\"\n",
			want: []string{
				`audio.channels.ch2: added`,
				`accounts.account-1.display-name = "account-1" → "Front desk"`,
				`accounts.account-2: added`,
				fmt.Sprintf(`sip-settings.port = %d → %d (needs a restart: %d is in effect)`, sipPort, otherSIP, sipPort),
			}},
		{name: "invalid plan is rejected with every problem", raw: "[tcp-settings]\nport = \"x\"\n[accounts.a]\nuser = \"\"\n",
			wantProbs: []string{planPath + ":2: tcp-settings.port: must be a whole number", planPath + ":4: accounts.a.user: required"}},
		{name: "SIP port reverted, account removed", sipPort: sipPort,
			want: []string{`audio.channels.ch2: removed`, `accounts.account-2: removed`, `accounts.account-1.display-name = "Front desk" → "account-1"`}},
	}
	for _, st := range steps {
		if st.raw != "" {
			if err := os.WriteFile(planPath, []byte(st.raw), 0o600); err != nil {
				t.Fatal(err)
			}
		} else {
			reloadPlan(t, planPath, apiPort, st.sipPort, st.extra)
		}
		r, err := reload()
		var fe *client.FailError
		switch {
		case st.wantProbs != nil:
			if !errors.As(err, &fe) {
				t.Fatalf("%s: reload = %v, %v; want a fail", st.name, r, err)
			}
			if fe.Cmd != "reload" || len(fe.Problems) != len(st.wantProbs) {
				t.Fatalf("%s: fail %+v, want cmd reload and %d problems", st.name, fe.Message, len(st.wantProbs))
			}
			for i, w := range st.wantProbs {
				if !strings.HasPrefix(fe.Problems[i], w) {
					t.Errorf("%s: problem %d = %q, want prefix %q", st.name, i, fe.Problems[i], w)
				}
			}
		case err != nil:
			t.Fatalf("%s: reload: %v", st.name, err)
		default:
			if r.Plan != planPath {
				t.Errorf("%s: plan %q, want %q", st.name, r.Plan, planPath)
			}
			if got := strings.Join(texts(r), "\n"); got != strings.Join(st.want, "\n") {
				t.Errorf("%s: changes\n%s\nwant\n%s", st.name, got, strings.Join(st.want, "\n"))
			}
		}
	}
	// The account added by the reload is live, and removed again.
	sts, err := cl.GetStatus(ctx, "")
	if err != nil || len(sts) != 1 || sts[0].Account != "account-1" {
		t.Fatalf("status after the reloads = %+v, %v; want only account-1", sts, err)
	}
	if n.count("RELOADING=1") != len(steps) {
		t.Errorf("RELOADING=1 sent %d times, want %d", n.count("RELOADING=1"), len(steps))
	}
}

// A reload asked while the daemon stops gets an answer, not a hang.
func TestReloadWhileStopping(t *testing.T) {
	d := newDaemon(Options{PlanPath: "unused", Plan: plan.Default(), Log: discardLogger(), Notifier: &recNotifier{}})
	close(d.stopping)
	_, err := (&controller{d: d}).Reload(context.Background())
	if !errors.Is(err, errStopping) {
		t.Fatalf("Reload = %v, want errStopping", err)
	}
}
