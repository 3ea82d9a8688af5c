package sip

import (
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

func (u *UA) registerHandlers() {
	u.srv.OnInvite(u.onInvite)
	u.srv.OnAck(u.onAck)
	u.srv.OnBye(u.onBye)
	u.srv.OnCancel(u.onCancel)
	u.srv.OnOptions(u.onOptions)
	u.srv.OnUpdate(u.onUpdate)
	u.srv.OnInfo(u.onInfo)
	u.srv.OnNoRoute(u.onOther)
}

// knownMethods are methods we recognise but do not implement (405, not 501).
var knownMethods = map[sip.RequestMethod]bool{
	sip.REGISTER: true, sip.SUBSCRIBE: true, sip.NOTIFY: true, sip.REFER: true,
	sip.MESSAGE: true, sip.PUBLISH: true, sip.PRACK: true,
}

func toTag(req *sip.Request) string {
	if to := req.To(); to != nil {
		t, _ := to.Params.Get("tag")
		return t
	}
	return ""
}

func fromTag(req *sip.Request) string {
	if f := req.From(); f != nil {
		t, _ := f.Params.Get("tag")
		return t
	}
	return ""
}

// response builds a response carrying our headers; tag (if any) is our
// dialog tag in To.
func (u *UA) response(req *sip.Request, code int, reason, tag string) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if tag != "" {
		if to := res.To(); to != nil {
			to.Params.Add("tag", tag)
		}
	}
	res.AppendHeader(sip.NewHeader("Server", u.cfg.UserAgent))
	return res
}

func (u *UA) reply(req *sip.Request, tx sip.ServerTransaction, code int, reason string, hdrs ...sip.Header) {
	res := u.response(req, code, reason, "")
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		u.log.Debug("sending response failed", "status", code, "method", req.Method, "error", err)
	}
}

// dialogFor finds the call of an in-dialog request (our tag is in To).
func (u *UA) dialogFor(req *sip.Request) *call {
	cid := req.CallID()
	if cid == nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dialogs[cid.Value()+"|"+toTag(req)]
}

// matchAccount picks the account an incoming INVITE is for: the
// Request-URI user (our Contact user when a proxy rewrote it), else the To
// user.
func (u *UA) matchAccount(req *sip.Request) *account {
	u.mu.Lock()
	defer u.mu.Unlock()
	find := func(user string) *account {
		if user == "" {
			return nil
		}
		for _, a := range u.accounts {
			if a.eff.User == user {
				return a
			}
		}
		return nil
	}
	if a := find(uriUser(req.Recipient)); a != nil {
		return a
	}
	if to := req.To(); to != nil {
		return find(uriUser(to.Address))
	}
	return nil
}

func unsupportedRequire(req *sip.Request) string {
	var bad []string
	for _, h := range req.GetHeaders("Require") {
		for _, o := range strings.Split(h.Value(), ",") {
			o = strings.TrimSpace(o)
			if o != "" && !strings.EqualFold(o, "timer") {
				bad = append(bad, o)
			}
		}
	}
	return strings.Join(bad, ", ")
}

// sessionExpiresOf reads Session-Expires (or its compact form x).
func sessionExpiresOf(req *sip.Request) (int, string, bool) {
	v, ok := headerValue(req, "Session-Expires", "x")
	if !ok {
		return 0, "", false
	}
	return parseSessionExpires(v)
}

// applySERequestLocked takes the session timer from a request the peer
// sent (initial INVITE or refresh); it returns false when the interval is
// below our Min-SE (the caller answers 422).
func (u *UA) applySERequestLocked(c *call, req *sip.Request) bool {
	n, ref, ok := sessionExpiresOf(req)
	if !ok {
		return true
	}
	if n < u.minSE {
		return false
	}
	c.seInterval = n
	switch ref {
	case "uac":
		c.weRefresh = false // the peer sent this request: it refreshes
	case "uas":
		c.weRefresh = true
	default:
		// RFC 4028 §9: the UAS picks; the requester if it can refresh.
		c.weRefresh = !c.peerTimer
	}
	return true
}

