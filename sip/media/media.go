// Package media moves a call's audio as RTP (github.com/pion/rtp) between a
// UDP socket pair from the plan's port range and an AudioPort.
//
// CONTRACT SKELETON: the exported API below is what package sip relies on.
// Bodies are filled in by the media work; keep the signatures.
package media

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// AudioPort is the appliance side of a call; hw.Channel satisfies it.
// Neither method may block.
type AudioPort interface {
	ReadFrame(frame []int16) bool
	WriteFrame(frame []int16)
}

// ErrNoPorts is returned by Allocate when the port range is exhausted.
var ErrNoPorts = errors.New("media: no free RTP port in range")

// Codec is an audio payload format as negotiated in SDP.
type Codec struct {
	Name        string // "PCMU", "PCMA"
	PayloadType uint8
	ClockRate   int
}

// Supported lists the codecs this package can encode and decode, by name.
var Supported = map[string]Codec{
	"PCMU": {Name: "PCMU", PayloadType: 0, ClockRate: 8000},
	"PCMA": {Name: "PCMA", PayloadType: 8, ClockRate: 8000},
}

// TelephoneEventPT is the payload type offered for RFC 4733 telephone-event.
const TelephoneEventPT = 101

// Config is the plan's [rtp-settings] plus the address to bind.
type Config struct {
	BindIP       net.IP // address the RTP sockets bind to
	PortMin      int    // even; RTP on even ports, RTCP on +1
	PortMax      int
	PTime        time.Duration
	JitterBuffer time.Duration // initial jitter buffer depth
	Timeout      time.Duration // no RTP received for this long while receiving: OnTimeout
}

// Params is the negotiated state of a session, set after each offer/answer.
type Params struct {
	Remote     *net.UDPAddr // RTP destination from SDP; nil: none (c=0.0.0.0 or port 0)
	RemoteRTCP *net.UDPAddr // nil: Remote port+1
	Codec      Codec
	EventPT    uint8 // telephone-event payload type; 0: not negotiated
	Send       bool  // we send RTP (direction sendrecv or sendonly from our side)
	Recv       bool  // we expect RTP (direction sendrecv or recvonly from our side)
}

// Stats is a snapshot of a session's counters.
type Stats struct {
	Codec           string
	PacketsSent     uint64
	PacketsReceived uint64
	PacketsLost     uint64
	JitterMs        float64
}

// Engine owns the RTP port pool and the send clock shared by all sessions.
type Engine struct{}

// NewEngine validates cfg and prepares the port pool.
func NewEngine(cfg Config, log *slog.Logger) (*Engine, error) { panic("media: not implemented") }

// Allocate binds an even RTP port and RTCP on port+1 from the pool.
// onTimeout (may be nil) is called once, from the session's goroutine, when
// the session expects RTP and none has arrived for Config.Timeout.
func (e *Engine) Allocate(onTimeout func()) (*Session, error) { panic("media: not implemented") }

// InUse reports how many sessions hold ports.
func (e *Engine) InUse() int { panic("media: not implemented") }

// Close closes every session still open.
func (e *Engine) Close() error { panic("media: not implemented") }

// Session is one call's RTP/RTCP pair.
type Session struct{}

// LocalAddr is the bound RTP address (port is even; RTCP is +1).
func (s *Session) LocalAddr() *net.UDPAddr { panic("media: not implemented") }

// Update applies negotiated parameters; the first call with a Remote starts
// sending and receiving. Safe to call again after every re-INVITE/UPDATE.
func (s *Session) Update(p Params) { panic("media: not implemented") }

// Bind connects the session to an audio port (nil unbinds). Only a bound
// session's received audio reaches the port; an unbound session sends
// silence when Send is true.
func (s *Session) Bind(p AudioPort) { panic("media: not implemented") }

// Stats returns the session's counters.
func (s *Session) Stats() Stats { panic("media: not implemented") }

// Close stops the session and returns its ports to the pool. Idempotent.
func (s *Session) Close() error { panic("media: not implemented") }
