//go:build integration

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// The CUCM tests play, with SIPp (Debian package sip-tester), what Cisco
// UCM does to a third-party SIP phone (docs/sip.md, PROTOCOL.md "SIP
// behaviour expected of a good phone"): delayed offer, session-timer
// refreshes, the three hold styles, offer-less re-INVITE, early media,
// out-of-dialog and unknown requests, TCP. SIPp talks straight to the daemon's
// SIP port: the account has no server and does not register, and takes
// INVITEs addressed to its user. Each scenario (testdata/sipp/*.xml) checks
// the daemon's answers itself (expected responses, regexps on headers and
// SDP) and SIPp exits non-zero when one is wrong; the test checks the
// daemon's events and get-status where the scenario stops for it
// (Sipp.Reached), then lets it go on (Sipp.Continue).

const cucmUser = "3001"

// cucmEnv starts a daemon with one server-less account "acc1" (user 3001)
// that does not register. RTP comes back from SIPp's echo; the long RTP
// time-out keeps phases where nothing sends to the daemon (the first media
// address of TestCUCMReinviteWithoutSDP) and slow -race runs from ending
// calls.
func cucmEnv(t *testing.T, transports ...string) (*env, *plan) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx}
	p := &plan{
		Accounts:   []account{{Name: "acc1", User: cucmUser, Pass: "x", NoRegister: true}},
		RTPTimeout: "300s",
		Transports: transports,
	}
	e.start(p)
	waitRegistered(t, e.c, "acc1", 0)
	return e, p
}

// cucmCall is a daemon and the SIPp that plays a scenario against it.
type cucmCall struct {
	*env
	p *plan
	s *testpeers.Sipp
}

// sippTo starts SIPp playing a UAC scenario against the daemon of p.
func sippTo(t *testing.T, e *env, p *plan, scenario string, opts testpeers.SippOptions) *cucmCall {
	t.Helper()
	opts.Scenario = scenario
	opts.Remote = "127.0.0.1:" + strconv.Itoa(p.SIPPort)
	if opts.Service == "" {
		opts.Service = cucmUser
	}
	return &cucmCall{env: e, p: p, s: testpeers.StartSipp(t, opts)}
}

// sippFailed fails the test at once when the scenario has failed already.
func (c *cucmCall) sippFailed() {
	c.t.Helper()
	if err := c.s.Failed(); err != nil {
		c.t.Fatalf("while the test waited: %v", err)
	}
}

// passed fails the test unless SIPp ends within 20 s with its scenario
// passed.
func (c *cucmCall) passed() {
	c.t.Helper()
	if err := c.s.Wait(20 * time.Second); err != nil {
		c.t.Fatal(err)
	}
}

// event waits up to 10 s for a message of the daemon matching match, and
// stops early when SIPp's scenario fails.
func (c *cucmCall) event(what string, match func(client.Message) bool) client.Message {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		m, err := c.c.WaitFor(ctx, match)
		cancel()
		if err == nil {
			return m
		}
		c.sippFailed()
		if time.Now().After(deadline) {
			c.t.Fatalf("waiting 10 s for %s: %v", what, err)
		}
	}
}

