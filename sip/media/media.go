// Package media moves a call's audio as RTP (github.com/pion/rtp) between a
// UDP socket pair from the plan's port range and an AudioPort.
//
// One Engine owns the port pool and a single send clock: a scheduler
// goroutine that wakes on a fine slot grid and, for the sessions in that
// slot, drains the RTP socket (everything that arrived since the last tick,
// with kernel arrival times), plays out one frame from the jitter buffer to
// the bound AudioPort, captures one frame from it and sends one RTP packet.
// Each Session owns one reader goroutine for RTCP. See docs/media.md for
// the data flow.
package media

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// AudioPort is the appliance side of a call; hw.Channel satisfies it.
// Neither method may block. Frames are Config.AudioRate × PTime long: the
// session converts between that rate and the call's codec rate.
type AudioPort interface {
	ReadFrame(frame []int16) bool
	WriteFrame(frame []int16)
}

// ErrNoPorts is returned by Allocate when the port range is exhausted.
var ErrNoPorts = errors.New("media: no free RTP port in range")

// ErrClosed is returned by Allocate after Engine.Close.
var ErrClosed = errors.New("media: engine closed")

// Codec is an audio payload format as negotiated in SDP.
type Codec struct {
	Name        string // "G722", "PCMU", "PCMA"
	PayloadType uint8
	ClockRate   int // RTP clock rate: 8000 for all three (G.722 samples at 16 kHz)
}

// Supported lists the codecs this package can encode and decode, by name.
var Supported = map[string]Codec{
	"G722": {Name: "G722", PayloadType: 9, ClockRate: 8000},
	"PCMU": {Name: "PCMU", PayloadType: 0, ClockRate: 8000},
	"PCMA": {Name: "PCMA", PayloadType: 8, ClockRate: 8000},
}

// TelephoneEventPT is the payload type offered for RFC 4733 telephone-event.
const TelephoneEventPT = 101

// Config is the plan's [rtp-settings] plus the address to bind. The
// defaults are the plan's (plan.Default); here a zero value is either
// rejected or means the minimum stated with the field.
type Config struct {
	BindIP  net.IP   // address the RTP sockets bind to; nil: 0.0.0.0; "::": IPv4 and IPv6
	PortMin int      // even; RTP on even ports, RTCP on +1
	PortMax int      // highest usable port (an RTCP port at most)
	Codecs  []string // preference order for offers (checked here, offered by package sip)
	// AudioRate is the sample rate of every bound AudioPort, 8000 or
	// 16000 Hz; 0: 8000, the lower. ChannelRate(Codecs) picks the rate that
	// loses no codec's band.
	AudioRate int
	PTime     time.Duration // packet time, 10-60 ms in 5 ms steps; 0 is rejected
	// JitterBuffer is the initial jitter buffer depth; it adapts within
	// MinJitterBuffer-MaxJitterBuffer. 0: the minimum.
	JitterBuffer time.Duration
	Timeout      time.Duration // no RTP received for this long while receiving: OnTimeout; 0: never
	RTCPInterval time.Duration // mean RTCP report interval; 0: 5s (not a plan setting)
}

// Limits of the adaptive jitter buffer; the plan's jitter-buffer key is
// checked against them, so -check refuses what NewEngine would.
const (
	MinJitterBuffer = 20 * time.Millisecond
	MaxJitterBuffer = 200 * time.Millisecond
)

// setDefaults fills in the stated minimums; the plan's defaults come from
// the daemon.
func (c *Config) setDefaults() {
	if c.JitterBuffer == 0 {
		c.JitterBuffer = MinJitterBuffer
	}
	if c.RTCPInterval == 0 {
		c.RTCPInterval = 5 * time.Second
	}
	if c.PortMin%2 != 0 {
		c.PortMin++
	}
	if c.AudioRate == 0 {
		c.AudioRate = 8000
	}
}

