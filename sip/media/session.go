package media

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// relatchAfter: a latched source silent this long may be replaced by a new
// one (the peer's NAT binding or port changed without a re-INVITE).
const relatchAfter = time.Second

// Session is one call's RTP/RTCP pair.
type Session struct {
	e         *Engine
	port      int
	rtp       *rtpSock   // used by the scheduler only (and closed by Close)
	rtcpConn  *srtpConn  // SRTCP once Update gives keys (srtp.go)
	srtp      srtpStream // the RTP stream's SRTP; sealed and opened by the scheduler
	srtpIn    []byte     // scheduler scratch: a received packet decrypted
	srtpOut   []byte     // scheduler scratch: a packet protected
	local     *net.UDPAddr
	slot      int // scheduler slot, fixed for life; e.mu
	onTimeout func()
	ssrc      uint32
	cname     string

	wg        sync.WaitGroup // the RTCP reader
	closeOnce sync.Once
	closeErr  error
	isClosed  atomic.Bool

	// portMu serialises the bound AudioPort's use with Bind, so nothing
	// reaches a port after Bind(nil) returns. Never held across socket I/O.
	portMu sync.Mutex
	audio  AudioPort

	// mu guards the negotiated state, the send state, the jitter buffer and
	// the receive statistics. Never held across socket I/O.
	mu         sync.Mutex
	closed     bool
	p          Params
	codec      *codecState
	frame      int       // codec samples per frame
	tsStep     uint32    // RTP timestamp units per frame
	conv       *rateConv // nil: the port runs at the codec's rate
	started    bool
	remote     netip.AddrPort
	remoteRTCP netip.AddrPort
	latched    netip.AddrPort
	latchedAt  time.Duration // last valid packet from the latched source
	remoteAt   time.Duration // when Remote last changed: older packets never latch
	latchRTCP  netip.AddrPort

	seq        uint16
	ts         uint32
	wasSending bool
	dtmfQ      []dtmfTone
	dtmfCur    *dtmfTone
	sentPkts   uint32 // for SR
	sentOctets uint32
	sentAt     time.Duration // last RTP sent, to pick SR or RR

	rx        rxStats
	jb        *jitterBuffer
	lastSR    uint32        // middle 32 bits of the peer's last SR NTP time
	lastSRAt  time.Duration // when it arrived
	timerBase time.Duration // timeout reference: start, resume, new remote
	timeout   time.Duration // RTP time-out, as the engine had it at Allocate; 0: none
	timedOut  bool
	nextRTCP  time.Duration
	onDTMF    func(DTMF)
	rxEv      rxEvent

	lastRx atomic.Int64 // engine time of the last valid RTP packet
	// localPeer: the RTP peer is a port of this engine (set by Update);
	// sendEarly is the scheduler's copy for the tick in progress.
	localPeer atomic.Bool
	sendEarly bool

	// Scratch used only by the scheduler goroutine: frames at the codec
	// rate, and at the port rate when the two differ.
	capBuf   []int16
	playBuf  []int16
	portCap  []int16
	portPlay []int16
	pktBuf   []byte

	codecName                             atomic.Pointer[string]
	sent, received, lost, late, concealed atomic.Uint64
	octetsSent, octetsReceived            atomic.Uint64 // RTP payload octets (RFC 3550 octet count)
	dtmfRx, dtmfTx, rtcpSent, rtcpRecv    atomic.Uint64
	jitterUs, depthUs, remJitterUs, rttUs atomic.Uint64
	remFrac                               atomic.Uint32
	remLost                               atomic.Int64
	sendErrLogged                         atomic.Bool
}