// call polls get-status until call id satisfies ok (10 s), stopping early
// when SIPp's scenario fails.
func (c *cucmCall) call(id int, what string, ok func(api.Call) bool) api.Call {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := status(c.t, c.c, "acc1")
		call, found := findCall(st, id)
		if found && ok(call) {
			return call
		}
		c.sippFailed()
		if time.Now().After(deadline) {
			c.t.Fatalf("call %d: %s not reached within 10 s; last status %+v", id, what, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// state waits until call id is in state with active as given.
func (c *cucmCall) state(id int, state string, active bool) api.Call {
	c.t.Helper()
	return c.call(id, fmt.Sprintf("state %s active %v", state, active), func(call api.Call) bool {
		return call.State == state && call.Active == active && !call.Stopped
	})
}

// answer waits for the call-incoming of acc1, answers it and waits for
// call-answered.
func (c *cucmCall) answer(wantCaller string) int {
	c.t.Helper()
	in := c.event("call-incoming", event(api.EventCallIncoming, "acc1", -1))
	if in.Caller != wantCaller {
		c.t.Errorf("call-incoming caller %q, want %q", in.Caller, wantCaller)
	}
	if err := c.c.AnswerCall(c.ctx, "acc1", in.CallID); err != nil {
		c.t.Fatal(err)
	}
	c.event("call-answered", event(api.EventCallAnswered, "acc1", in.CallID))
	return in.CallID
}

// remoteHangup waits for the call-ended of a BYE from SIPp.
func (c *cucmCall) remoteHangup(id int) {
	c.t.Helper()
	ended := c.event("call-ended", event(api.EventCallEnded, "acc1", id))
	if !strings.Contains(strings.ToLower(ended.Reason), "remote") {
		c.t.Errorf("call-ended reason %q code %d, want a remote hangup", ended.Reason, ended.Code)
	}
}

// noEnded fails the test if acc1 has broadcast a call-ended (so far).
func (c *cucmCall) noEnded(id int) {
	c.t.Helper()
	if err := c.c.Ping(c.ctx); err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if m, err := c.c.WaitFor(ctx, event(api.EventCallEnded, "acc1", id)); err == nil {
		c.t.Fatalf("call ended: %s", m.Raw)
	}
}

// notSending fails the test when call id sends RTP over 400 ms (after
// 100 ms for a packet already on its way).
func (c *cucmCall) notSending(id int, what string) {
	c.t.Helper()
	time.Sleep(100 * time.Millisecond)
	before := c.call(id, what, func(api.Call) bool { return true }).PacketsSent
	time.Sleep(400 * time.Millisecond)
	if after := c.call(id, what, func(api.Call) bool { return true }).PacketsSent; after != before {
		c.t.Errorf("%s: the daemon sent %d RTP packets in 400 ms while held", what, after-before)
	}
}

// TestCUCMDelayedOffer: an INVITE without SDP; the daemon offers in the 200
// (G.711, telephone-event; checked by SIPp) and takes the answer from the
// ACK: call-answered, state active, media both ways; SIPp's BYE ends it.
func TestCUCMDelayedOffer(t *testing.T) {
	e, p := cucmEnv(t)
	c := sippTo(t, e, p, "cucm_delayed_offer.xml", testpeers.SippOptions{})
	id := c.answer("2001")
	call := c.state(id, "active", true)
	if call.Direction != "in" || !call.Started {
		t.Errorf("answered call = %+v, want an incoming started call", call)
	}
	// The answer from the ACK pointed our RTP at SIPp's echo port.
	call = c.call(id, "RTP echoed back", func(c api.Call) bool { return c.PacketsReceived > 10 })
	if call.Codec != "PCMU" {
		t.Errorf("codec %q, want PCMU (the only codec of the ACK's answer)", call.Codec)
	}
	c.s.Reached("answered")
	c.s.Continue("answered")
	c.remoteHangup(id)
	c.passed()
}

// TestCUCMSessionTimer: an INVITE with Session-Expires 90 s, CUCM the
// refresher; the 200 takes it (Session-Expires: 90;refresher=uac, Require:
// timer). CUCM refreshes with an UPDATE without SDP and with a re-INVITE
// whose SDP is unchanged: both answered 200 with Session-Expires, the
// second with the first answer's o= version (compared by SIPp). The call
// stays up through both.
func TestCUCMSessionTimer(t *testing.T) {
	e, p := cucmEnv(t)
	c := sippTo(t, e, p, "cucm_session_timer.xml", testpeers.SippOptions{})
	id := c.answer("2002")
	c.state(id, "active", true)
	c.s.Reached("answered")
	c.s.Continue("answered")
	c.s.Reached("refreshed")
	call := c.state(id, "active", true)
	c.noEnded(id)
	t.Logf("after both refreshes: %+v", call)
	c.s.Continue("refreshed")
	c.remoteHangup(id)
	c.passed()
}

// TestCUCMHoldStyles: CUCM holds with a=sendonly (answered recvonly),
// a=inactive (inactive) and c=0.0.0.0 (accepted, recvonly), each checked by
// SIPp; the call is held and not bound to audio each time. The resume with
// a=sendrecv is answered sendrecv and the call is active, bound and gets
// RTP again.
func TestCUCMHoldStyles(t *testing.T) {
	e, p := cucmEnv(t)
	c := sippTo(t, e, p, "cucm_hold_styles.xml", testpeers.SippOptions{})
	id := c.answer("2003")
	c.state(id, "active", true)
	c.s.Reached("answered")
	c.s.Continue("answered")
	for _, step := range []string{"sendonly", "inactive", "c0"} {
		c.s.Reached(step)
		c.state(id, "held", false)
		c.notSending(id, step)
		c.s.Continue(step)
	}
	c.s.Reached("resumed")
	before := c.state(id, "active", true).PacketsReceived
	c.call(id, "RTP again after the resume", func(call api.Call) bool { return call.PacketsReceived > before+10 })
	c.s.Continue("resumed")
	c.remoteHangup(id)
	c.passed()
}

// rtpSink counts the UDP datagrams that reach a socket of the test.
type rtpSink struct {
	conn *net.UDPConn
	n    atomic.Int64
	done chan struct{}
}

// newRTPSink listens on a free port of the RTP regions until the test ends.
func newRTPSink(t *testing.T) *rtpSink {
	t.Helper()
	port, _ := testpeers.FreeRTPRange(t, 2)
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	s := &rtpSink{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 2048)
		for {
			if _, _, err := conn.ReadFromUDP(buf); err != nil {
				return // closed by the cleanup
			}
			s.n.Add(1)
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-s.done
	})
	return s
}

func (s *rtpSink) port() int { return s.conn.LocalAddr().(*net.UDPAddr).Port }

// TestCUCMReinviteWithoutSDP: CUCM reconnects media with a re-INVITE
// without SDP: the daemon offers in the 200 (checked by SIPp) and applies
// the answer of the ACK, which moves the media from a socket of the test to
// SIPp's echo port; the call stays active throughout.
func TestCUCMReinviteWithoutSDP(t *testing.T) {
	e, p := cucmEnv(t)
	sink := newRTPSink(t)
	c := sippTo(t, e, p, "cucm_reinvite_no_sdp.xml", testpeers.SippOptions{
		Keys: map[string]string{"first_port": strconv.Itoa(sink.port())},
	})
	id := c.answer("2004")
	c.state(id, "active", true)
	c.s.Reached("answered")
	deadline := time.Now().Add(5 * time.Second)
	for sink.n.Load() < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d RTP packets reached the first media address in 5 s, want 10", sink.n.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if call := c.state(id, "active", true); call.PacketsReceived != 0 {
		t.Errorf("packets_received %d before the reconnect, want 0 (nothing sends to the daemon yet)", call.PacketsReceived)
	}
	c.s.Continue("answered")

	c.s.Reached("reconnected")
	c.state(id, "active", true)
	c.call(id, "RTP echoed from the new media address", func(call api.Call) bool { return call.PacketsReceived > 10 })
	first := sink.n.Load()
	time.Sleep(300 * time.Millisecond)
	if n := sink.n.Load(); n != first {
		t.Errorf("%d RTP packets still reached the old media address after the ACK's answer moved it", n-first)
	}
	c.s.Continue("reconnected")
	c.remoteHangup(id)
	c.passed()
}

// TestCUCMEarlyMedia: the daemon calls SIPp, which answers 183 with SDP
// and plays an announcement (g711a.pcap) before its 200: the call is in
// state early and bound to the channel while the announcement arrives,
// then call-answered; the test hangs up and SIPp gets the BYE.
func TestCUCMEarlyMedia(t *testing.T) {
	e, _ := cucmEnv(t)
	c := &cucmCall{env: e, s: testpeers.StartSipp(t, testpeers.SippOptions{Scenario: "cucm_early_media_uas.xml"})}
	id, err := e.c.MakeCall(e.ctx, "acc1", "sip:8005551212@"+c.s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.s.Reached("early")
	call := c.state(id, "early", true)
	if call.Direction != "out" || call.Started {
		t.Errorf("call in early media = %+v, want outgoing, not started", call)
	}
	call = c.call(id, "announcement received in early media", func(call api.Call) bool { return call.PacketsReceived > 20 })
	if call.State != "early" || call.Codec != "PCMA" {
		t.Errorf("while the announcement plays: state %q codec %q, want early PCMA", call.State, call.Codec)
	}
	c.s.Continue("early")
	c.event("call-answered", event(api.EventCallAnswered, "acc1", id))
	c.state(id, "active", true)
	if err := e.c.HangupCall(e.ctx, "acc1", id, false); err != nil {
		t.Fatal(err)
	}
	ended := c.event("call-ended", event(api.EventCallEnded, "acc1", id))
	t.Logf("call-ended: reason %q code %d", ended.Reason, ended.Code)
	c.passed()
}

// TestCUCMOtherRequests: OPTIONS out of a dialog 200; BYE and MESSAGE for
// an unknown dialog 481; MESSAGE out of a dialog 405; the INVITE is not
// challenged; in the call OPTIONS and INFO 200, MESSAGE 405 and an unknown
// method 501, none of which disturbs the call; after the BYE another BYE
// gets 481 (all checked by SIPp).
func TestCUCMOtherRequests(t *testing.T) {
	e, p := cucmEnv(t)
	c := sippTo(t, e, p, "cucm_other_requests.xml", testpeers.SippOptions{})
	id := c.answer("2006")
	c.state(id, "active", true)
	c.s.Reached("answered")
	c.s.Continue("answered")
	c.s.Reached("requests")
	c.state(id, "active", true)
	c.noEnded(id)
	c.s.Continue("requests")
	c.remoteHangup(id)
	c.passed()
}

// TestCUCMOverTCP: SIPp over TCP (-t t1) to a daemon listening on UDP and
// TCP: the call (the offer prefers PCMA, the plan's PCMU wins), an UPDATE refresh and the
// daemon's BYE all go over TCP (checked by SIPp).
func TestCUCMOverTCP(t *testing.T) {
	e, p := cucmEnv(t, "udp", "tcp")
	c := sippTo(t, e, p, "cucm_tcp.xml", testpeers.SippOptions{Transport: "tcp"})
	id := c.answer("2007")
	if call := c.state(id, "active", true); call.Codec != "PCMU" {
		t.Errorf("codec %q, want PCMU (the plan's first; the offer lists PCMA first)", call.Codec)
	}
	c.s.Reached("answered")
	c.s.Continue("answered")
	c.s.Reached("refreshed")
	c.state(id, "active", true)
	if err := e.c.HangupCall(e.ctx, "acc1", id, false); err != nil {
		t.Fatal(err)
	}
	c.event("call-ended", event(api.EventCallEnded, "acc1", id))
	c.passed()
}

// TestSippReportsFailure: the harness sees a failed scenario: SIPp expects
// a 486 to OPTIONS, the daemon answers 200, and Wait must return SIPp's
// error (exit status 1, "unexpected message" in errors.log). Without this
// a broken harness would let every CUCM test pass.
func TestSippReportsFailure(t *testing.T) {
	e, p := cucmEnv(t)
	scen := filepath.Join(t.TempDir(), "want_486.xml")
	xml := `<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="expects a 486 to OPTIONS">
  <send retrans="500">
    <![CDATA[

      OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:probe@[local_ip]>;tag=probe[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="486"/>
</scenario>
`
	if err := os.WriteFile(scen, []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	c := sippTo(t, e, p, scen, testpeers.SippOptions{RecvTimeout: 2 * time.Second})
	err := c.s.Wait(20 * time.Second)
	if err == nil {
		t.Fatal("sipp reported success for a scenario the daemon cannot satisfy")
	}
	if !strings.Contains(err.Error(), "exit status 1") || !strings.Contains(c.s.Messages(), "SIP/2.0 200") {
		t.Errorf("want exit status 1 after the daemon's 200; got %v", err)
	}
}
