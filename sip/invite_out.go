// invite_out.go owns the initial INVITE of an outgoing call: the dial
// target, the INVITE and its retries (digest, 422), CANCEL, provisional
// responses and early media, and the 2xx that confirms the call.
package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

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
		if strings.EqualFold(uri.Scheme, "sips") {
			// sips: means TLS to the first hop (RFC 3261 §26.2.2): dialled
			// as sip:...;transport=tls, which sipgo sends over TLS.
			if !u.listening("TLS") {
				return nil, fmt.Errorf("%q: a sips: URI needs transport \"tls\" in sip-settings.transports", num)
			}
			uri.Scheme = "sip"
			setTLS(&uri)
		} else if uri.Scheme != "sip" {
			return nil, fmt.Errorf("%q: only sip: and sips: URIs are supported", num)
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
			if u.outTransport != "UDP" {
				uri.UriParams.Add("transport", strings.ToLower(u.outTransport))
			}
			if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
				uri.Host = "127.0.0.1"
			}
			return uri, nil
		}
	}
	return nil, fmt.Errorf("%q: %w", num, ErrNoServer)
}

// otherUsersLocked returns the users of the accounts other than a: the
// numbers dialTarget reaches over loopback when a has no server.
func (u *UA) otherUsersLocked(a *account) []string {
	var users []string
	for _, o := range u.accounts {
		if o != a {
			users = append(users, o.eff.User)
		}
	}
	return users
}

// setTLS makes uri a TLS target: transport=tls and, without a port, 5061
// (RFC 3263 §4.2), which sipgo then sends over TLS.
func setTLS(uri *sip.Uri) {
	if uri.Port == 0 {
		uri.Port = 5061
	}
	if uri.UriParams == nil {
		uri.UriParams = sip.NewParams()
	}
	uri.UriParams.Remove("transport")
	uri.UriParams.Add("transport", "tls")
}

func (u *UA) initialInviteLocked(c *call) *sip.Request {
	req := u.inDialogLocked(c, sip.INVITE, 0)
	// The To of the initial INVITE has no tag yet (inDialogLocked left it
	// out because remoteTag is empty).
	req.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(c.set.seInterval)))
	req.AppendHeader(sip.NewHeader("Min-SE", strconv.Itoa(u.minSE)))
	if c.referredBy != "" {
		req.AppendHeader(sip.NewHeader("Referred-By", c.referredBy))
	}
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(u.offerLocked(c))
	return req
}

