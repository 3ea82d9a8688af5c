// status.go builds the get-status snapshot of a call and of an account's
// registration.
package sip

import (
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/telestra/telestra-sip/sip/media"
)

// Who holds a call, as reported in CallStatus.Hold.
const (
	HoldNone   = ""
	HoldLocal  = "local"  // we put the peer on hold (switch-call)
	HoldRemote = "remote" // the peer put us on hold
	HoldBoth   = "both"
)

// callStatusLocked snapshots c (c.mu held); Active is the caller's.
func (u *UA) callStatusLocked(c *call, now time.Time) CallStatus {
	cs := CallStatus{
		ID: c.id, Caller: c.caller, Callee: c.callee,
		Started: !c.confirmedAt.IsZero(), Stopped: !c.phase.live(), State: c.status,
		Direction: "in", Hold: holdName(c.hold),
	}
	if c.out {
		cs.Direction = "out"
	}
	if c.sess != nil && c.phase.live() {
		cs.Media = c.sess.Stats()
		if la := c.sess.LocalAddr(); la != nil && c.host != "" {
			cs.LocalMedia = net.JoinHostPort(c.host, strconv.Itoa(la.Port))
		}
	} else {
		cs.Media = c.lastStats
	}
	if c.neg != nil && c.neg.Remote != nil && c.neg.Remote.IP != nil && c.neg.Remote.Port != 0 {
		cs.RemoteMedia = net.JoinHostPort(c.neg.Remote.IP.String(), strconv.Itoa(c.neg.Remote.Port))
	}
	if !c.phase.live() {
		cs.EndReason, cs.EndCode = c.endedWhy, c.endedCode
		cs.Hold = HoldNone
		now = c.endedAt
	}
	if !c.confirmedAt.IsZero() {
		cs.Duration = max(0, now.Sub(c.confirmedAt))
	}
	if m := cs.Media; m.PacketsReceived > 0 {
		cs.Quality = media.EstimateQuality(media.QualityInput{
			LossPct:  100 * float64(m.PacketsLost) / float64(m.PacketsLost+m.PacketsReceived),
			JitterMs: m.JitterMs,
			RTTMs:    m.RTTMs,
			BufferMs: m.JitterBufferMs,
			PTimeMs:  float64(c.set.ptimeMs()),
		})
	}
	return cs
}

func holdName(h holdState) string {
	switch {
	case h.want && h.remote:
		return HoldBoth
	case h.want:
		return HoldLocal
	case h.remote:
		return HoldRemote
	}
	return HoldNone
}

// Registration states, as reported in Registration.State.
const (
	RegNoServer    = "no-server"   // the account has no server: local and direct calls only
	RegDisabled    = "disabled"    // register = false in the plan
	RegRegistering = "registering" // the first REGISTER since start, login or reload is under way
	RegRegistered  = "registered"  // the registrar accepted the binding, which has not expired
	RegRejected    = "rejected"    // the registrar answered with a failure (401, 403, 404, 423...)
	RegUnreachable = "unreachable" // no answer, or a transport error
	RegLoggedOut   = "logged-out"  // logout: un-registered until the next login
)

// Registration is an account's registration as get-status shows it.
type Registration struct {
	State     string
	Server    string
	Transport string        // udp, tcp
	ExpiresIn time.Duration // registered: until the binding expires
	LastError string        // the latest failure ("" after a success)
	RetryIn   time.Duration // rejected, unreachable: until the next attempt (0 while it runs)
}

type regOutcome int

const (
	regNone regOutcome = iota
	regOK
	regRejected
	regUnreachable
)

// regRecord is what the registration loop learnt, guarded by UA.mu; login,
// logout and reload reset it.
type regRecord struct {
	loggedOut bool
	outcome   regOutcome
	lastError string
	expiresAt time.Time // regOK: the binding's end
	retryAt   time.Time // after a failure: the next attempt; zero while one runs
}

// registrationLocked (u.mu held) derives the account's registration state.
func (u *UA) registrationLocked(a *account, now time.Time) Registration {
	cur := a.effLocked() // with several servers, the one in use (failover.go)
	r := Registration{
		State:     regState(a.eff, a.reg, now),
		Server:    cur.Server,
		Transport: strings.ToLower(u.outTransport),
		LastError: a.reg.lastError,
	}
	if su, err := serverURI(cur.Server); err == nil {
		r.Transport = strings.ToLower(u.transportTo(*su, "")) // tls:host is TLS
	}
	switch r.State {
	case RegRegistered:
		r.ExpiresIn = a.reg.expiresAt.Sub(now)
	case RegRejected, RegUnreachable:
		if !a.reg.retryAt.IsZero() {
			r.RetryIn = max(0, a.reg.retryAt.Sub(now))
		}
	case RegNoServer, RegDisabled:
		r.Transport = ""
	}
	return r
}

// regState: a failure state lasts through the retries until a success, so
// an operator sees why, not a flicker of "registering".
func regState(eff Account, r regRecord, now time.Time) string {
	switch {
	case eff.Server == "":
		return RegNoServer
	case r.loggedOut:
		return RegLoggedOut
	case !eff.Register:
		return RegDisabled
	case r.outcome == regOK && now.Before(r.expiresAt):
		return RegRegistered
	case r.outcome == regRejected:
		return RegRejected
	case r.outcome == regUnreachable:
		return RegUnreachable
	}
	return RegRegistering
}