// Validate reports the first problem with c, naming the plan key.
func (c Config) Validate() error {
	switch {
	case c.PortMin < 1 || c.PortMax > 65535:
		return fmt.Errorf("media: rtp port range %d-%d: ports must lie in 1-65535", c.PortMin, c.PortMax)
	case c.PortMin+1 > c.PortMax:
		return fmt.Errorf("media: rtp port range %d-%d holds no even RTP port with RTCP on +1: widen port-max", c.PortMin, c.PortMax)
	case c.PTime < 10*time.Millisecond || c.PTime > 60*time.Millisecond || c.PTime%(5*time.Millisecond) != 0:
		return fmt.Errorf("media: ptime %v: use 10-60 ms in 5 ms steps (20 ms is usual)", c.PTime)
	case c.JitterBuffer < 0 || c.JitterBuffer > MaxJitterBuffer:
		return fmt.Errorf("media: jitter-buffer %v: use 0-%v", c.JitterBuffer, MaxJitterBuffer)
	case c.Timeout < 0:
		return fmt.Errorf("media: rtp timeout %v must not be negative", c.Timeout)
	case c.RTCPInterval < 0:
		return fmt.Errorf("media: RTCP interval %v must not be negative", c.RTCPInterval)
	case c.AudioRate != 0 && c.AudioRate != 8000 && c.AudioRate != 16000:
		return fmt.Errorf("media: audio channel rate %d Hz: use 8000 or 16000", c.AudioRate)
	}
	for _, n := range c.Codecs {
		if lookupCodec(n) == nil {
			return fmt.Errorf("media: codec %q is not supported: use G722, PCMU or PCMA", n)
		}
	}
	if c.BindIP != nil && c.BindIP.To4() == nil && c.BindIP.To16() == nil {
		return fmt.Errorf("media: bind address %v is not an IP address", c.BindIP)
	}
	return nil
}

// Params is the negotiated state of a session, set after each offer/answer.
type Params struct {
	Remote     *net.UDPAddr // RTP destination from SDP; nil: none (c=0.0.0.0 or port 0)
	RemoteRTCP *net.UDPAddr // nil: Remote port+1
	Codec      Codec
	EventPT    uint8 // telephone-event payload type; 0: not negotiated
	// RecvEventPT is a second telephone-event payload type accepted on
	// receive (the one we offered, when the answer named another); 0: none.
	RecvEventPT uint8
	Send        bool      // we send RTP (direction sendrecv or sendonly from our side)
	Recv        bool      // we expect RTP (direction sendrecv or recvonly from our side)
	SRTP        *SRTPKeys // nil: plain RTP/RTCP (srtp.go)
}

// Stats is a snapshot of a session's counters.
type Stats struct {
	Codec           string
	PacketsSent     uint64
	PacketsReceived uint64  // RTP packets accepted from the peer, duplicates included (RFC 3550)
	PacketsLost     uint64  // RFC 3550 cumulative: expected - received, not below 0
	OctetsSent      uint64  // RTP payload octets sent (RFC 3550 sender octet count)
	OctetsReceived  uint64  // RTP payload octets of the accepted packets
	JitterMs        float64 // RFC 3550 interarrival jitter of the peer's stream

	PacketsLate     uint64  // arrived after their playout time, or duplicates: dropped
	FramesConcealed uint64  // played frames filled by loss concealment
	DTMFReceived    uint64  // RFC 4733 events (digits) received
	DTMFSent        uint64  // RFC 4733 events (digits) sent to the end
	JitterBufferMs  float64 // current playout depth target
	RTCPSent        uint64
	RTCPReceived    uint64
	// From the peer's latest report block about our stream (zero until one arrives).
	RemoteFractionLost float64 // 0..1 over the peer's last report interval
	RemotePacketsLost  int64
	RemoteJitterMs     float64
	RTTMs              float64 // from LSR/DLSR; 0 until measured
	SRTP               bool    // media is encrypted (SRTP/SRTCP)
	SRTPFailed         uint64  // packets dropped: SRTP authentication or replay check failed
}

// Engine owns the RTP port pool and the send clock shared by all sessions.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	clock   monoClock
	bindIP  net.IP
	network string
	slotDur time.Duration
	nslots  int
	// portFrame is the AudioPort frame length in samples.
	portFrame int
	pacing    pacingHist

	// tickMu is read-held by the scheduler across one tick, from taking
	// its slot's sessions to the last send, so quiesce can tell when no
	// tick still uses a forgotten session's socket.
	tickMu sync.RWMutex

	// perCall is what a new session starts with (Reconfigure swaps it).
	perCall atomic.Pointer[perCall]

	hostAddrs map[netip.Addr]bool // this host's interface addresses, at NewEngine

	mu       sync.Mutex
	closed   bool
	portMin  int // the RTP range in force (Reconfigure changes it)
	portMax  int
	used     map[int]bool // RTP ports reserved or bound, in any range
	cursor   int          // next RTP port to try, so freed ports rest a while
	sessions map[*Session]struct{}
	slots    [][]*Session // scheduler slots; a session sits in one for life
	count    int          // sessions in slots

	wake chan struct{} // cap 1: the scheduler may have work
	stop chan struct{}
	wg   sync.WaitGroup // the scheduler and onTimeout callbacks
}

