//go:build integration

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// dtmfCall places a call from acc1 (3001) to an auto-answering baresip
// 3002 through Kamailio and returns the call ID once both sides are up.
func dtmfCall(t *testing.T) (*env, *testpeers.Baresip, int) {
	t.Helper()
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)
	id, err := e.c.MakeCall(e.ctx, "acc1", "3002")
	if err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 10*time.Second, "call-answered", event(api.EventCallAnswered, "acc1", id))
	if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_ESTABLISHED"); err != nil {
		t.Fatal(err)
	}
	return e, p, id
}

// digits collects the dtmf events of a call until it has n, checking that
// each duration is plausible for a key press.
func digits(t *testing.T, c *client.Client, acct string, id, n int, timeout time.Duration) string {
	t.Helper()
	var b strings.Builder
	deadline := time.Now().Add(timeout)
	for i := 0; i < n; i++ {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("got digits %q, want %d digits within %v", b.String(), n, timeout)
		}
		m := wait(t, c, left, "dtmf", event(api.EventDTMF, acct, id))
		if len(m.Digit) != 1 || !strings.Contains("0123456789*#ABCD", m.Digit) {
			t.Errorf("dtmf event %s: digit %q is not a DTMF digit", m.Raw, m.Digit)
		}
		if m.DurationMs < 20 || m.DurationMs > 2000 {
			t.Errorf("dtmf event %s: duration %d ms is not a key press", m.Raw, m.DurationMs)
		}
		b.WriteString(m.Digit)
	}
	return b.String()
}

// noMoreDigits fails if a dtmf event of the call arrives within d.
func noMoreDigits(t *testing.T, c *client.Client, acct string, id int, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if m, err := c.WaitFor(ctx, event(api.EventDTMF, acct, id)); err == nil {
		t.Errorf("extra dtmf event: %s", m.Raw)
	}
}

// TestDTMFToBaresip: send-dtmf on a call to baresip goes out as RFC 4733
// (baresip negotiated telephone-event); a second send-dtmf while the first
// digits are still going out is appended: baresip reports every digit once
// and in order (CALL_DTMF_START), each followed by its end.
func TestDTMFToBaresip(t *testing.T) {
	e, p, id := dtmfCall(t)
	since := p.EventCount()
	if err := e.c.SendDTMF(e.ctx, "acc1", id, "1*9", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.c.SendDTMF(e.ctx, "acc1", id, "#0D", 120); err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	ends := 0
	ctx := peerCtx(t, 10*time.Second)
	for got.Len() < 6 || ends < 6 {
		ev, err := p.WaitEventSince(ctx, since, "CALL_DTMF_START", "CALL_DTMF_END")
		if err != nil {
			t.Fatalf("baresip reported %q (%d ends), want 1*9#0D: %v", got.String(), ends, err)
		}
		if ev.Type == "CALL_DTMF_START" {
			if got.Len() != ends {
				t.Errorf("digit %q started before the previous one ended", ev.Param)
			}
			got.WriteString(ev.Param)
		} else {
			ends++
		}
	}
	if got.String() != "1*9#0D" {
		t.Errorf("baresip received %q, want 1*9#0D", got.String())
	}
	// A bad digit is refused with a fail that names it.
	err := e.c.SendDTMF(e.ctx, "acc1", id, "12x", 0)
	if err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("send-dtmf 12x: %v, want a fail naming the digit", err)
	}
}

// TestDTMFFromBaresip: baresip's sndcode sends RFC 4733 events: the
// daemon broadcasts one dtmf event per digit, in order, with durations of
// key presses, and no more.
func TestDTMFFromBaresip(t *testing.T) {
	e, p, id := dtmfCall(t)
	for _, code := range []string{"15", "9#"} {
		if _, err := p.Command("sndcode", code); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // one key press after another
	}
	if got := digits(t, e.c, "acc1", id, 4, 10*time.Second); got != "159#" {
		t.Errorf("dtmf digits %q, want 159#", got)
	}
	noMoreDigits(t, e.c, "acc1", id, time.Second)
}
