package media

import (
	"net/netip"
	"time"

	"github.com/pion/rtcp"
)

// ntpEpochOffset is the seconds from 1900 (NTP) to 1970 (Unix).
const ntpEpochOffset = 2208988800

func ntpTime(t time.Time) uint64 {
	sec := uint64(t.Unix()) + ntpEpochOffset
	frac := uint64(t.Nanosecond()) << 32 / 1e9
	return sec<<32 | frac
}

type rtcpOut struct {
	pkt []byte
	dst netip.AddrPort
}

// rtcpTarget: the latched RTCP source, else the SDP's RTCP address.
func (s *Session) rtcpTarget() netip.AddrPort {
	if s.latchRTCP.IsValid() {
		return s.latchRTCP
	}
	return s.remoteRTCP
}

// reportLocked builds the periodic compound report: SR while we send, RR
// otherwise, with a report block once the peer's stream is seen, and SDES
// CNAME. s.mu held.
func (s *Session) reportLocked(now, deadline time.Duration) *rtcpOut {
	dst := s.rtcpTarget()
	if !dst.IsValid() || s.codec == nil {
		return nil
	}
	var blocks []rtcp.ReceptionReport
	if s.rx.valid {
		lost := s.rx.lost()
		lost = min(max(lost, -(1<<23)), 1<<23-1) // 24-bit signed field
		b := rtcp.ReceptionReport{
			SSRC:               s.rx.ssrc,
			FractionLost:       s.rx.interval(),
			TotalLost:          uint32(lost) & 0xFFFFFF,
			LastSequenceNumber: s.rx.extMax(),
			Jitter:             uint32(s.rx.jitter),
		}
		if s.lastSR != 0 {
			b.LastSenderReport = s.lastSR
			b.Delay = uint32((now - s.lastSRAt) * 65536 / time.Second)
		}
		blocks = append(blocks, b)
	}
	var first rtcp.Packet
	if s.sentPkts > 0 && now-s.sentAt < 2*s.e.cfg.RTCPInterval {
		// The RTP time of this instant, extrapolated from the current tick.
		rtpNow := s.ts - s.tsStep + uint32(int64(now-deadline)*int64(s.codec.clockRate)/int64(time.Second))
		first = &rtcp.SenderReport{
			SSRC:        s.ssrc,
			NTPTime:     ntpTime(time.Now()),
			RTPTime:     rtpNow,
			PacketCount: s.sentPkts,
			OctetCount:  s.sentOctets,
			Reports:     blocks,
		}
	} else {
		first = &rtcp.ReceiverReport{SSRC: s.ssrc, Reports: blocks}
	}
	pkt, err := rtcp.Marshal([]rtcp.Packet{first, rtcp.NewCNAMESourceDescription(s.ssrc, s.cname)})
	if err != nil {
		return nil
	}
	return &rtcpOut{pkt: pkt, dst: dst}
}

// byeLocked builds an RTCP BYE for Close, if the session ever started.
func (s *Session) byeLocked() *rtcpOut {
	dst := s.rtcpTarget()
	if !s.started || !dst.IsValid() {
		return nil
	}
	pkt, err := rtcp.Marshal([]rtcp.Packet{
		&rtcp.ReceiverReport{SSRC: s.ssrc},
		&rtcp.Goodbye{Sources: []uint32{s.ssrc}},
	})
	if err != nil {
		return nil
	}
	return &rtcpOut{pkt: pkt, dst: dst}
}

// receiveRTCP parses one datagram from the RTCP socket: the peer's SR time
// for our LSR/DLSR, and its report blocks about our stream.
func (s *Session) receiveRTCP(b []byte, src netip.AddrPort, now time.Duration) {
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return
	}
	wall := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.started {
		return
	}
	if !s.latchRTCP.IsValid() {
		s.latchRTCP = src
	} else if src != s.latchRTCP {
		return
	}
	s.rtcpRecv.Add(1)
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.SenderReport:
			s.lastSR = uint32(p.NTPTime >> 16)
			s.lastSRAt = now
			s.reportsLocked(p.Reports, wall)
		case *rtcp.ReceiverReport:
			s.reportsLocked(p.Reports, wall)
		}
	}
}

func (s *Session) reportsLocked(blocks []rtcp.ReceptionReport, wall time.Time) {
	for _, b := range blocks {
		if b.SSRC != s.ssrc {
			continue
		}
		s.remFrac.Store(uint32(b.FractionLost))
		lost := int64(b.TotalLost & 0xFFFFFF)
		if lost&0x800000 != 0 {
			lost -= 1 << 24
		}
		s.remLost.Store(lost)
		if s.codec != nil {
			s.remJitterUs.Store(durUs(float64(b.Jitter) * 1e6 / float64(s.codec.clockRate)))
		}
		if b.LastSenderReport != 0 {
			mid := uint32(ntpTime(wall) >> 16)
			rtt := int64(mid - b.LastSenderReport - b.Delay) // 1/65536 s
			if rtt >= 0 && rtt < 65536*10 {
				s.rttUs.Store(uint64(rtt * 1e6 / 65536))
			}
		}
	}
}
