package media

import (
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func BenchmarkEncodeUlaw(b *testing.B) {
	src := make([]int16, 160)
	for i := range src {
		src[i] = int16(i * 200)
	}
	dst := make([]byte, 160)
	b.SetBytes(160)
	for b.Loop() {
		encodeUlaw(dst, src)
	}
}

func BenchmarkDecodeAlaw(b *testing.B) {
	src := make([]byte, 160)
	dst := make([]int16, 160)
	b.SetBytes(160)
	for b.Loop() {
		decodeAlaw(dst, src)
	}
}

// BenchmarkReceiveAndPlay is the per-packet media work of one direction
// without sockets: parse, statistics, jitter buffer, decode, playout.
func BenchmarkReceiveAndPlay(b *testing.B) {
	e, err := NewEngine(testConfig(40420, 40429), testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	s, err := e.Allocate(nil)
	if err != nil {
		b.Fatal(err)
	}
	s.Update(sendrecv(loopback(40428)))
	s.Bind(discardPort{})
	src := netip.MustParseAddrPort("127.0.0.1:40428")
	pkt := make([]byte, 172)
	h := rtp.Header{Version: 2, SSRC: 1}
	now := e.clock.now()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h.SequenceNumber, h.Timestamp = uint16(i), uint32(160*i)
		h.MarshalTo(pkt)
		now += 20 * time.Millisecond
		s.receive(pkt, src, now)
		s.playoutTick()
	}
}
