//go:build integration

package e2e

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// peerPorts are a baresip's ports for a capture filter: SIP (UDP, and TCP
// on port+1), ctrl_tcp excluded, RTP/RTCP.
func peerPorts(p *testpeers.Baresip) []testpeers.PortRange {
	lo, hi := p.RTPRange()
	return []testpeers.PortRange{{Min: p.SIPPort(), Max: p.SIPPort() + 1}, {Min: lo, Max: hi}}
}

// TestIPv6: the Kamailio and baresip paths over ::1 only: Kamailio on
// [::1] (401 on REGISTER, 407 on INVITE, Record-Route), baresip and the
// daemon on ::1. A call in with the peer's tone echoed back (checked by
// frequency at the peer), a call out held and resumed by the peer and hung
// up by the daemon through the route set; tshark sees IPv6 packets only.
func TestIPv6(t *testing.T) {
	e := newEnv6(t)
	p := e.peer("3002", testpeers.BaresipOptions{Source: "ausine,440", Record: true})
	capture := testpeers.StartCapture(t, append(peerPorts(p), testpeers.PortRange{Min: e.k.Port()})...)
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)
	if len(e.k.LogLines("AUTH challenge REGISTER 3001")) == 0 {
		t.Error("the REGISTER was not challenged (401)")
	}
	contacts, err := e.k.Contacts()
	if err != nil {
		t.Fatal(err)
	}
	if c := contacts["3001"]; len(c) != 1 || !strings.Contains(c[0], "@[::1]:") {
		t.Errorf("registered contact of 3001 %v, want one sip:3001@[::1]:PORT", c)
	}

	t.Run("call in, audio", func(t *testing.T) {
		heard := callAndListen(t, e, p, 3*time.Second)
		expectTone(t, "peer heard its echo over IPv6", heard, 440, 0.7)
	})

	t.Run("call out, hold and resume", func(t *testing.T) {
		id := e.callPeer(t, "acc1", "3002", p)
		if len(e.k.LogLines("AUTH challenge INVITE 3001")) == 0 {
			t.Error("the INVITE was not challenged (407)")
		}
		if err := p.Hold(); err != nil {
			t.Fatal(err)
		}
		waitPeerDir(t, p, "sendonly")
		if err := p.Resume(); err != nil {
			t.Fatal(err)
		}
		waitPeerDir(t, p, "sendrecv")
		before := waitCall(t, e.c, "acc1", id, "active", func(c api.Call) bool { return c.State == "active" }).PacketsReceived
		time.Sleep(time.Second)
		waitCall(t, e.c, "acc1", id, "media after the resume", func(c api.Call) bool { return c.PacketsReceived > before+20 })
		byes := len(e.k.LogLines("REQ BYE"))
		if err := e.c.HangupCall(e.ctx, "acc1", id, false); err != nil {
			t.Fatal(err)
		}
		wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
		if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_CLOSED"); err != nil {
			t.Fatal(err)
		}
		if len(e.k.LogLines("REQ BYE")) == byes {
			t.Error("the daemon's BYE did not go through Kamailio: Record-Route not followed")
		}
	})

	capture.Stop()
	pkts := capture.Packets("sip.Method", "sip.Status-Code", "sip.CSeq.method", "sip.Via", "sip.Contact",
		"sip.Record-Route", "sip.Route", "sdp.connection_info")
	v4, v6 := countPackets(pkts, func(p testpeers.Packet) bool { return p.Family == 4 }), countPackets(pkts, func(p testpeers.Packet) bool { return p.Family == 6 })
	sip6 := countPackets(pkts, func(p testpeers.Packet) bool { return p.Family == 6 && p.Is("sip") })
	rtp6 := countPackets(pkts, func(p testpeers.Packet) bool { return p.Family == 6 && p.Is("rtp") })
	t.Logf("tshark: %d IPv4 and %d IPv6 packets; %d SIP, %d RTP over IPv6", v4, v6, sip6, rtp6)
	if v4 != 0 || sip6 < 10 || rtp6 < 200 {
		t.Errorf("tshark saw %d IPv4 packets, %d SIP and %d RTP over IPv6; want IPv6 only, with SIP and RTP", v4, sip6, rtp6)
	}
	// The daemon's side of the ladder, as seen on the wire.
	for _, c := range []struct {
		what string
		ok   func(p testpeers.Packet) bool
	}{
		{"REGISTER challenged with 401", func(p testpeers.Packet) bool {
			return p.Field("sip.CSeq.method") == "REGISTER" && p.Field("sip.Status-Code") == "401"
		}},
		{"INVITE challenged with 407", func(p testpeers.Packet) bool {
			return p.Field("sip.CSeq.method") == "INVITE" && p.Field("sip.Status-Code") == "407"
		}},
		{"Record-Route <sip:[::1]:PORT;lr>", func(p testpeers.Packet) bool { return strings.Contains(p.Field("sip.Record-Route"), "[::1]") }},
		{"Via [::1]:PORT with rport", func(p testpeers.Packet) bool {
			return strings.Contains(p.Field("sip.Via"), "[::1]:") && strings.Contains(p.Field("sip.Via"), "rport")
		}},
		{"Contact sip:3001@[::1]:PORT", func(p testpeers.Packet) bool { return strings.Contains(p.Field("sip.Contact"), "sip:3001@[::1]:") }},
		{"BYE with a Route to [::1]", func(p testpeers.Packet) bool {
			return p.Field("sip.Method") == "BYE" && strings.Contains(p.Field("sip.Route"), "[::1]")
		}},
	} {
		if countPackets(pkts, func(p testpeers.Packet) bool { return p.Family == 6 && c.ok(p) }) == 0 {
			t.Errorf("tshark: no %s over IPv6", c.what)
		}
	}
	for _, p := range pkts {
		if ci := p.Field("sdp.connection_info"); p.Is("sdp") && !strings.HasPrefix(ci, "IN IP6 ::1") {
			t.Errorf("SDP connection %q, want IN IP6 ::1", ci)
		}
	}
}

