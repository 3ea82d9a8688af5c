package sip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telestra/telestra-sip/sip/media"
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

// decision is what the operator decided for a ringing incoming call.
type decision struct {
	code   int // 200 answer; 486/603 decline
	reason string
}

// call is one call; all fields are guarded by UA.mu.
type call struct {
	id         int
	acct       *account
	out        bool
	caller     string
	callee     string
	callerName string

	state       string
	established bool // 2xx sent/received (and for incoming, ACKed)
	started     bool
	stopped     bool
	endedAt     time.Time
	ended       chan struct{}
	bound       bool
	sess        mediaSession
	lastStats   media.Stats

	dlg        dialog
	host       string // our address toward the peer (Via, Contact, SDP)
	sdp        localSDP
	lastSDP    []byte // our last description, resent unchanged by refreshes
	neg        *negotiated
	earlyMedia bool

	localHold  bool // we want the peer on hold
	sentHold   bool // the hold state the peer last accepted from us
	remoteHold bool // the peer put us on hold

	// Outgoing INVITE.
	cancelWanted bool
	cancelReason string
	cancelCh     chan struct{}

	// Incoming INVITE.
	decisionCh chan decision
	answering  bool
	decided    bool // an answer or a decline was handed to the INVITE handler
	ackCh      chan *sip.Request

	// The ACK we sent for the last 2xx, resent if the 2xx is retransmitted.
	lastAck    *sip.Request
	lastAckSeq uint32

	// Mid-call transactions.
	outPending bool // our re-INVITE/UPDATE is in progress
	inPending  bool // an incoming re-INVITE waits for its ACK
	worker     bool
	refreshDue bool

	// RFC 4028 session timer.
	seInterval int // seconds; 0: none
	weRefresh  bool
	seTimer    *time.Timer
	peerAllow  string
	peerTimer  bool // peer listed "timer" in Supported
}

func (c *call) intent() direction {
	if c.localHold {
		return dirSendOnly
	}
	return dirSendRecv
}

// ---- binding the account's audio to its active call ----

func chanKey(a *account) string {
	if a.eff.AudioName != "" {
		return "ch:" + a.eff.AudioName
	}
	return "acct:" + a.plan.Name
}

func (u *UA) bindableLocked(c *call) bool {
	if c == nil || c.stopped || c.sess == nil || c.localHold || c.remoteHold {
		return false
	}
	if c.established {
		return true
	}
	return c.out && c.earlyMedia
}

// rebindLocked makes the account's channel follow its active call; a
// channel is bound to at most one call (accounts sharing a channel share
// the binding, the latest to take it wins).
func (u *UA) rebindLocked(a *account) {
	key := chanKey(a)
	want := a.active
	if !u.bindableLocked(want) || a.eff.Audio == nil {
		want = nil
	}
	cur := u.bound[key]
	if cur != nil && cur != want && (want != nil || cur.acct == a) {
		if cur.sess != nil {
			cur.sess.Bind(nil)
		}
		cur.bound = false
		delete(u.bound, key)
		cur = nil
	}
	if want != nil {
		for k, b := range u.bound {
			if b == want && k != key {
				delete(u.bound, k) // the account moved to another channel (reload)
			}
		}
		want.sess.Bind(a.eff.Audio)
		want.bound = true
		u.bound[key] = want
	}
}

func (u *UA) unbindLocked(c *call) {
	if !c.bound {
		return
	}
	if c.sess != nil {
		c.sess.Bind(nil)
	}
	c.bound = false
	for k, b := range u.bound {
		if b == c {
			delete(u.bound, k)
		}
	}
}

// updateStateLocked derives active/held for an established call and moves
// the audio binding accordingly.
func (u *UA) updateStateLocked(c *call) {
	if c.stopped {
		return
	}
	if c.established {
		if c.localHold || c.remoteHold {
			c.state = StateHeld
		} else {
			c.state = StateActive
		}
	}
	if !u.bindableLocked(c) {
		u.unbindLocked(c)
	}
	u.rebindLocked(c.acct)
}

// ---- ending ----

