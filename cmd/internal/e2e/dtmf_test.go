//go:build integration

package e2e

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
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
	id := e.callPeer(t, "acc1", "3002", p)
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
		t.Logf("dtmf %s %d ms", m.Digit, m.DurationMs)
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

// pcapMs is how long SIPp needs to play the capture of digits.
func pcapMs(digits []evDigit) string {
	d := 300 * time.Millisecond
	for _, g := range digits {
		d += g.dur + 160*time.Millisecond
	}
	return strconv.Itoa(int(d / time.Millisecond))
}

// TestDTMFFromSipp: a PBX (SIPp) sends RFC 4733 digits from a capture
// (repeated end packets, retransmitted continuation packets, a digit whose
// end packets were all lost) and then two by SIP INFO: the daemon reports
// each digit once, in order, with the duration the sender gave.
func TestDTMFFromSipp(t *testing.T) {
	e, p := cucmEnv(t)
	ds := []evDigit{
		{event: 1, pt: 101, dur: 100 * time.Millisecond},
		{event: 2, pt: 101, dur: 160 * time.Millisecond, dupCont: true},
		{event: 11, pt: 101, dur: 80 * time.Millisecond},
		{event: 5, pt: 101, dur: 120 * time.Millisecond, lostEnds: true},
		{event: 9, pt: 101, dur: 100 * time.Millisecond},
	}
	scen := sippScenario(t, "dtmf_in_uac.xml", map[string]string{"PCAP": rfc4733Pcap(t, ds), "PCAPMS": pcapMs(ds)})
	c := sippTo(t, e, p, scen, testpeers.SippOptions{NoEcho: true})
	id := c.answer("2007")
	type want struct {
		digit string
		ms    int
	}
	// The end packets carry the duration plus one frame (the sender's
	// last step); the digit without ends reports its last continuation.
	wants := []want{{"1", 120}, {"2", 180}, {"#", 100}, {"5", 120}, {"9", 120}, {"7", 160}, {"*", 250}}
	for i, w := range wants {
		m := c.event("dtmf "+w.digit, event(api.EventDTMF, "acc1", id))
		if m.Digit != w.digit || m.DurationMs != w.ms {
			t.Errorf("dtmf %d: digit %q duration %d ms, want %q %d ms", i, m.Digit, m.DurationMs, w.digit, w.ms)
		}
	}
	c.s.Reached("info")
	noMoreDigits(t, e.c, "acc1", id, 500*time.Millisecond)
	c.s.Continue("info")
	c.remoteHangup(id)
	c.passed()
}

// TestDTMFAnsweredOtherPT: the daemon offers telephone-event on PT 101,
// the peer answers 100 and sends digits on both numbers (Cisco endpoints
// send on the offered one): every digit is reported, once.
func TestDTMFAnsweredOtherPT(t *testing.T) {
	e, _ := cucmEnv(t)
	ds := []evDigit{
		{event: 4, pt: 101, dur: 100 * time.Millisecond},
		{event: 6, pt: 100, dur: 100 * time.Millisecond},
		{event: 10, pt: 101, dur: 100 * time.Millisecond},
	}
	scen := sippScenario(t, "dtmf_uas.xml", map[string]string{
		"ANSWER_FORMATS": "0 100",
		"ANSWER_ATTRS":   "      a=rtpmap:100 telephone-event/8000\n      a=fmtp:100 0-15\n",
		"INFO_RECVS": `  <nop><action><exec play_pcap_audio="` + rfc4733Pcap(t, ds) + `"/></action></nop>
  <pause milliseconds="` + pcapMs(ds) + `"/>`,
	})
	c := &cucmCall{env: e, s: testpeers.StartSipp(t, testpeers.SippOptions{Scenario: scen, NoEcho: true})}
	id, err := e.c.MakeCall(e.ctx, "acc1", "sip:2008@"+c.s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.event("call-answered", event(api.EventCallAnswered, "acc1", id))
	if got := digits(t, e.c, "acc1", id, 3, 10*time.Second); got != "46*" {
		t.Errorf("dtmf digits %q, want 46*", got)
	}
	// Our digits go out as RFC 4733 (on PT 100): no INFO, no fail.
	if err := e.c.SendDTMF(e.ctx, "acc1", id, "8", 0); err != nil {
		t.Errorf("send-dtmf: %v", err)
	}
	c.s.Reached("digits")
	noMoreDigits(t, e.c, "acc1", id, 300*time.Millisecond)
	if err := e.c.HangupCall(e.ctx, "acc1", id, false); err != nil {
		t.Fatal(err)
	}
	c.event("call-ended", event(api.EventCallEnded, "acc1", id))
	c.passed()
}

// TestDTMFByInfo: the peer negotiated no telephone-event: send-dtmf goes
// out as SIP INFO application/dtmf-relay, one digit per INFO; a second
// send-dtmf while the first digits are on their way is appended (SIPp
// checks each INFO's digit and duration in turn).
func TestDTMFByInfo(t *testing.T) {
	e, _ := cucmEnv(t)
	var recvs strings.Builder
	for _, d := range []string{"1", "2", "#", "A"} {
		dur := "100"
		if d == "#" || d == "A" {
			dur = "200"
		}
		fmt.Fprintf(&recvs, `  <recv request="INFO">
    <action>
      <ereg regexp="application/dtmf-relay" search_in="hdr" header="Content-Type:" check_it="true" assign_to="ok"/>
      <ereg regexp="Signal=%s\r?\nDuration=%s" search_in="body" check_it="true" assign_to="ok"/>
    </action>
  </recv>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
`, regexp.QuoteMeta(d), dur)
	}
	scen := sippScenario(t, "dtmf_uas.xml", map[string]string{
		"ANSWER_FORMATS": "0", "ANSWER_ATTRS": "", "INFO_RECVS": recvs.String(),
	})
	c := &cucmCall{env: e, s: testpeers.StartSipp(t, testpeers.SippOptions{Scenario: scen})}
	id, err := e.c.MakeCall(e.ctx, "acc1", "sip:2008@"+c.s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.event("call-answered", event(api.EventCallAnswered, "acc1", id))
	if err := e.c.SendDTMF(e.ctx, "acc1", id, "12", 0); err != nil {
		t.Fatal(err)
	}
	if err := e.c.SendDTMF(e.ctx, "acc1", id, "#a", 200); err != nil {
		t.Fatal(err)
	}
	c.s.Reached("digits")
	if err := e.c.HangupCall(e.ctx, "acc1", id, false); err != nil {
		t.Fatal(err)
	}
	c.event("call-ended", event(api.EventCallEnded, "acc1", id))
	c.passed()
}
