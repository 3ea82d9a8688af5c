// replaces.go owns the Replaces header (RFC 3891): an INVITE that replaces
// one of our calls (an attended transfer completed elsewhere, a call
// picked up) is answered at once; when it is confirmed the old call ends
// with BYE and reason "replaced", and the new one has its audio channel.
package sip

import (
	"context"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// takeOver ends old (BYE, "replaced") and gives its account's audio to
// c, the call that replaced it: no hold of old first, it is going away.
func (u *UA) takeOver(old, c *call) {
	u.end(old, "replaced", 0)
	u.makeActive(c)
	c.mu.Lock()
	u.settleLocked(c)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(u.ctx, 64*sip.T1)
	defer cancel()
	u.sendBye(ctx, old)
}

// replacesID is a parsed Replaces header value.
type replacesID struct {
	callID, toTag, fromTag string
	earlyOnly              bool
}

// parseReplaces reads "call-id;to-tag=X;from-tag=Y[;early-only]".
func parseReplaces(v string) (replacesID, bool) {
	parts := strings.Split(strings.TrimSpace(v), ";")
	r := replacesID{callID: strings.TrimSpace(parts[0])}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "to-tag":
			r.toTag = strings.TrimSpace(val)
		case "from-tag":
			r.fromTag = strings.TrimSpace(val)
		case "early-only":
			r.earlyOnly = true
		}
	}
	return r, r.callID != "" && r.toTag != "" && r.fromTag != ""
}

// replacedCall finds the call an INVITE's Replaces header names: nil and
// no response when there is no Replaces; a response (400, 481, 486, 603)
// when the INVITE must be refused.
func (u *UA) replacedCall(req *sip.Request) (*call, *sip.Response) {
	v, ok := headerValue(req, "Replaces")
	if !ok {
		return nil, nil
	}
	r, ok := parseReplaces(v)
	if !ok {
		return nil, u.response(req, 400, "Bad Replaces Header", "")
	}
	u.mu.Lock()
	// to-tag is the replaced dialog's tag at the recipient (ours); accept
	// the swapped order too, as some senders get it backwards.
	c := u.dialogs[r.callID+"|"+r.toTag]
	if c != nil && c.dlg.remoteTag != r.fromTag {
		c = nil
	}
	if c == nil {
		if d := u.dialogs[r.callID+"|"+r.fromTag]; d != nil && d.dlg.remoteTag == r.toTag {
			c = d
		}
	}
	u.mu.Unlock()
	if c == nil {
		return nil, u.response(req, 481, "Call/Transaction Does Not Exist", "")
	}
	c.mu.Lock()
	p := c.phase
	c.mu.Unlock()
	switch {
	case !p.live():
		return nil, u.response(req, 603, "Decline", "")
	case r.earlyOnly || !p.established():
		// We replace confirmed dialogs only (an early one of ours is an
		// incoming call still ringing: RFC 3891 3 says 481 for it).
		return nil, u.response(req, 486, "Busy Here", "")
	}
	return c, nil
}