// endLocked ends the call exactly once. The returned session must be
// closed after unlocking (closing may wait for the media goroutine).
func (u *UA) endLocked(c *call, reason string, code int) mediaSession {
	if c.stopped {
		return nil
	}
	u.unbindLocked(c)
	c.stopped = true
	c.state = StateEnded
	c.endedAt = time.Now()
	if c.seTimer != nil {
		c.seTimer.Stop()
	}
	if c.acct.active == c {
		c.acct.active = nil
	}
	close(c.ended)
	sess := c.sess
	if sess != nil {
		c.lastStats = sess.Stats()
	}
	c.sess = nil
	u.log.Info("call ended", "account", c.acct.plan.Name, "call", c.id, "reason", reason, "code", code)
	u.emitLocked(Event{Kind: CallEnded, Account: c.acct.plan.Name, CallID: c.id, Reason: reason, Code: code})
	return sess
}

func (u *UA) end(c *call, reason string, code int) {
	u.mu.Lock()
	s := u.endLocked(c, reason, code)
	u.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// takeAnswerLocked applies the SDP answer that completes c's set-up (in the
// 200 of our INVITE, or in the ACK of our offer). When there is no usable
// answer it unlocks u.mu, ends the call with BYE (488) and returns false.
func (u *UA) takeAnswerLocked(c *call, body []byte, where string) bool {
	r, err := parseSDP(body)
	if err == nil {
		err = u.applyAnswerLocked(c, r)
	}
	if err == nil {
		return true
	}
	u.mu.Unlock()
	u.log.Warn("no usable SDP "+where+": hanging up", "call", c.id, "error", err)
	u.endAndBye(c, "488 Not Acceptable Here (no usable SDP "+where+")", 488)
	return false
}

// endAndBye ends an established call and sends BYE.
func (u *UA) endAndBye(c *call, reason string, code int) {
	u.end(c, reason, code)
	// A BYE transaction lives at most 64*T1 (32 s); the UA's shutdown ends it sooner.
	ctx, cancel := context.WithTimeout(u.ctx, 64*sip.T1)
	defer cancel()
	u.sendBye(ctx, c)
}

func (u *UA) liveCallsLocked(a *account) int {
	n := 0
	for _, c := range u.calls {
		if c.acct == a && !c.stopped {
			n++
		}
	}
	return n
}

func (u *UA) callLocked(account string, id int) (*call, error) {
	a, err := u.accountLocked(account)
	if err != nil {
		return nil, err
	}
	c, ok := u.calls[id]
	if !ok || c.acct != a {
		return nil, fmt.Errorf("account %q call %d: %w", account, id, ErrUnknownCall)
	}
	return c, nil
}

// newCall registers a call under a fresh ID.
func (u *UA) newCallLocked(a *account, out bool) *call {
	// Ended calls leave the maps here too, not only on get-status: the
	// daemon runs for months.
	u.pruneLocked()
	c := &call{
		id: u.nextID, acct: a, out: out, state: StateRinging,
		ended: make(chan struct{}), cancelCh: make(chan struct{}),
		decisionCh: make(chan decision, 1), ackCh: make(chan *sip.Request, 4),
	}
	u.nextID++
	c.sdp = localSDP{sessID: uint64(rand.Int64N(1 << 40)), version: 1}
	return c
}

func (u *UA) onMediaTimeout(c *call) {
	// Called from the media goroutine: never block it.
	u.goTracked(func() {
		u.mu.Lock()
		ok := !c.stopped && c.established
		u.mu.Unlock()
		if !ok {
			return
		}
		u.log.Warn("no RTP received: ending call", "account", c.acct.plan.Name, "call", c.id)
		u.endAndBye(c, "rtp timeout", 0)
	})
}

func (u *UA) ptimeMs() int {
	if p := u.cfg.Media.PTime; p > 0 {
		return int(p / time.Millisecond)
	}
	return 20
}

// offerLocked builds our offer with every plan codec and our direction.
func (u *UA) offerLocked(c *call) []byte {
	port := 0
	if c.sess != nil {
		port = c.sess.LocalAddr().Port
	}
	b := c.sdp.build(sdpSpec{
		Addr: c.host, Port: port, Codecs: offerCodecs(u.codecs),
		EventPT: media.TelephoneEventPT, PTime: u.ptimeMs(), Dir: c.intent(),
	})
	c.lastSDP = b
	return b
}

// applyAnswerLocked applies the peer's answer to our offer.
func (u *UA) applyAnswerLocked(c *call, r *remoteSDP) error {
	codec, ok := pickCodec(r.Codecs, u.codecs)
	if !ok || r.Port == 0 {
		return fmt.Errorf("answer has no codec we offered")
	}
	dir := c.intent().and(r.Dir.mirror())
	n := &negotiated{Codec: codec, EventPT: r.EventPT, Dir: dir, Remote: r}
	c.neg = n
	if c.sess != nil {
		c.sess.Update(n.params())
	}
	return nil
}

// answerOfferLocked answers a peer's offer and applies it.
func (u *UA) answerOfferLocked(c *call, r *remoteSDP) ([]byte, error) {
	codec, ok := pickCodec(r.Codecs, u.codecs)
	if !ok && r.Port != 0 {
		return nil, fmt.Errorf("offer has no codec we support (we have %s)", strings.Join(u.codecs, ", "))
	}
	c.remoteHold = r.held()
	dir := c.intent().and(r.Dir.mirror())
	if r.IP == nil || r.IP.IsUnspecified() {
		// RFC 3264 §8.4: c=0.0.0.0 means "send nothing to me".
		dir = dirFrom(false, dir.recvs())
	}
	port := 0
	if c.sess != nil {
		port = c.sess.LocalAddr().Port
	}
	spec := sdpSpec{Addr: c.host, Port: port, Codecs: []sdpCodec{codec}, EventPT: r.EventPT,
		PTime: u.ptimeMs(), Dir: dir, Lines: r.Lines, Audio: r.Audio}
	if r.Port == 0 {
		spec.Port, spec.Codecs, spec.EventPT, spec.Dir = 0, nil, -1, dirInactive
		dir = dirInactive
	}
	n := &negotiated{Codec: codec, EventPT: r.EventPT, Dir: dir, Remote: r}
	c.neg = n
	if c.sess != nil {
		c.sess.Update(n.params())
	}
	b := c.sdp.build(spec)
	c.lastSDP = b
	return b, nil
}

// ---- requests inside a dialog ----

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
	if method == sip.INVITE || method == sip.UPDATE || method == sip.ACK {
		req.AppendHeader(u.contactHeaderOver(c.dlg.local.User, c.host, d.transport))
	}
	if method == sip.INVITE || method == sip.UPDATE {
		req.AppendHeader(sip.NewHeader("Allow", allowHeader))
		req.AppendHeader(sip.NewHeader("Supported", "timer"))
	}
	req.AppendHeader(sip.NewHeader("User-Agent", u.cfg.UserAgent))
	req.SetBody(nil)
	u.prepareOver(req, transport)
	return req
}

