// commands.go owns the operator's call commands (Dial, Answer, Switch,
// Hangup) and terminate, which ends a call the way its phase requires.
// Each command checks the phase and asks setPhaseLocked for the move.
package sip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telestra/telestra-sip/sip/media"
)

// Dial places a call. accepted is called synchronously with the new call ID
// before the INVITE is sent and before any event of the call.
func (u *UA) Dial(account, num string, accepted func(callID int)) error {
	return u.dial(account, num, dialOpts{accepted: accepted})
}

// dialOpts are what a call placed for a referral adds to Dial's.
type dialOpts struct {
	accepted     func(callID int)
	referredFrom *call  // the call whose peer referred us (transfer.go)
	referredBy   string // the REFER's Referred-By
}

func (u *UA) dial(account, num string, o dialOpts) error {
	accepted := o.accepted
	u.mu.Lock()
	a, err := u.accountLocked(account)
	if err == nil && a.eff.MaxCalls > 0 && u.liveCallsLocked(a) >= a.eff.MaxCalls {
		err = fmt.Errorf("account %q: %w (%d)", account, ErrTooManyCalls, a.eff.MaxCalls)
	}
	var eff Account
	var localUsers []string
	if err == nil {
		eff = a.effLocked() // new calls go through the server in use
		localUsers = u.otherUsersLocked(a)
	}
	u.mu.Unlock()
	if err != nil {
		return err
	}

	target, err := u.dialTarget(eff, num, localUsers)
	if err != nil {
		return fmt.Errorf("account %q: %w", account, err)
	}
	if u.cfg.SRTP == SRTPRequired && u.transportTo(*target, "") != "TLS" {
		return fmt.Errorf("account %q: %w: dial a tls: server or a sips: URI", account, errSRTPNeedsTLS)
	}
	host := u.localHost(target.Host)

	var c *call
	sess, err := u.alloc.Allocate(func() {
		if c != nil {
			u.onMediaTimeout(c)
		}
	})
	if err != nil {
		return fmt.Errorf("account %q: RTP: %w", account, err)
	}

	u.mu.Lock()
	closing := u.closing
	if !closing {
		c = u.newCallLocked(a, true, newCallID())
		c.sess, c.tab.media = sess, sess
		sess.OnDTMF(func(d media.DTMF) { u.onRTPDigit(c, d) })
		c.referredFrom, c.referredBy = o.referredFrom, o.referredBy
		c.host = host
		c.caller = eff.User
		c.callee = target.User
		domain := host
		if eff.Server != "" {
			if su, err := serverURI(eff.Server); err == nil {
				domain = su.Host
			}
		}
		c.dlg = dialog{
			callID:    c.dlg.callID,
			localTag:  newTag(),
			local:     sip.Uri{Scheme: "sip", User: eff.User, Host: uriHost(domain)},
			localName: displayOf(eff),
			remote:    sip.Uri{Scheme: "sip", User: target.User, Host: target.Host, Port: target.Port},
			localSeq:  uint32(rand.IntN(10000)) + 1,
			target:    *target,
			transport: u.transportTo(*target, ""),
		}
	}
	u.mu.Unlock()
	if closing {
		sess.Close()
		return ErrClosed
	}

	if accepted != nil {
		accepted(c.id)
	}

	u.mu.Lock()
	u.calls[c.id] = c
	closing = u.closing || u.closed
	if !closing {
		u.dialogs[c.dlg.key()] = c
	}
	u.mu.Unlock()
	if closing {
		u.end(c, "shutdown", 0)
		return nil
	}
	// Like a phone: dialing puts the account's current call on hold, and
	// the audio follows the new call. A referred call replaces the call
	// that referred us, which is not held: it is on its way out (and
	// becomes active again if the new call fails).
	if o.referredFrom != nil {
		u.mu.Lock()
		c.acct.active = c
		u.mu.Unlock()
	} else {
		u.makeActive(c)
	}
	c.mu.Lock()
	req := u.initialInviteLocked(c)
	c.mu.Unlock()
	c.log.Info("dialing", "to", target.String())
	if !u.goTracked(func() { u.runOutgoing(c, req) }) {
		u.end(c, "shutdown", 0)
	}
	return nil
}

// Answer answers a ringing incoming call, holding the account's active call first.
func (u *UA) Answer(account string, callID int) error {
	c, err := u.call(account, callID)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.out || c.phase != phaseRinging {
		err = fmt.Errorf("account %q call %d (%s %s): %w", account, callID, dirName(c), c.status, ErrCallState)
	} else {
		_, err = u.setPhaseLocked(c, phaseAnswering, transition{})
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	u.makeActive(c)
	return nil
}

// Switch holds the account's active call and resumes callID.
func (u *UA) Switch(account string, callID int) error {
	c, err := u.call(account, callID)
	if err != nil {
		return err
	}
	c.mu.Lock()
	ok := c.phase.established()
	if !ok {
		err = fmt.Errorf("account %q call %d (%s): %w", account, callID, c.status, ErrCallState)
	}
	u.mu.Lock()
	active := c.acct.active == c
	u.mu.Unlock()
	already := active && !c.hold.want
	c.mu.Unlock()
	if !ok || already {
		return err // nil when c is already the active call
	}
	u.makeActive(c)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.phase.established() {
		c.hold.want = false
		u.settleLocked(c)
		u.kickLocked(c)
	}
	return nil
}

// Hangup declines (486, or 603 when decline), cancels or BYEs the call.
func (u *UA) Hangup(account string, callID int, decline bool) error {
	u.mu.Lock()
	c, err := u.callLocked(account, callID)
	if err == nil && c.tab.gone {
		err = fmt.Errorf("account %q call %d already ended: %w", account, callID, ErrCallState)
	}
	u.mu.Unlock()
	if err != nil {
		return err
	}
	u.goTracked(func() {
		ctx, cancel := context.WithTimeout(u.ctx, 40*time.Second)
		defer cancel()
		u.terminate(ctx, c, "local hangup", decline)
	})
	return nil
}

// terminate ends a call the way its phase requires: decline a ringing
// incoming call, CANCEL a ringing outgoing one, BYE an answered one. It
// returns when the call has ended (and the BYE was answered) or ctx ends.
func (u *UA) terminate(ctx context.Context, c *call, reason string, decline bool) {
	c.mu.Lock()
	p := c.phase
	var finish func()
	switch p {
	case phaseRinging, phaseEarly:
		t := transition{reason: reasonOr(reason, "cancelled")}
		if !c.out {
			t = transition{reason: reason, code: 486}
			if decline {
				t.code = 603
			}
		}
		_, _ = u.setPhaseLocked(c, phaseEnding, t) // legal from ringing and early
	case phaseAnswering, phaseConfirmed, phaseTransferring, phaseReferred:
		finish = u.endLocked(c, reason, 0)
	}
	c.mu.Unlock()
	switch p {
	case phaseEnded:
	case phaseAnswering, phaseConfirmed, phaseTransferring, phaseReferred:
		if finish != nil {
			finish()
		}
		u.sendBye(ctx, c)
	default:
		// The INVITE's own goroutine ends the call when the CANCEL or
		// the decline is through.
		select {
		case <-c.ended:
		case <-ctx.Done():
		}
	}
}

func reasonOr(reason, def string) string {
	if reason == "local hangup" {
		return def
	}
	return reason
}