// seResponseHeadersLocked adds Session-Expires to our 2xx to the peer's
// request; refresher is relative to that request (uac = the peer).
func (u *UA) seResponseHeadersLocked(c *call, res *sip.Response) {
	if c.seInterval <= 0 {
		return
	}
	ref := "uac"
	if c.weRefresh {
		ref = "uas"
	}
	res.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(c.seInterval)+";refresher="+ref))
	if c.peerTimer {
		res.AppendHeader(sip.NewHeader("Require", "timer"))
	}
}

func (u *UA) tooBrief(req *sip.Request, tx sip.ServerTransaction) {
	u.reply(req, tx, 422, "Session Interval Too Small", sip.NewHeader("Min-SE", strconv.Itoa(u.minSE)))
}

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
	u.mu.Lock()
	closing := u.closing
	u.mu.Unlock()
	if closing {
		u.reply(req, tx, 503, "Service Unavailable")
		return
	}
	if bad := unsupportedRequire(req); bad != "" {
		u.reply(req, tx, 420, "Bad Extension", sip.NewHeader("Unsupported", bad))
		return
	}
	a := u.matchAccount(req)
	if a == nil {
		u.reply(req, tx, 404, "Not Found")
		return
	}
	contact := req.Contact()
	from := req.From()
	cid := req.CallID()
	if contact == nil || from == nil || cid == nil || req.CSeq() == nil {
		u.reply(req, tx, 400, "Bad Request")
		return
	}
	var offer *remoteSDP
	if len(req.Body()) > 0 {
		r, err := parseSDP(req.Body())
		if err == nil {
			if _, ok := pickCodec(r.Codecs, u.codecs); !ok && r.Port != 0 {
				err = errors.New("no common codec")
			}
		}
		if err != nil {
			u.log.Info("rejecting INVITE: unusable SDP", "error", err)
			u.reply(req, tx, 488, "Not Acceptable Here")
			return
		}
		offer = r
	}
	if n, _, ok := sessionExpiresOf(req); ok && n < u.minSE {
		u.tooBrief(req, tx)
		return
	}

	u.mu.Lock()
	full := a.eff.MaxCalls > 0 && u.liveCallsLocked(a) >= a.eff.MaxCalls
	u.mu.Unlock()
	if full {
		u.reply(req, tx, 486, "Busy Here")
		return
	}

	var c *call
	sess, err := u.alloc.Allocate(func() {
		if c != nil {
			u.onMediaTimeout(c)
		}
	})
	if err != nil {
		u.log.Error("no RTP port for incoming call", "account", a.plan.Name, "error", err)
		u.reply(req, tx, 503, "Service Unavailable")
		return
	}
	srcHost, _, _ := strings.Cut(req.Source(), ":")
	if h, _, err := splitHostPort(req.Source()); err == nil {
		srcHost = h
	}
	host := u.localHost(srcHost)

	u.mu.Lock()
	if u.closing {
		u.mu.Unlock()
		sess.Close()
		u.reply(req, tx, 503, "Service Unavailable")
		return
	}
	c = u.newCallLocked(a, false)
	c.sess = sess
	c.host = host
	to := req.To()
	c.dlg = dialog{
		callID:     cid.Value(),
		localTag:   newTag(),
		remoteTag:  fromTag(req),
		local:      *to.Address.Clone(),
		localName:  quotable(to.DisplayName),
		remote:     *from.Address.Clone(),
		remoteName: quotable(from.DisplayName),
		remoteSeq:  req.CSeq().SeqNo,
		localSeq:   uint32(time.Now().UnixNano()%10000) + 1,
		target:     *contact.Address.Clone(),
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
	c.peerTimer = hasOption(req, "Supported", "timer") || hasOption(req, "Require", "timer")
	u.applySERequestLocked(c, req)
	u.calls[c.id] = c
	u.dialogs[c.dlg.key()] = c
	tag := c.dlg.localTag
	u.emitLocked(Event{Kind: CallIncoming, Account: a.plan.Name, CallID: c.id, Caller: c.caller, CallerName: c.callerName})
	u.log.Info("incoming call", "account", a.plan.Name, "call", c.id, "from", from.Address.String())
	u.mu.Unlock()

	var once sync.Once
	cancelled := make(chan struct{})
	onCancel := func(*sip.Request) { once.Do(func() { close(cancelled) }) }
	if !tx.OnCancel(onCancel) {
		onCancel(nil)
	}
	if err := tx.Respond(u.response(req, 100, "Trying", "")); err != nil {
		u.log.Debug("100 Trying failed", "error", err)
	}
	ringing := u.response(req, 180, "Ringing", tag)
	ringing.AppendHeader(u.contactHeaderOver(a.eff.User, host, u.transportOfRequest(req)))
	if err := tx.Respond(ringing); err != nil {
		u.log.Debug("180 Ringing failed", "error", err)
	}

	for {
		select {
		case d := <-c.decisionCh:
			if d.code != 200 {
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
				return
			}
			u.answerIncoming(c, req, tx, offer, cancelled)
			return
		case <-cancelled:
			u.end(c, "remote cancel", 487)
			return
		case <-c.ended:
			// Ended elsewhere (e.g. BYE in the early dialog, account removed).
			u.respondTagged(req, tx, 487, "Request Terminated", tag)
			return
		case <-tx.Done():
			u.end(c, "INVITE transaction failed", 500)
			return
		case <-u.ctx.Done():
			u.respondTagged(req, tx, 486, "Busy Here", tag)
			u.end(c, "shutdown", 486)
			return
		}
	}
}