func newSession(e *Engine, port int, local *net.UDPAddr, rtp *rtpSock, rtcpConn *net.UDPConn, onTimeout func()) *Session {
	var b [8]byte
	_, _ = rand.Read(b[:])
	pc := e.perCall.Load()
	s := &Session{
		e:         e,
		port:      port,
		rtp:       rtp,
		rtcpConn:  newSRTCPConn(rtcpConn),
		srtpIn:    make([]byte, 1500),
		srtpOut:   make([]byte, 0, 1600),
		local:     local,
		onTimeout: onTimeout,
		ssrc:      binary.BigEndian.Uint32(b[:4]),
		cname:     "telestra-" + hex.EncodeToString(b[4:]),
		seq:       uint16(mrand.Uint32()),
		ts:        mrand.Uint32(),
		jb:        newJitterBuffer(e.cfg.PTime, pc.jitter),
		timeout:   pc.timeout,
		pktBuf:    make([]byte, 1500),
	}
	empty := ""
	s.codecName.Store(&empty)
	return s
}

func (s *Session) start() {
	s.wg.Add(1)
	go s.readRTCP()
}

// LocalAddr is the bound RTP address (port is even; RTCP is +1).
func (s *Session) LocalAddr() *net.UDPAddr {
	a := *s.local
	return &a
}

func addrPort(a *net.UDPAddr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// Update applies negotiated parameters; the first call with a Remote starts
// sending and receiving. Safe to call again after every re-INVITE/UPDATE.
// An unknown codec stops sending and receiving audio until the next Update.
func (s *Session) Update(p Params) {
	now := s.e.clock.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	old := s.p
	s.p = p
	// Keys are set before a packet goes out with them: the scheduler reads
	// them per packet.
	if err := errors.Join(s.srtp.setKeys(p.SRTP), s.rtcpConn.setKeys(p.SRTP)); err != nil {
		// The sip layer only hands over keys it checked; stop sending
		// rather than send in the clear.
		s.e.log.Error("media: SRTP keys rejected; not sending", "port", s.port, "err", err)
		s.p.Send = false
		p.Send = false
	}
	impl := lookupCodec(p.Codec.Name)
	if cur := s.codec; (cur == nil) != (impl == nil) || (cur != nil && cur.codecImpl != impl) {
		// A fresh coder state and converter: the scheduler may still use
		// the old ones it took under s.mu, so they are replaced, not reset.
		s.codec, s.conv = nil, nil
		name := ""
		if impl != nil {
			name = impl.name
			s.codec = impl.instance()
			s.frame = p.Codec.FrameSamples(s.e.cfg.PTime)
			s.tsStep = uint32(s.frame * impl.clockRate / impl.sampleRate)
			if r := s.e.cfg.AudioRate; r != impl.sampleRate {
				s.conv = &rateConv{up: r > impl.sampleRate}
			}
		}
		s.codecName.Store(&name)
		s.jb.reset()
	}
	if impl == nil && p.Codec.Name != "" {
		s.e.log.Warn("media: unsupported codec; audio stops until renegotiated", "codec", p.Codec.Name, "port", s.port)
	}
	remote := addrPort(p.Remote)
	if remote != s.remote {
		// A new peer (or none): forget the latched sources.
		s.latched, s.latchRTCP = netip.AddrPort{}, netip.AddrPort{}
		s.timerBase, s.remoteAt = now, now
	}
	s.remote = remote
	s.localPeer.Store(remote.IsValid() && s.e.isLocal(remote))
	switch {
	case p.RemoteRTCP != nil:
		s.remoteRTCP = addrPort(p.RemoteRTCP)
	case remote.IsValid():
		s.remoteRTCP = netip.AddrPortFrom(remote.Addr(), remote.Port()+1)
	default:
		s.remoteRTCP = netip.AddrPort{}
	}
	if remote.IsValid() && !s.started {
		s.started = true
		s.timerBase = now
		s.nextRTCP = now + s.rtcpDelay()/2
	}
	if p.Recv && !old.Recv {
		s.timerBase = now // resume: the peer gets a full timeout again
		s.jb.reset()
	}
	if !p.Send {
		s.wasSending = false // marker on the first packet after resume
	}
}

// Bind connects the session to an audio port (nil unbinds). Only a bound
// session's received audio reaches the port; an unbound session sends
// silence when Send is true. When Bind returns, the previous port is no
// longer read or written.
func (s *Session) Bind(p AudioPort) {
	s.portMu.Lock()
	s.audio = p
	s.portMu.Unlock()
}

// OnDTMF sets a callback for received RFC 4733 digits (nil: none), called
// once per digit when it ends. It runs on the engine's scheduler goroutine
// (the tick that drains the packet, or its housekeeping for a digit whose
// end was lost): it must not block, nor call Close.
func (s *Session) OnDTMF(f func(DTMF)) {
	s.mu.Lock()
	s.onDTMF = f
	s.mu.Unlock()
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats {
	us := func(v *atomic.Uint64) float64 { return float64(v.Load()) / 1000 }
	return Stats{
		Codec:              *s.codecName.Load(),
		PacketsSent:        s.sent.Load(),
		PacketsReceived:    s.received.Load(),
		OctetsSent:         s.octetsSent.Load(),
		OctetsReceived:     s.octetsReceived.Load(),
		PacketsLost:        s.lost.Load(),
		JitterMs:           us(&s.jitterUs),
		PacketsLate:        s.late.Load(),
		FramesConcealed:    s.concealed.Load(),
		DTMFReceived:       s.dtmfRx.Load(),
		DTMFSent:           s.dtmfTx.Load(),
		JitterBufferMs:     us(&s.depthUs),
		RTCPSent:           s.rtcpSent.Load(),
		RTCPReceived:       s.rtcpRecv.Load(),
		RemoteFractionLost: float64(s.remFrac.Load()) / 256,
		RemotePacketsLost:  s.remLost.Load(),
		RemoteJitterMs:     us(&s.remJitterUs),
		RTTMs:              us(&s.rttUs),
		SRTP:               s.srtp.secure(),
		SRTPFailed:         s.srtp.failed.Load() + s.rtcpConn.failed.Load(),
	}
}

// Close stops the session and returns its ports to the pool. Idempotent.
// Safe to call from an onTimeout callback, not from the OnDTMF callback
// itself (it runs inside the tick Close waits for).
func (s *Session) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		bye := s.byeLocked()
		s.mu.Unlock()
		s.isClosed.Store(true)
		s.Bind(nil)
		s.e.forget(s)
		if bye != nil {
			_, _ = s.rtcpConn.WriteToUDPAddrPort(bye.pkt, bye.dst)
		}
		s.e.quiesce() // no tick uses the RTP socket any more
		s.closeErr = errors.Join(s.rtp.close(), s.rtcpConn.Close())
		s.wg.Wait()
		s.e.release(s.port)
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("media: close session on port %d: %w", s.port, s.closeErr)
		}
	})
	return s.closeErr
}

