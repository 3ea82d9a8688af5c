// sessiontimer.go owns RFC 4028 session timers: the sessionTimer type
// (interval, refresher, the running timer), reading Session-Expires and
// Min-SE from the peer's messages and writing ours.
package sip

import (
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// sessionTimer is the session timer of one call, guarded by UA.mu.
type sessionTimer struct {
	interval  int  // seconds; 0: none
	weRefresh bool // we send the refreshes; else we expect them
	peerTimer bool // the peer listed "timer" in Supported or Require
	t         timer
}

func (s *sessionTimer) stop() {
	if s.t != nil {
		s.t.Stop()
		s.t = nil
	}
}

// arm (re)starts the timer after a refresh: when we refresh, onRefresh
// runs at half the interval; else onExpiry runs at expiry minus
// min(32 s, interval/3) (RFC 4028 §10). Both run in their own goroutine.
func (s *sessionTimer) arm(clk clock, onRefresh, onExpiry func()) {
	s.stop()
	if s.interval <= 0 {
		return
	}
	iv := time.Duration(s.interval) * time.Second
	if s.weRefresh {
		s.t = clk.AfterFunc(iv/2, onRefresh)
		return
	}
	s.t = clk.AfterFunc(iv-min(32*time.Second, iv/3), onExpiry)
}

// fromRequest takes the timer from a request the peer sent (initial
// INVITE or refresh); false when the interval is below minSE (answer 422).
func (s *sessionTimer) fromRequest(req *sip.Request, minSE int) bool {
	n, ref, ok := sessionExpiresOf(req)
	if !ok {
		return true
	}
	if n < minSE {
		return false
	}
	s.interval = n
	switch ref {
	case "uac":
		s.weRefresh = false // the peer sent this request: it refreshes
	case "uas":
		s.weRefresh = true
	default:
		// RFC 4028 §9: the UAS picks; the requester if it can refresh.
		s.weRefresh = !s.peerTimer
	}
	return true
}

// fromResponse takes the timer from a 2xx to our request; false when the
// response has no usable Session-Expires.
func (s *sessionTimer) fromResponse(res *sip.Response) bool {
	v, ok := headerValue(res, "Session-Expires", "x")
	if !ok {
		return false
	}
	n, ref, ok := parseSessionExpires(v)
	if !ok {
		return false
	}
	s.interval = n
	// We sent the request, so "uac" means us.
	s.weRefresh = ref != "uas"
	return true
}

// tooBrief takes the Min-SE of a 422 to our refresh.
func (s *sessionTimer) tooBrief(res *sip.Response) {
	if v, ok := headerValue(res, "Min-SE"); ok {
		if n, _, ok := parseSessionExpires(v); ok {
			s.interval = max(s.interval, n)
		}
	}
}

// addRequestHeaders adds our session-timer headers to a request we send.
func (s *sessionTimer) addRequestHeaders(req *sip.Request, minSE int) {
	if s.interval <= 0 {
		return
	}
	ref := "uas"
	if s.weRefresh {
		ref = "uac"
	}
	req.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(s.interval)+";refresher="+ref))
	req.AppendHeader(sip.NewHeader("Min-SE", strconv.Itoa(minSE)))
}

// addResponseHeaders adds Session-Expires to our 2xx to the peer's
// request; refresher is relative to that request (uac = the peer).
func (s *sessionTimer) addResponseHeaders(res *sip.Response) {
	if s.interval <= 0 {
		return
	}
	ref := "uac"
	if s.weRefresh {
		ref = "uas"
	}
	res.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(s.interval)+";refresher="+ref))
	if s.peerTimer {
		res.AppendHeader(sip.NewHeader("Require", "timer"))
	}
}

// armSessionTimerLocked (re)starts c's session timer.
func (u *UA) armSessionTimerLocked(c *call) {
	if !c.phase.live() {
		c.timer.stop()
		return
	}
	c.timer.arm(u.clock, func() { u.refreshDue(c) }, func() { u.sessionExpired(c) })
}

// refreshDue asks the mid-call worker for a session refresh.
func (u *UA) refreshDue(c *call) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.phase.live() || u.isClosing() {
		return
	}
	c.refreshDue = true
	u.kickLocked(c)
}

// sessionExpired ends a call whose peer did not refresh the session.
func (u *UA) sessionExpired(c *call) {
	u.endOnTimeout(c, phase.live, "session expired without refresh: ending call", "session expired", 408)
}

func (u *UA) tooBriefReply(req *sip.Request) *sip.Response {
	res := u.response(req, 422, "Session Interval Too Small", "")
	res.AppendHeader(sip.NewHeader("Min-SE", strconv.Itoa(u.minSE)))
	return res
}

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

// sessionExpiresOf reads Session-Expires (or its compact form x).
func sessionExpiresOf(req *sip.Request) (int, string, bool) {
	v, ok := headerValue(req, "Session-Expires", "x")
	if !ok {
		return 0, "", false
	}
	return parseSessionExpires(v)
}
