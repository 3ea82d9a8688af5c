// srtp.go owns SDES key negotiation (RFC 4568) for a call: which a=crypto
// lines we offer, which offered line we take, and the keys handed to the
// media session (sip/media/srtp.go does the SRTP itself). Keys travel in
// the SDP, so they are offered and accepted only when the call's signalling
// runs over TLS.
package sip

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/telestra/telestra-sip/sip/media"
)

// SRTP modes ([rtp-settings] srtp).
const (
	SRTPOff      = "off"
	SRTPOptional = "optional" // offered (RTP/AVP with a=crypto) and accepted over TLS
	SRTPRequired = "required" // RTP/SAVP only: plain offers and answers are refused
)

var (
	errSRTPNeedsTLS  = errors.New("srtp = \"required\" needs the call's signalling over TLS (SDES keys travel in the SDP)")
	errSRTPPlain     = errors.New("srtp = \"required\": the peer offers or answers no usable a=crypto line")
	errSRTPNotHere   = errors.New("RTP/SAVP offered, but SRTP is off or the signalling is not TLS")
	errSRTPNoOffered = errors.New("answer chose no a=crypto line we offered")
)

// suites we offer, in order of preference, with their tags.
var offeredSuites = []string{media.SuiteAES128SHA1_80, media.SuiteAES128SHA1_32}

// srtpOn reports whether SRTP is offered and accepted at all.
func (s *settings) srtpOn() bool { return s.SRTP == SRTPOptional || s.SRTP == SRTPRequired }

// overTLSLocked reports whether the call's signalling runs over TLS.
func (u *UA) overTLSLocked(c *call) bool {
	t := c.dlg.transport
	if t == "" {
		t = u.outTransport
	}
	return t == "TLS"
}

// srtpScreen checks a new incoming INVITE (offer nil: delayed offer)
// before it rings: what required or an RTP/SAVP offer cannot be met with
// gets 488.
func (u *UA) srtpScreen(offer *remoteSDP, overTLS bool) error {
	set := u.cur()
	switch {
	case set.SRTP == SRTPRequired && !overTLS:
		return errSRTPNeedsTLS
	case offer == nil:
		return nil
	case offer.Secure && (!set.srtpOn() || !overTLS):
		return errSRTPNotHere
	case set.SRTP == SRTPRequired && len(offer.Crypto) == 0 && offer.Port != 0:
		return errSRTPPlain
	}
	return nil
}

// localKeyLocked is our master key and salt for suite in this call: made
// once, so a re-offer keeps the SRTP stream running.
func (c *call) localKeyLocked(suite string) []byte {
	if c.srtpLocal == nil {
		c.srtpLocal = map[string][]byte{}
	}
	k, ok := c.srtpLocal[suite]
	if !ok {
		k = make([]byte, media.SRTPKeyLen)
		_, _ = rand.Read(k) // crypto/rand does not fail on Linux
		c.srtpLocal[suite] = k
	}
	return k
}

// offerCryptoLocked is what our offer carries: a=crypto lines (and
// whether the profile is RTP/SAVP), or nothing.
func (u *UA) offerCryptoLocked(c *call) ([]cryptoAttr, bool) {
	c.srtpOffer = nil
	if !c.set.srtpOn() || !u.overTLSLocked(c) {
		return nil, false
	}
	for i, s := range offeredSuites {
		c.srtpOffer = append(c.srtpOffer, cryptoAttr{Tag: i + 1, Suite: s, Key: c.localKeyLocked(s)})
	}
	return c.srtpOffer, c.set.SRTP == SRTPRequired
}

// answerCryptoLocked picks the keys for the peer's offer r: the first
// a=crypto line we can use, answered with its tag and suite and our key.
func (u *UA) answerCryptoLocked(c *call, r *remoteSDP) (*media.SRTPKeys, []cryptoAttr, error) {
	if c.set.srtpOn() && u.overTLSLocked(c) && len(r.Crypto) > 0 {
		ch := r.Crypto[0]
		local := c.localKeyLocked(ch.Suite)
		return &media.SRTPKeys{Suite: ch.Suite, Local: local, Remote: ch.Key},
			[]cryptoAttr{{Tag: ch.Tag, Suite: ch.Suite, Key: local}}, nil
	}
	switch {
	case r.Port == 0:
		return nil, nil, nil
	case r.Secure:
		return nil, nil, errSRTPNotHere
	case c.set.SRTP == SRTPRequired && !u.overTLSLocked(c):
		return nil, nil, errSRTPNeedsTLS
	case c.set.SRTP == SRTPRequired:
		return nil, nil, errSRTPPlain
	}
	return nil, nil, nil
}

// answeredKeysLocked reads the keys from the peer's answer to our offer.
func (u *UA) answeredKeysLocked(c *call, r *remoteSDP) (*media.SRTPKeys, error) {
	if len(c.srtpOffer) == 0 {
		if r.Secure {
			return nil, errSRTPNotHere
		}
		return nil, nil
	}
	for _, a := range r.Crypto {
		for _, o := range c.srtpOffer {
			if a.Tag == o.Tag && a.Suite == o.Suite {
				return &media.SRTPKeys{Suite: a.Suite, Local: o.Key, Remote: a.Key}, nil
			}
		}
	}
	if len(r.Crypto) > 0 {
		return nil, errSRTPNoOffered
	}
	if c.set.SRTP == SRTPRequired || r.Secure {
		return nil, fmt.Errorf("%w (RTP/SAVP offered)", errSRTPPlain)
	}
	return nil, nil
}
