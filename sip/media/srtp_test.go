package media

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, SRTPKeyLen) }

// Two sessions with matching SDES keys talk through SRTP; what crosses
// the wire is not RTP in the clear; a session with the wrong key drops
// (and counts) every packet instead of playing noise.
func TestSRTPSessionsTalk(t *testing.T) {
	for i, suite := range []string{SuiteAES128SHA1_80, SuiteAES128SHA1_32} {
		t.Run(suite, func(t *testing.T) {
			e := newTestEngine(t, testConfig(41900+10*i, 41909+10*i))
			a, b := mustAllocate(t, e, nil), mustAllocate(t, e, nil)
			tone, rec := newTonePort(440, 8000), newTonePort(0, 0)
			a.Bind(tone)
			b.Bind(rec)
			pa, pb := sendrecv(b.LocalAddr()), sendrecv(a.LocalAddr())
			pa.SRTP = &SRTPKeys{Suite: suite, Local: key(1), Remote: key(2)}
			pb.SRTP = &SRTPKeys{Suite: suite, Local: key(2), Remote: key(1)}
			a.Update(pa)
			b.Update(pb)
			waitFor(t, 3*time.Second, "1 s of audio at B", func() bool { return len(rec.snapshot()) > 8000*1.2 })
			got := rec.snapshot()
			toneCheck(t, got[len(got)-4000:], 440, 8000)
			if sa, sb := a.Stats(), b.Stats(); !sa.SRTP || !sb.SRTP || sb.SRTPFailed != 0 {
				t.Errorf("stats A %+v B %+v", sa, sb)
			}
			// The same keys again (a re-INVITE that changes nothing) keep
			// the contexts: audio goes on without failures.
			before := b.Stats().PacketsReceived
			a.Update(pa)
			waitFor(t, 2*time.Second, "audio after an unchanged update", func() bool { return b.Stats().PacketsReceived > before+20 })
			if f := b.Stats().SRTPFailed; f != 0 {
				t.Errorf("%d packets failed after an unchanged update", f)
			}

			// A changes its key without telling B: B drops, counts, plays nothing new.
			pa.SRTP = &SRTPKeys{Suite: suite, Local: key(3), Remote: key(2)}
			a.Update(pa)
			waitFor(t, 2*time.Second, "B drops A's packets under the new key", func() bool { return b.Stats().SRTPFailed > 20 })
		})
	}
}

// A sniffer sees SRTP: the RTP header is there (RFC 3711), the payload is
// not the G.711 of the tone, and a 10-byte (80-bit) tag is appended.
func TestSRTPOnTheWire(t *testing.T) {
	e := newTestEngine(t, testConfig(41940, 41949))
	a := mustAllocate(t, e, nil)
	a.Bind(newTonePort(0, 0)) // silence: G.711 µ-law 0xFF bytes in the clear
	sniff := listenTest(t)
	p := sendrecv(sniff.LocalAddr().(*net.UDPAddr))
	p.SRTP = &SRTPKeys{Suite: SuiteAES128SHA1_80, Local: key(7), Remote: key(8)}
	a.Update(p)
	n := 0
	readRTP(t, sniff, 3*time.Second, func(pkt *rtp.Packet, _ netip.AddrPort) bool {
		n++
		if len(pkt.Payload) != 160+10 {
			t.Fatalf("payload+tag %d bytes, want 170", len(pkt.Payload))
		}
		if bytes.Count(pkt.Payload[:160], []byte{0xFF}) > 20 {
			t.Fatalf("payload looks like clear µ-law silence: % x", pkt.Payload[:16])
		}
		return n < 5
	})
}
