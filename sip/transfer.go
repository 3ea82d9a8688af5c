// transfer.go owns call transfer (RFC 3515 REFER, RFC 5589 blind
// transfer): our transfer of the peer (Transfer; the call is in phase
// transferring until the NOTIFYs of the implicit subscription report the
// outcome), and being transferred (the peer's REFER moves the call to
// referred; the call to the Refer-To target is placed, and our NOTIFYs
// report its progress to the transferor). Replaces (RFC 3891) is in
// replaces.go.
package sip

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

const (
	// transferWait bounds a transfer: the target rings at most ringTime
	// (3 min) on the transferee's side, plus set-up.
	transferWait = 200 * time.Second
	// referredBye: after the referred call was answered, the transferor
	// should send BYE (RFC 5589); without one we end the old call.
	referredBye = 32 * time.Second
)

// transferOut is our blind transfer of a call's peer (phase transferring),
// guarded by call.mu.
type transferOut struct {
	target    string       // Refer-To
	heldForIt bool         // we put the call on hold for the transfer
	frags     chan sipfrag // the NOTIFYs of the REFER's subscription
}

// referral is the peer's REFER we accepted (phase referred), guarded by
// call.mu.
type referral struct {
	target  string // the Refer-To URI (without headers)
	referID uint32 // the REFER's CSeq: the NOTIFYs' Event id
	newCall int    // the call placed to target; -1 until it has an ID
}

// sipfrag is the status line of a NOTIFY's message/sipfrag body.
type sipfrag struct {
	code       int
	reason     string
	terminated bool // Subscription-State: terminated
}

// parseSipfrag reads the status line of a message/sipfrag body
// ("SIP/2.0 200 OK").
func parseSipfrag(body []byte) (code int, reason string, ok bool) {
	line, _, _ := strings.Cut(strings.TrimLeft(string(body), "\r\n "), "\n")
	line = strings.TrimRight(line, "\r ")
	ver, rest, found := strings.Cut(line, " ")
	if !found || !strings.EqualFold(ver, "SIP/2.0") {
		return 0, "", false
	}
	num, reason, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(num)
	if err != nil || n < 100 || n > 699 {
		return 0, "", false
	}
	return n, strings.TrimSpace(reason), true
}

// Transfer blind-transfers an established call to num (formed as Dial
// forms it): the call is put on hold, a REFER with Referred-By is sent, and
// the NOTIFYs are followed. On success the call ends with BYE and reason
// "transferred"; on failure it goes on (resumed if it was held for the
// transfer) and TransferFailed reports why.
func (u *UA) Transfer(account string, callID int, num string) error {
	u.mu.Lock()
	c, err := u.callLocked(account, callID)
	var eff Account
	var localUsers []string
	if err == nil {
		eff = c.acct.effLocked() // the target is at the server in use, as for a new call
		localUsers = u.otherUsersLocked(c.acct)
	}
	u.mu.Unlock()
	if err != nil {
		return err
	}
	target, err := u.dialTarget(eff, num, localUsers)
	if err != nil {
		return fmt.Errorf("account %q call %d: %w", account, callID, err)
	}
	c.mu.Lock()
	if c.phase != phaseConfirmed {
		st := c.phase.String()
		c.mu.Unlock()
		return fmt.Errorf("account %q call %d (%s): %w", account, callID, st, ErrCallState)
	}
	t := &transferOut{target: target.String(), frags: make(chan sipfrag, 8)}
	c.xfer = t
	_, _ = u.setPhaseLocked(c, phaseTransferring, transition{}) // legal from confirmed
	if !c.hold.want {
		// Like a desk phone: the peer waits on hold while it is handed on.
		c.hold.want, t.heldForIt = true, true
		u.settleLocked(c)
		u.kickLocked(c)
	}
	c.mu.Unlock()
	if !u.goTracked(func() { u.runTransfer(c, t) }) {
		return ErrClosed
	}
	return nil
}

