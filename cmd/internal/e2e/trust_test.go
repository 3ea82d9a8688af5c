//go:build integration

package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// The trust tests put SIPp on 127.0.0.2: a stranger to an account whose
// server (Kamailio) is on 127.0.0.1 (docs/sip.md "Trusted sources").

const stranger = "127.0.0.2"

// TestStrangerCannotRing: an INVITE and an OPTIONS straight from the
// stranger get 403 and never ring the account (no call-incoming, refused
// counted in get-status); the same caller through the account's server
// rings.
func TestStrangerCannotRing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, k: testpeers.StartKamailio(t, testpeers.KamailioOptions{NoInviteAuth: true})}
	p := &plan{Accounts: []account{e.user("acc1", "3001")}}
	e.start(p)
	waitRegistered(t, e.c, "acc1", 200)

	s := testpeers.StartSipp(t, testpeers.SippOptions{Scenario: "trust_stranger.xml", Bind: stranger,
		Remote: "127.0.0.1:" + strconv.Itoa(p.SIPPort), Service: "3001", Timeout: 20 * time.Second})
	if err := s.Wait(25 * time.Second); err != nil {
		t.Fatal(err)
	}
	st := status(t, e.c, "acc1")
	if st.Refused < 2 || len(st.Calls) != 0 {
		t.Fatalf("after the stranger's INVITE and OPTIONS: %+v, want refused >= 2 and no call", st)
	}
	if n := strings.Count(e.d.Log(), `reason="untrusted source"`); n == 0 {
		t.Errorf("no log line about the untrusted source")
	}

	// Through the server: it rings, and the test declines it.
	via := testpeers.StartSipp(t, testpeers.SippOptions{Scenario: "trust_via_proxy.xml", Bind: stranger,
		Remote: e.k.Addr(), Service: "3001", Timeout: 30 * time.Second})
	m := wait(t, e.c, 10*time.Second, "call-incoming through the server", func(m client.Message) bool {
		return m.Event == api.EventCallIncoming && m.Account == "acc1"
	})
	if err := e.c.HangupCall(ctx, "acc1", m.CallID, false); err != nil {
		t.Fatal(err)
	}
	if err := via.Wait(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Only the two direct requests were refused (a retransmission counts again).
	if got := status(t, e.c, "acc1").Refused; got != st.Refused {
		t.Errorf("refused went from %d to %d for a call through the server", st.Refused, got)
	}
}

// TestNoDigestForStrangerBye (SIPDigestLeak): the stranger calls the
// account directly (accept-from = "any" lets it), the daemon answers and
// hangs up, and the stranger challenges the BYE with a 407: no
// credentials are ever sent to it.
func TestNoDigestForStrangerBye(t *testing.T) {
	e := newEnv(t)
	acc := e.user("acc1", "3001")
	acc.AcceptFrom = `"any"`
	p := &plan{Accounts: []account{acc}}
	e.start(p)
	waitRegistered(t, e.c, "acc1", 200)

	s := testpeers.StartSipp(t, testpeers.SippOptions{Scenario: "digest_leak_bye.xml", Bind: stranger,
		Remote: "127.0.0.1:" + strconv.Itoa(p.SIPPort), Service: "3001", Timeout: 30 * time.Second})
	m := wait(t, e.c, 10*time.Second, "call-incoming from the stranger", func(m client.Message) bool {
		return m.Event == api.EventCallIncoming && m.Account == "acc1"
	})
	if err := e.c.AnswerCall(e.ctx, "acc1", m.CallID); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 10*time.Second, "call-answered", event(api.EventCallAnswered, "acc1", m.CallID))
	if err := e.c.HangupCall(e.ctx, "acc1", m.CallID, false); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 10*time.Second, "call-ended", event(api.EventCallEnded, "acc1", m.CallID))
	if err := s.Wait(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	trace := s.Messages()
	if strings.Contains(trace, "Proxy-Authorization") || strings.Contains(trace, "\nAuthorization") {
		t.Fatalf("the daemon sent credentials to a stranger:\n%s", trace)
	}
	if n := strings.Count(trace, "BYE sip:"); n != 1 {
		t.Errorf("SIPp saw %d BYEs, want 1 (the challenged one, not resent)", n)
	}
	if !strings.Contains(e.d.Log(), "digest challenge not answered") {
		t.Errorf("no log line about the unanswered challenge")
	}
}