// rtcpDelay is the RFC 3550 randomised interval: 0.5..1.5 of the mean.
func (s *Session) rtcpDelay() time.Duration {
	m := s.e.cfg.RTCPInterval
	return m/2 + time.Duration(mrand.Int64N(int64(m)))
}

func (s *Session) readRTCP() {
	defer s.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, src, err := s.rtcpConn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if s.isClosed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		s.receiveRTCP(buf[:n], netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), s.e.clock.now())
	}
}

// receive handles one datagram from the RTP socket (the tick's drain), with
// its arrival time. It never touches the AudioPort: it only validates,
// accounts and queues.
func (s *Session) receive(b []byte, src netip.AddrPort, now time.Duration) {
	b, ok := s.srtp.open(s.srtpIn, b)
	if !ok {
		return
	}
	var h rtp.Header
	hl, err := h.Unmarshal(b)
	if err != nil || h.Version != 2 {
		return
	}
	payload := b[hl:]
	if h.Padding {
		if len(payload) == 0 || int(payload[len(payload)-1]) > len(payload) {
			return
		}
		payload = payload[:len(payload)-int(payload[len(payload)-1])]
	}
	var digits [3]DTMF
	nd := 0
	var cb func(DTMF)
	s.mu.Lock()
	kind := jbEmpty
	switch {
	case s.closed || s.codec == nil:
	case h.PayloadType == s.p.Codec.PayloadType:
		kind = jbAudio
	case s.isEventPTLocked(h.PayloadType) && len(payload) >= 4:
		kind = jbEvent
	}
	if kind == jbEmpty || !s.acceptSource(src, now) {
		s.mu.Unlock()
		return
	}
	cb = s.onDTMF
	arrival := int64(now/time.Microsecond) * int64(s.codec.clockRate) / 1e6
	newSrc, ok := s.rx.update(h.SSRC, h.SequenceNumber, h.Timestamp, arrival, kind == jbAudio)
	if newSrc {
		s.jb.reset()
		s.codec.resetDecoder()
		if ev := &s.rxEv; ev.active && !ev.reported {
			digits[nd] = ev.report() // its end will not come from this source
			nd++
		}
		s.rxEv = rxEvent{}
	}
	if ok {
		if s.p.Recv {
			s.jb.push(h.SequenceNumber, kind, payload)
		}
		if kind == jbEvent {
			got, n := s.eventLocked(h.Timestamp, payload, now)
			nd += copy(digits[nd:], got[:n])
		}
		s.received.Add(1)
		s.octetsReceived.Add(uint64(len(payload)))
		s.lost.Store(uint64(max(0, s.rx.lost())))
		s.jitterUs.Store(uint64(s.rx.jitter * 1e6 / float64(s.codec.clockRate)))
		s.late.Store(s.jb.late)
		s.lastRx.Store(int64(now))
	}
	s.mu.Unlock()
	for _, d := range digits[:nd] {
		s.dtmfRx.Add(1)
		if cb != nil {
			cb(d)
		}
	}
}

