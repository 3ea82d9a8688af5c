// phase.go owns a call's life cycle: the phase, the hold record, the one
// transition function (setPhaseLocked) that performs every side effect of a
// phase change, and the binding of an account's audio channel to its active
// call, which follows the phase and the hold record.
//
// Ownership: each call's own lock (call.mu) guards its fields and UA.mu
// guards only the UA's tables (the accounts and their fields, calls,
// dialogs, channel bindings, each call's table entry) and its flags; a
// goroutine takes call.mu before UA.mu, never two
// call locks at once, and holds neither across network I/O, a blocking
// channel operation or a media Close. Functions named ...Locked run with
// the lock of what they change (a call's, or UA.mu for the tables) held.
package sip

import (
	"fmt"
)

// phase is where a call is in its life. Legal moves (setPhaseLocked):
//
//	ringing      -> early, answering, confirmed, ending, ended
//	early        -> confirmed, ending, ended
//	answering    -> confirmed, ended
//	confirmed    -> transferring, referred, ended
//	transferring -> confirmed, ended
//	referred     -> confirmed, ended
//	ending       -> ended
//
// confirmed, transferring and referred are the established phases: the
// dialog carries media and mid-call requests in all three.
type phase int

const (
	// phaseRinging: our INVITE is out (outgoing) or the peer's INVITE was
	// answered 180 and waits for the operator (incoming).
	phaseRinging phase = iota + 1
	// phaseEarly: outgoing; a provisional response carried SDP, we play
	// the far end's early media and send nothing.
	phaseEarly
	// phaseAnswering: incoming; the operator answered, our 2xx waits for
	// its ACK.
	phaseAnswering
	// phaseConfirmed: 2xx and ACK exchanged; the dialog carries media,
	// active or held as the hold record says.
	phaseConfirmed
	// phaseTransferring: established, and our REFER (a blind transfer of
	// the peer, transfer.go) is under way: the call ends "transferred"
	// when the target answers the peer, or goes back to confirmed.
	phaseTransferring
	// phaseReferred: established, and we accepted the peer's REFER: the
	// call to the Refer-To target is placed; this dialog lasts until the
	// transferor's BYE, or goes back to confirmed if that call fails.
	phaseReferred
	// phaseEnding: hanging up before an answer: our CANCEL (outgoing) or
	// our 486/603 (incoming) is under way.
	phaseEnding
	// phaseEnded: over; the call lingers for get-status.
	phaseEnded
)

func (p phase) String() string {
	switch p {
	case phaseRinging:
		return "ringing"
	case phaseEarly:
		return "early"
	case phaseAnswering:
		return "answering"
	case phaseConfirmed:
		return "confirmed"
	case phaseTransferring:
		return "transferring"
	case phaseReferred:
		return "referred"
	case phaseEnding:
		return "ending"
	case phaseEnded:
		return "ended"
	}
	return fmt.Sprintf("phase(%d)", int(p))
}

// legal lists the phases each phase may move to.
var legal = map[phase][]phase{
	phaseRinging:      {phaseEarly, phaseAnswering, phaseConfirmed, phaseEnding, phaseEnded},
	phaseEarly:        {phaseConfirmed, phaseEnding, phaseEnded},
	phaseAnswering:    {phaseConfirmed, phaseEnded},
	phaseConfirmed:    {phaseTransferring, phaseReferred, phaseEnded},
	phaseTransferring: {phaseConfirmed, phaseEnded},
	phaseReferred:     {phaseConfirmed, phaseEnded},
	phaseEnding:       {phaseEnded},
}

func (p phase) canMoveTo(to phase) bool {
	for _, q := range legal[p] {
		if q == to {
			return true
		}
	}
	return false
}

// live reports whether the call has not ended.
func (p phase) live() bool { return p != phaseEnded }

// established reports whether the dialog is confirmed (whether or not a
// transfer is under way): it carries media and mid-call requests.
func (p phase) established() bool {
	return p == phaseConfirmed || p == phaseTransferring || p == phaseReferred
}

// holdState is the hold record of a call, separate from its phase.
type holdState struct {
	want   bool // we want the peer on hold (the operator switched away)
	agreed bool // the hold state the peer last accepted from us
	remote bool // the peer put us on hold
}

