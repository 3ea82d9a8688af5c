//go:build linux

package media

import (
	"encoding/binary"
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

// rtpRx drains a session's RTP socket from the scheduler's tick without
// blocking: one recvmmsg(MSG_DONTWAIT) returns everything queued since the
// last tick, with the kernel's arrival time of each datagram
// (SO_TIMESTAMPNS) for the RFC 3550 jitter. Compared with a reader
// goroutine parked in the netpoller, this saves a goroutine wake-up, a
// netpoll pass and an EAGAIN read per packet; playout is unchanged because
// the tick drains before it plays out.
type rtpRx struct {
	rc    syscall.RawConn
	msgs  [rxBatchLen]mmsghdr
	iov   [rxBatchLen]unix.Iovec
	bufs  [rxBatchLen][1500]byte
	oob   [rxBatchLen][64]byte
	names [rxBatchLen]unix.RawSockaddrInet6 // large enough for IPv4 too
	n     int
	errno syscall.Errno
	read  func(fd uintptr) bool // made once: no closure per call
}

func newRTPRx(c *net.UDPConn) (*rtpRx, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("SO_TIMESTAMPNS: %w", serr)
	}
	r := &rtpRx{rc: rc}
	r.read = func(fd uintptr) bool {
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
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), rxBatchLen, unix.MSG_DONTWAIT, 0, 0)
		r.n, r.errno = int(n), e
		if e != 0 {
			r.n = 0
		}
		return true // never wait for readiness: the next tick comes anyway
	}
	return r, nil
}

// drain hands every queued datagram to s.receive. now is the engine time,
// wall the wall clock at the same instant (the kernel stamps CLOCK_REALTIME).
func (r *rtpRx) drain(s *Session, now time.Duration, wall time.Time) {
	for {
		if err := r.rc.Read(r.read); err != nil {
			return // closed
		}
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