// isEventPTLocked: telephone-event arrives on the payload type we send
// with (the peer's) or on the one we offered, which an endpoint that
// answered another number may still use. s.mu held.
func (s *Session) isEventPTLocked(pt uint8) bool {
	return (s.p.EventPT != 0 && pt == s.p.EventPT) || (s.p.RecvEventPT != 0 && pt == s.p.RecvEventPT)
}

// acceptSource implements symmetric RTP: the first valid source after a
// (new) Remote is latched and becomes the send target; others are ignored
// unless the latched one has gone quiet. s.mu held.
func (s *Session) acceptSource(src netip.AddrPort, now time.Duration) bool {
	switch {
	case s.latched == src:
	case now < s.remoteAt:
		// Queued before the re-INVITE that moved us to a new peer (the tick
		// drains what arrived since the last one): the old peer's.
		return false
	case !s.latched.IsValid() || now-s.latchedAt > relatchAfter:
		if s.latched.IsValid() || src != s.remote {
			s.e.log.Debug("media: latched RTP source", "port", s.port, "source", src, "sdp", s.remote)
		}
		s.latched = src
	default:
		return false
	}
	s.latchedAt = now
	return true
}

// playoutTick plays one frame of the jitter buffer to the bound port.
func (s *Session) playoutTick() {
	s.mu.Lock()
	if s.closed || s.codec == nil || !s.started || !s.p.Recv {
		s.mu.Unlock()
		return
	}
	if cap(s.playBuf) < s.frame {
		s.playBuf = make([]int16, s.frame)
	}
	frame := s.playBuf[:s.frame]
	s.jb.setJitter(s.rx.jitter / float64(s.tsStep))
	s.jb.fill(frame, s.codec)
	if s.conv != nil {
		pf := s.e.portFrame
		if cap(s.portPlay) < pf {
			s.portPlay = make([]int16, pf)
		}
		s.conv.toPort(s.portPlay[:pf], frame)
		frame = s.portPlay[:pf]
	}
	s.depthUs.Store(uint64(s.jb.depth()) * uint64(s.e.cfg.PTime/time.Microsecond))
	s.concealed.Store(s.jb.concealed)
	s.mu.Unlock()
	s.portMu.Lock()
	if s.audio != nil {
		s.audio.WriteFrame(frame)
	}
	s.portMu.Unlock()
}

