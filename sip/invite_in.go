// invite_in.go owns the INVITEs the peer sends: a new incoming call from
// screening to the ACK of our answer, and the re-INVITEs and UPDATEs of a
// dialog (hold/resume, session refresh, media change).
package sip

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telestra/telestra-sip/sip/media"
)

// onInvite handles a new incoming call; in-dialog INVITEs go to onReinvite.
// The handler goroutine (sipgo's) lives as long as the INVITE transaction
// needs us: until the call is answered and ACKed, declined or cancelled.
func (u *UA) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if toTag(req) != "" {
		u.onReinvite(req, tx)
		return
	}
	if !u.enter() {
		u.reply(req, tx, 503, "Service Unavailable")
		return
	}
	defer u.wg.Done()
	a, offer, res := u.screenInvite(req)
	if res != nil {
		u.send(tx, res)
		return
	}
	old, res := u.replacedCall(req)
	if res != nil {
		u.send(tx, res)
		return
	}
	if old != nil {
		a = old.acct // the replacing call takes the old one's place
	}
	c, res := u.newIncoming(req, a, old)
	if res != nil {
		u.send(tx, res)
		return
	}
	if old != nil {
		// RFC 3891: answered at once, no ringing and no call-incoming.
		cancelled := u.ring(req, tx, c, false)
		c.mu.Lock()
		_, _ = u.setPhaseLocked(c, phaseAnswering, transition{}) // legal from ringing
		c.mu.Unlock()
		u.awaitDecision(req, tx, c, offer, cancelled)
		return
	}
	cancelled := u.ring(req, tx, c, true)
	u.awaitDecision(req, tx, c, offer, cancelled)
}

// screenInvite checks a new INVITE before a call exists: it returns the
// account and the SDP offer (nil: delayed offer), or the rejection to send.
func (u *UA) screenInvite(req *sip.Request) (*account, *remoteSDP, *sip.Response) {
	u.mu.Lock()
	closing := u.closing
	u.mu.Unlock()
	if closing {
		return nil, nil, u.response(req, 503, "Service Unavailable", "")
	}
	if bad := unsupportedRequire(req); bad != "" {
		return nil, nil, u.response(req, 420, "Bad Extension", "", sip.NewHeader("Unsupported", bad))
	}
	a := u.matchAccount(req)
	if a == nil {
		return nil, nil, u.response(req, 404, "Not Found", "")
	}
	if req.Contact() == nil || req.From() == nil || req.CallID() == nil || req.CSeq() == nil {
		return nil, nil, u.response(req, 400, "Bad Request", "")
	}
	var offer *remoteSDP
	if len(req.Body()) > 0 {
		r, err := parseSDP(req.Body())
		if err == nil {
			if _, ok := pickCodec(r.Codecs, u.cur().codecs); !ok && r.Port != 0 {
				err = errors.New("no common codec")
			}
		}
		if err != nil {
			u.log.Info("rejecting INVITE: unusable SDP", "error", err)
			return nil, nil, u.response(req, 488, "Not Acceptable Here", "")
		}
		offer = r
	}
	if err := u.srtpScreen(offer, u.transportOfRequest(req) == "TLS"); err != nil {
		u.log.Info("rejecting INVITE", "error", err)
		return nil, nil, u.response(req, 488, "Not Acceptable Here", "")
	}
	if n, _, ok := sessionExpiresOf(req); ok && n < u.minSE {
		return nil, nil, u.tooBriefReply(req)
	}
	u.mu.Lock()
	full := a.eff.MaxCalls > 0 && u.liveCallsLocked(a) >= a.eff.MaxCalls
	u.mu.Unlock()
	if _, replaces := headerValue(req, "Replaces"); replaces {
		full = false // it takes the place of a call that ends
	}
	if full {
		return nil, nil, u.response(req, 486, "Busy Here", "")
	}
	return a, offer, nil
}

