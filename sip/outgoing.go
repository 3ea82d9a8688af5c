package sip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Dial places a call. accepted is called synchronously with the new call ID
// before the INVITE is sent and before any event of the call.
func (u *UA) Dial(account, num string, accepted func(callID int)) error {
	u.mu.Lock()
	a, err := u.accountLocked(account)
	if err != nil {
		u.mu.Unlock()
		return err
	}
	if a.eff.MaxCalls > 0 && u.liveCallsLocked(a) >= a.eff.MaxCalls {
		u.mu.Unlock()
		return fmt.Errorf("account %q: %w (%d)", account, ErrTooManyCalls, a.eff.MaxCalls)
	}
	eff := a.eff
	var localUsers []string
	for _, o := range u.accounts {
		if o != a {
			localUsers = append(localUsers, o.eff.User)
		}
	}
	u.mu.Unlock()

	target, err := u.dialTarget(eff, num, localUsers)
	if err != nil {
		return fmt.Errorf("account %q: %w", account, err)
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
	if u.closing {
		u.mu.Unlock()
		sess.Close()
		return ErrClosed
	}
	c = u.newCallLocked(a, true)
	c.sess = sess
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
		callID:    newCallID(),
		localTag:  newTag(),
		local:     sip.Uri{Scheme: "sip", User: eff.User, Host: uriHost(domain)},
		localName: displayOf(eff),
		remote:    sip.Uri{Scheme: "sip", User: target.User, Host: target.Host, Port: target.Port},
		localSeq:  uint32(rand.IntN(10000)) + 1,
		target:    *target,
	}
	id := c.id
	u.mu.Unlock()

	if accepted != nil {
		accepted(id)
	}

	u.mu.Lock()
	if u.closing || u.closed {
		u.calls[id] = c
		s := u.endLocked(c, "shutdown", 0)
		u.mu.Unlock()
		if s != nil {
			s.Close()
		}
		return nil
	}
	u.calls[id] = c
	u.dialogs[c.dlg.key()] = c
	// Like a phone: dialing puts the account's current call on hold, and
	// the audio follows the new call.
	if old := a.active; old != nil && old != c && !old.stopped {
		old.localHold = true
		u.updateStateLocked(old)
		u.kickLocked(old)
	}
	a.active = c
	req := u.initialInviteLocked(c)
	u.wg.Add(1)
	u.mu.Unlock()
	u.log.Info("dialing", "account", account, "call", id, "to", target.String())
	go func() {
		defer u.wg.Done()
		u.runOutgoing(c, req)
	}()
	return nil
}

// dialTarget turns num into the Request-URI: a full sip: URI as given, an
// extension at the account's server, or (no server) another account of
// this UA reached over loopback.
func (u *UA) dialTarget(eff Account, num string, localUsers []string) (*sip.Uri, error) {
	num = strings.TrimSpace(num)
	if num == "" {
		return nil, errors.New("empty number")
	}
	if l := strings.ToLower(num); strings.HasPrefix(l, "sip:") || strings.HasPrefix(l, "sips:") {
		var uri sip.Uri
		if err := sip.ParseUri(num, &uri); err != nil || uri.Host == "" {
			return nil, fmt.Errorf("%q is not a valid SIP URI", num)
		}
		if uri.Scheme != "sip" {
			return nil, fmt.Errorf("%q: only sip: URIs are supported (no TLS)", num)
		}
		return &uri, nil
	}
	if strings.ContainsAny(num, "@;<> \t") {
		return nil, fmt.Errorf("%q is neither an extension nor a sip: URI", num)
	}
	if eff.Server != "" {
		su, err := serverURI(eff.Server)
		if err != nil {
			return nil, err
		}
		su.User = num
		return su, nil
	}
	for _, lu := range localUsers {
		if lu == num {
			host := u.localHost(loopbackOf(u.bindFamily()))
			port := u.listenPort()
			uri := &sip.Uri{Scheme: "sip", User: num, Host: uriHost(host), Port: port, UriParams: sip.NewParams()}
			if u.outTransport == "TCP" {
				uri.UriParams.Add("transport", "tcp")
			}
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				uri.Host = "127.0.0.1"
			}
			return uri, nil
		}
	}
	return nil, fmt.Errorf("%q: %w", num, ErrNoServer)
}