func (h holdState) held() bool    { return h.want || h.remote }
func (h holdState) pending() bool { return h.want != h.agreed }

// offerState says which offer/answer transaction of a confirmed dialog is
// in progress; at most one is.
type offerState int

const (
	offerIdle   offerState = iota
	offerOurs              // our re-INVITE or UPDATE is in progress
	offerTheirs            // the peer's re-INVITE waits for its ACK
)

// transition carries what a phase change needs besides the target phase.
type transition struct {
	reason string // ending, ended: why (CallEnded reason, CANCEL reason)
	code   int    // ended: CallEnded code; ending (incoming): 486 or 603
}

// errIllegalMove is wrapped by every rejected phase change.
var errIllegalMove = fmt.Errorf("illegal call phase change: %w", ErrCallState)

// setPhaseLocked moves c (c.mu held) to phase to and performs the side
// effects of the move: the status text, the CallAnswered/CallEnded event,
// the log line, the session timer, the decision handed to the INVITE
// handler, the CANCEL signal and the audio binding. On the move to ended it
// returns finish, to run once c.mu is released: it closes the media session
// (which may wait for the media goroutine) and then reports CallEnded, the
// call's last event. An illegal move changes nothing and returns an error
// that names both phases.
func (u *UA) setPhaseLocked(c *call, to phase, t transition) (finish func(), err error) {
	from := c.phase
	if !from.canMoveTo(to) || (to == phaseEarly && !c.out) || (to == phaseAnswering && c.out) {
		return nil, fmt.Errorf("account %q call %d: %s -> %s: %w", c.account, c.id, from, to, errIllegalMove)
	}
	c.phase = to
	if from == phaseAnswering {
		c.ackSeen() // the answer's ACK arrived, or never will
	}
	switch to {
	case phaseEarly:
		c.status = StateEarly
		u.earlyMediaLocked(c)
	case phaseAnswering:
		c.decisionCh <- decision{code: 200} // one slot, only ever used here and by ending
		c.waitAck = make(chan struct{})
	case phaseConfirmed:
		if from.established() {
			// A transfer failed (ours) or the referred call did (theirs):
			// the call goes on as it was.
			c.log.Info("call back from "+from.String(), "reason", t.reason)
			c.xfer, c.ref = nil, nil
			u.settleLocked(c)
			break
		}
		c.confirmedAt = u.clock.Now()
		u.armSessionTimerLocked(c)
		u.settleLocked(c)
		ev := Event{Kind: CallAnswered, Account: c.account, CallID: c.id, Replaces: -1}
		if c.replaces != nil {
			ev.Replaces = c.replaces.id
		}
		u.emitLocked(ev)
		c.log.Info("call answered")
		// A hold requested before the answer (another call taken meanwhile)
		// is sent now.
		if c.hold.pending() {
			u.kickLocked(c)
		}
		u.settledLinksLocked(c, 200, "OK")
	case phaseTransferring:
		c.log.Info("transferring call", "to", c.xfer.target)
	case phaseReferred:
		c.log.Info("call referred by the peer", "to", c.ref.target)
	case phaseEnding:
		c.endReason = t.reason
		if c.out {
			close(c.cancelCh)
		} else {
			c.decisionCh <- decision{code: t.code, reason: t.reason}
		}
		u.settleLocked(c)
	case phaseEnded:
		if c.confirmedAt.IsZero() {
			u.settledLinksLocked(c, max(t.code, 480), reasonOr(t.reason, "Temporarily Unavailable"))
		}
		return u.endedLocked(c, t), nil
	}
	return nil, nil
}

// endedLocked is the side effects of the move to ended; see setPhaseLocked
// for what it returns.
func (u *UA) endedLocked(c *call, t transition) func() {
	c.status = StateEnded
	c.endedWhy, c.endedCode, c.endedAt = t.reason, t.code, u.clock.Now()
	c.timer.stop()
	u.mu.Lock()
	u.unbindLocked(c)
	c.tab.gone = true
	c.tab.endedAt = c.endedAt
	c.tab.audio = false
	c.tab.media = nil
	if c.acct.active == c {
		c.acct.active = nil
	}
	u.mu.Unlock()
	c.ackSeen()
	close(c.ended)
	sess := c.sess
	if sess != nil {
		c.lastStats = sess.Stats()
	}
	c.sess = nil
	c.log.Info("call ended", "reason", t.reason, "code", t.code)
	ev := Event{Kind: CallEnded, Account: c.account, CallID: c.id, Reason: t.reason, Code: t.code}
	return func() {
		if sess != nil {
			sess.Close()
		}
		// No event of c can follow: every later move is illegal.
		u.emit(ev)
	}
}

