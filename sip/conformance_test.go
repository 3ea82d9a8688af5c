package sip

import (
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func viaHops(n int) []sip.Header {
	var hs []sip.Header
	for _, h := range proxied(n) {
		if h.Name() == "Via" {
			hs = append(hs, h)
		}
	}
	return hs
}

// proxied are the headers of a request that crossed n proxies: their Vias
// below the peer's own and their Record-Routes.
func proxied(n int) []sip.Header {
	var hs []sip.Header
	for i := 0; i < n; i++ {
		hs = append(hs, sip.NewHeader("Via", "SIP/2.0/UDP p"+strconv.Itoa(i)+".example.net;branch=z9hG4bK-hop"+strconv.Itoa(i)+"-aaaaaa"))
	}
	for i := 0; i < n; i++ {
		hs = append(hs, sip.NewHeader("Record-Route", "<sip:p"+strconv.Itoa(i)+".example.net;lr;ftag=aaaaaaaa>"))
	}
	return hs
}

// TestBigUDPResponsesAreSent: responses over UDP larger than 1300 bytes
// reach the caller (RFC 3261 §18.2.2; the 1300-byte rule of §18.1.1 is for
// requests): an OPTIONS with as many Vias as fit in 1300 bytes, and an INVITE without SDP through 7
// proxies whose 200 (our offer and every Record-Route) is over 1300 bytes,
// both requests being under it. Before, sipgo refused to write them.
func TestBigUDPResponsesAreSent(t *testing.T) {
	p := newPeer(t)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Audio: &fakePort{"c"}}}, nil)

	d := &pdialog{p: p, callID: newCallID(), localTag: newTag(), cseq: 1,
		local:  sip.Uri{Scheme: "sip", User: "5555", Host: "127.0.0.1"},
		remote: sip.Uri{Scheme: "sip", User: "3001", Host: "127.0.0.1"},
		target: sip.Uri{Scheme: "sip", User: "3001", Host: "127.0.0.1", Port: h.ua.udpPort}}
	// As many Vias as keep the request under 1300 bytes (about 18).
	var req *sip.Request
	for n := 1; ; n++ {
		next := d.request(sip.OPTIONS, nil, viaHops(n)...)
		p.prepare(next)
		if len(next.String()) > 1300 {
			break
		}
		req = next
	}
	d.cseq++
	r := p.do(req)
	if r.StatusCode != 200 {
		t.Fatalf("OPTIONS with %d Vias answered %d", len(req.GetHeaders("Via")), r.StatusCode)
	}
	if n := len(r.String()); n <= 1300 {
		t.Fatalf("the 200 to OPTIONS is %d bytes: the test needs more than 1300", n)
	}

	pc := p.call(t, h.ua.udpPort, "3001", nil, proxied(7)...)
	if n := len(pc.inv.String()); n > 1300 {
		t.Fatalf("the INVITE is %d bytes: the test needs it under 1300", n)
	}
	ev := h.ev.wait(t, CallIncoming, 3*time.Second)
	if err := h.ua.Answer("a1", ev.CallID); err != nil {
		t.Fatal(err)
	}
	res := pc.final(t, 5*time.Second)
	if res.StatusCode != 200 {
		t.Fatalf("INVITE through 8 proxies answered %d", res.StatusCode)
	}
	if n := len(res.String()); n <= 1300 {
		t.Fatalf("the 200 to INVITE is %d bytes: the test needs more than 1300", n)
	}
	if got := len(res.GetHeaders("Record-Route")); got != 7 {
		t.Errorf("200 has %d Record-Routes, want 7", got)
	}
	pc.ack(t, res, peerSDP(30000, "sendrecv", "", 1))
	h.ev.wait(t, CallAnswered, 3*time.Second)
}

// bigTarget is a dial target that makes an INVITE of over 1300 bytes.
func bigTarget(p *peer) string { return "sip:3009@" + p.addr() + ";pad=" + strings.Repeat("x", 1400) }