func (u *UA) initialInviteLocked(c *call) *sip.Request {
	req := u.inDialogLocked(c, sip.INVITE, 0)
	// The To of the initial INVITE has no tag yet (inDialogLocked left it
	// out because remoteTag is empty).
	req.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(u.seInterval)))
	req.AppendHeader(sip.NewHeader("Min-SE", strconv.Itoa(u.minSE)))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(u.offerLocked(c))
	return req
}

// runOutgoing drives the initial INVITE of an outgoing call to its end
// (answered, rejected, cancelled or timed out).
func (u *UA) runOutgoing(c *call, req *sip.Request) {
	name := c.acct.plan.Name
	authTries, seTries := 0, 0
	ring := time.NewTimer(u.ringTime)
	defer ring.Stop()
	for {
		tx, err := u.cli.TransactionRequest(u.ctx, req, asIs)
		if err != nil {
			u.end(c, "cannot send INVITE: "+err.Error(), 503)
			return
		}
		u.mu.Lock()
		u.mu.Unlock()
		res, err := u.waitOutgoing(c, tx, req, ring.C)
		if err != nil {
			tx.Terminate()
			u.mu.Lock()
			cancelled, why := c.cancelWanted, c.cancelReason
			u.mu.Unlock()
			switch {
			case cancelled:
				u.end(c, why, 487)
			case errors.Is(err, errRingTimeout):
				u.end(c, "no answer", 408)
			case errors.Is(err, sip.ErrTransactionTimeout):
				u.end(c, "no answer (timeout)", 408)
			case u.ctx.Err() != nil:
				u.end(c, "shutdown", 0)
			default:
				u.end(c, "INVITE failed: "+err.Error(), 503)
			}
			return
		}
		switch {
		case res.IsSuccess():
			u.outgoingAnswered(c, req, res)
			tx.Terminate()
			return
		case (res.StatusCode == 401 || res.StatusCode == 407) && authTries < 2:
			u.mu.Lock()
			cancelled := c.cancelWanted
			cr := u.credsLocked(c)
			u.mu.Unlock()
			if cancelled {
				u.end(c, c.cancelReason, 487)
				return
			}
			if cr.pass != "" && (authTries == 0 || staleChallenge(res)) {
				next := u.retryInvite(c, req)
				if authorize(next, res, cr) == nil {
					authTries++
					req = next
					continue
				}
			}
		case res.StatusCode == 422 && seTries < 2:
			if v, ok := headerValue(res, "Min-SE"); ok {
				if n, _, ok := parseSessionExpires(v); ok {
					seTries++
					next := u.retryInvite(c, req)
					copyAuth(req, next)
					next.RemoveHeader("Session-Expires")
					next.RemoveHeader("Min-SE")
					next.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(n)))
					next.AppendHeader(sip.NewHeader("Min-SE", strconv.Itoa(n)))
					req = next
					continue
				}
			}
		}
		u.mu.Lock()
		cancelled, why := c.cancelWanted, c.cancelReason
		u.mu.Unlock()
		if cancelled && res.StatusCode == 487 {
			u.end(c, why, 487)
		} else {
			u.end(c, statusText(res), res.StatusCode)
		}
		u.log.Info("call rejected", "account", name, "call", c.id, "status", statusText(res))
		return
	}
}

var errRingTimeout = errors.New("no answer")

// retryInvite copies req with the next CSeq and a new branch.
func (u *UA) retryInvite(c *call, req *sip.Request) *sip.Request {
	next := req.Clone()
	u.mu.Lock()
	c.dlg.localSeq++
	seq := c.dlg.localSeq
	u.mu.Unlock()
	next.CSeq().SeqNo = seq
	u.freshVia(next)
	return next
}