// newIncoming makes the ringing call of a screened INVITE, or returns the
// rejection to send; a call that replaces another is not announced.
func (u *UA) newIncoming(req *sip.Request, a *account, replacing *call) (*call, *sip.Response) {
	var c *call
	sess, err := u.alloc.Allocate(func() {
		if c != nil {
			u.onMediaTimeout(c)
		}
	})
	if err != nil {
		u.log.Error("no RTP port for incoming call", "account", a.plan.Name, "error", err)
		return nil, u.response(req, 503, "Service Unavailable", "")
	}
	srcHost, _, _ := strings.Cut(req.Source(), ":")
	if h, _, err := splitHostPort(req.Source()); err == nil {
		srcHost = h
	}
	host := u.localHost(srcHost)

	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closing {
		sess.Close() // never bound nor updated: closes at once
		return nil, u.response(req, 503, "Service Unavailable", "")
	}
	c = u.newCallLocked(a, false, req.CallID().Value())
	c.sess, c.tab.media = sess, sess
	sess.OnDTMF(func(d media.DTMF) { u.onRTPDigit(c, d) })
	c.host = host
	from, to := req.From(), req.To()
	c.dlg = dialog{
		callID:     c.dlg.callID,
		localTag:   newTag(),
		remoteTag:  fromTag(req),
		local:      *to.Address.Clone(),
		localName:  quotable(to.DisplayName),
		remote:     *from.Address.Clone(),
		remoteName: quotable(from.DisplayName),
		remoteSeq:  req.CSeq().SeqNo,
		localSeq:   uint32(u.clock.Now().UnixNano()%10000) + 1,
		target:     *req.Contact().Address.Clone(),
		routes:     recordRoutes(req), // in order at the UAS (RFC 3261 12.1.1)
		transport:  u.transportOfRequest(req),
	}
	c.caller = from.Address.User
	c.callerName = from.DisplayName
	if c.callerName == "" {
		c.callerName = c.caller
	}
	c.callee = a.eff.User
	if v, ok := headerValue(req, "Allow"); ok {
		c.peerAllow = v
	}
	c.timer.peerTimer = hasOption(req, "Supported", "timer") || hasOption(req, "Require", "timer")
	c.timer.fromRequest(req, u.minSE) // screened: not too brief
	u.calls[c.id] = c
	u.dialogs[c.dlg.key()] = c
	c.replaces = replacing
	if replacing == nil {
		u.emitLocked(Event{Kind: CallIncoming, Account: a.plan.Name, CallID: c.id, Caller: c.caller, CallerName: c.callerName})
	}
	c.log.Info("incoming call", "from", from.Address.String(), "replaces", replacing != nil)
	return c, nil
}

// ring sends 100 and (alert) 180; the returned channel closes on a CANCEL.
func (u *UA) ring(req *sip.Request, tx sip.ServerTransaction, c *call, alert bool) <-chan struct{} {
	var once sync.Once
	cancelled := make(chan struct{})
	onCancel := func(*sip.Request) { once.Do(func() { close(cancelled) }) }
	if !tx.OnCancel(onCancel) {
		onCancel(nil)
	}
	u.send(tx, u.response(req, 100, "Trying", ""))
	if !alert {
		return cancelled
	}
	ringing := u.response(req, 180, "Ringing", c.dlg.localTag)
	ringing.AppendHeader(u.contactHeaderOver(c.callee, c.host, c.dlg.transport))
	u.send(tx, ringing)
	return cancelled
}

// awaitDecision waits for the operator's answer or decline, a CANCEL, the
// end of the call or of the UA.
func (u *UA) awaitDecision(req *sip.Request, tx sip.ServerTransaction, c *call, offer *remoteSDP, cancelled <-chan struct{}) {
	tag := c.dlg.localTag
	select {
	case d := <-c.decisionCh:
		if d.code == 200 {
			u.answerIncoming(c, req, tx, offer, cancelled)
			return
		}
		reason := "Busy Here"
		if d.code == 603 {
			reason = "Decline"
		}
		u.respondTagged(req, tx, d.code, reason, tag)
		why := d.reason
		if why == "local hangup" || why == "" {
			why = "declined"
		}
		u.end(c, why, d.code)
	case <-cancelled:
		u.end(c, "remote cancel", 487)
	case <-c.ended:
		// Ended elsewhere (e.g. BYE in the early dialog, account removed).
		u.respondTagged(req, tx, 487, "Request Terminated", tag)
	case <-tx.Done():
		u.end(c, "INVITE transaction failed", 500)
	case <-u.ctx.Done():
		u.respondTagged(req, tx, 486, "Busy Here", tag)
		u.end(c, "shutdown", 486)
	}
}