// TestBigRequestGoesOverTCP: an INVITE of ours over 1300 bytes that would
// go over UDP goes over TCP, its top Via saying TCP and our TCP port (RFC
// 3261 §18.1.1); the answer comes back on that connection, the trace shows
// the connection we dialled, and the small ACK and BYE stay on UDP.
func TestBigRequestGoesOverTCP(t *testing.T) {
	p := newPeerOn(t, true)
	s := &uas{final: 200}
	s.install(t, p)
	var mu sync.Mutex
	var traced []TraceMessage
	h := startUA(t, []Account{{Name: "a1", User: "3001", Server: p.addr()}}, func(c *Config, u *UA) {
		if c != nil {
			c.Transports = []string{"udp", "tcp"}
		}
		if u != nil {
			u.SetTrace(func(m TraceMessage) {
				mu.Lock()
				traced = append(traced, m)
				mu.Unlock()
			})
		}
	})
	id := dialAccount(t, h, "a1", bigTarget(p))
	h.ev.wait(t, CallAnswered, 3*time.Second)
	s.mu.Lock()
	inv := s.invites[0]
	s.mu.Unlock()
	if n := len(inv.String()); n <= 1300 {
		t.Fatalf("the INVITE is %d bytes: the test needs more than 1300", n)
	}
	if v := inv.Via(); inv.Transport() != "TCP" || v.Transport != "TCP" || v.Port != h.ua.tcpPort {
		t.Errorf("INVITE came over %s with Via %v; want TCP and SIP/2.0/TCP ...:%d", inv.Transport(), v, h.ua.tcpPort)
	}
	if ack := p.expect(sip.ACK, 2*time.Second); ack.Transport() != "UDP" {
		t.Errorf("ACK came over %s, want UDP", ack.Transport())
	}
	if err := h.ua.Hangup("a1", id, false); err != nil {
		t.Fatal(err)
	}
	if bye := p.expect(sip.BYE, 2*time.Second); bye.Transport() != "UDP" {
		t.Errorf("BYE came over %s, want UDP", bye.Transport())
	}
	h.ev.wait(t, CallEnded, 2*time.Second)
	eventually(t, "the trace shows the INVITE and its 200 on the dialled connection", 2*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		var sent, got bool
		for _, m := range traced {
			if m.Transport != "tcp" || m.CallID != inv.CallID().Value() {
				continue
			}
			sent = sent || m.Sent && strings.HasPrefix(m.FirstLine, "INVITE ")
			got = got || !m.Sent && strings.HasPrefix(m.FirstLine, "SIP/2.0 200")
		}
		return sent && got
	})
}

// TestBigRequestFallsBackToUDP: when the far end refuses the TCP connection
// (nothing listens there), the big INVITE goes over UDP after all (RFC 3261
// §18.1.1, for RFC 2543 peers without TCP) and the call works.
func TestBigRequestFallsBackToUDP(t *testing.T) {
	p := newPeer(t) // UDP only: a connect to its port is refused
	s := &uas{final: 200}
	s.install(t, p)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Server: p.addr()}}, func(c *Config, _ *UA) {
		if c != nil {
			c.Transports = []string{"udp", "tcp"}
		}
	})
	dialAccount(t, h, "a1", bigTarget(p))
	h.ev.wait(t, CallAnswered, 3*time.Second)
	s.mu.Lock()
	inv := s.invites[0]
	s.mu.Unlock()
	if v := inv.Via(); inv.Transport() != "UDP" || v.Transport != "UDP" || v.Port != h.ua.udpPort || len(inv.String()) <= 1300 {
		t.Errorf("INVITE of %d bytes came over %s with Via %v; want over 1300 bytes over UDP, Via SIP/2.0/UDP ...:%d",
			len(inv.String()), inv.Transport(), v, h.ua.udpPort)
	}
}

// TestBigRequestWithoutTCPFails: without a TCP listener a request of ours
// over 1300 bytes is not sent over UDP (RFC 3261 §18.1.1), and the call
// ends saying why.
func TestBigRequestWithoutTCPFails(t *testing.T) {
	p := newPeer(t)
	s := &uas{final: 200}
	s.install(t, p)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Server: p.addr()}}, nil)
	dialAccount(t, h, "a1", bigTarget(p))
	ev := h.ev.wait(t, CallEnded, 3*time.Second)
	if !strings.Contains(ev.Reason, "RFC 3261 §18.1.1") || !strings.Contains(ev.Reason, "sip-settings.transports") {
		t.Errorf("call ended with %q; want the size rule and the missing TCP transport named", ev.Reason)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.invites) != 0 {
		t.Errorf("the peer got %d INVITEs", len(s.invites))
	}
}

