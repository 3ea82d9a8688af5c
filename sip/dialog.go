// dialog.go owns the RFC 3261 §12 dialog of a call: its identity and route
// set, building in-dialog requests (CSeq, loose/strict routing), the ACK
// of a 2xx, BYE, and our re-INVITE/UPDATE client transactions.
package sip

import (
	"context"
	"errors"

	"github.com/emiago/sipgo/sip"
)

// dialog is the RFC 3261 §12 dialog state of one call, from our side.
type dialog struct {
	callID     string
	localTag   string
	remoteTag  string
	local      sip.Uri // our URI (From of our requests)
	localName  string
	remote     sip.Uri // the peer's URI (To of our requests)
	remoteName string
	localSeq   uint32
	remoteSeq  uint32
	target     sip.Uri   // remote target: the peer's Contact
	routes     []sip.Uri // route set
	// transport the dialog was made over ("UDP"/"TCP"; "" = the outbound
	// transport): our Contact's, and our requests' unless the first hop
	// names one.
	transport string
}

func (d *dialog) key() string { return d.callID + "|" + d.localTag }

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

// inDialogLocked builds a request of the dialog: Request-URI and Route
// from the route set (loose or strict routing), CSeq from the dialog
// (seq 0: next local CSeq).
func (u *UA) inDialogLocked(c *call, method sip.RequestMethod, seq uint32) *sip.Request {
	d := &c.dlg
	ruri := d.target
	routes := d.routes
	if len(routes) > 0 && !routes[0].UriParams.Has("lr") {
		// Strict router (RFC 3261 12.2.1.1): it goes in the Request-URI.
		ruri = routes[0]
		routes = append(append([]sip.Uri{}, routes[1:]...), d.target)
	}
	hop := ruri
	if len(routes) > 0 {
		hop = routes[0]
	}
	transport := u.transportTo(hop, d.transport)
	req := sip.NewRequest(method, *ruri.Clone())
	req.AppendHeader(u.newViaOver(c.host, transport))
	for i := range routes {
		req.AppendHeader(&sip.RouteHeader{Address: *routes[i].Clone()})
	}
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{DisplayName: d.localName, Address: *d.local.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", d.localTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{DisplayName: d.remoteName, Address: *d.remote.Clone(), Params: sip.NewParams()}
	if d.remoteTag != "" {
		to.Params.Add("tag", d.remoteTag)
	}
	req.AppendHeader(to)
	cid := sip.CallIDHeader(d.callID)
	req.AppendHeader(&cid)
	if seq == 0 {
		d.localSeq++
		seq = d.localSeq
	}
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	if method == sip.INVITE || method == sip.UPDATE || method == sip.ACK || method == sip.REFER || method == sip.NOTIFY {
		req.AppendHeader(u.contactHeaderOver(c.dlg.local.User, c.host, d.transport))
	}
	if method == sip.INVITE || method == sip.UPDATE {
		req.AppendHeader(sip.NewHeader("Allow", allowHeader))
		req.AppendHeader(sip.NewHeader("Supported", supportedHeader))
	}
	u.addUserAgent(req)
	req.SetBody(nil)
	u.prepareOver(req, transport)
	return req
}

// ok200Locked builds our 2xx to an INVITE or UPDATE of the dialog.
func (u *UA) ok200Locked(c *call, req *sip.Request, body []byte) *sip.Response {
	res := u.response(req, 200, "OK", c.dlg.localTag)
	res.AppendHeader(u.contactHeaderOver(c.dlg.local.User, c.host, c.dlg.transport))
	res.AppendHeader(sip.NewHeader("Allow", allowHeader))
	res.AppendHeader(sip.NewHeader("Supported", supportedHeader))
	c.timer.addResponseHeaders(res)
	if body != nil {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.SetBody(body)
	}
	return res
}

// creds are the account's digest credentials (account fields: UA.mu).
func (u *UA) creds(c *call) credentials {
	u.mu.Lock()
	defer u.mu.Unlock()
	return c.acct.credsLocked()
}

// endAndBye ends an established call and sends BYE.
func (u *UA) endAndBye(c *call, reason string, code int) {
	u.end(c, reason, code)
	// A BYE transaction lives at most 64*T1 (32 s); the UA's shutdown ends it sooner.
	ctx, cancel := context.WithTimeout(u.ctx, 64*sip.T1)
	defer cancel()
	u.sendBye(ctx, c)
}

// sendBye sends BYE in the call's dialog (answering digest challenges).
func (u *UA) sendBye(ctx context.Context, c *call) {
	c.mu.Lock()
	noDialog := c.dlg.remoteTag == "" && c.out
	var req *sip.Request
	var cr credentials
	if !noDialog {
		req = u.inDialogLocked(c, sip.BYE, 0)
		cr = u.creds(c)
	}
	c.mu.Unlock()
	if noDialog {
		return
	}
	res, err := u.doWithAuth(ctx, req, cr, func(old *sip.Request) *sip.Request {
		c.mu.Lock()
		defer c.mu.Unlock()
		return u.inDialogLocked(c, sip.BYE, 0)
	})
	switch {
	case err != nil:
		c.log.Warn("BYE got no answer", "error", err)
	case res.StatusCode == 481:
		// The far end has ended the dialog already (both sides of a local
		// call hang up at once on shutdown): the call is over either way.
		c.log.Debug("BYE crossed the far end's", "status", statusText(res))
	case res.StatusCode >= 300:
		c.log.Warn("BYE rejected", "status", statusText(res))
	}
}

// waitFinal waits for the final response of a client transaction,
// skipping provisional ones; abort (nil: never) gives up early. The caller
// of an INVITE ACKs a 2xx.
func (u *UA) waitFinal(ctx context.Context, tx sip.ClientTransaction, abort <-chan struct{}) (*sip.Response, error) {
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			err := tx.Err()
			if err == nil {
				err = errors.New("transaction ended without response")
			}
			return nil, err
		case <-abort:
			return nil, errAborted
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

var errAborted = errors.New("aborted")

// ackLocked builds and remembers the ACK for a 2xx to our INVITE with seq.
func (u *UA) ackLocked(c *call, seq uint32, body []byte) *sip.Request {
	ack := u.inDialogLocked(c, sip.ACK, seq)
	if body != nil {
		ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		ack.SetBody(body)
	}
	c.lastAck = ack
	c.lastAckSeq = seq
	return ack.Clone()
}

func (u *UA) writeAck(ack *sip.Request) {
	if err := u.write(ack); err != nil {
		u.log.Warn("sending ACK failed", "error", err)
	}
}

// reinvite sends a re-INVITE (body != nil) or an UPDATE (useUpdate) in the
// dialog, answers challenges and ACKs a 2xx. It returns the final response.
func (u *UA) reinvite(ctx context.Context, c *call, useUpdate bool, body []byte) (*sip.Response, error) {
	method := sip.INVITE
	if useUpdate {
		method = sip.UPDATE
	}
	buildLocked := func() *sip.Request {
		req := u.inDialogLocked(c, method, 0)
		if body != nil {
			req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			req.SetBody(body)
		}
		c.timer.addRequestHeaders(req, u.minSE)
		return req
	}
	c.mu.Lock()
	req := buildLocked()
	cr := u.creds(c)
	c.mu.Unlock()
	for attempt := 0; ; attempt++ {
		var res *sip.Response
		var err error
		if useUpdate {
			res, err = u.do(ctx, req)
		} else {
			var tx sip.ClientTransaction
			tx, err = u.transaction(ctx, req)
			if err == nil {
				res, err = u.waitFinal(ctx, tx, c.ended)
				switch {
				case res == nil:
					tx.Terminate()
				case res.IsSuccess():
					c.mu.Lock()
					ack := u.ackLocked(c, req.CSeq().SeqNo, nil)
					c.mu.Unlock()
					u.writeAck(ack)
					tx.Terminate()
				default:
					u.endRejected(tx, req, res)
				}
			}
		}
		if err != nil {
			return nil, err
		}
		if (res.StatusCode == 401 || res.StatusCode == 407) && attempt < 2 && cr.pass != "" {
			c.mu.Lock()
			next := buildLocked()
			c.mu.Unlock()
			if u.authorize(next, res, cr) == nil {
				req = next
				continue
			}
		}
		return res, nil
	}
}