func countPackets(pkts []testpeers.Packet, ok func(testpeers.Packet) bool) int {
	n := 0
	for _, p := range pkts {
		if ok(p) {
			n++
		}
	}
	return n
}

// TestIPv6LocalCall: the local-call path with the daemon on ::1.
func TestIPv6LocalCall(t *testing.T) { localCall(t, "::1") }

// TestDualStack: a daemon bound to "::" has an account at an IPv4 Kamailio
// and one at an IPv6 Kamailio; an IPv4 peer and an IPv6 peer call them at
// the same time. Each call keeps its family in SIP, SDP and RTP, and each
// carries audio both ways.
func TestDualStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	k4 := testpeers.StartKamailio(t, testpeers.KamailioOptions{})
	k6 := testpeers.StartKamailio(t, testpeers.KamailioOptions{IPv6: true})
	p4 := testpeers.StartBaresip(t, "3002", testpeers.BaresipOptions{Registrar: k4.Addr()})
	p6 := testpeers.StartBaresip(t, "3004", testpeers.BaresipOptions{Registrar: k6.Addr(), IPv6: true})
	ports := append(peerPorts(p4), peerPorts(p6)...)
	capture := testpeers.StartCapture(t, append(ports, testpeers.PortRange{Min: k4.Port()}, testpeers.PortRange{Min: k6.Port()})...)

	e := &env{t: t, k: k4, ctx: ctx}
	e.start(&plan{Address: "::", Accounts: []account{
		{Name: "acc4", User: "3001", Pass: "sip3001", Server: k4.Addr()},
		{Name: "acc6", User: "3003", Pass: "sip3003", Server: k6.Addr()},
	}})
	waitRegistered(t, e.c, "acc4", 200)
	waitRegistered(t, e.c, "acc6", 200)

	if err := p4.Dial("sip:3001@" + k4.Addr()); err != nil {
		t.Fatal(err)
	}
	if err := p6.Dial("sip:3003@" + k6.Addr()); err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	for _, acct := range []string{"acc4", "acc6"} {
		in := wait(t, e.c, 10*time.Second, "call-incoming on "+acct, event(api.EventCallIncoming, acct, -1))
		ids[acct] = in.CallID
		if err := e.c.AnswerCall(ctx, acct, in.CallID); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []*testpeers.Baresip{p4, p6} {
		if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_ESTABLISHED"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(1500 * time.Millisecond)
	for acct, id := range ids {
		c := waitCall(t, e.c, acct, id, "media flowing", func(c api.Call) bool { return c.PacketsReceived > 20 && c.PacketsSent > 20 })
		t.Logf("%s: %+v", acct, c)
	}
	for acct, p := range map[string]*testpeers.Baresip{"acc4": p4, "acc6": p6} {
		if err := p.Hangup(); err != nil {
			t.Fatal(err)
		}
		wait(t, e.c, 5*time.Second, "call-ended on "+acct, event(api.EventCallEnded, acct, ids[acct]))
	}

	capture.Stop()
	// Each SDP travels in its call's family and names an address of it.
	pkts := capture.Packets("sdp.connection_info")
	want := map[int]string{4: "IN IP4 127.0.0.1", 6: "IN IP6 ::1"}
	sdps, rtp := map[int]int{}, map[int]int{}
	for _, p := range pkts {
		if p.Is("rtp") {
			rtp[p.Family]++
		}
		if !p.Is("sdp") {
			continue
		}
		sdps[p.Family]++
		if c := p.Field("sdp.connection_info"); !strings.HasPrefix(c, want[p.Family]) {
			t.Errorf("SDP over IPv%d: connection %q, want %s", p.Family, c, want[p.Family])
		}
	}
	t.Logf("tshark: SDP %d over IPv4, %d over IPv6; RTP %d over IPv4, %d over IPv6", sdps[4], sdps[6], rtp[4], rtp[6])
	if sdps[4] < 2 || sdps[6] < 2 || rtp[4] < 100 || rtp[6] < 100 {
		t.Errorf("want an offer and an answer and both calls' RTP in each family")
	}
}

// TestIPv6TCP: SIP over TCP on ::1: the daemon registers at Kamailio
// [::1] over TCP and calls a TCP peer, which hangs up; and the daemon's
// two local accounts call each other over TCP on ::1.
func TestIPv6TCP(t *testing.T) {
	e := newEnv6(t)
	p := e.peer("3002", testpeers.BaresipOptions{Transport: "tcp"})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}, Transports: []string{"tcp"}})
	waitRegistered(t, e.c, "acc1", 200)
	if regs := e.k.LogLines("REQ REGISTER sip:[::1]"); len(regs) == 0 || !strings.Contains(regs[len(regs)-1], "(tcp:::1:") {
		t.Errorf("REGISTER lines %q, want the daemon's over tcp from ::1", regs)
	}
	id := e.callPeer(t, "acc1", "3002", p)
	waitCall(t, e.c, "acc1", id, "media flowing", func(c api.Call) bool { return c.PacketsReceived > 10 })
	if err := p.Hangup(); err != nil {
		t.Fatal(err)
	}
	ended := wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
	if !strings.Contains(strings.ToLower(ended.Reason), "remote") {
		t.Errorf("call-ended reason %q, want a remote hangup", ended.Reason)
	}
	t.Run("local call", func(t *testing.T) { localCall(t, "::1", "tcp") })
}