// answerIncoming sends 200 (answer, or our offer for a delayed-offer
// INVITE) and waits for the ACK that confirms the call.
func (u *UA) answerIncoming(c *call, req *sip.Request, tx sip.ServerTransaction, offer *remoteSDP, cancelled <-chan struct{}) {
	tag := c.dlg.localTag
	c.mu.Lock()
	live := c.phase.live()
	var body []byte
	var err error
	switch {
	case !live:
	case offer != nil:
		body, err = u.answerOfferLocked(c, offer)
	default:
		body = u.offerLocked(c)
	}
	var res *sip.Response
	if live && err == nil {
		res = u.ok200Locked(c, req, body)
	}
	heldInSDP := c.hold.want
	c.mu.Unlock()

	switch {
	case !live:
		u.respondTagged(req, tx, 487, "Request Terminated", tag)
		return
	case err != nil:
		u.respondTagged(req, tx, 488, "Not Acceptable Here", tag)
		u.end(c, "488 Not Acceptable Here", 488)
		return
	}
	if err := tx.Respond(res); err != nil {
		u.end(c, "sending 200 OK failed: "+err.Error(), 500)
		return
	}
	select {
	case <-cancelled:
		// The CANCEL was processed first: 487 went out, not our 200.
		u.end(c, "remote cancel", 487)
		return
	default:
	}
	ack := u.awaitAck(c, tx, res, req.CSeq().SeqNo)

	c.mu.Lock()
	live = c.phase.live()
	if live && ack != nil {
		if offer == nil {
			err = u.applyAnswerBodyLocked(c, ack.Body())
		}
		if err == nil {
			c.hold.agreed = heldInSDP
			_, err = u.setPhaseLocked(c, phaseConfirmed, transition{}) // legal from answering
		}
	}
	c.mu.Unlock()
	switch {
	case !live:
	case ack == nil && u.ctx.Err() == nil:
		u.endAndBye(c, "no ACK for 200 OK", 408)
	case ack == nil:
		u.end(c, "shutdown", 0)
	case err != nil:
		u.noUsableAnswer(c, "in ACK", err)
	}
}

// awaitAck waits for the ACK of our 2xx to INVITE with CSeq seq,
// retransmitting the 2xx over UDP (RFC 3261 13.3.1.4). nil: no ACK.
func (u *UA) awaitAck(c *call, tx sip.ServerTransaction, res *sip.Response, seq uint32) *sip.Request {
	ack := u.waitAck(c, tx, res, seq)
	if ack != nil && stream(res.Transport()) {
		// Over a stream the INVITE is not retransmitted, so RFC 6026's
		// Timer L (32 s) guards nothing, while the transaction holds its
		// connection in sipgo's count: a peer closing the connection then
		// makes the transaction's release go below zero ("TCP ref went
		// negative"). The ACK ends it.
		tx.Terminate()
	}
	return ack
}

func (u *UA) waitAck(c *call, tx sip.ServerTransaction, res *sip.Response, seq uint32) *sip.Request {
	reliable := stream(u.outTransport) || stream(res.Transport())
	interval := u.t1
	retrans := u.clock.NewTimer(interval)
	defer retrans.Stop()
	if reliable {
		retrans.Stop()
	}
	deadline := u.clock.NewTimer(u.ackTimeout)
	defer deadline.Stop()
	for {
		select {
		case ack := <-c.ackCh:
			if ack.CSeq() != nil && ack.CSeq().SeqNo == seq {
				return ack
			}
		case ack := <-tx.Acks():
			// An ACK reusing the INVITE's branch lands on the transaction.
			return ack
		case <-retrans.C():
			if err := tx.Respond(res); err != nil {
				c.log.Debug("2xx retransmission failed", "error", err)
			}
			interval = min(interval*2, u.t2)
			retrans.Reset(interval)
		case <-deadline.C():
			return nil
		case <-c.ended:
			return nil
		case <-u.ctx.Done():
			return nil
		}
	}
}

func (u *UA) onAck(req *sip.Request, tx sip.ServerTransaction) {
	c := u.dialogFor(req)
	if c == nil {
		return // ACK for a 487/486 or an unknown dialog: nothing to do
	}
	select {
	case c.ackCh <- req:
	default:
	}
}

// waitAckProcessed gives the ACK of our last 2xx to an INVITE a moment to
// be processed before the peer's next request of the dialog.
func (u *UA) waitAckProcessed(c *call) {
	c.mu.Lock()
	ch := c.waitAck
	c.mu.Unlock()
	if ch == nil {
		return
	}
	t := u.clock.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C():
	}
}