// holdSettled waits until c's hold re-INVITE is through (no mid-call
// transaction left): a REFER racing it gets 500 from some peers (libre
// answers requests during its re-INVITE so). false: the call ended or the
// UA stops.
func (u *UA) holdSettled(c *call) bool {
	for i := 0; i < 500; i++ { // 10 s: then the REFER goes anyway
		c.mu.Lock()
		idle := !c.worker && !c.hold.pending() && c.offer == offerIdle
		c.mu.Unlock()
		if idle {
			return true
		}
		t := u.clock.NewTimer(20 * time.Millisecond)
		select {
		case <-t.C():
		case <-c.ended:
			t.Stop()
			return false
		case <-u.ctx.Done():
			t.Stop()
			return false
		}
	}
	return true
}

// referLocked builds the REFER of a transfer (c.mu held).
func (u *UA) referLocked(c *call, target string) *sip.Request {
	req := u.inDialogLocked(c, sip.REFER, 0)
	req.AppendHeader(sip.NewHeader("Refer-To", "<"+target+">"))
	by := c.dlg.local
	req.AppendHeader(sip.NewHeader("Referred-By", "<"+by.String()+">"))
	return req
}

// runTransfer sends the REFER once the hold is through and follows its
// subscription to the end.
func (u *UA) runTransfer(c *call, t *transferOut) {
	if !u.holdSettled(c) {
		return
	}
	c.mu.Lock()
	req := u.referLocked(c, t.target)
	cr := u.creds(c)
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(u.ctx, 64*sip.T1)
	res, err := u.doWithAuth(ctx, req, cr, func(*sip.Request) *sip.Request {
		c.mu.Lock()
		defer c.mu.Unlock()
		return u.referLocked(c, t.target)
	})
	cancel()
	var code int
	var why string
	switch {
	case err != nil:
		code, why = 408, "REFER got no answer"
		c.log.Warn("REFER got no answer", "error", err)
	case res.StatusCode >= 300:
		code, why = res.StatusCode, "REFER rejected: "+statusText(res)
	default:
		code, why = u.awaitOutcome(c, t)
	}
	switch {
	case code == 0:
		return // the call ended meanwhile, or the UA is stopping
	case code < 300:
		u.endAndBye(c, "transferred", 0)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.phase != phaseTransferring || c.xfer != t {
		return
	}
	_, _ = u.setPhaseLocked(c, phaseConfirmed, transition{reason: why}) // legal from transferring
	if t.heldForIt && c.hold.want {
		u.mu.Lock()
		active := c.acct.active == c // not switched away meanwhile
		u.mu.Unlock()
		if active {
			c.hold.want = false
			u.settleLocked(c)
			u.kickLocked(c)
		}
	}
	u.emitLocked(Event{Kind: TransferFailed, Account: c.account, CallID: c.id, Target: t.target, Reason: why, Code: code})
}

// awaitOutcome follows the NOTIFYs of our REFER until one reports a final
// status: its code and text; 0 when the call ended or the UA stops first.
func (u *UA) awaitOutcome(c *call, t *transferOut) (int, string) {
	timer := u.clock.NewTimer(transferWait)
	defer timer.Stop()
	last := "no NOTIFY"
	for {
		select {
		case f := <-t.frags:
			status := strconv.Itoa(f.code) + " " + f.reason
			switch {
			case f.code >= 200:
				return f.code, strings.TrimSpace(status)
			case f.terminated:
				return 487, "subscription ended at " + status
			}
			last = status
		case <-timer.C():
			return 408, "no outcome within " + transferWait.String() + " (last: " + last + ")"
		case <-c.ended:
			return 0, ""
		case <-u.ctx.Done():
			return 0, ""
		}
	}
}

// onNotify takes the NOTIFYs of our REFER's subscription.
func (u *UA) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	if toTag(req) == "" {
		u.onOther(req, tx) // out of a dialog: we subscribe to nothing
		return
	}
	c := u.dialogFor(req)
	if c == nil {
		u.reply(req, tx, 481, "Subscription Does Not Exist")
		return
	}
	if ev, _ := headerValue(req, "Event"); !strings.EqualFold(strings.TrimSpace(strings.Split(ev, ";")[0]), "refer") {
		u.reply(req, tx, 489, "Bad Event")
		return
	}
	code, reason, ok := parseSipfrag(req.Body())
	if !ok {
		u.reply(req, tx, 400, "Bad Sipfrag")
		return
	}
	state, _ := headerValue(req, "Subscription-State")
	c.mu.Lock()
	fresh := checkSeqLocked(c, req)
	t := c.xfer
	if c.phase != phaseTransferring {
		t = nil // over: the subscription ended with the transfer
	}
	c.mu.Unlock()
	switch {
	case !fresh:
		u.reply(req, tx, 500, "Server Internal Error")
		return
	case t == nil:
		u.reply(req, tx, 481, "Subscription Does Not Exist")
		return
	}
	u.reply(req, tx, 200, "OK")
	f := sipfrag{code: code, reason: reason, terminated: strings.HasPrefix(strings.ToLower(strings.TrimSpace(state)), "terminated")}
	select {
	case t.frags <- f:
	default: // a flood of NOTIFYs: the final one is what matters
	}
}

