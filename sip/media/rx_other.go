//go:build !linux

package media

import (
	"net"
	"net/netip"
	"time"
)

// rtpRx drains a session's RTP socket from the scheduler's tick: the
// portable form, a read with a deadline already passed.
type rtpRx struct {
	c   *net.UDPConn
	buf [1500]byte
}

func newRTPRx(c *net.UDPConn) (*rtpRx, error) { return &rtpRx{c: c}, nil }

func (r *rtpRx) drain(s *Session, now time.Duration, _ time.Time) {
	if r.c.SetReadDeadline(time.Now()) != nil {
		return
	}
	for {
		n, src, err := r.c.ReadFromUDPAddrPort(r.buf[:])
		if err != nil {
			return
		}
		s.receive(r.buf[:n], netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), now)
	}
}
