//go:build linux

package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rxBatchLen is how many datagrams one recvmmsg may return; a session
// normally finds one packet per tick.
const rxBatchLen = 4

// mmsghdr is struct mmsghdr of recvmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// rtpSock is a session's RTP socket, used by the scheduler only. The tick
// drains it without blocking: one recvmmsg(MSG_DONTWAIT) returns everything
// queued since the last tick, with the kernel's arrival time of each
// datagram (SO_TIMESTAMPNS) for the RFC 3550 jitter; then it sends with one
// sendto. The descriptor is a dup of the bound net.UDPConn's, whose own
// descriptor is closed: Go's netpoller does not watch it, so an arriving
// packet wakes no thread at all (measured under 200 calls: one epoll_pwait
// per packet received while the netpoller watched it). Playout is unchanged
// because the tick drains before it plays out.
type rtpSock struct {
	fd    int
	msgs  [rxBatchLen]mmsghdr
	iov   [rxBatchLen]unix.Iovec
	bufs  [rxBatchLen][1500]byte
	oob   [rxBatchLen][64]byte
	names [rxBatchLen]unix.RawSockaddrInet6 // large enough for IPv4 too
	n     int
	errno syscall.Errno
	v6    bool                  // an AF_INET6 socket: IPv4 peers as mapped addresses
	to4   unix.RawSockaddrInet4 // sendto scratch, no allocation per packet
	to6   unix.RawSockaddrInet6
}

// newRTPSock takes over c's socket; c is closed (it is only the binder).
func newRTPSock(c *net.UDPConn) (*rtpSock, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, errors.Join(err, c.Close())
	}
	fd := -1
	var serr error
	if err := rc.Control(func(cfd uintptr) {
		fd, serr = unix.FcntlInt(cfd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil || serr != nil {
		return nil, errors.Join(err, serr, c.Close())
	}
	// The duplicate shares the open file (still O_NONBLOCK); closing c
	// takes the original out of the netpoller's epoll set.
	if err := c.Close(); err != nil {
		return nil, errors.Join(err, unix.Close(fd))
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
		return nil, errors.Join(fmt.Errorf("SO_TIMESTAMPNS: %w", err), unix.Close(fd))
	}
	v6 := false
	if la, ok := c.LocalAddr().(*net.UDPAddr); ok && la.IP.To4() == nil {
		v6 = true
	}
	return &rtpSock{fd: fd, v6: v6}, nil
}

func (r *rtpSock) close() error { return unix.Close(r.fd) }

// recv fills the batch with what is queued, without waiting.
func (r *rtpSock) recv() {
	for i := range r.msgs {
		h := &r.msgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Namelen = uint32(unsafe.Sizeof(r.names[i]))
		r.iov[i].Base = &r.bufs[i][0]
		r.iov[i].SetLen(len(r.bufs[i]))
		h.Iov = &r.iov[i]
		h.Iovlen = 1
		h.Control = &r.oob[i][0]
		h.SetControllen(len(r.oob[i]))
		h.Flags = 0
	}
	n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&r.msgs[0])), rxBatchLen, unix.MSG_DONTWAIT, 0, 0)
	r.n, r.errno = int(n), e
	if e != 0 {
		r.n = 0
	}
}

// send writes one datagram to dst; a full socket buffer drops it (EAGAIN)
// rather than block the scheduler.
func (r *rtpSock) send(b []byte, dst netip.AddrPort) error {
	var sa unsafe.Pointer
	var sl uintptr
	if a := dst.Addr(); a.Is4() && !r.v6 {
		r.to4.Family = unix.AF_INET
		r.to4.Addr = a.As4()
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&r.to4.Port))[:], dst.Port())
		sa, sl = unsafe.Pointer(&r.to4), unsafe.Sizeof(r.to4)
	} else {
		r.to6 = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: a.As16()}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&r.to6.Port))[:], dst.Port())
		sa, sl = unsafe.Pointer(&r.to6), unsafe.Sizeof(r.to6)
	}
	for {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(r.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_DONTWAIT, uintptr(sa), sl)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return fmt.Errorf("sendto %v: %w", dst, e)
	}
}

// drain hands every queued datagram to s.receive. now is the engine time,
// wall the wall clock at the same instant (the kernel stamps CLOCK_REALTIME).
func (r *rtpSock) drain(s *Session, now time.Duration, wall time.Time) {
	for {
		r.recv()
		for i := range r.n {
			m := &r.msgs[i]
			src, ok := sockaddrPort(&r.names[i], m.hdr.Namelen)
			if !ok {
				continue
			}
			at := now
			if ts, ok := rxTimestamp(r.oob[i][:m.hdr.Controllen]); ok {
				// Transit differences are all RFC 3550 needs: the kernel's
				// stamp, moved onto the engine clock.
				at = now - min(max(wall.Sub(ts), 0), time.Second) // a stepped wall clock stays sane
			}
			s.receive(r.bufs[i][:m.len], src, at)
		}
		if r.n < rxBatchLen {
			return
		}
	}
}

func sockaddrPort(sa *unix.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	switch sa.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&a.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), port), true
	case unix.AF_INET6:
		if n < uint32(unsafe.Sizeof(*sa)) {
			return netip.AddrPort{}, false
		}
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}

// rxTimestamp finds SCM_TIMESTAMPNS in a control buffer without allocating.
func rxTimestamp(oob []byte) (time.Time, bool) {
	const hl = unix.SizeofCmsghdr
	for len(oob) >= hl {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < hl || int(h.Len) > len(oob) {
			return time.Time{}, false
		}
		if h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && int(h.Len) >= hl+int(unsafe.Sizeof(unix.Timespec{})) {
			ts := (*unix.Timespec)(unsafe.Pointer(&oob[hl]))
			return time.Unix(ts.Sec, ts.Nsec), true
		}
		step := (int(h.Len) + 7) &^ 7 // CMSG_ALIGN
		if step > len(oob) {
			break
		}
		oob = oob[step:]
	}
	return time.Time{}, false
}