// NewEngine validates cfg and prepares the port pool. Its scheduler
// goroutine runs until Close and is idle while no session exists.
func NewEngine(cfg Config, log *slog.Logger) (*Engine, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{
		cfg:      cfg,
		log:      log,
		clock:    newMonoClock(),
		used:     make(map[int]bool),
		portMin:  cfg.PortMin,
		portMax:  cfg.PortMax,
		cursor:   cfg.PortMin,
		sessions: make(map[*Session]struct{}),
		wake:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
	}
	e.perCall.Store(&perCall{jitter: cfg.JitterBuffer, timeout: cfg.Timeout})
	e.portFrame = int(int64(cfg.AudioRate) * int64(cfg.PTime) / int64(time.Second))
	e.hostAddrs = hostAddrs()
	e.bindIP, e.network = net.IPv4zero, "udp4"
	if cfg.BindIP != nil {
		e.bindIP = cfg.BindIP
		switch {
		case cfg.BindIP.To4() != nil:
		case cfg.BindIP.IsUnspecified():
			e.network = "udp" // "::": both families (dual stack)
		default:
			e.network = "udp6"
		}
	}
	// 1 ms slots: a tick's work for ~1/20 of the calls, and a tenth of a
	// 10 ms frame at most.
	e.nslots = max(1, int(cfg.PTime/time.Millisecond))
	e.slotDur = cfg.PTime / time.Duration(e.nslots)
	e.slots = make([][]*Session, e.nslots)
	e.wg.Add(1)
	go e.run()
	return e, nil
}

// perCall are the settings a session takes when it is allocated and keeps
// for its life.
type perCall struct {
	jitter  time.Duration // initial jitter buffer depth
	timeout time.Duration // RTP time-out; 0: none
}

// Reconfigure puts a reload's settings in force for the sessions allocated
// after it: the RTP port range, the jitter buffer depth and the RTP
// time-out. Sessions in progress keep their ports and settings. What the
// scheduler and the bound audio ports are built for (the packet time, the
// audio rate, the bind address) cannot change: an error says which.
func (e *Engine) Reconfigure(c Config) error {
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	switch {
	case c.PTime != e.cfg.PTime:
		return fmt.Errorf("media: ptime %v: the scheduler and audio ports run at %v until a restart", c.PTime, e.cfg.PTime)
	case c.AudioRate != e.cfg.AudioRate:
		return fmt.Errorf("media: audio rate %d Hz: the audio ports run at %d Hz until a restart", c.AudioRate, e.cfg.AudioRate)
	case !c.BindIP.Equal(e.cfg.BindIP):
		return fmt.Errorf("media: bind address %v: RTP binds to %v until a restart", c.BindIP, e.cfg.BindIP)
	}
	e.perCall.Store(&perCall{jitter: c.JitterBuffer, timeout: c.Timeout})
	e.mu.Lock()
	defer e.mu.Unlock()
	e.portMin, e.portMax = c.PortMin, c.PortMax
	if e.cursor < c.PortMin || e.cursor+1 > c.PortMax {
		e.cursor = c.PortMin
	}
	return nil
}

// Allocate binds an even RTP port and RTCP on port+1 from the pool.
// onTimeout (may be nil) is called once, on a goroutine of its own, when
// the session expects RTP and none has arrived for Config.Timeout; it may
// call Session.Close.
func (e *Engine) Allocate(onTimeout func()) (*Session, error) {
	first := -1
	for {
		port, err := e.reserve(&first)
		if err != nil {
			return nil, err
		}
		rtpConn, rtcpConn, err := e.bindPair(port)
		if err != nil {
			// In use by someone else: leave it and try the next pair.
			e.log.Debug("rtp port busy, trying next", "port", port, "err", err)
			e.release(port)
			continue
		}
		local := rtpConn.LocalAddr().(*net.UDPAddr)
		rtp, err := newRTPSock(rtpConn) // takes rtpConn over
		if err != nil {
			err = errors.Join(fmt.Errorf("media: RTP socket on port %d: %w", port, err), rtcpConn.Close())
			e.release(port)
			return nil, err
		}
		s := newSession(e, port, local, rtp, rtcpConn, onTimeout)
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			_ = rtp.close()
			_ = rtcpConn.Close()
			e.release(port)
			return nil, ErrClosed
		}
		e.sessions[s] = struct{}{}
		s.slot = e.emptiestSlot()
		e.slots[s.slot] = append(e.slots[s.slot], s)
		e.count++
		e.mu.Unlock()
		s.start()
		select {
		case e.wake <- struct{}{}:
		default:
		}
		return s, nil
	}
}

