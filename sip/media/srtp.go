package media

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// SRTP (RFC 3711) with SDES keys (RFC 4568) is a wrapper of a session's
// RTP and RTCP sockets: the session writes and reads plain packets, the
// wrapper encrypts and authenticates them on the way out and in once keys
// are set. Without keys it passes packets unchanged.
//
//	session ──plain──► srtpConn.WriteToUDPAddrPort ──SRTP──► socket
//	session ◄─plain─── srtpConn.ReadFromUDPAddrPort ◄─SRTP── socket (bad tag: dropped, counted)

// SRTP crypto suites (RFC 4568 §6.2).
const (
	SuiteAES128SHA1_80 = "AES_CM_128_HMAC_SHA1_80"
	SuiteAES128SHA1_32 = "AES_CM_128_HMAC_SHA1_32"
)

// SRTPKeyLen is the length of an AES_CM_128 master key and salt together.
const SRTPKeyLen = 30

// SRTPKeys are a call's negotiated SDES keys: Local protects what we send,
// Remote checks what the peer sends. Each is the 16-byte master key
// followed by the 14-byte salt.
type SRTPKeys struct {
	Suite         string
	Local, Remote []byte
}

func (k *SRTPKeys) equal(o *SRTPKeys) bool {
	if k == nil || o == nil {
		return k == o
	}
	return k.Suite == o.Suite && bytes.Equal(k.Local, o.Local) && bytes.Equal(k.Remote, o.Remote)
}

func profileOf(suite string) (srtp.ProtectionProfile, error) {
	switch suite {
	case SuiteAES128SHA1_80:
		return srtp.ProtectionProfileAes128CmHmacSha1_80, nil
	case SuiteAES128SHA1_32:
		return srtp.ProtectionProfileAes128CmHmacSha1_32, nil
	}
	return 0, fmt.Errorf("media: SRTP suite %q is not supported", suite)
}

// srtpPair is one direction's contexts: SRTP and SRTCP keep separate
// state (indexes, replay windows), and pion contexts are not safe for
// concurrent use, so each has a lock of its own (held only around the
// crypto, never across socket I/O).
type srtpPair struct {
	mu  sync.Mutex
	ctx *srtp.Context
	// hdr is the header pion parses an RTP packet into, under mu: given
	// none, it allocates one per packet.
	hdr rtp.Header
}

type srtpState struct {
	keys     *SRTPKeys
	enc, dec srtpPair
}

func newSRTPState(k *SRTPKeys, rtcp bool) (*srtpState, error) {
	prof, err := profileOf(k.Suite)
	if err != nil {
		return nil, err
	}
	if len(k.Local) != SRTPKeyLen || len(k.Remote) != SRTPKeyLen {
		return nil, errors.New("media: SRTP keys must be 30 bytes (16 key + 14 salt)")
	}
	replay := srtp.SRTPReplayProtection(128)
	if rtcp {
		replay = srtp.SRTCPReplayProtection(128)
	}
	enc, err := srtp.CreateContext(k.Local[:16], k.Local[16:], prof)
	if err != nil {
		return nil, fmt.Errorf("media: SRTP: %w", err)
	}
	dec, err := srtp.CreateContext(k.Remote[:16], k.Remote[16:], prof, replay)
	if err != nil {
		return nil, fmt.Errorf("media: SRTP: %w", err)
	}
	return &srtpState{keys: k, enc: srtpPair{ctx: enc}, dec: srtpPair{ctx: dec}}, nil
}

// srtpStream protects one stream kind of a session (RTP, or RTCP) in both
// directions. setKeys is called by Update; seal and open by the goroutine
// that owns the stream's socket (the scheduler for RTP, the RTCP reader and
// the housekeeping for RTCP), each direction under its own lock.
type srtpStream struct {
	rtcp   bool
	state  atomic.Pointer[srtpState] // nil: plain
	failed atomic.Uint64             // packets dropped: authentication or replay check failed
}

