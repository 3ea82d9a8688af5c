// call.go owns the call record and the call table: creating a call,
// looking it up for a command, counting live calls and ending a call on a
// media time-out. The phase machine that changes a call is in phase.go.
package sip

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telestra/telestra-sip/sip/media"
)

// decision is what the operator decided for a ringing incoming call.
type decision struct {
	code   int // 200 answer; 486/603 decline
	reason string
}

// call is one call. The fields above mu never change once the call is in
// the tables; tab is guarded by UA.mu; the rest by mu.
type call struct {
	id         int
	acct       *account
	account    string // acct's name, for logs and events
	out        bool
	caller     string
	callee     string
	callerName string
	ended      chan struct{}     // closed on the move to ended
	cancelCh   chan struct{}     // outgoing: closed on the move to ending
	decisionCh chan decision     // incoming: the answer or decline, one slot
	ackCh      chan *sip.Request // ACKs of our 2xx sent outside the INVITE transaction
	// log carries the call's account, API id ("call") and SIP Call-ID
	// ("sip_call_id", SIP_CALL_ID= in the journal): every line about the
	// call goes through it.
	log *slog.Logger

	tab callEntry // guarded by UA.mu

	mu          sync.Mutex
	phase       phase
	hold        holdState
	status      string    // CallStatus.State, kept by setPhaseLocked and settleLocked
	confirmedAt time.Time // zero: never confirmed (CallStatus.Started)
	endReason   string    // phaseEnding: why (CANCEL, decline)
	endedWhy    string    // phaseEnded: CallEnded reason, kept for get-status
	endedCode   int       // phaseEnded: CallEnded code
	endedAt     time.Time // phaseEnded: when (CallStatus.Duration stops)
	sess        mediaSession
	lastStats   media.Stats

	dlg     dialog
	host    string // our address toward the peer (Via, Contact, SDP)
	sdp     localSDP
	lastSDP []byte // our last description, resent unchanged by refreshes
	neg     *negotiated
	// SDES (srtp.go): our key per suite for the life of the call, and the
	// a=crypto lines of our last offer.
	srtpLocal map[string][]byte
	srtpOffer []cryptoAttr

	// waitAck is non-nil while our 2xx to an INVITE waits for its ACK
	// (answering, or offerTheirs) and closed when it arrived or never will:
	// the peer's next request waits for it (sipgo handles each message in
	// its own goroutine, so an ACK and the next request may race).
	waitAck chan struct{}

	// The ACK we sent for the last 2xx, resent if the 2xx is retransmitted.
	lastAck    *sip.Request
	lastAckSeq uint32

	// Mid-call offer/answer (midcall.go).
	offer      offerState
	worker     bool // the mid-call worker goroutine runs
	refreshDue bool // the session timer asks for a refresh

	timer     sessionTimer // RFC 4028
	peerAllow string
	info      infoQueue // DTMF digits waiting to go out by INFO

	// Transfer (transfer.go, replaces.go).
	xfer         *transferOut // phase transferring: our REFER
	ref          *referral    // phase referred: the peer's REFER
	referredFrom *call        // this call was placed for old's referral; nil once reported
	referredBy   string       // its Referred-By, copied into the INVITE
	replaces     *call        // this call's INVITE replaced that call (RFC 3891)
}

// callEntry is what the tables know of a call, guarded by UA.mu: whether it
// ended (and when), whether it wants its account's audio channel (published
// by settleLocked) and the session the channel binds to.
type callEntry struct {
	gone    bool
	endedAt time.Time
	audio   bool
	bound   bool // bound to its account's audio channel (UA.bound)
	media   mediaSession
}

// ackSeen ends a wait for the ACK of our 2xx.
func (c *call) ackSeen() {
	if c.waitAck != nil {
		close(c.waitAck)
		c.waitAck = nil
	}
}

func (c *call) intent() direction {
	if c.hold.want {
		return dirSendOnly
	}
	return dirSendRecv
}

func dirName(c *call) string {
	if c.out {
		return "outgoing"
	}
	return "incoming"
}

func (u *UA) liveCallsLocked(a *account) int {
	n := 0
	for _, c := range u.calls {
		if c.acct == a && !c.tab.gone {
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

// call finds a call for a command.
func (u *UA) call(account string, id int) (*call, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.callLocked(account, id)
}

// newCallLocked makes a ringing call under a fresh ID (not yet in the
// tables) for the dialog of SIP Call-ID sipCallID.
func (u *UA) newCallLocked(a *account, out bool, sipCallID string) *call {
	// Ended calls leave the maps here too, not only on get-status: the
	// daemon runs for months.
	u.pruneLocked()
	c := &call{
		id: u.nextID, acct: a, account: a.plan.Name, out: out, phase: phaseRinging, status: StateRinging,
		ended: make(chan struct{}), cancelCh: make(chan struct{}),
		decisionCh: make(chan decision, 1), ackCh: make(chan *sip.Request, 4),
		log: u.log.With("account", a.plan.Name, "call", u.nextID, "sip_call_id", sipCallID),
	}
	c.dlg.callID = sipCallID
	u.nextID++
	c.sdp = localSDP{sessID: uint64(rand.Int64N(1 << 40)), version: 1}
	return c
}

// pruneLocked forgets ended calls whose linger time is over.
func (u *UA) pruneLocked() {
	now := u.clock.Now()
	for id, c := range u.calls {
		if c.tab.gone && now.Sub(c.tab.endedAt) >= u.cfg.EndedCallLinger {
			delete(u.calls, id)
			delete(u.dialogs, c.dlg.key())
		}
	}
}

func (u *UA) onMediaTimeout(c *call) {
	u.endOnTimeout(c, phase.established, "no RTP received: ending call", "rtp timeout", 0)
}

// endOnTimeout ends c with a BYE when a timer or the media goroutine says
// so and c is still in a phase where ok holds. It runs the ending in a
// tracked goroutine: the caller is never blocked.
func (u *UA) endOnTimeout(c *call, ok func(phase) bool, msg, reason string, code int) {
	u.goTracked(func() {
		c.mu.Lock()
		still := ok(c.phase)
		c.mu.Unlock()
		if !still {
			return
		}
		c.log.Warn(msg)
		u.endAndBye(c, reason, code)
	})
}