func (u *UA) credsLocked(c *call) credentials {
	return credentials{user: c.acct.authUser(), pass: c.acct.eff.Pass}
}

// sendBye sends BYE in the call's dialog (answering digest challenges).
func (u *UA) sendBye(ctx context.Context, c *call) {
	u.mu.Lock()
	if c.dlg.remoteTag == "" && c.out {
		u.mu.Unlock()
		return
	}
	req := u.inDialogLocked(c, sip.BYE, 0)
	cr := u.credsLocked(c)
	u.mu.Unlock()
	res, err := u.doWithAuth(ctx, req, cr, func(old *sip.Request) *sip.Request {
		u.mu.Lock()
		n := u.inDialogLocked(c, sip.BYE, 0)
		u.mu.Unlock()
		return n
	})
	switch {
	case err != nil:
		u.log.Warn("BYE got no answer", "account", c.acct.plan.Name, "call", c.id, "error", err)
	case res.StatusCode == 481:
		// The far end has ended the dialog already (both sides of a local
		// call hang up at once on shutdown): the call is over either way.
		u.log.Debug("BYE crossed the far end's", "account", c.acct.plan.Name, "call", c.id, "status", statusText(res))
	case res.StatusCode >= 300:
		u.log.Warn("BYE rejected", "account", c.acct.plan.Name, "call", c.id, "status", statusText(res))
	}
}

// waitInvite waits for the final response of an INVITE client transaction
// (re-INVITE or a retry of the initial INVITE); provisional responses go to
// onProv, and abort (may be nil) gives up early. The caller ACKs a 2xx.
func (u *UA) waitInvite(ctx context.Context, tx sip.ClientTransaction, onProv func(*sip.Response), abort <-chan struct{}) (*sip.Response, error) {
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				if onProv != nil {
					onProv(res)
				}
				continue
			}
			return res, nil
		case <-tx.Done():
			err := tx.Err()
			if err == nil {
				err = fmt.Errorf("INVITE transaction ended without response")
			}
			return nil, err
		case <-abort:
			return nil, errAborted
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

var errAborted = fmt.Errorf("aborted")

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
	if err := u.cli.WriteRequest(ack, asIs); err != nil {
		u.log.Warn("sending ACK failed", "error", err)
	}
}

