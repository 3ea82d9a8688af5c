package media

import (
	"net"
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

// BenchmarkPacketPath is one packet each way through a session's real
// sockets, as the scheduler runs it: a peer sends one RTP packet, the tick
// drains it (recvmmsg), plays out, captures, encodes and sends one back,
// and the peer reads it. -benchmem shows the path allocates nothing.
func BenchmarkPacketPath(b *testing.B) {
	for _, tc := range []struct {
		name  string
		codec Codec
		rate  int
		srtp  bool
	}{
		{name: "PCMU", codec: Supported["PCMU"], rate: 8000},
		{name: "G722", codec: Supported["G722"], rate: 16000},
		{name: "PCMU on a 16 kHz channel", codec: Supported["PCMU"], rate: 16000},
		{name: "PCMU with SRTP", codec: Supported["PCMU"], rate: 8000, srtp: true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			cfg := testConfig(40430, 40439)
			cfg.AudioRate = tc.rate
			e, err := NewEngine(cfg, testLogger(b))
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			s, err := e.Allocate(nil)
			if err != nil {
				b.Fatal(err)
			}
			e.forget(s) // the benchmark is the scheduler
			defer s.Close()
			peer, err := net.ListenUDP("udp4", loopback(0))
			if err != nil {
				b.Fatal(err)
			}
			defer peer.Close()
			p := sendrecv(peer.LocalAddr().(*net.UDPAddr))
			p.Codec = tc.codec
			// The peer's side of SRTP: it seals what it sends and opens
			// what it reads, so the figure includes two crypto operations
			// of its own besides the session's.
			var peerSRTP srtpStream
			if tc.srtp {
				p.SRTP = &SRTPKeys{Suite: SuiteAES128SHA1_80, Local: key(1), Remote: key(2)}
				if err := peerSRTP.setKeys(&SRTPKeys{Suite: SuiteAES128SHA1_80, Local: key(2), Remote: key(1)}); err != nil {
					b.Fatal(err)
				}
			}
			s.Update(p)
			s.Bind(discardPort{})
			dst := s.LocalAddr().AddrPort()
			pkt := make([]byte, 12+160)
			in, sealed, opened := make([]byte, 1500), make([]byte, 0, 1600), make([]byte, 1500)
			h := rtp.Header{Version: 2, SSRC: 7, PayloadType: tc.codec.PayloadType}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				h.SequenceNumber, h.Timestamp = uint16(i), uint32(160*i)
				h.MarshalTo(pkt)
				out, err := peerSRTP.seal(sealed, pkt)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := peer.WriteToUDPAddrPort(out, dst); err != nil {
					b.Fatal(err)
				}
				now := e.clock.now()
				s.rtp.drain(s, now, time.Now())
				s.playoutTick()
				s.sendTick(now)
				n, _, err := peer.ReadFromUDPAddrPort(in)
				if err != nil {
					b.Fatal(err)
				}
				if _, ok := peerSRTP.open(opened, in[:n]); !ok {
					b.Fatal("the peer could not open the session's packet")
				}
			}
			if st := s.Stats(); st.PacketsReceived < uint64(b.N) || st.PacketsSent < uint64(b.N) {
				b.Fatalf("received %d sent %d of %d", st.PacketsReceived, st.PacketsSent, b.N)
			}
		})
	}
}
