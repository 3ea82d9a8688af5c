package sip

import (
	"net"
	"strconv"
	"strings"
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

// TestBigUDPRequestRefused: a request of ours over 1300 bytes is not sent
// over UDP (RFC 3261 §18.1.1) and says why.
func TestBigUDPRequestRefused(t *testing.T) {
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", User: "x", Host: "127.0.0.1"})
	req.SetTransport("UDP")
	req.AppendHeader(sip.NewHeader("X-Pad", string(make([]byte, 1400))))
	if err := checkRequestSize(req); err == nil {
		t.Fatal("a 1400-byte UDP request passed the size rule")
	}
	req.SetTransport("TCP")
	if err := checkRequestSize(req); err != nil {
		t.Fatalf("TCP request refused: %v", err)
	}
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