func (u *UA) respondTagged(req *sip.Request, tx sip.ServerTransaction, code int, reason, tag string) {
	if err := tx.Respond(u.response(req, code, reason, tag)); err != nil {
		u.log.Debug("sending response failed", "status", code, "error", err)
	}
}

// ok200Locked builds our 2xx to an INVITE or UPDATE of the dialog.
func (u *UA) ok200Locked(c *call, req *sip.Request, body []byte) *sip.Response {
	res := u.response(req, 200, "OK", c.dlg.localTag)
	res.AppendHeader(u.contactHeaderOver(c.dlg.local.User, c.host, c.dlg.transport))
	res.AppendHeader(sip.NewHeader("Allow", allowHeader))
	res.AppendHeader(sip.NewHeader("Supported", "timer"))
	u.seResponseHeadersLocked(c, res)
	if body != nil {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.SetBody(body)
	}
	return res
}

// answerIncoming sends 200 (answer, or our offer for a delayed-offer
// INVITE) and waits for the ACK that establishes the call.
func (u *UA) answerIncoming(c *call, req *sip.Request, tx sip.ServerTransaction, offer *remoteSDP, cancelled <-chan struct{}) {
	u.mu.Lock()
	if c.stopped {
		u.mu.Unlock()
		u.respondTagged(req, tx, 487, "Request Terminated", c.dlg.localTag)
		return
	}
	var body []byte
	awaitAnswer := offer == nil
	if offer != nil {
		b, err := u.answerOfferLocked(c, offer)
		if err != nil {
			u.mu.Unlock()
			u.respondTagged(req, tx, 488, "Not Acceptable Here", c.dlg.localTag)
			u.end(c, "488 Not Acceptable Here", 488)
			return
		}
		body = b
	} else {
		body = u.offerLocked(c)
	}
	res := u.ok200Locked(c, req, body)
	heldInSDP := c.localHold
	u.mu.Unlock()

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
	if ack == nil {
		u.mu.Lock()
		stopped := c.stopped
		u.mu.Unlock()
		if !stopped && u.ctx.Err() == nil {
			u.endAndBye(c, "no ACK for 200 OK", 408)
		} else if !stopped {
			u.end(c, "shutdown", 0)
		}
		return
	}
	u.mu.Lock()
	if c.stopped {
		u.mu.Unlock()
		return
	}
	if awaitAnswer && !u.takeAnswerLocked(c, ack.Body(), "in ACK") {
		return
	}
	c.established = true
	c.started = true
	c.sentHold = heldInSDP
	u.armSessionTimerLocked(c)
	u.updateStateLocked(c)
	u.emitLocked(Event{Kind: CallAnswered, Account: c.acct.plan.Name, CallID: c.id})
	u.log.Info("call answered", "account", c.acct.plan.Name, "call", c.id)
	if c.localHold != c.sentHold {
		u.kickLocked(c)
	}
	u.mu.Unlock()
}