// onRefer accepts the peer's REFER in an established call (202) and
// places the call to the Refer-To target.
func (u *UA) onRefer(req *sip.Request, tx sip.ServerTransaction) {
	if toTag(req) == "" {
		u.onOther(req, tx) // out of a dialog: not supported, 405
		return
	}
	c := u.dialogFor(req)
	if c == nil {
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	rt, ok := headerValue(req, "Refer-To")
	if !ok {
		u.reply(req, tx, 400, "Missing Refer-To")
		return
	}
	target, err := parseReferTo(rt)
	if err != nil {
		u.log.Info("rejecting REFER", "error", err)
		u.reply(req, tx, 400, "Bad Refer-To")
		return
	}
	by, _ := headerValue(req, "Referred-By")
	u.waitAckProcessed(c) // a REFER right after the ACK of our 200 finds the call confirmed
	c.mu.Lock()
	var res *sip.Response
	switch {
	case !c.phase.live():
		res = u.response(req, 481, "Call/Transaction Does Not Exist", "")
	case !checkSeqLocked(c, req):
		res = u.response(req, 500, "Server Internal Error", "")
	case c.phase != phaseConfirmed:
		res = u.response(req, 491, "Request Pending", "") // a transfer is under way
	default:
		c.ref = &referral{target: target.String(), referID: req.CSeq().SeqNo, newCall: -1}
		_, _ = u.setPhaseLocked(c, phaseReferred, transition{}) // legal from confirmed
		res = u.response(req, 202, "Accepted", c.dlg.localTag)
		res.AppendHeader(u.contactHeaderOver(c.dlg.local.User, c.host, c.dlg.transport))
	}
	c.mu.Unlock()
	u.send(tx, res)
	if res.StatusCode == 202 {
		u.goTracked(func() { u.followReferral(c, target.String(), by) })
	}
}

// newParser is sipgo's parser without its Refer-To parser, which keeps
// the raw value: that parser drops what follows ';' in a Refer-To without
// angle brackets (baresip's "sip:x@h;transport=tcp"), and parseReferTo
// keeps those URI parameters.
func newParser() *sip.Parser {
	hp := sip.HeadersParser{}
	for k, v := range sip.DefaultHeadersParser() {
		if k != "refer-to" {
			hp[k] = v
		}
	}
	return sip.NewParser(sip.WithHeadersParsers(hp))
}

// parseReferTo reads the URI of a Refer-To value; URI headers (an attended
// transfer's ?Replaces=) and parameters after the brackets are dropped.
func parseReferTo(v string) (*sip.Uri, error) {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return nil, fmt.Errorf("Refer-To %q: no closing >", v)
		}
		v = v[i+1 : i+j]
	}
	// Without brackets, what follows ';' are header parameters by the
	// grammar, but senders (baresip) mean URI parameters such as
	// transport=tcp: they are kept.
	v, _, _ = strings.Cut(v, "?")
	var uri sip.Uri
	if err := sip.ParseUri(v, &uri); err != nil || uri.Host == "" || !strings.EqualFold(uri.Scheme, "sip") {
		return nil, fmt.Errorf("Refer-To %q is not a sip: URI", v)
	}
	uri.Headers = nil
	return &uri, nil
}

// followReferral reports 100 Trying to the transferor and places the call
// to the target; that call's answer or failure is reported by
// referralOutcome (from its phase changes).
func (u *UA) followReferral(c *call, target, referredBy string) {
	u.sendNotify(c, 100, "Trying", false)
	err := u.dial(c.account, target, dialOpts{
		referredFrom: c,
		referredBy:   referredBy,
		accepted: func(id int) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.ref != nil {
				c.ref.newCall = id
			}
			if c.phase.live() {
				u.emitLocked(Event{Kind: CallTransferred, Account: c.account, CallID: c.id, NewCallID: id, Target: target})
			}
		},
	})
	if err != nil {
		c.log.Warn("cannot place the referred call", "to", target, "error", err)
		u.referralOutcome(c, 503, "Service Unavailable")
	}
}