// reinvite sends a re-INVITE (body != nil) or an UPDATE (useUpdate) in the
// dialog, answers challenges and ACKs a 2xx. It returns the final response.
func (u *UA) reinvite(ctx context.Context, c *call, useUpdate bool, body []byte, extra func(*sip.Request)) (*sip.Response, error) {
	method := sip.INVITE
	if useUpdate {
		method = sip.UPDATE
	}
	build := func() *sip.Request {
		req := u.inDialogLocked(c, method, 0)
		if body != nil {
			req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			req.SetBody(body)
		}
		if extra != nil {
			extra(req)
		}
		return req
	}
	u.mu.Lock()
	req := build()
	cr := u.credsLocked(c)
	u.mu.Unlock()
	for attempt := 0; ; attempt++ {
		var res *sip.Response
		var err error
		if useUpdate {
			res, err = u.do(ctx, req)
		} else {
			var tx sip.ClientTransaction
			tx, err = u.cli.TransactionRequest(ctx, req, asIs)
			if err == nil {
				res, err = u.waitInvite(ctx, tx, nil, c.ended)
				if res != nil && res.IsSuccess() {
					u.mu.Lock()
					ack := u.ackLocked(c, req.CSeq().SeqNo, nil)
					u.mu.Unlock()
					u.writeAck(ack)
				}
				tx.Terminate()
			}
		}
		if err != nil {
			return nil, err
		}
		if (res.StatusCode == 401 || res.StatusCode == 407) && attempt < 2 && cr.pass != "" {
			u.mu.Lock()
			next := build()
			u.mu.Unlock()
			if authorize(next, res, cr) == nil {
				req = next
				continue
			}
		}
		return res, nil
	}
}

// ---- session timer (RFC 4028) ----

func parseSessionExpires(v string) (secs int, refresher string, ok bool) {
	parts := strings.Split(v, ";")
	n, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil || n <= 0 {
		return 0, "", false
	}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "refresher") {
			refresher = strings.ToLower(strings.TrimSpace(val))
		}
	}
	return n, refresher, true
}

func headerValue(m sip.Message, names ...string) (string, bool) {
	for _, n := range names {
		if hs := m.GetHeaders(n); len(hs) > 0 {
			return hs[0].Value(), true
		}
	}
	return "", false
}

func hasOption(m sip.Message, header, option string) bool {
	for _, h := range m.GetHeaders(header) {
		for _, o := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(o), option) {
				return true
			}
		}
	}
	return false
}

// armSessionTimerLocked (re)starts the session timer after a refresh.
func (u *UA) armSessionTimerLocked(c *call) {
	if c.seTimer != nil {
		c.seTimer.Stop()
		c.seTimer = nil
	}
	if c.seInterval <= 0 || c.stopped {
		return
	}
	iv := time.Duration(c.seInterval) * time.Second
	if c.weRefresh {
		c.seTimer = time.AfterFunc(iv/2, func() {
			u.mu.Lock()
			defer u.mu.Unlock()
			if c.stopped || u.closing {
				return
			}
			c.refreshDue = true
			u.kickLocked(c)
		})
		return
	}
	// RFC 4028 §10: BYE at expiry minus min(32 s, interval/3).
	wait := iv - min(32*time.Second, iv/3)
	c.seTimer = time.AfterFunc(wait, func() {
		u.goTracked(func() {
			u.mu.Lock()
			live := !c.stopped
			u.mu.Unlock()
			if !live {
				return
			}
			u.log.Warn("session expired without refresh: ending call", "account", c.acct.plan.Name, "call", c.id)
			u.endAndBye(c, "session expired", 408)
		})
	})
}

// seFromResponseLocked applies Session-Expires of a 2xx to our request.
func (u *UA) seFromResponseLocked(c *call, res *sip.Response) {
	v, ok := headerValue(res, "Session-Expires", "x")
	if !ok {
		return
	}
	n, ref, ok := parseSessionExpires(v)
	if !ok {
		return
	}
	c.seInterval = n
	// We sent the request, so "uac" means us.
	c.weRefresh = ref != "uas"
	u.armSessionTimerLocked(c)
}

// seHeaders adds our session-timer headers to a request we send.
func (u *UA) seHeadersLocked(c *call, req *sip.Request) {
	if c.seInterval <= 0 {
		return
	}
	ref := "uas"
	if c.weRefresh {
		ref = "uac"
	}
	req.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(c.seInterval)+";refresher="+ref))
	req.AppendHeader(sip.NewHeader("Min-SE", strconv.Itoa(u.minSE)))
}