// waitOutgoing waits for the final response of the initial INVITE,
// handling provisional responses, a hangup (CANCEL) and the ring time.
func (u *UA) waitOutgoing(c *call, tx sip.ClientTransaction, req *sip.Request, ring <-chan time.Time) (*sip.Response, error) {
	provisional := false
	cancelSent := false
	var cancelDeadline <-chan time.Time
	sendCancel := func() {
		cancelSent = true
		cancelDeadline = time.After(64 * u.t1)
		cancel := cancelFor(req)
		u.prepare(cancel)
		u.goTracked(func() {
			ctx, stop := context.WithTimeout(u.ctx, 32*time.Second)
			defer stop()
			if res, err := u.do(ctx, cancel); err != nil || res.StatusCode >= 300 {
				u.log.Debug("CANCEL not accepted", "call", c.id, "error", err)
			}
		})
	}
	cancelCh := c.cancelCh
	for {
		select {
		case res := <-tx.Responses():
			if !res.IsProvisional() {
				return res, nil
			}
			provisional = true
			u.onProvisional(c, res)
			if cancelCh == nil && !cancelSent {
				sendCancel()
			}
		case <-tx.Done():
			err := tx.Err()
			if err == nil {
				err = errors.New("INVITE transaction ended without final response")
			}
			return nil, err
		case <-cancelCh:
			cancelCh = nil // closed: do not select it again
			if provisional && !cancelSent {
				sendCancel()
			}
			// Without a provisional response yet, RFC 3261 9.1 says wait
			// for one before sending CANCEL.
			if !provisional {
				cancelDeadline = time.After(64 * u.t1)
			}
		case <-cancelDeadline:
			// No final response after CANCEL: give up (RFC 3261 9.1).
			return nil, errAborted
		case <-ring:
			u.mu.Lock()
			if !c.cancelWanted {
				c.cancelWanted = true
				c.cancelReason = "no answer"
				close(c.cancelCh)
			}
			u.mu.Unlock()
			ring = nil
		case <-u.ctx.Done():
			return nil, u.ctx.Err()
		}
	}
}

// cancelFor builds the CANCEL for an INVITE (RFC 3261 9.1): same top Via,
// Request-URI, Call-ID, From, To, Route and CSeq number.
func cancelFor(inv *sip.Request) *sip.Request {
	r := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	r.AppendHeader(sip.HeaderClone(inv.Via()))
	for _, h := range inv.GetHeaders("Route") {
		r.AppendHeader(sip.HeaderClone(h))
	}
	mf := sip.MaxForwardsHeader(70)
	r.AppendHeader(&mf)
	r.AppendHeader(sip.HeaderClone(inv.From()))
	r.AppendHeader(sip.HeaderClone(inv.To()))
	r.AppendHeader(sip.HeaderClone(inv.CallID()))
	r.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	r.SetBody(nil)
	return r
}

// onProvisional handles 1xx to our INVITE: ringing, early media.
func (u *UA) onProvisional(c *call, res *sip.Response) {
	if res.StatusCode == 100 {
		return
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if c.stopped || c.established {
		return
	}
	if to := res.To(); to != nil {
		if tag, ok := to.Params.Get("tag"); ok && c.dlg.remoteTag == "" {
			c.dlg.remoteTag = tag
		}
	}
	if len(res.Body()) > 0 {
		r, err := parseSDP(res.Body())
		if err == nil && u.applyAnswerLocked(c, r) == nil {
			// Early media: play what the far end sends, send nothing.
			p := c.neg.params()
			p.Send = false
			p.Recv = true
			c.sess.Update(p)
			c.earlyMedia = true
			c.state = StateEarly
			u.rebindLocked(c.acct)
			return
		}
		u.log.Warn("ignoring bad SDP in provisional response", "call", c.id, "error", err)
	}
	if c.state != StateEarly {
		c.state = StateRinging
	}
}

// outgoingAnswered handles the 2xx to our initial INVITE.
func (u *UA) outgoingAnswered(c *call, req *sip.Request, res *sip.Response) {
	u.mu.Lock()
	d := &c.dlg
	if to := res.To(); to != nil {
		d.remoteTag, _ = to.Params.Get("tag")
	}
	if ct := res.Contact(); ct != nil {
		d.target = *ct.Address.Clone()
	}
	// Route set: Record-Route of the 2xx in reverse order (RFC 3261 12.1.2).
	d.routes = nil
	rr := recordRoutes(res)
	for i := len(rr) - 1; i >= 0; i-- {
		d.routes = append(d.routes, rr[i])
	}
	if v, ok := headerValue(res, "Allow"); ok {
		c.peerAllow = v
	}
	c.peerTimer = hasOption(res, "Supported", "timer") || hasOption(res, "Require", "timer")
	seq := req.CSeq().SeqNo
	ack := u.ackLocked(c, seq, nil)
	cancelled, why := c.cancelWanted, c.cancelReason
	stopped := c.stopped
	u.mu.Unlock()
	u.writeAck(ack)

	if cancelled || stopped {
		// The 2xx crossed our CANCEL (or the call was ended meanwhile):
		// the dialog exists now, so it is ended with BYE.
		if why == "" {
			why = "cancelled"
		}
		u.endAndBye(c, why, 487)
		return
	}
	u.mu.Lock()
	if !u.takeAnswerLocked(c, res.Body(), "answer") {
		return
	}
	c.established = true
	c.started = true
	c.earlyMedia = false
	c.sentHold = false // the INVITE offered sendrecv
	u.seFromResponseLocked(c, res)
	u.updateStateLocked(c)
	u.emitLocked(Event{Kind: CallAnswered, Account: c.acct.plan.Name, CallID: c.id})
	u.log.Info("call answered", "account", c.acct.plan.Name, "call", c.id)
	// A hold requested while ringing (e.g. another call answered) is sent now.
	if c.localHold != c.sentHold {
		u.kickLocked(c)
	}
	u.mu.Unlock()
}

func recordRoutes(m sip.Message) []sip.Uri {
	var out []sip.Uri
	for _, h := range m.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			out = append(out, *rr.Address.Clone())
			continue
		}
		for _, v := range strings.Split(h.Value(), ",") {
			v = strings.TrimSpace(v)
			v = strings.TrimPrefix(v, "<")
			if i := strings.Index(v, ">"); i >= 0 {
				v = v[:i]
			}
			var uri sip.Uri
			if sip.ParseUri(v, &uri) == nil {
				out = append(out, uri)
			}
		}
	}
	return out
}

