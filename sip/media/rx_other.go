//go:build !linux

package media

import (
	"net"
	"net/netip"
	"time"
)

// rtpSock is a session's RTP socket, used by the scheduler only: the
// portable form, drained with a read whose deadline has already passed.
type rtpSock struct {
	c   *net.UDPConn
	buf [1500]byte
}

func newRTPSock(c *net.UDPConn) (*rtpSock, error) { return &rtpSock{c: c}, nil }

func (r *rtpSock) close() error { return r.c.Close() }

func (r *rtpSock) send(b []byte, dst netip.AddrPort) error {
	_, err := r.c.WriteToUDPAddrPort(b, dst)
	return err
}

func (r *rtpSock) drain(s *Session, now time.Duration, _ time.Time) {
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