// TestAPIAllowIPv6: a daemon whose API listens on "::" with allow ::1/128
// serves ::1 and refuses 127.0.0.1; with allow 127.0.0.1/32 the reverse.
func TestAPIAllowIPv6(t *testing.T) {
	for _, tc := range []struct{ allow, admitted, refused string }{
		{"::1/128", "::1", "127.0.0.1"},
		{"127.0.0.1/32", "127.0.0.1", "::1"},
	} {
		t.Run(tc.allow, func(t *testing.T) {
			pl := &plan{Address: "::", Allow: []string{tc.allow}, Accounts: []account{{Name: "acc1", User: "3001", Pass: "x"}}}
			d := testpeers.StartDaemonWith(t, pl.render(t), testpeers.DaemonOptions{NoWait: true})
			port := strconv.Itoa(pl.APIPort)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var c *client.Client
			for {
				var err error
				if c, err = client.Dial(ctx, net.JoinHostPort(tc.admitted, port)); err == nil {
					break
				}
				if ctx.Err() != nil || d.Exited() {
					t.Fatalf("API on [::]:%s not reachable from %s: %v; log:\n%s", port, tc.admitted, err, d.Log())
				}
				time.Sleep(50 * time.Millisecond)
			}
			defer c.Close()
			if st, err := c.GetStatus(ctx, "acc1"); err != nil || len(st) != 1 {
				t.Fatalf("get-status from %s: %v %v", tc.admitted, st, err)
			}
			// The refused client is accepted by the kernel, then closed
			// without an answer.
			conn, err := net.DialTimeout("tcp", net.JoinHostPort(tc.refused, port), 2*time.Second)
			if err != nil {
				t.Fatalf("connect from %s: %v", tc.refused, err)
			}
			defer conn.Close()
			_, _ = conn.Write([]byte(`{"cmd":"get-status","account":"acc1"}` + "\x00"))
			_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
			if n, err := conn.Read(make([]byte, 512)); err == nil || strings.Contains(err.Error(), "timeout") {
				t.Errorf("client from %s: read %d bytes, %v; want the connection closed", tc.refused, n, err)
			}
			if log := d.Log(); !strings.Contains(log, "API connection refused") {
				t.Errorf("daemon log has no refusal of %s", tc.refused)
			}
		})
	}
}
