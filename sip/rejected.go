// rejected.go owns the UA core's side of Timer D (RFC 3261 §17.1.1.2): an
// INVITE of ours answered 300-699 over UDP keeps the ACK of that answer for
// 32 s, and every retransmission of the answer gets the ACK again.
package sip

import (
	"fmt"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// rejectLinger is Timer D for an unreliable transport: "at least 32
// seconds" (RFC 3261 §17.1.1.2). Over TCP and TLS it is zero and nothing
// is kept.
const rejectLinger = 32 * time.Second

// rejectAcks keeps, by the branch of a rejected INVITE, the ACK sent for
// its final answer, for rejectLinger.
//
// sipgo's INVITE client transaction does this in its Completed state, but
// keeps the whole transaction for it: the INVITE with its SDP, the answer,
// the ACK and the transaction's channels and timers, about 7 KB for every
// call whose first INVITE is challenged (407) or refused, which was most of
// the daemon's live heap under a steady call rate. The UA ends that
// transaction as soon as the answer is taken (endRejected) and keeps the
// ACK as it went on the wire, about 0.5 KB; the answer's retransmissions
// then come to the UA core as stray responses (onStrayResponse).
type rejectAcks struct {
	mu    sync.Mutex
	kept  map[string]rejectAck // by branch
	order []rejectKey          // oldest first; all live rejectLinger
	sweep timer                // armed while order is not empty; nil: not armed
	done  bool                 // stopped: nothing is kept any more
}

type rejectAck struct {
	wire      []byte // the ACK as rendered
	dest      string // where the INVITE went (host:port)
	transport string
	laddr     sip.Addr
	until     time.Time
}

type rejectKey struct {
	branch string
	until  time.Time
}

// keep remembers ack (the ACK of the INVITE of branch) for rejectLinger on
// clk. A timer forgets what expired, so that nothing stays once the calls
// stop.
func (r *rejectAcks) keep(branch string, ack *sip.Request, clk clock) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return
	}
	now := clk.Now()
	r.expireLocked(now)
	if r.kept == nil {
		r.kept = map[string]rejectAck{}
	}
	until := now.Add(rejectLinger)
	r.kept[branch] = rejectAck{wire: []byte(ack.String()), dest: ack.Destination(), transport: ack.Transport(), laddr: ack.Laddr, until: until}
	r.order = append(r.order, rejectKey{branch, until})
	if r.sweep == nil {
		r.armLocked(clk, now)
	}
}

// armLocked sets the sweep for the oldest entry.
func (r *rejectAcks) armLocked(clk clock, now time.Time) {
	r.sweep = clk.AfterFunc(r.order[0].until.Sub(now), func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.sweep = nil
		if r.done {
			return
		}
		now := clk.Now()
		r.expireLocked(now)
		if len(r.order) > 0 {
			r.armLocked(clk, now)
		}
	})
}

// stop forgets everything and disarms the sweep (UA shutdown).
func (r *rejectAcks) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	if r.sweep != nil {
		r.sweep.Stop()
		r.sweep = nil
	}
	r.kept, r.order = nil, nil
}

// ack returns a copy of the ACK kept for branch, ready to send.
func (r *rejectAcks) ack(branch string, now time.Time) (*sip.Request, error) {
	r.mu.Lock()
	r.expireLocked(now)
	k, ok := r.kept[branch]
	r.mu.Unlock()
	if !ok {
		return nil, nil
	}
	msg, err := sip.ParseMessage(k.wire)
	if err != nil {
		return nil, fmt.Errorf("kept ACK: %w", err)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		return nil, fmt.Errorf("kept ACK is not a request")
	}
	req.SetDestination(k.dest)
	req.SetTransport(k.transport)
	req.Laddr = k.laddr
	return req, nil
}

// size is how many ACKs are kept (for tests).
func (r *rejectAcks) size(now time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expireLocked(now)
	return len(r.kept)
}