// ---- operator commands ----

// Answer answers a ringing incoming call, holding the account's active call first.
func (u *UA) Answer(account string, callID int) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	c, err := u.callLocked(account, callID)
	if err != nil {
		return err
	}
	if c.out || c.stopped || c.established || c.decided {
		return fmt.Errorf("account %q call %d (%s %s): %w", account, callID, dirName(c), c.state, ErrCallState)
	}
	// Never block under u.mu: the one-slot channel is free unless a decision
	// was already handed over, which decided rules out.
	select {
	case c.decisionCh <- decision{code: 200}:
	default:
		return fmt.Errorf("account %q call %d: already being declined: %w", account, callID, ErrCallState)
	}
	c.decided = true
	a := c.acct
	if old := a.active; old != nil && old != c && !old.stopped {
		old.localHold = true
		u.updateStateLocked(old)
		u.kickLocked(old)
	}
	a.active = c
	c.answering = true
	return nil
}

func dirName(c *call) string {
	if c.out {
		return "outgoing"
	}
	return "incoming"
}

// Switch holds the account's active call and resumes callID.
func (u *UA) Switch(account string, callID int) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	c, err := u.callLocked(account, callID)
	if err != nil {
		return err
	}
	if c.stopped || !c.established {
		return fmt.Errorf("account %q call %d (%s): %w", account, callID, c.state, ErrCallState)
	}
	a := c.acct
	if a.active == c && !c.localHold {
		return nil // already the active call
	}
	if old := a.active; old != nil && old != c && !old.stopped {
		old.localHold = true
		u.updateStateLocked(old)
		u.kickLocked(old)
	}
	a.active = c
	c.localHold = false
	u.updateStateLocked(c)
	u.kickLocked(c)
	return nil
}

// Hangup declines (486, or 603 when decline), cancels or BYEs the call.
func (u *UA) Hangup(account string, callID int, decline bool) error {
	u.mu.Lock()
	c, err := u.callLocked(account, callID)
	if err == nil && c.stopped {
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

// terminate ends a call the way its state requires: decline a ringing
// incoming call, CANCEL a ringing outgoing one, BYE an established one. It
// returns when the call has ended (and the BYE was answered) or ctx ends.
func (u *UA) terminate(ctx context.Context, c *call, reason string, decline bool) {
	u.mu.Lock()
	if c.stopped {
		u.mu.Unlock()
		return
	}
	switch {
	case !c.out && !c.answering:
		code := 486
		if decline {
			code = 603
		}
		if !c.decided {
			c.decided = true
			select { // never blocks: nothing was decided, so the slot is free
			case c.decisionCh <- decision{code: code, reason: reason}:
			default:
			}
		}
		u.mu.Unlock()
		select {
		case <-c.ended:
		case <-ctx.Done():
		}
	case c.out && !c.established:
		if !c.cancelWanted {
			c.cancelWanted = true
			c.cancelReason = reasonOr(reason, "cancelled")
			close(c.cancelCh)
		}
		u.mu.Unlock()
		select {
		case <-c.ended:
		case <-ctx.Done():
		}
	default:
		// Established, or answered and waiting for the ACK: BYE.
		s := u.endLocked(c, reason, 0)
		u.mu.Unlock()
		if s != nil {
			s.Close()
		}
		u.sendBye(ctx, c)
	}
}

func reasonOr(reason, def string) string {
	if reason == "local hangup" {
		return def
	}
	return reason
}