// ---- the mid-call worker: hold/resume and session refreshes ----

// kickLocked makes sure the call's worker runs; it sends at most one
// transaction at a time, so hold/resume/refresh never overlap.
func (u *UA) kickLocked(c *call) {
	if c.worker || c.stopped || u.closed || !c.established {
		return
	}
	c.worker = true
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		u.work(c)
	}()
}

func (u *UA) work(c *call) {
	glare := 0
	for {
		u.mu.Lock()
		if c.stopped || u.closing || !c.established || c.inPending {
			c.worker = false
			u.mu.Unlock()
			return
		}
		holdChange := c.localHold != c.sentHold
		if !holdChange && !c.refreshDue {
			c.worker = false
			u.mu.Unlock()
			return
		}
		wantHold := c.localHold
		refreshOnly := !holdChange
		c.refreshDue = false
		c.outPending = true
		var body []byte
		useUpdate := false
		if refreshOnly {
			if hasMethod(c.peerAllow, "UPDATE") {
				useUpdate = true
			} else {
				body = c.lastSDP
			}
		} else {
			body = u.offerLocked(c)
		}
		u.mu.Unlock()

		ctx, cancel := context.WithTimeout(u.ctx, 40*time.Second)
		res, err := u.reinvite(ctx, c, useUpdate, body, func(r *sip.Request) { u.seHeadersLocked(c, r) })
		cancel()

		u.mu.Lock()
		c.outPending = false
		what := "re-INVITE"
		if useUpdate {
			what = "UPDATE"
		}
		var fatal string
		var code int
		switch {
		case err != nil:
			if !c.stopped && u.ctx.Err() == nil && err != errAborted {
				fatal, code = what+" failed: "+err.Error(), 408
			}
		case res.IsSuccess():
			glare = 0
			if body != nil && !useUpdate {
				if r, perr := parseSDP(res.Body()); perr == nil {
					if aerr := u.applyAnswerLocked(c, r); aerr != nil {
						u.log.Warn("unusable SDP answer to re-INVITE", "call", c.id, "error", aerr)
					}
				} else {
					u.log.Warn("bad SDP answer to re-INVITE", "call", c.id, "error", perr)
				}
			}
			c.sentHold = wantHold
			u.seFromResponseLocked(c, res)
			if c.seInterval > 0 && res.GetHeader("Session-Expires") == nil {
				u.armSessionTimerLocked(c)
			}
			u.updateStateLocked(c)
		case res.StatusCode == 491 && glare < 3:
			// Glare (RFC 3261 14.1): retry after a random wait.
			glare++
			if holdChange {
				c.sentHold = !wantHold
			} else {
				c.refreshDue = true
			}
			u.mu.Unlock()
			select {
			case <-time.After(time.Duration(2100+rand.IntN(1900)) * time.Millisecond):
			case <-c.ended:
			case <-u.ctx.Done():
			}
			continue
		case res.StatusCode == 422:
			if v, ok := headerValue(res, "Min-SE"); ok {
				if n, _, ok := parseSessionExpires(v); ok {
					c.seInterval = max(c.seInterval, n)
				}
			}
			if !holdChange {
				c.refreshDue = true
			}
		case res.StatusCode == 481 || res.StatusCode == 408:
			// RFC 3261 12.2.1.2: the dialog is gone.
			fatal, code = what+" failed: "+statusText(res), res.StatusCode
		case useUpdate && (res.StatusCode == 405 || res.StatusCode == 501):
			// Allow listed UPDATE but the peer does not take it (baresip
			// 1.0 answers 501): refresh with re-INVITE from now on.
			c.peerAllow = ""
			c.refreshDue = true
		default:
			u.log.Warn(what+" rejected; keeping the call", "account", c.acct.plan.Name, "call", c.id, "status", statusText(res))
			c.sentHold = wantHold
			if refreshOnly {
				u.armSessionTimerLocked(c) // try again at the next half interval
			}
		}
		u.mu.Unlock()
		if fatal != "" {
			u.endAndBye(c, fatal, code)
			u.mu.Lock()
			c.worker = false
			u.mu.Unlock()
			return
		}
	}
}

func hasMethod(allow, m string) bool {
	for _, x := range strings.Split(allow, ",") {
		if strings.EqualFold(strings.TrimSpace(x), m) {
			return true
		}
	}
	return false
}