// runOutgoing drives the initial INVITE of an outgoing call to its end
// (answered, rejected, cancelled or timed out).
func (u *UA) runOutgoing(c *call, req *sip.Request) {
	authTries, seTries := 0, 0
	ring := u.clock.NewTimer(u.ringTime)
	defer ring.Stop()
	for {
		tx, err := u.transaction(u.ctx, req)
		if err != nil {
			u.end(c, "cannot send INVITE: "+err.Error(), 503)
			return
		}
		res, err := u.waitOutgoing(c, tx, req, ring.C())
		if err != nil {
			tx.Terminate()
			c.mu.Lock()
			cancelled, why := c.phase == phaseEnding, c.endReason
			c.mu.Unlock()
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
		if res.IsSuccess() {
			u.outgoingAnswered(c, req, res)
			tx.Terminate()
			return
		}
		u.endRejected(tx, req, res)
		switch {
		case (res.StatusCode == 401 || res.StatusCode == 407) && authTries < 2:
			c.mu.Lock()
			cancelled, why := c.phase == phaseEnding, c.endReason
			cr := u.creds(c)
			c.mu.Unlock()
			if cancelled {
				u.end(c, why, 487)
				return
			}
			if cr.pass != "" && (authTries == 0 || staleChallenge(res)) {
				next := u.retryInvite(c, req)
				if u.authorize(next, res, cr) == nil {
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
		c.mu.Lock()
		cancelled, why := c.phase == phaseEnding, c.endReason
		c.mu.Unlock()
		if cancelled && res.StatusCode == 487 {
			u.end(c, why, 487)
		} else {
			u.end(c, statusText(res), res.StatusCode)
		}
		c.log.Info("call rejected", "status", statusText(res))
		return
	}
}

var errRingTimeout = errors.New("no answer")

// retryInvite copies req with the next CSeq and a new branch.
func (u *UA) retryInvite(c *call, req *sip.Request) *sip.Request {
	next := req.Clone()
	c.mu.Lock()
	c.dlg.localSeq++
	seq := c.dlg.localSeq
	c.mu.Unlock()
	next.CSeq().SeqNo = seq
	u.freshVia(next)
	return next
}

// waitOutgoing waits for the final response of the initial INVITE,
// handling provisional responses, a hangup (CANCEL) and the ring time.
func (u *UA) waitOutgoing(c *call, tx sip.ClientTransaction, req *sip.Request, ring <-chan time.Time) (*sip.Response, error) {
	provisional := false
	cancelSent := false
	var stops []timer
	defer func() {
		for _, t := range stops {
			t.Stop()
		}
	}()
	var cancelDeadline <-chan time.Time
	deadline := func() <-chan time.Time {
		t := u.clock.NewTimer(64 * u.t1)
		stops = append(stops, t)
		return t.C()
	}
	sendCancel := func() {
		cancelSent = true
		cancelDeadline = deadline()
		cancel := cancelFor(req)
		// RFC 3261 §9.1: the INVITE's destination and transport, which may
		// be TCP for its size (§18.1.1) or its first hop.
		u.prepareOver(cancel, req.Transport())
		u.goTracked(func() {
			ctx, stop := context.WithTimeout(u.ctx, 32*time.Second)
			defer stop()
			if res, err := u.do(ctx, cancel); err != nil || res.StatusCode >= 300 {
				c.log.Debug("CANCEL not accepted", "error", err)
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
				cancelDeadline = deadline()
			}
		case <-cancelDeadline:
			// No final response after CANCEL: give up (RFC 3261 9.1).
			return nil, errAborted
		case <-ring:
			c.mu.Lock()
			if c.phase == phaseRinging || c.phase == phaseEarly {
				_, _ = u.setPhaseLocked(c, phaseEnding, transition{reason: "no answer"})
			}
			c.mu.Unlock()
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
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.phase != phaseRinging && c.phase != phaseEarly {
		return
	}
	if to := res.To(); to != nil {
		if tag, ok := to.Params.Get("tag"); ok && c.dlg.remoteTag == "" {
			c.dlg.remoteTag = tag
		}
	}
	if len(res.Body()) == 0 {
		return
	}
	r, err := parseSDP(res.Body())
	if err == nil {
		err = u.applyAnswerLocked(c, r)
	}
	switch {
	case err != nil:
		c.log.Warn("ignoring bad SDP in provisional response", "error", err)
	case c.phase == phaseEarly:
		u.earlyMediaLocked(c) // new early SDP
	default:
		_, _ = u.setPhaseLocked(c, phaseEarly, transition{}) // legal from ringing
	}
}

// outgoingAnswered handles the 2xx to our initial INVITE.
func (u *UA) outgoingAnswered(c *call, req *sip.Request, res *sip.Response) {
	c.mu.Lock()
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
	c.timer.peerTimer = hasOption(res, "Supported", "timer") || hasOption(res, "Require", "timer")
	ack := u.ackLocked(c, req.CSeq().SeqNo, nil)
	c.mu.Unlock()
	// The ACK leaves before CallAnswered is reported: a client that acts
	// on call-answered (send-dtmf by INFO, hangup-call) must not have its
	// request overtake the ACK. A hangup meanwhile moves the call to
	// ending, which is handled below as a 2xx crossing our CANCEL.
	u.writeAck(ack)

	c.mu.Lock()
	why := c.endReason
	over := c.phase == phaseEnding || c.phase == phaseEnded
	var err error
	if !over {
		if err = u.applyAnswerBodyLocked(c, res.Body()); err == nil {
			c.hold.agreed = false // the INVITE offered sendrecv
			c.timer.fromResponse(res)
			_, err = u.setPhaseLocked(c, phaseConfirmed, transition{}) // legal from ringing and early
		}
	}
	c.mu.Unlock()

	switch {
	case over:
		// The 2xx crossed our CANCEL (or the call was ended meanwhile):
		// the dialog exists now, so it is ended with BYE.
		if why == "" {
			why = "cancelled"
		}
		u.endAndBye(c, why, 487)
	case err != nil:
		u.noUsableAnswer(c, "answer", err)
	}
}

// noUsableAnswer ends a call whose set-up brought no usable SDP answer.
func (u *UA) noUsableAnswer(c *call, where string, err error) {
	c.log.Warn("no usable SDP "+where+": hanging up", "error", err)
	u.endAndBye(c, "488 Not Acceptable Here (no usable SDP "+where+")", 488)
}