// awaitAck waits for the ACK of our 2xx to INVITE with CSeq seq,
// retransmitting the 2xx over UDP (RFC 3261 13.3.1.4). nil: no ACK.
func (u *UA) awaitAck(c *call, tx sip.ServerTransaction, res *sip.Response, seq uint32) *sip.Request {
	reliable := u.outTransport == "TCP" || strings.EqualFold(res.Transport(), "TCP")
	interval := u.t1
	retrans := time.NewTimer(interval)
	defer retrans.Stop()
	if reliable {
		retrans.Stop()
	}
	deadline := time.NewTimer(u.ackTimeout)
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
		case <-retrans.C:
			if err := tx.Respond(res); err != nil {
				u.log.Debug("2xx retransmission failed", "error", err)
			}
			interval = min(interval*2, u.t2)
			retrans.Reset(interval)
		case <-deadline.C:
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

// lockDialogRequest prepares an in-dialog re-INVITE or UPDATE of c: it waits
// for the ACK of our 200 to be processed, locks u.mu and checks the call is
// live and the CSeq in order. When not, it unlocks and answers itself (481,
// or 500 with Retry-After) and returns false.
func (u *UA) lockDialogRequest(c *call, req *sip.Request, tx sip.ServerTransaction) bool {
	u.waitAckProcessed(c)
	u.mu.Lock()
	switch {
	case c.stopped:
		u.mu.Unlock()
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return false
	case !checkSeqLocked(c, req):
		u.mu.Unlock()
		u.reply(req, tx, 500, "Server Internal Error", sip.NewHeader("Retry-After", "1"))
		return false
	}
	return true
}

// checkSeqLocked enforces increasing remote CSeq (RFC 3261 12.2.2).
func checkSeqLocked(c *call, req *sip.Request) bool {
	cs := req.CSeq()
	if cs == nil {
		return false
	}
	if c.dlg.remoteSeq != 0 && cs.SeqNo <= c.dlg.remoteSeq {
		return false
	}
	c.dlg.remoteSeq = cs.SeqNo
	return true
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
	if !u.lockDialogRequest(c, req, tx) {
		return
	}
	switch {
	case !c.established || c.outPending:
		u.mu.Unlock()
		u.reply(req, tx, 491, "Request Pending")
		return
	case c.inPending:
		u.mu.Unlock()
		u.reply(req, tx, 500, "Server Internal Error", sip.NewHeader("Retry-After", "1"))
		return
	}
	if ct := req.Contact(); ct != nil {
		c.dlg.target = *ct.Address.Clone() // target refresh
	}
	if !u.applySERequestLocked(c, req) {
		u.mu.Unlock()
		u.tooBrief(req, tx)
		return
	}
	var body []byte
	awaitAnswer := len(req.Body()) == 0
	if awaitAnswer {
		body = u.offerLocked(c)
	} else {
		r, err := parseSDP(req.Body())
		if err == nil {
			body, err = u.answerOfferLocked(c, r)
		}
		if err != nil {
			u.mu.Unlock()
			u.log.Info("rejecting re-INVITE offer", "call", c.id, "error", err)
			u.reply(req, tx, 488, "Not Acceptable Here")
			return
		}
		u.updateStateLocked(c)
	}
	c.inPending = true
	u.armSessionTimerLocked(c)
	res := u.ok200Locked(c, req, body)
	u.mu.Unlock()

	if err := tx.Respond(res); err != nil {
		u.log.Warn("sending 200 to re-INVITE failed", "call", c.id, "error", err)
	}
	ack := u.awaitAck(c, tx, res, req.CSeq().SeqNo)

	u.mu.Lock()
	c.inPending = false
	if c.stopped {
		u.mu.Unlock()
		return
	}
	if ack == nil {
		u.mu.Unlock()
		if u.ctx.Err() != nil {
			return
		}
		u.endAndBye(c, "no ACK for re-INVITE", 408)
		return
	}
	if awaitAnswer {
		r, err := parseSDP(ack.Body())
		if err == nil {
			err = u.applyAnswerLocked(c, r)
			c.remoteHold = r.held()
		}
		if err != nil {
			u.log.Warn("ACK to re-INVITE without usable SDP: keeping previous media", "call", c.id, "error", err)
		}
	}
	u.updateStateLocked(c)
	u.kickLocked(c) // a hold/resume asked for meanwhile
	u.mu.Unlock()
}

// waitAckProcessed gives the ACK of a previous re-INVITE a moment to be
// processed: sipgo handles each message in its own goroutine, so a peer's
// ACK and its next request may be seen in the wrong order.
func (u *UA) waitAckProcessed(c *call) {
	for i := 0; i < 100; i++ {
		u.mu.Lock()
		pending := (c.inPending || (c.answering && !c.established)) && !c.stopped
		u.mu.Unlock()
		if !pending {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// onUpdate handles UPDATE (RFC 3311): session refresh without SDP, or an
// offer answered in the 200.
func (u *UA) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	c := u.dialogFor(req)
	if c == nil {
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	if !u.lockDialogRequest(c, req, tx) {
		return
	}
	switch {
	case len(req.Body()) > 0 && (c.outPending || c.inPending):
		u.mu.Unlock()
		u.reply(req, tx, 491, "Request Pending")
		return
	}
	if ct := req.Contact(); ct != nil {
		c.dlg.target = *ct.Address.Clone()
	}
	if !u.applySERequestLocked(c, req) {
		u.mu.Unlock()
		u.tooBrief(req, tx)
		return
	}
	var body []byte
	if len(req.Body()) > 0 {
		r, err := parseSDP(req.Body())
		if err == nil {
			body, err = u.answerOfferLocked(c, r)
		}
		if err != nil {
			u.mu.Unlock()
			u.log.Info("rejecting UPDATE offer", "call", c.id, "error", err)
			u.reply(req, tx, 488, "Not Acceptable Here")
			return
		}
		u.updateStateLocked(c)
	}
	if c.established {
		u.armSessionTimerLocked(c)
	}
	res := u.ok200Locked(c, req, body)
	u.mu.Unlock()
	if err := tx.Respond(res); err != nil {
		u.log.Warn("sending 200 to UPDATE failed", "call", c.id, "error", err)
	}
}

func (u *UA) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := u.dialogFor(req)
	if c == nil {
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	u.mu.Lock()
	stopped := c.stopped
	u.mu.Unlock()
	if stopped {
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	u.reply(req, tx, 200, "OK")
	u.end(c, "remote hangup", 0)
}

// onCancel sees only CANCELs that match no INVITE transaction (sipgo
// answers the others with 200 and the INVITE with 487).
func (u *UA) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
}

func (u *UA) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if toTag(req) != "" && u.dialogFor(req) == nil {
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	u.reply(req, tx, 200, "OK",
		sip.NewHeader("Allow", allowHeader),
		sip.NewHeader("Accept", "application/sdp"),
		sip.NewHeader("Supported", "timer"))
}

// onInfo accepts INFO in a dialog (out-of-band DTMF is not used: RFC 4733
// telephone-event is).
func (u *UA) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	if u.dialogFor(req) == nil {
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	u.reply(req, tx, 200, "OK")
}

// onOther answers methods we do not handle as RFC 3261 §8.2.1 says: 405
// with Allow for methods we know, 501 for the others; requests for a dialog
// we do not have get 481 first.
func (u *UA) onOther(req *sip.Request, tx sip.ServerTransaction) {
	if req.IsAck() {
		return
	}
	if !knownMethods[req.Method] {
		u.reply(req, tx, 501, "Not Implemented", sip.NewHeader("Allow", allowHeader))
		return
	}
	if toTag(req) != "" && u.dialogFor(req) == nil {
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	u.reply(req, tx, 405, "Method Not Allowed", sip.NewHeader("Allow", allowHeader))
}