// settledLinksLocked (c.mu held) runs when c was answered (code 200) or
// ended unanswered: the transferor of a referral learns the outcome, and
// the call an answered Replaces INVITE replaced ends.
func (u *UA) settledLinksLocked(c *call, code int, reason string) {
	if old := c.referredFrom; old != nil {
		c.referredFrom = nil
		u.goTracked(func() { u.referralOutcome(old, code, reason) })
	}
	if old := c.replaces; old != nil && code == 200 {
		u.goTracked(func() { u.takeOver(old, c) })
	}
}

// referralOutcome reports the referred call's final status to the
// transferor. On success the old call waits for the transferor's BYE (and
// ends itself after referredBye); on failure it goes back to confirmed and
// becomes the account's active call again.
func (u *UA) referralOutcome(c *call, code int, reason string) {
	u.sendNotify(c, code, fragReason(code, reason), true)
	if code < 300 {
		t := u.clock.NewTimer(referredBye)
		defer t.Stop()
		select {
		case <-t.C():
			c.mu.Lock()
			still := c.phase == phaseReferred
			c.mu.Unlock()
			if still {
				u.endAndBye(c, "transferred", 0)
			}
		case <-c.ended:
		case <-u.ctx.Done():
		}
		return
	}
	c.mu.Lock()
	back := c.phase == phaseReferred
	if back {
		_, _ = u.setPhaseLocked(c, phaseConfirmed, transition{reason: fmt.Sprintf("referred call failed: %d %s", code, reason)}) // legal from referred
	}
	c.mu.Unlock()
	if back {
		_ = u.Switch(c.account, c.id) // the audio comes back to this call
	}
}

// fragReason is the reason phrase of a sipfrag status line: the peer's
// own ("486 Busy Here" gives "Busy Here"), else one for the code, never
// our internal error text.
func fragReason(code int, reason string) string {
	if rest, ok := strings.CutPrefix(reason, strconv.Itoa(code)+" "); ok && rest != "" {
		return rest
	}
	switch {
	case code < 300:
		return "OK"
	case code == 408:
		return "Request Timeout"
	case code == 487:
		return "Request Terminated"
	case code >= 600:
		return "Global Failure"
	case code >= 500:
		return "Service Unavailable"
	}
	return "Temporarily Unavailable"
}

// sendNotify sends a NOTIFY of the REFER's implicit subscription with the
// referred call's status as message/sipfrag (RFC 3515 2.4.5).
func (u *UA) sendNotify(c *call, code int, reason string, final bool) {
	build := func() *sip.Request {
		c.mu.Lock()
		defer c.mu.Unlock()
		if !c.phase.live() || c.ref == nil && !final {
			return nil
		}
		id := uint32(0)
		if c.ref != nil {
			id = c.ref.referID
		}
		req := u.inDialogLocked(c, sip.NOTIFY, 0)
		if id != 0 {
			req.AppendHeader(sip.NewHeader("Event", "refer;id="+strconv.FormatUint(uint64(id), 10)))
		} else {
			req.AppendHeader(sip.NewHeader("Event", "refer"))
		}
		state := "active;expires=60"
		if final {
			state = "terminated;reason=noresource"
		}
		req.AppendHeader(sip.NewHeader("Subscription-State", state))
		req.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
		req.SetBody([]byte(fmt.Sprintf("SIP/2.0 %d %s\r\n", code, reason)))
		return req
	}
	req := build()
	if req == nil {
		return
	}
	cr := u.creds(c)
	ctx, cancel := context.WithTimeout(u.ctx, 64*sip.T1)
	defer cancel()
	res, err := u.doWithAuth(ctx, req, cr, func(*sip.Request) *sip.Request {
		if r := build(); r != nil {
			return r
		}
		return req
	})
	switch {
	case err != nil:
		c.log.Warn("NOTIFY got no answer", "error", err)
	case res.StatusCode >= 300:
		c.log.Info("NOTIFY rejected", "status", statusText(res))
	}
}
