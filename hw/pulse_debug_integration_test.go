//go:build integration

package hw

import (
	"fmt"

	"github.com/jfreymuth/pulse/proto"
)

// debugState describes the channel's streams as the server sees them, for
// failure messages: what the server asked for and has not got, what is
// queued, and the server's own view of both streams.
func (p *pulseChannel) debugState() string {
	p.mu.Lock()
	s := p.session
	p.mu.Unlock()
	if s == nil {
		return p.ch.Name + ": no session"
	}
	s.mu.Lock()
	req := s.requested
	s.mu.Unlock()
	var pl proto.GetPlaybackLatencyReply
	perr := s.c.Request(&proto.GetPlaybackLatency{StreamIndex: s.playIndex}, &pl)
	var rl proto.GetRecordLatencyReply
	rerr := s.c.Request(&proto.GetRecordLatency{StreamIndex: s.recordAttr.StreamIndex}, &rl)
	return fmt.Sprintf("%s: requested=%d playq=%d capq=%d playAttr={missing %d max %d tlen %d prebuf %d minreq %d} recAttr={max %d frag %d} play=%+v (%v) rec=%+v (%v)",
		p.ch.Name, req, p.play.len(), p.capture.len(), s.playAttr.Missing, s.playAttr.BufferMaxLength, s.playAttr.BufferTargetLength,
		s.playAttr.BufferPrebufferLength, s.playAttr.BufferMinimumRequest, s.recordAttr.BufferMaxLength, s.recordAttr.BufferFragSize,
		pl, perr, rl, rerr)
}