func (r *rejectAcks) expireLocked(now time.Time) {
	n := 0
	for n < len(r.order) && !now.Before(r.order[n].until) {
		k := r.order[n]
		if r.kept[k.branch].until.Equal(k.until) {
			delete(r.kept, k.branch)
		}
		n++
	}
	if n == len(r.order) {
		r.order = nil // let a burst's backing array go
	} else if n > 0 {
		r.order = append(r.order[:0], r.order[n:]...)
	}
	if len(r.kept) == 0 {
		r.kept = nil // a map keeps the buckets of its peak
	}
}

// ackNon2xx is the ACK of a 300-699 answer res to our INVITE req, built as
// RFC 3261 §17.1.1.3 has the transaction build it (and as sipgo did for
// the one it sent): req's Request-URI, top Via and Route set, From,
// Call-ID and CSeq number; the answer's To (with its tag).
func ackNon2xx(req *sip.Request, res *sip.Response) *sip.Request {
	ack := sip.NewRequest(sip.ACK, *req.Recipient.Clone())
	ack.SipVersion = req.SipVersion
	if v := req.Via(); v != nil {
		ack.AppendHeader(v.Clone())
	}
	sip.CopyHeaders("Route", req, ack)
	mf := sip.MaxForwardsHeader(70)
	ack.AppendHeader(&mf)
	if h := req.From(); h != nil {
		ack.AppendHeader(&sip.FromHeader{DisplayName: h.DisplayName, Address: *h.Address.Clone(), Params: h.Params.Clone()})
	}
	if h := res.To(); h != nil {
		ack.AppendHeader(&sip.ToHeader{DisplayName: h.DisplayName, Address: *h.Address.Clone(), Params: h.Params.Clone()})
	}
	if h := req.CallID(); h != nil {
		cid := sip.CallIDHeader(h.Value())
		ack.AppendHeader(&cid)
	}
	if h := req.CSeq(); h != nil {
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: h.SeqNo, MethodName: sip.ACK})
	}
	if h := req.Contact(); h != nil {
		ack.AppendHeader(h.Clone())
	}
	ack.SetBody(nil)
	ack.SetTransport(req.Transport())
	ack.SetDestination(req.Destination())
	ack.Laddr = req.Laddr
	return ack
}

// endRejected ends the INVITE client transaction tx of req once it has
// passed up its 300-699 answer res. Over UDP the UA keeps the ACK (see
// rejectAcks) so that retransmissions of res are still acknowledged.
func (u *UA) endRejected(tx sip.ClientTransaction, req *sip.Request, res *sip.Response) {
	if req.Transport() == "UDP" {
		if v := req.Via(); v != nil {
			if branch, ok := v.Params.Get("branch"); ok && branch != "" {
				u.rejects.keep(branch, ackNon2xx(req, res), u.clock)
			}
		}
	}
	// sipgo arms Timer D just after it passed the answer up, inside its
	// state machine; Err waits for that step to finish (it takes the same
	// lock), so that Terminate stops the timer instead of racing it. A
	// timer left running would keep the transaction for its 32 s. (A
	// retransmission of the answer between the two would hold that lock for
	// T2 in sipgo's re-ACK; it comes T1 after the answer at the earliest.)
	_ = tx.Err()
	tx.Terminate()
}

// reAckRejected answers a retransmitted 300-699 answer to one of our
// INVITEs (a stray response: its transaction is gone) with the kept ACK.
// It reports whether res was one.
func (u *UA) reAckRejected(res *sip.Response) bool {
	cseq, via := res.CSeq(), res.Via()
	if cseq == nil || cseq.MethodName != sip.INVITE || res.StatusCode < 300 || via == nil {
		return false
	}
	branch, ok := via.Params.Get("branch")
	if !ok {
		return false
	}
	ack, err := u.rejects.ack(branch, u.clock.Now())
	if err != nil {
		u.log.Debug("re-ACK of a retransmitted answer failed", "error", err)
		return true
	}
	if ack == nil {
		return true // older than Timer D, or not ours
	}
	if err := u.cli.WriteRequest(ack, asIs); err != nil {
		u.log.Debug("re-ACK of a retransmitted answer failed", "error", err)
	}
	return true
}
