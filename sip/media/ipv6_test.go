package media

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// sendRTPFrom sends PCMU packets from c to dst every 20 ms until the test
// ends.
func sendRTPFrom(t *testing.T, c *net.UDPConn, dst *net.UDPAddr) {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pkt := make([]byte, 172)
		h := rtp.Header{Version: 2, PayloadType: 0, SSRC: 77}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			h.SequenceNumber, h.Timestamp = uint16(i), uint32(160*i)
			h.MarshalTo(pkt)
			_, _ = c.WriteToUDP(pkt, dst)
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })
}

func TestIPv6Latching(t *testing.T) {
	cfg := testConfig(40240, 40259)
	cfg.BindIP = net.IPv6loopback
	e := newTestEngine(t, cfg)
	a, b := mustAllocate(t, e, nil), mustAllocate(t, e, nil)
	if ip := a.LocalAddr().IP; ip.To4() != nil || !ip.IsLoopback() {
		t.Fatalf("session bound to %v, want ::1", a.LocalAddr())
	}
	a.Bind(newTonePort(440, 8000))
	b.Bind(newTonePort(0, 0))
	// A's SDP names an IPv6 address nobody uses; B sends from its socket.
	a.Update(sendrecv(&net.UDPAddr{IP: net.IPv6loopback, Port: 40258}))
	b.Update(sendrecv(a.LocalAddr()))
	waitFor(t, 3*time.Second, "A's audio at B through latching on IPv6", func() bool {
		return b.Stats().PacketsReceived > 20
	})
}

// TestDualStackSession: bound to "::", a session talks to an IPv4 peer
// (whose packets arrive IPv4-mapped) and latches to its real source.
func TestDualStackSession(t *testing.T) {
	cfg := testConfig(40260, 40279)
	cfg.BindIP = net.IPv6unspecified
	e := newTestEngine(t, cfg)
	a := mustAllocate(t, e, nil)
	a.Bind(newTonePort(440, 8000))
	for _, tc := range []struct {
		name    string
		network string
		ip      net.IP
	}{
		{"ipv4 peer", "udp4", net.IPv4(127, 0, 0, 1)},
		{"ipv6 peer", "udp6", net.IPv6loopback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peer, err := net.ListenUDP(tc.network, &net.UDPAddr{IP: tc.ip})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { peer.Close() })
			// The SDP names the peer's address with a port it does not use.
			a.Update(sendrecv(&net.UDPAddr{IP: tc.ip, Port: 40278}))
			sendRTPFrom(t, peer, &net.UDPAddr{IP: tc.ip, Port: a.LocalAddr().Port})
			want := netip.AddrPortFrom(netip.MustParseAddr(tc.ip.String()).Unmap(), uint16(a.LocalAddr().Port))
			got := 0
			readRTP(t, peer, 3*time.Second, func(_ *rtp.Packet, from netip.AddrPort) bool {
				if from.Addr().Unmap() != want.Addr() || from.Port() != want.Port() {
					t.Fatalf("RTP from %v, want from %v", from, want)
				}
				got++
				return got < 10
			})
		})
	}
}