// admitLocked checks an in-dialog re-INVITE or UPDATE against the call and
// the CSeq order; nil: go on.
func (u *UA) admitLocked(c *call, req *sip.Request) *sip.Response {
	switch {
	case !c.phase.live():
		return u.response(req, 481, "Call/Transaction Does Not Exist", "")
	case !checkSeqLocked(c, req):
		return u.response(req, 500, "Server Internal Error", "", sip.NewHeader("Retry-After", "1"))
	}
	return nil
}

// onReinvite handles an INVITE inside a dialog: hold/resume, session
// refresh, media change, with or without SDP.
func (u *UA) onReinvite(req *sip.Request, tx sip.ServerTransaction) {
	c := u.dialogFor(req)
	if c == nil {
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	if !u.enter() {
		u.reply(req, tx, 503, "Service Unavailable")
		return
	}
	defer u.wg.Done()
	u.waitAckProcessed(c)
	awaitAnswer := len(req.Body()) == 0
	c.mu.Lock()
	res := u.reinviteLocked(c, req, awaitAnswer)
	c.mu.Unlock()
	u.send(tx, res)
	if res.StatusCode != 200 {
		return
	}
	ack := u.awaitAck(c, tx, res, req.CSeq().SeqNo)

	c.mu.Lock()
	c.offer = offerIdle
	c.ackSeen()
	live := c.phase.live()
	if live && ack != nil {
		if awaitAnswer {
			r, err := parseSDP(ack.Body())
			if err == nil {
				err = u.applyAnswerLocked(c, r)
				c.hold.remote = r.held()
			}
			if err != nil {
				c.log.Warn("ACK to re-INVITE without usable SDP: keeping previous media", "error", err)
			}
		}
		u.settleLocked(c)
		u.kickLocked(c) // a hold/resume asked for meanwhile
	}
	c.mu.Unlock()
	if live && ack == nil && u.ctx.Err() == nil {
		u.endAndBye(c, "no ACK for re-INVITE", 408)
	}
}

// reinviteLocked answers a re-INVITE: our 200 (the offer is then the
// peer's until the ACK) or the rejection.
func (u *UA) reinviteLocked(c *call, req *sip.Request, awaitAnswer bool) *sip.Response {
	if res := u.admitLocked(c, req); res != nil {
		return res
	}
	switch {
	case !c.phase.established() || c.offer == offerOurs:
		return u.response(req, 491, "Request Pending", "")
	case c.offer == offerTheirs:
		return u.response(req, 500, "Server Internal Error", "", sip.NewHeader("Retry-After", "1"))
	}
	if ct := req.Contact(); ct != nil {
		c.dlg.target = *ct.Address.Clone() // target refresh
	}
	if !c.timer.fromRequest(req, u.minSE) {
		return u.tooBriefReply(req)
	}
	var body []byte
	if awaitAnswer {
		body = u.offerLocked(c)
	} else {
		b, err := u.answerBodyLocked(c, req.Body())
		if err != nil {
			c.log.Info("rejecting re-INVITE offer", "error", err)
			return u.response(req, 488, "Not Acceptable Here", "")
		}
		body = b
	}
	c.offer = offerTheirs
	c.waitAck = make(chan struct{})
	u.armSessionTimerLocked(c)
	return u.ok200Locked(c, req, body)
}

// onUpdate handles UPDATE (RFC 3311): session refresh without SDP, or an
// offer answered in the 200.
func (u *UA) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	c := u.dialogFor(req)
	if c == nil {
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	u.waitAckProcessed(c)
	c.mu.Lock()
	res := u.updateLocked(c, req)
	c.mu.Unlock()
	u.send(tx, res)
}

// updateLocked answers an UPDATE: our 200 or the rejection.
func (u *UA) updateLocked(c *call, req *sip.Request) *sip.Response {
	if res := u.admitLocked(c, req); res != nil {
		return res
	}
	if len(req.Body()) > 0 && c.offer != offerIdle {
		return u.response(req, 491, "Request Pending", "")
	}
	if ct := req.Contact(); ct != nil {
		c.dlg.target = *ct.Address.Clone()
	}
	if !c.timer.fromRequest(req, u.minSE) {
		return u.tooBriefReply(req)
	}
	var body []byte
	if len(req.Body()) > 0 {
		b, err := u.answerBodyLocked(c, req.Body())
		if err != nil {
			c.log.Info("rejecting UPDATE offer", "error", err)
			return u.response(req, 488, "Not Acceptable Here", "")
		}
		body = b
	}
	if c.phase.established() {
		u.armSessionTimerLocked(c)
	}
	return u.ok200Locked(c, req, body)
}