// setKeys starts, changes or (nil) stops the protection. The same keys
// keep the running contexts: their packet indexes and replay windows must
// survive a re-INVITE that changes nothing.
func (s *srtpStream) setKeys(k *SRTPKeys) error {
	if cur := s.state.Load(); cur != nil && cur.keys.equal(k) || cur == nil && k == nil {
		return nil
	}
	if k == nil {
		s.state.Store(nil)
		return nil
	}
	st, err := newSRTPState(k, s.rtcp)
	if err != nil {
		return err
	}
	s.state.Store(st)
	return nil
}

func (s *srtpStream) secure() bool { return s.state.Load() != nil }

// seal protects a plain packet into dst's storage; without keys it returns
// plain itself.
func (s *srtpStream) seal(dst, plain []byte) ([]byte, error) {
	st := s.state.Load()
	if st == nil {
		return plain, nil
	}
	st.enc.mu.Lock()
	defer st.enc.mu.Unlock()
	var out []byte
	var err error
	if s.rtcp {
		out, err = st.enc.ctx.EncryptRTCP(dst[:0], plain, nil)
	} else {
		out, err = st.enc.ctx.EncryptRTP(dst[:0], plain, &st.enc.hdr)
	}
	if err != nil {
		return nil, fmt.Errorf("media: SRTP protect: %w", err)
	}
	return out, nil
}

// open checks and decrypts a received packet into dst's storage; without
// keys it returns pkt itself. ok is false for a packet to drop (counted).
func (s *srtpStream) open(dst, pkt []byte) ([]byte, bool) {
	st := s.state.Load()
	if st == nil {
		return pkt, true
	}
	st.dec.mu.Lock()
	var out []byte
	var err error
	if s.rtcp {
		out, err = st.dec.ctx.DecryptRTCP(dst[:0], pkt, nil)
	} else {
		out, err = st.dec.ctx.DecryptRTP(dst[:0], pkt, &st.dec.hdr)
	}
	st.dec.mu.Unlock()
	if err != nil {
		// Not ours, tampered with, or replayed.
		s.failed.Add(1)
		return nil, false
	}
	return out, true
}

// srtpConn is a session's RTCP socket with SRTCP: ReadFromUDPAddrPort and
// WriteToUDPAddrPort take and give plain RTCP. Only one goroutine reads.
type srtpConn struct {
	*net.UDPConn
	srtpStream
	rbuf []byte     // the reader's
	wmu  sync.Mutex // guards wbuf (never held across the write)
	wbuf []byte
}

func newSRTCPConn(c *net.UDPConn) *srtpConn {
	return &srtpConn{UDPConn: c, srtpStream: srtpStream{rtcp: true}, rbuf: make([]byte, 1500), wbuf: make([]byte, 0, 1600)}
}

// ReadFromUDPAddrPort returns the next plain packet; one that fails the
// SRTCP check is dropped.
func (c *srtpConn) ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		if !c.secure() {
			return c.UDPConn.ReadFromUDPAddrPort(b)
		}
		n, src, err := c.UDPConn.ReadFromUDPAddrPort(c.rbuf)
		if err != nil {
			return 0, src, err
		}
		out, ok := c.open(b, c.rbuf[:n])
		if !ok || len(out) > len(b) {
			continue
		}
		return copy(b, out), src, nil // out is b's start unless pion had to allocate
	}
}

// WriteToUDPAddrPort sends a plain packet, protected when keys are set.
func (c *srtpConn) WriteToUDPAddrPort(b []byte, dst netip.AddrPort) (int, error) {
	if !c.secure() {
		return c.UDPConn.WriteToUDPAddrPort(b, dst)
	}
	c.wmu.Lock()
	out, err := c.seal(c.wbuf, b)
	pkt := append([]byte(nil), out...)
	c.wmu.Unlock()
	if err != nil {
		return 0, err
	}
	if _, err := c.UDPConn.WriteToUDPAddrPort(pkt, dst); err != nil {
		return 0, err
	}
	return len(b), nil
}
