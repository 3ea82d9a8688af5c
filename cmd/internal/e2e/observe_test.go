//go:build integration

package e2e

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// TestRegistrationStates: get-status says in words what the registration
// is doing: no-server, disabled, registered (with expiry), rejected (wrong
// password), logged-out; and a registrar that stops answering (SIGSTOP)
// reads registering, then unreachable with a retry time.
func TestRegistrationStates(t *testing.T) {
	e := newEnv(t)
	bad := e.user("wrong", "3003")
	bad.Pass = "not-the-password"
	local := account{Name: "local", User: "3009"}
	noreg := e.user("noreg", "3004")
	noreg.NoRegister = true
	// register-timeout 4 s instead of timer F's 32 s keeps the silent
	// registrar's part short; the state machine is the same.
	e.start(&plan{Accounts: []account{e.user("acc1", "3001"), bad, local, noreg}, RegisterRetry: "2s",
		SIPExtra: `register-timeout = "4s"`})
	reg := func(acct string) api.Registration {
		t.Helper()
		st := status(t, e.c, acct)
		if st.Registration == nil {
			t.Fatalf("status of %s has no registration: %+v", acct, st)
		}
		return *st.Registration
	}
	waitReg := func(acct, what string, ok func(api.Registration) bool) api.Registration {
		t.Helper()
		st := waitStatus(t, e.c, acct, 60*time.Second, what, func(s api.Status) bool { return s.Registration != nil && ok(*s.Registration) })
		return *st.Registration
	}
	r := waitReg("acc1", "registered", func(r api.Registration) bool { return r.State == "registered" })
	if r.Server != e.k.Addr() || r.Transport != "udp" || r.ExpiresIn <= 0 || r.ExpiresIn > 60 || r.LastError != "" {
		t.Errorf("acc1 registration %+v, want registered at %s over udp, expiring within 60 s", r, e.k.Addr())
	}
	r = waitReg("wrong", "rejected", func(r api.Registration) bool { return r.State == "rejected" })
	if !strings.HasPrefix(r.LastError, "401") && !strings.HasPrefix(r.LastError, "403") {
		t.Errorf("wrong password: last_error %q, want a 401/403", r.LastError)
	}
	if r.RetryIn <= 0 || r.RetryIn > 8 {
		// Within the back-off: 2 s, doubling.
		t.Logf("retry_in_s %d", r.RetryIn)
	}
	if got := reg("local").State; got != "no-server" {
		t.Errorf("account without server: state %q, want no-server", got)
	}
	if got := reg("noreg").State; got != "disabled" {
		t.Errorf("register = false: state %q, want disabled", got)
	}
	if err := e.c.Logout(e.ctx, "acc1"); err != nil {
		t.Fatal(err)
	}
	waitReg("acc1", "logged-out", func(r api.Registration) bool { return r.State == "logged-out" })
	// The un-REGISTER is answered before the registrar goes silent.
	if err := e.k.WaitLocation(peerCtx(t, 5*time.Second), "3001", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)

	// The registrar goes silent: a login's REGISTER gets no answer.
	if err := e.k.Pause(); err != nil {
		t.Fatal(err)
	}
	paused := true
	defer func() {
		if paused {
			e.k.Continue()
		}
	}()
	if err := e.c.Login(e.ctx, "acc1", nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	r = waitReg("acc1", "registering", func(r api.Registration) bool { return r.State == "registering" })
	t.Logf("while the registrar is silent: %+v", r)
	// No answer within register-timeout (4 s here; timer F's 32 s by default).
	r = waitReg("acc1", "unreachable", func(r api.Registration) bool { return r.State == "unreachable" })
	if !strings.HasPrefix(r.LastError, "408") || r.RetryIn <= 0 {
		t.Errorf("silent registrar: %+v, want last_error 408 and a retry_in_s", r)
	}
	if err := e.k.Continue(); err != nil {
		t.Fatal(err)
	}
	paused = false
	waitReg("acc1", "registered again", func(r api.Registration) bool { return r.State == "registered" && r.LastError == "" })
}

// TestCallQuality: during a call to baresip, status carries the media
// addresses, octets, an RTCP round trip and a MOS estimate; a call whose
// incoming RTP loses 5 % (an nftables rule on the test's own RTP ports)
// gets a lower MOS than a clean one.
func TestCallQuality(t *testing.T) {
	testpeers.RequireBinary(t, "nft", "nftables")
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{Source: "ausine,440"})
	pl := &plan{Accounts: []account{e.user("acc1", "3001")}}
	e.start(pl)
	waitRegistered(t, e.c, "acc1", 200)
	minP, maxP := p.RTPRange()
	capture := testpeers.StartCapture(t, testpeers.PortRange{Min: pl.RTPMin, Max: pl.RTPMax})

	call := func(name string) api.Call {
		t.Helper()
		id := e.callOut(t, "acc1", "3002")
		// RTCP every ~5 s: the RTT needs the peer's RR after our first SR
		// (5-10 s in), and the lossy call's rule drops 5 % of RTCP too, so
		// one lost report adds 5 s; 25 s leaves room for two.
		var c api.Call
		waitStatus(t, e.c, "acc1", 25*time.Second, fmt.Sprintf("call %d %s: rtt", id, name), func(s api.Status) bool {
			cl, found := findCall(s, id)
			c = cl
			return found && cl.RTTMs > 0 && cl.PacketsReceived > 400
		})
		if err := e.c.HangupCall(e.ctx, "acc1", id, false); err != nil {
			t.Fatal(err)
		}
		wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
		if final, ok := findCall(status(t, e.c, "acc1"), id); ok {
			c.PacketsSent, c.PacketsReceived, c.PacketsLost = final.PacketsSent, final.PacketsReceived, final.PacketsLost
			c.OctetsSent, c.OctetsReceived = final.OctetsSent, final.OctetsReceived
		} else {
			t.Fatalf("%s: the ended call is not in status", name)
		}
		t.Logf("%s: %s -> %s codec %s rx %d pkts %d octets lost %d jitter %.1f ms rtt %.2f ms MOS %.2f (R %.1f)",
			name, c.LocalMedia, c.RemoteMedia, c.Codec, c.PacketsReceived, c.OctetsReceived, c.PacketsLost, c.JitterMs, c.RTTMs, c.MOS, c.RFactor)
		if !strings.HasPrefix(c.LocalMedia, "127.0.0.1:") || !strings.HasPrefix(c.RemoteMedia, "127.0.0.1:") {
			t.Errorf("%s: media %q -> %q, want 127.0.0.1 addresses", name, c.LocalMedia, c.RemoteMedia)
		}
		var port int
		fmt.Sscanf(c.RemoteMedia, "127.0.0.1:%d", &port)
		if port < minP || port > maxP {
			t.Errorf("%s: remote_media port %d outside baresip's RTP range %d-%d", name, port, minP, maxP)
		}
		if c.OctetsReceived != 160*c.PacketsReceived || c.OctetsSent < 160*(c.PacketsSent-1) {
			t.Errorf("%s: octets %d/%d for %d/%d packets, want 160 per G.711 packet", name, c.OctetsReceived, c.OctetsSent, c.PacketsReceived, c.PacketsSent)
		}
		if c.MOS < 1 || c.MOS > 4.5 || c.DurationS <= 0 {
			t.Errorf("%s: MOS %.2f duration %.1f", name, c.MOS, c.DurationS)
		}
		return c
	}
	clean := call("clean")
	// What tshark saw of the clean call's RTP agrees with the counters: the
	// counters are read when the call ends, packets in flight then may
	// differ (at 50 packets a second, 50 is one second, a fifth of the
	// RTCP report interval).
	capture.Stop()
	var port int
	fmt.Sscanf(clean.LocalMedia, "127.0.0.1:%d", &port)
	rx := capture.Count(fmt.Sprintf("rtp && udp.dstport == %d", port))
	tx := capture.Count(fmt.Sprintf("rtp && udp.srcport == %d", port))
	t.Logf("tshark: %d RTP packets to %s, %d from it; status: %d received, %d sent", rx, clean.LocalMedia, tx, clean.PacketsReceived, clean.PacketsSent)
	if d := rx - int(clean.PacketsReceived); d < 0 || d > 50 {
		t.Errorf("tshark saw %d RTP packets to the daemon, status counted %d received", rx, clean.PacketsReceived)
	}
	if d := tx - int(clean.PacketsSent); d < -50 || d > 50 {
		t.Errorf("tshark saw %d RTP packets from the daemon, status counted %d sent", tx, clean.PacketsSent)
	}

	// Drop 5 % of what reaches the daemon's RTP ports (and only those).
	table := fmt.Sprintf("telestra_e2e_%d", pl.RTPMin)
	nft := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("nft", args...).CombinedOutput(); err != nil {
			t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	nft("add", "table", "inet", table)
	t.Cleanup(func() { _ = exec.Command("nft", "delete", "table", "inet", table).Run() }) // if the test stops early
	nft("add", "chain", "inet", table, "in", "{ type filter hook input priority 0 ; }")
	nft("add", "rule", "inet", table, "in", "ip", "daddr", "127.0.0.1", "udp", "dport",
		fmt.Sprintf("%d-%d", pl.RTPMin, pl.RTPMax), "numgen", "random", "mod", "100", "<", "5", "drop")
	lossy := call("5% loss")
	// Removed at once, not only at cleanup: a run killed by -timeout skips
	// cleanups, and the ports go back to the pool.
	nft("delete", "table", "inet", table)
	if lossy.PacketsLost == 0 {
		t.Fatalf("the nftables rule dropped nothing")
	}
	if lossy.MOS >= clean.MOS-0.2 {
		t.Errorf("MOS %.2f with 5%% loss, %.2f clean: want it lower by more than 0.2", lossy.MOS, clean.MOS)
	}
}

// TestSIPTrace: a client subscribed with trace sees every SIP message of a
// call through Kamailio to baresip, in order, with its Call-ID; a client
// that did not ask sees none.
func TestSIPTrace(t *testing.T) {
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{})
	pl := &plan{Accounts: []account{e.user("acc1", "3001")}}
	e.start(pl)
	waitRegistered(t, e.c, "acc1", 200)
	capture := testpeers.StartCapture(t, testpeers.PortRange{Min: pl.SIPPort})
	plain := e.d.Client(t)
	if err := plain.Ping(e.ctx); err != nil {
		t.Fatal(err)
	}
	tr := e.d.Client(t)
	if err := tr.SendRaw([]byte(`{"cmd":"trace","account":"acc1"}`)); err != nil {
		t.Fatal(err)
	}
	wait(t, tr, 5*time.Second, "trace answer", func(m client.Message) bool { return m.Event == "trace" })
	// And to the log (the e2e plans log at debug level).
	if err := tr.SendRaw([]byte(`{"cmd":"sip-trace","on":true}`)); err != nil {
		t.Fatal(err)
	}
	wait(t, tr, 5*time.Second, "sip-trace answer", func(m client.Message) bool { return m.Event == "sip-trace" })

	id := e.callPeer(t, "acc1", "3002", p)
	if err := e.c.HangupCall(e.ctx, "acc1", id, false); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))

	var ladder []api.SIPMessage
	var callID string
	for {
		m := wait(t, tr, 5*time.Second, "sip-message", func(m client.Message) bool { return m.Event == "sip-message" })
		var w struct {
			Account, Direction, Transport, Local, Remote, Message string
			CallID                                                string `json:"sip_call_id"`
			FirstLine                                             string `json:"first_line"`
		}
		if err := m.Decode(&w); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(w.FirstLine, "INVITE ") && callID == "" {
			callID = w.CallID
		}
		if callID == "" || w.CallID != callID {
			continue // the registration's messages
		}
		ladder = append(ladder, api.SIPMessage{Sent: w.Direction == "sent", FirstLine: w.FirstLine, CallID: w.CallID,
			Transport: w.Transport, Local: w.Local, Remote: w.Remote, Account: w.Account, Message: w.Message})
		if strings.HasPrefix(w.FirstLine, "SIP/2.0 200") && strings.Contains(w.Message, " BYE\r\n") {
			break
		}
	}
	var got []string
	for _, m := range ladder {
		dir := "<-"
		if m.Sent {
			dir = "->"
		}
		got = append(got, dir+" "+ladderName(m))
		if m.Account != "acc1" || m.Transport != "udp" || m.Remote != e.k.Addr() {
			t.Errorf("%s %s: account %q transport %q remote %q, want acc1 udp %s", dir, m.FirstLine, m.Account, m.Transport, m.Remote, e.k.Addr())
		}
	}
	// Kamailio challenges the INVITE (407); its 100 Trying may come before
	// the challenge, and 180 may be absent (baresip answers at once).
	want := []string{"-> INVITE", "<- 407", "-> ACK", "-> INVITE", "<- 200 INVITE", "-> ACK", "-> BYE", "<- 200 BYE"}
	if !subsequence(got, want) {
		t.Errorf("trace ladder\n%s\nwant in order %v", strings.Join(got, "\n"), want)
	}
	t.Logf("ladder:\n%s", strings.Join(got, "\n"))

	// tshark saw the same messages of that Call-ID, in the same order.
	capture.Stop()
	var wire []string
	for _, l := range capture.Fields(fmt.Sprintf("sip.Call-ID == %q", callID), "udp.srcport", "sip.Method", "sip.Status-Code", "sip.CSeq.method") {
		f := strings.Split(l, "\t")
		for len(f) < 4 {
			f = append(f, "")
		}
		dir := "<-"
		if f[0] == strconv.Itoa(pl.SIPPort) {
			dir = "->"
		}
		name := f[1]
		if name == "" {
			name = f[2]
			if name == "200" {
				name += " " + f[3]
			}
		}
		wire = append(wire, dir+" "+name)
	}
	if strings.Join(wire, "\n") != strings.Join(got, "\n") {
		t.Errorf("tshark saw %d messages of Call-ID %s, the trace %d:\ntshark:\n%s\ntrace:\n%s",
			len(wire), callID, len(got), strings.Join(wire, "\n"), strings.Join(got, "\n"))
	}

	// The log has them too, with their fields.
	log := e.d.Log()
	if n := strings.Count(log, "sip_call_id="+callID); n < len(got) {
		t.Errorf("the log has %d trace lines of Call-ID %s, want %d", n, callID, len(got))
	}
	if !strings.Contains(log, `msg="SIP message" component=sip-trace direction=sent transport=udp`) {
		t.Error("no sip-trace line with its fields in the log")
	}
	// A client that did not ask got the call's events and no sip-message.
	for {
		m, err := plain.Next(peerCtx(t, 5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if m.Event == api.EventSIPMessage {
			t.Fatalf("a client that did not ask got %s", m.Raw)
		}
		if m.Event == api.EventCallEnded && m.CallID == id {
			break
		}
	}
}

// ladderName: the method of a request, the code (and CSeq method for 200)
// of a response.
func ladderName(m api.SIPMessage) string {
	f := strings.Fields(m.FirstLine)
	if len(f) < 2 {
		return m.FirstLine
	}
	if f[0] != "SIP/2.0" {
		return f[0]
	}
	if f[1] == "200" {
		for _, l := range strings.Split(m.Message, "\r\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "CSeq") {
				if fs := strings.Fields(v); len(fs) == 2 {
					return "200 " + fs[1]
				}
			}
		}
	}
	return f[1]
}

func subsequence(got, want []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
