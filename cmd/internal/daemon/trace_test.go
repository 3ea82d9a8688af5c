package daemon

import (
	"context"
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

// A client subscribed with trace gets the SIP messages of its account's
// call, in order; a local call between two accounts of the daemon shows
// each side under its own account.
func TestTraceOfALocalCall(t *testing.T) {
	planPath := filepath.Join(t.TempDir(), "sipplan.toml")
	apiPort, sipPort := freePort(t), freePort(t)
	writePlan(t, planPath, apiPort, sipPort)
	f, err := os.OpenFile(planPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(f, "[accounts.account-2]\nuser = \"3002\"\nregister = false\nchannel = \"ch2\"\n[audio.channels.ch2]\nloopback = \"echo\"\n")
	f.Close()
	p, err := plan.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	d := newDaemon(Options{PlanPath: planPath, Plan: p, Log: discardLogger(), Notifier: &recNotifier{}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	dial := func() *client.Client {
		for deadline := time.Now().Add(5 * time.Second); ; {
			cl, err := client.Dial(ctx, fmt.Sprintf("127.0.0.1:%d", apiPort))
			if err == nil {
				t.Cleanup(func() { cl.Close() })
				return cl
			}
			if time.Now().After(deadline) {
				t.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	tr1, tr2, ctl := dial(), dial(), dial()
	for acct, cl := range map[string]*client.Client{"account-1": tr1, "account-2": tr2} {
		if err := cl.Send(map[string]any{"cmd": "trace", "account": acct}); err != nil {
			t.Fatal(err)
		}
		if m, err := cl.WaitFor(ctx, func(m client.Message) bool { return m.Event == api.EventTrace || m.Event == api.EventFail }); err != nil || m.Event != api.EventTrace {
			t.Fatalf("trace %s: %+v %v", acct, m, err)
		}
	}
	id, err := ctl.MakeCall(ctx, "account-1", "3002")
	if err != nil {
		t.Fatal(err)
	}
	in, err := ctl.WaitFor(ctx, func(m client.Message) bool { return m.Event == api.EventCallIncoming })
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.AnswerCall(ctx, "account-2", in.CallID); err != nil {
		t.Fatal(err)
	}
	if _, err := ctl.WaitFor(ctx, func(m client.Message) bool { return m.Event == api.EventCallAnswered && m.CallID == id }); err != nil {
		t.Fatal(err)
	}
	// The callee's call is active once our ACK arrived: hang up after it
	// (call-answered comes before the caller writes its ACK).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		sts, err := ctl.GetStatus(ctx, "account-2")
		if err != nil {
			t.Fatal(err)
		}
		if len(sts) == 1 && len(sts[0].Calls) == 1 && sts[0].Calls[0].State == "active" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("callee's call never active: %+v", sts)
		}
	}
	if err := ctl.HangupCall(ctx, "account-1", id, false); err != nil {
		t.Fatal(err)
	}

	// ladder reads one side's messages up to the 200 to the BYE.
	ladder := func(cl *client.Client, acct string) []string {
		t.Helper()
		var out []string
		for {
			m, err := cl.WaitFor(ctx, func(m client.Message) bool { return m.Event == api.EventSIPMessage })
			if err != nil {
				t.Fatalf("%s: %v after %v", acct, err, out)
			}
			var w struct {
				Direction, Transport, Message string
				FirstLine                     string `json:"first_line"`
			}
			if err := m.Decode(&w); err != nil {
				t.Fatal(err)
			}
			if m.Account != acct || w.Transport != "udp" {
				t.Errorf("%s got a message of %q over %q", acct, m.Account, w.Transport)
			}
			name := strings.Fields(w.FirstLine)[0]
			if name == "SIP/2.0" {
				name = strings.Fields(w.FirstLine)[1]
			}
			out = append(out, w.Direction+" "+name)
			if strings.HasPrefix(w.FirstLine, "SIP/2.0 200") && strings.Contains(w.Message, " BYE\r\n") {
				return out
			}
		}
	}
	caller := strings.Join(ladder(tr1, "account-1"), ", ")
	callee := strings.Join(ladder(tr2, "account-2"), ", ")
	// 100 Trying comes from sipgo, 180 from the callee; the callee's side
	// sees the caller's messages as received and the other way round.
	if want := "sent INVITE, received 100, received 180, received 200, sent ACK, sent BYE, received 200"; caller != want {
		t.Errorf("caller's ladder\n%s\nwant\n%s", caller, want)
	}
	if want := "received INVITE, sent 100, sent 180, sent 200, received ACK, received BYE, sent 200"; callee != want {
		t.Errorf("callee's ladder\n%s\nwant\n%s", callee, want)
	}
}
