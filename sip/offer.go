// offer.go owns a call's side of the SDP offer/answer model (RFC 3264):
// building our offer, answering the peer's offer and applying the peer's
// answer to the call's media session. The SDP syntax is in sdp.go.
package sip

import (
	"fmt"
	"strings"
	"time"

	"github.com/telestra/telestra-sip/sip/media"
)

func (s *settings) ptimeMs() int { return int(s.Media.PTime / time.Millisecond) }

// offerLocked builds our offer with every plan codec and our direction.
func (u *UA) offerLocked(c *call) []byte {
	port := 0
	if c.sess != nil {
		port = c.sess.LocalAddr().Port
	}
	crypto, secure := u.offerCryptoLocked(c)
	b := c.sdp.build(sdpSpec{
		Addr: c.host, Port: port, Codecs: offerCodecs(c.set.codecs),
		EventPT: media.TelephoneEventPT, PTime: c.set.ptimeMs(), Dir: c.intent(),
		Crypto: crypto, Secure: secure,
	})
	c.lastSDP = b
	return b
}

// applyAnswerLocked applies the peer's answer to our offer.
func (u *UA) applyAnswerLocked(c *call, r *remoteSDP) error {
	codec, ok := answerCodec(r.Codecs, c.set.codecs)
	if !ok || r.Port == 0 {
		return fmt.Errorf("answer has no codec we offered")
	}
	keys, err := u.answeredKeysLocked(c, r)
	if err != nil {
		return err
	}
	dir := c.intent().and(r.Dir.mirror())
	n := &negotiated{Codec: codec, EventPT: r.EventPT, Dir: dir, Remote: r, SRTP: keys}
	c.neg = n
	if c.sess != nil {
		c.sess.Update(n.params())
	}
	return nil
}

// applyAnswerBodyLocked parses and applies the answer that completes c's
// set-up (in the 2xx of our INVITE, or in the ACK of our offer).
func (u *UA) applyAnswerBodyLocked(c *call, body []byte) error {
	r, err := parseSDP(body)
	if err != nil {
		return err
	}
	return u.applyAnswerLocked(c, r)
}

// answerOfferLocked answers a peer's offer and applies it.
func (u *UA) answerOfferLocked(c *call, r *remoteSDP) ([]byte, error) {
	codec, ok := pickCodec(r.Codecs, c.set.codecs)
	if !ok && r.Port != 0 {
		return nil, fmt.Errorf("offer has no codec we support (we have %s)", strings.Join(c.set.codecs, ", "))
	}
	keys, crypto, err := u.answerCryptoLocked(c, r)
	if err != nil {
		return nil, err
	}
	c.hold.remote = r.held()
	dir := c.intent().and(r.Dir.mirror())
	if r.IP == nil || r.IP.IsUnspecified() {
		// RFC 3264 §8.4: c=0.0.0.0 means "send nothing to me".
		dir = dirFrom(false, dir.recvs())
	}
	port := 0
	if c.sess != nil {
		port = c.sess.LocalAddr().Port
	}
	spec := sdpSpec{Addr: c.host, Port: port, Codecs: []sdpCodec{codec}, EventPT: r.EventPT,
		PTime: c.set.ptimeMs(), Dir: dir, Lines: r.Lines, Audio: r.Audio, Crypto: crypto, Secure: keys != nil && r.Secure}
	if r.Port == 0 {
		spec.Port, spec.Codecs, spec.EventPT, spec.Dir = 0, nil, -1, dirInactive
		dir = dirInactive
		keys, spec.Crypto = nil, nil
	}
	n := &negotiated{Codec: codec, EventPT: r.EventPT, Dir: dir, Remote: r, SRTP: keys}
	c.neg = n
	if c.sess != nil {
		c.sess.Update(n.params())
	}
	b := c.sdp.build(spec)
	c.lastSDP = b
	return b, nil
}

// answerBodyLocked answers the offer in body (a re-INVITE or UPDATE) and
// settles the call on the new media.
func (u *UA) answerBodyLocked(c *call, body []byte) ([]byte, error) {
	r, err := parseSDP(body)
	if err != nil {
		return nil, err
	}
	b, err := u.answerOfferLocked(c, r)
	if err != nil {
		return nil, err
	}
	u.settleLocked(c)
	return b, nil
}