// endLocked ends c unless it has ended already; run the returned finish
// (non-nil) after unlocking.
func (u *UA) endLocked(c *call, reason string, code int) (finish func()) {
	f, _ := u.setPhaseLocked(c, phaseEnded, transition{reason: reason, code: code})
	return f // an ended call cannot end again: nothing to do
}

func (u *UA) end(c *call, reason string, code int) {
	c.mu.Lock()
	finish := u.endLocked(c, reason, code)
	c.mu.Unlock()
	if finish != nil {
		finish()
	}
}

// earlyMediaLocked plays what the far end sends and sends nothing, for the
// latest SDP of a provisional response.
func (u *UA) earlyMediaLocked(c *call) {
	p := c.neg.params()
	p.Send = false
	p.Recv = true
	c.sess.Update(p)
	u.settleLocked(c)
}

// settleLocked (c.mu held) derives the status text of a confirmed call
// from its hold record, publishes whether the call wants its account's
// audio and moves the binding, after a phase or hold change.
func (u *UA) settleLocked(c *call) {
	if c.phase.established() {
		if c.hold.held() {
			c.status = StateHeld
		} else {
			c.status = StateActive
		}
	}
	audio := c.sess != nil && !c.hold.held() && (c.phase.established() || c.phase == phaseEarly)
	u.mu.Lock()
	defer u.mu.Unlock()
	c.tab.audio = audio
	if !audio {
		u.unbindLocked(c)
	}
	u.rebindLocked(c.acct)
}

// makeActive makes c the call the account's audio follows, as a phone does
// when a call is dialled, answered or switched to: the call active until
// now is put on hold. No call lock may be held.
func (u *UA) makeActive(c *call) {
	a := c.acct
	u.mu.Lock()
	old := a.active
	a.active = c
	u.mu.Unlock()
	if old == nil || old == c {
		return
	}
	old.mu.Lock()
	defer old.mu.Unlock()
	u.mu.Lock()
	stillAway := a.active != old // not switched back meanwhile
	u.mu.Unlock()
	if stillAway && old.phase.live() {
		old.hold.want = true
		u.settleLocked(old)
		u.kickLocked(old)
	}
}

// ---- binding the account's audio to its active call ----

func chanKey(a *account) string {
	if a.eff.AudioName != "" {
		return "ch:" + a.eff.AudioName
	}
	return "acct:" + a.plan.Name
}

func bindable(c *call) bool { return c != nil && c.tab.audio && c.tab.media != nil }

// rebindLocked (u.mu held) makes the account's channel follow its active call; a
// channel is bound to at most one call (accounts sharing a channel share
// the binding, the latest to take it wins).
func (u *UA) rebindLocked(a *account) {
	key := chanKey(a)
	want := a.active
	if !bindable(want) || a.eff.Audio == nil {
		want = nil
	}
	cur := u.bound[key]
	if cur != nil && cur != want && (want != nil || cur.acct == a) {
		if cur.tab.media != nil {
			cur.tab.media.Bind(nil)
		}
		cur.tab.bound = false
		delete(u.bound, key)
		cur = nil
	}
	if want != nil {
		for k, b := range u.bound {
			if b == want && k != key {
				delete(u.bound, k) // the account moved to another channel (reload)
			}
		}
		want.tab.media.Bind(a.eff.Audio)
		want.tab.bound = true
		u.bound[key] = want
	}
}

// unbindLocked (u.mu held) unbinds c from its channel.
func (u *UA) unbindLocked(c *call) {
	if !c.tab.bound {
		return
	}
	if c.tab.media != nil {
		c.tab.media.Bind(nil)
	}
	c.tab.bound = false
	for k, b := range u.bound {
		if b == c {
			delete(u.bound, k)
		}
	}
}
