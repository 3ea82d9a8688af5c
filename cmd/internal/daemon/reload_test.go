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
				fmt.Sprintf(`sip-settings.port = %d → %d (needs a restart: the SIP listeners are bound to it; %d is in effect)`, sipPort, otherSIP, sipPort),
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

// settingsPlan is writePlan's plan with lines added to [tcp-settings],
// [sip-settings] and [rtp-settings].
func settingsPlan(t *testing.T, path string, apiPort, sipPort int, tcp, sipKeys, rtp string) {
	t.Helper()
	body := fmt.Sprintf(`
[tcp-settings]
address = "127.0.0.1"
port = %d
%s
[sip-settings]
address = "127.0.0.1"
port = %d
%s
[rtp-settings]
%s
[audio.channels.ch1]
[accounts.account-1]
user = "3001"
register = false
channel = "ch1"
`, apiPort, tcp, sipPort, sipKeys, rtp)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A reload applies every setting that binds no socket: they are listed
// as changes without a restart and are in force at once (the UA's and
// the API server's configuration); what is bound at start is listed with
// its reason and keeps its running value.
func TestReloadAppliesSettings(t *testing.T) {
	planPath := filepath.Join(t.TempDir(), "sipplan.toml")
	apiPort, sipPort := freePort(t), freePort(t)
	settingsPlan(t, planPath, apiPort, sipPort, "", "", "port-min = 42200\nport-max = 42299\n")
	p, err := plan.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	d := newDaemon(Options{PlanPath: planPath, Plan: p, Log: discardLogger(), Notifier: &recNotifier{}})
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

	settingsPlan(t, planPath, apiPort, sipPort,
		`allow = ["127.0.0.0/8"]`+"\nmax-clients = 8\nevent-history = 16\n",
		`trusted = ["127.0.0.2"]`+"\nreject = \"silent\"\nregister-timeout = \"4s\"\nkeepalive-interval = \"0s\"\nuser-agent = \"Desk\"\ntransports = [\"udp\", \"tcp\"]\n",
		"port-min = 42300\nport-max = 42399\njitter-buffer = \"60ms\"\ntimeout = \"10s\"\ncodecs = [\"PCMA\"]\nptime = \"30ms\"\n")
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	r, err := cl.Reload(rctx)
	if err != nil {
		t.Fatal(err)
	}
	restart := map[string]string{}
	applied := map[string]bool{}
	for _, c := range r.Changes {
		if c.Restart {
			restart[c.Key] = c.Reason
			if !strings.Contains(c.Text, "(needs a restart: "+c.Reason+"; ") {
				t.Errorf("%s: text %q does not give the reason", c.Key, c.Text)
			}
		} else {
			applied[c.Key] = true
		}
	}
	for _, k := range []string{"tcp-settings.allow", "tcp-settings.max-clients", "tcp-settings.event-history",
		"sip-settings.trusted", "sip-settings.reject", "sip-settings.register-timeout", "sip-settings.keepalive-interval",
		"sip-settings.user-agent", "rtp-settings.port-min", "rtp-settings.port-max", "rtp-settings.jitter-buffer",
		"rtp-settings.timeout", "rtp-settings.codecs"} {
		if !applied[k] {
			t.Errorf("%s: not applied (changes %+v)", k, r.Changes)
		}
	}
	if len(restart) != 2 || restart["sip-settings.transports"] == "" || restart["rtp-settings.ptime"] == "" {
		t.Errorf("needing a restart: %v, want transports and ptime", restart)
	}

	// G722 would open the channels at 16 kHz: a restart, with the rates.
	settingsPlan(t, planPath, apiPort, sipPort, "", "", "codecs = [\"G722\", \"PCMU\"]\n")
	r, err = cl.Reload(rctx)
	if err != nil {
		t.Fatal(err)
	}
	var codecs api.Change
	for _, c := range r.Changes {
		if c.Key == "rtp-settings.codecs" {
			codecs = c
		}
	}
	if !codecs.Restart || codecs.Reason != "the audio channels run at 8000 Hz and these codecs need 16000 Hz" ||
		codecs.Old != `["PCMU", "PCMA"]` {
		t.Errorf("codecs change %+v", codecs)
	}
}

// inForce keeps what is bound at start and takes everything else.
func TestInForce(t *testing.T) {
	running := plan.Default()
	next := plan.Default()
	next.TCP.Port, next.TCP.MaxClients = 4000, 2
	next.SIP.Port, next.SIP.Transports, next.SIP.TLSPort = 5070, []string{"tcp"}, 5071
	next.SIP.Address, next.SIP.RegisterRetry = "127.0.0.1", plan.Duration{Duration: time.Minute}
	next.RTP.PTime, next.RTP.Timeout = plan.Duration{Duration: 40 * time.Millisecond}, plan.Duration{Duration: time.Minute}
	next.RTP.Codecs = []string{"G722"}
	next.Metrics.Address = "127.0.0.1:9550"
	got := inForce(running, next)
	if got.TCP.Port != 3550 || got.SIP.Port != 5060 || got.SIP.TLSPort != 5061 || got.SIP.Address != "0.0.0.0" ||
		strings.Join(got.SIP.Transports, ",") != "udp" || got.RTP.PTime != running.RTP.PTime ||
		strings.Join(got.RTP.Codecs, ",") != "PCMU,PCMA" || got.Metrics.Address != "" {
		t.Errorf("bound settings changed: %+v", got)
	}
	if got.TCP.MaxClients != 2 || got.SIP.RegisterRetry.Duration != time.Minute || got.RTP.Timeout.Duration != time.Minute {
		t.Errorf("settings a reload applies were not taken: %+v", got)
	}
	next.RTP.Codecs = []string{"PCMA"}
	if got := inForce(running, next); strings.Join(got.RTP.Codecs, ",") != "PCMA" {
		t.Errorf("codecs of the same rate: %v", got.RTP.Codecs)
	}
}