// TestRequestSizeCountsTheRendering: the size rule counts what sipgo sends.
func TestRequestSizeCountsTheRendering(t *testing.T) {
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", User: "x", Host: "127.0.0.1"})
	req.SetTransport("UDP")
	req.AppendHeader(sip.NewHeader("X-Pad", string(make([]byte, 1400))))
	req.SetBody([]byte("v=0\r\n"))
	if got, want := requestSize(req), len(req.String()); got != want {
		t.Errorf("requestSize = %d, want len(String()) = %d", got, want)
	}
}

// TestEdgeInFrontOfSipgo: the UA's UDP socket goes through sip/edge: a
// request with SIP/7.0, which sipgo would answer as if it were 2.0, gets
// 505 and is counted.
func TestEdgeInFrontOfSipgo(t *testing.T) {
	h := startUA(t, []Account{{Name: "a1", User: "3001"}}, nil)
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "OPTIONS sip:3001@127.0.0.1 SIP/7.0\r\nVia: SIP/7.0/UDP 127.0.0.1;branch=z9hG4bKv7;rport\r\n" +
		"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:3001@127.0.0.1>\r\nCall-ID: v7\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	if _, err := c.WriteTo([]byte(req), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: h.ua.udpPort}); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := strings.Cut(string(buf[:n]), "\r\n"); got != "SIP/2.0 505 Version Not Supported" {
		t.Fatalf("answer %q, want SIP/2.0 505", got)
	}
	if s := h.ua.EdgeStats(); s.Rejected != 1 || s.Answers != 1 {
		t.Errorf("edge stats %+v, want 1 rejected and answered", s)
	}
}

// TestHalfClosedStreamGetsItsAnswer: a peer that sends a request over TCP
// and at once closes its side (SIPp's connection per call does so after a
// BYE) still gets the answer, and the connection's end leaves sipgo's
// counts intact (TestMain fails on "TCP ref went negative").
func TestHalfClosedStreamGetsItsAnswer(t *testing.T) {
	h := startUA(t, []Account{{Name: "a1", User: "3001"}}, func(c *Config, _ *UA) {
		if c != nil {
			c.Transports = []string{"udp", "tcp"}
		}
	})
	for i := range 5 {
		c, err := net.DialTCP("tcp", nil, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: h.ua.tcpPort})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		port := c.LocalAddr().(*net.TCPAddr).Port
		req := "OPTIONS sip:3001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:" + strconv.Itoa(port) + ";branch=z9hG4bKhc" + strconv.Itoa(i) + "\r\n" +
			"Max-Forwards: 70\r\nFrom: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:3001@127.0.0.1>\r\nCall-ID: hc" + strconv.Itoa(i) + "\r\n" +
			"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
		if _, err := c.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("request %d: no answer on the half-closed connection: %v", i, err)
		}
		if got, _, _ := strings.Cut(string(buf[:n]), "\r\n"); got != "SIP/2.0 200 OK" {
			t.Fatalf("request %d: answer %q, want SIP/2.0 200 OK", i, got)
		}
	}
}

// nextHopName is the host a TLS server must prove: the first Route's, else
// the Request-URI's, and none for an IP address.
func TestNextHopName(t *testing.T) {
	for _, tc := range []struct {
		ruri, route, want string
	}{
		{"sip:3002@pbx.example.com", "", "pbx.example.com"},
		{"sip:3002@127.0.0.1:5061", "", ""},
		{"sip:3002@[::1]:5061", "", ""},
		{"sip:3002@127.0.0.1", "<sip:proxy.example.com:5061;transport=tls;lr>", "proxy.example.com"},
		{"sip:3002@pbx.example.com", "<sip:127.0.0.2;lr>", ""},
	} {
		var u sip.Uri
		if err := sip.ParseUri(tc.ruri, &u); err != nil {
			t.Fatal(err)
		}
		req := sip.NewRequest(sip.INVITE, u)
		if tc.route != "" {
			req.AppendHeader(sip.NewHeader("Route", tc.route))
		}
		if got := nextHopName(req); got != tc.want {
			t.Errorf("%s via %q: %q, want %q", tc.ruri, tc.route, got, tc.want)
		}
	}
}