// reserve picks the next free even port after the cursor. first tracks
// where this Allocate started so a full lap ends with ErrNoPorts.
func (e *Engine) reserve(first *int) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return 0, ErrClosed
	}
	n := (e.portMax-1-e.portMin)/2 + 1
	for range n {
		p := e.cursor
		e.cursor += 2
		if e.cursor+1 > e.portMax {
			e.cursor = e.portMin
		}
		if p == *first {
			return 0, ErrNoPorts
		}
		if *first < 0 {
			*first = p
		}
		if !e.used[p] {
			e.used[p] = true
			return p, nil
		}
	}
	return 0, ErrNoPorts
}

func (e *Engine) release(port int) {
	e.mu.Lock()
	delete(e.used, port)
	e.mu.Unlock()
}

func (e *Engine) bindPair(port int) (*net.UDPConn, *net.UDPConn, error) {
	rtp, err := net.ListenUDP(e.network, &net.UDPAddr{IP: e.bindIP, Port: port})
	if err != nil {
		return nil, nil, fmt.Errorf("bind RTP %v:%d: %w", e.bindIP, port, err)
	}
	rtcp, err := net.ListenUDP(e.network, &net.UDPAddr{IP: e.bindIP, Port: port + 1})
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("bind RTCP %v:%d: %w", e.bindIP, port+1, err), rtp.Close())
	}
	return rtp, rtcp, nil
}

// slotShare is how many sessions share a slot before another slot is
// woken for them: every wake-up of the scheduler's thread costs a context
// switch, so with few calls four ride on one wake-up (about 0.1 ms between
// the first and the fourth packet) instead of each waking it alone.
const slotShare = 4

// emptiestSlot picks a new session's slot: the fullest slot that still
// has room for slotShare sessions, else the emptiest one, so few sessions
// share few wake-ups and many spread evenly over the ptime; e.mu held.
func (e *Engine) emptiestSlot() int {
	best, fill := 0, -1
	for i := range e.slots {
		if n := len(e.slots[i]); n > 0 && n < slotShare && n > fill {
			fill = n
			best = i
		}
	}
	if fill >= 0 {
		return best
	}
	for i := range e.slots {
		if len(e.slots[i]) < len(e.slots[best]) {
			best = i
		}
	}
	return best
}

// forget removes s from the pool and the scheduler; its port is released
// by the caller once the sockets are closed.
func (e *Engine) forget(s *Session) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.sessions[s]; !ok {
		return
	}
	delete(e.sessions, s)
	sl := e.slots[s.slot]
	for i, x := range sl {
		if x == s {
			sl[i] = sl[len(sl)-1]
			sl[len(sl)-1] = nil
			e.slots[s.slot] = sl[:len(sl)-1]
			e.count--
			break
		}
	}
}

// quiesce returns once no tick that may include a session forgotten
// before the call is still running.
func (e *Engine) quiesce() {
	e.tickMu.Lock()
	e.tickMu.Unlock() //nolint:staticcheck // an empty critical section is the barrier
}

// isLocal reports whether ap is an RTP port of this engine: one of its
// ports on one of this host's addresses (a call between two accounts of
// the daemon). Sessions Update it; it takes e.mu.
func (e *Engine) isLocal(ap netip.AddrPort) bool {
	a := ap.Addr().Unmap()
	if !a.IsLoopback() && !e.hostAddrs[a] {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.used[int(ap.Port())]
}

// hostAddrs lists this host's interface addresses (none if they cannot be
// read: then only loopback counts as local).
func hostAddrs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out[ip.Unmap()] = true
			}
		}
	}
	return out
}

// InUse reports how many sessions hold ports.
func (e *Engine) InUse() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.used)
}

// Close closes every session still open, stops the scheduler and waits for
// it and for running onTimeout callbacks.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	open := make([]*Session, 0, len(e.sessions))
	for s := range e.sessions {
		open = append(open, s)
	}
	e.mu.Unlock()
	var errs []error
	for _, s := range open {
		errs = append(errs, s.Close())
	}
	close(e.stop)
	e.wg.Wait()
	return errors.Join(errs...)
}

// Pacing reports how late packets left relative to their session's ptime
// grid, over all sessions since the engine started.
func (e *Engine) Pacing() PacingStats { return e.pacing.snapshot() }