// sendTick captures one frame and sends it (or a telephone-event packet).
func (s *Session) sendTick(deadline time.Duration) {
	s.mu.Lock()
	if s.closed || s.codec == nil || !s.started {
		s.mu.Unlock()
		return
	}
	ts := s.ts
	s.ts += s.tsStep // the media clock runs on hold too
	dst := s.remote
	if s.latched.IsValid() {
		dst = s.latched
	}
	if !s.p.Send || !dst.IsValid() {
		s.wasSending = false
		s.mu.Unlock()
		return
	}
	h := rtp.Header{
		Version:        2,
		Marker:         !s.wasSending,
		PayloadType:    s.p.Codec.PayloadType,
		SequenceNumber: s.seq,
		Timestamp:      ts,
		SSRC:           s.ssrc,
	}
	s.wasSending = true
	s.seq++
	var event [4]byte
	isEvent, ended := s.nextEventLocked(ts, &h, &event)
	codec, fs, conv := s.codec, s.frame, s.conv
	// Counted for the SR now, so the tick takes s.mu once: a send that
	// fails (and is logged) is the rare exception.
	octets := codec.bytesFor(fs)
	if isEvent {
		octets = len(event)
	}
	s.sentPkts++
	s.sentOctets += uint32(octets)
	s.sentAt = deadline
	s.mu.Unlock()

	if cap(s.capBuf) < fs {
		s.capBuf = make([]int16, fs)
	}
	frame := s.capBuf[:fs]
	port := frame
	if conv != nil {
		pf := s.e.portFrame
		if cap(s.portCap) < pf {
			s.portCap = make([]int16, pf)
		}
		port = s.portCap[:pf]
	}
	got := false
	s.portMu.Lock()
	if s.audio != nil {
		got = s.audio.ReadFrame(port) // drained during events too, to stay in step
	}
	s.portMu.Unlock()
	if got && conv != nil {
		conv.fromPort(frame, port)
	}

	hl, err := h.MarshalTo(s.pktBuf)
	if err != nil {
		return
	}
	var n int
	switch {
	case isEvent:
		n = hl + copy(s.pktBuf[hl:], event[:])
	default:
		if !got {
			clear(frame)
		}
		nb := codec.bytesFor(fs)
		if hl+nb > len(s.pktBuf) {
			return
		}
		n = hl + codec.enc.Encode(s.pktBuf[hl:hl+nb], frame)
	}
	pkt, err := s.srtp.seal(s.srtpOut, s.pktBuf[:n])
	if err == nil {
		err = s.rtp.send(pkt, dst)
	}
	s.e.pacing.add(s.e.clock.now() - deadline)
	if err != nil {
		if !s.isClosed.Load() && s.sendErrLogged.CompareAndSwap(false, true) {
			s.e.log.Warn("media: RTP send failed; check the route to the peer", "port", s.port, "dst", dst, "err", err)
		}
		return
	}
	s.sent.Add(1)
	s.octetsSent.Add(uint64(n - hl))
	if ended {
		s.dtmfTx.Add(1)
	}
}

// housekeep sends RTCP when due and fires the RTP timeout.
func (s *Session) housekeep(now, deadline time.Duration) {
	s.mu.Lock()
	if s.closed || !s.started {
		s.mu.Unlock()
		return
	}
	fire := false
	if t := s.timeout; t > 0 && s.p.Recv && !s.timedOut {
		last := max(s.timerBase, time.Duration(s.lastRx.Load()))
		if now-last > t {
			s.timedOut = true
			fire = s.onTimeout != nil
			s.e.log.Debug("media: RTP timeout", "port", s.port, "silent", now-last)
		}
	}
	var rep *rtcpOut
	if now >= s.nextRTCP {
		s.nextRTCP = now + s.rtcpDelay()
		rep = s.reportLocked(now, deadline)
	}
	lost, haveLost := s.idleEventLocked(now)
	cb := s.onDTMF
	s.mu.Unlock()
	if haveLost {
		s.dtmfRx.Add(1)
		if cb != nil {
			cb(lost)
		}
	}
	if rep != nil {
		if _, err := s.rtcpConn.WriteToUDPAddrPort(rep.pkt, rep.dst); err == nil {
			s.rtcpSent.Add(1)
		}
	}
	if fire {
		s.e.wg.Add(1) // the scheduler holds the count above zero
		go func() {
			defer s.e.wg.Done()
			s.onTimeout()
		}()
	}
}

func durUs(d float64) uint64 {
	if d < 0 || math.IsNaN(d) {
		return 0
	}
	return uint64(d)
}
