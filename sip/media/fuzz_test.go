package media

import (
	"net/netip"
	"testing"
	"time"
)

// FuzzReceive feeds arbitrary datagrams to the RTP and RTCP receive paths
// and plays out after each, so header parsing, statistics, latching, the
// jitter buffer, DTMF and concealment all see hostile input. The input is
// split into datagrams by a leading length byte each.
func FuzzReceive(f *testing.F) {
	cfg := testConfig(40400, 40409)
	e, err := NewEngine(cfg, testLogger(nil))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { e.Close() })
	s, err := e.Allocate(nil)
	if err != nil {
		f.Fatal(err)
	}
	s.Update(sendrecv(loopback(40408)))
	s.Bind(discardPort{})
	s.OnDTMF(func(DTMF) {})
	src := netip.MustParseAddrPort("127.0.0.1:40408")

	f.Add([]byte{12, 0x80, 0x00, 0x00, 0x01, 0, 0, 0, 160, 0, 0, 0, 7})
	f.Add([]byte{16, 0x80, 101, 0x00, 0x02, 0, 0, 1, 64, 0, 0, 0, 7, 5, 0x8a, 0x03, 0x20})
	f.Add([]byte{8, 0x81, 201, 0, 1, 0, 0, 0, 9})
	f.Fuzz(func(t *testing.T, data []byte) {
		now := e.clock.now()
		for len(data) > 0 {
			n := min(int(data[0]), len(data)-1)
			pkt := data[1 : 1+n]
			data = data[1+n:]
			s.receive(pkt, src, now)
			s.receiveRTCP(pkt, src, now)
			s.playoutTick()
			now += time.Millisecond
		}
		st := s.Stats()
		if st.PacketsLost > st.PacketsReceived+1<<20 {
			t.Fatalf("absurd loss: %+v", st)
		}
	})
}

// discardPort drops what it is given and captures nothing.
type discardPort struct{}

func (discardPort) ReadFrame([]int16) bool { return false }
func (discardPort) WriteFrame([]int16)     {}
