// midcall.go owns the mid-call worker of a confirmed call: the goroutine
// that sends our re-INVITEs and UPDATEs (hold, resume, session refresh)
// one at a time and applies their outcome, including glare (491) and the
// session timer's 422.
package sip

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/emiago/sipgo/sip"
)

// kickLocked (c.mu held) makes sure the call's worker runs; it sends at most one
// transaction at a time, so hold/resume/refresh never overlap.
func (u *UA) kickLocked(c *call) {
	if c.worker || !c.phase.established() {
		return
	}
	c.worker = u.goTracked(func() { u.work(c) })
}

// midcallJob is one transaction the worker decided to send.
type midcallJob struct {
	wantHold    bool
	refreshOnly bool
	useUpdate   bool
	body        []byte
}

// nextJobLocked picks the worker's next transaction; ok false: nothing to
// do, and the worker is marked stopped.
func (u *UA) nextJobLocked(c *call) (midcallJob, bool) {
	if !c.phase.established() || u.isClosing() || c.offer == offerTheirs ||
		(!c.hold.pending() && !c.refreshDue) {
		c.worker = false
		return midcallJob{}, false
	}
	j := midcallJob{wantHold: c.hold.want, refreshOnly: !c.hold.pending()}
	c.refreshDue = false
	c.offer = offerOurs
	switch {
	case !j.refreshOnly:
		j.body = u.offerLocked(c)
	case hasMethod(c.peerAllow, "UPDATE"):
		j.useUpdate = true
	default:
		j.body = c.lastSDP
	}
	return j, true
}

func (u *UA) work(c *call) {
	glare := 0
	for {
		c.mu.Lock()
		j, ok := u.nextJobLocked(c)
		c.mu.Unlock()
		if !ok {
			return
		}

		ctx, cancel := context.WithTimeout(u.ctx, 40*time.Second)
		res, err := u.reinvite(ctx, c, j.useUpdate, j.body)
		cancel()

		c.mu.Lock()
		fatal, code, retry := u.jobDoneLocked(c, j, res, err, glare)
		if err == nil && res.IsSuccess() {
			glare = 0
		}
		c.mu.Unlock()
		if retry {
			// Glare (RFC 3261 14.1): retry after a random wait.
			glare++
			t := u.clock.NewTimer(time.Duration(2100+rand.IntN(1900)) * time.Millisecond)
			select {
			case <-t.C():
			case <-c.ended:
			case <-u.ctx.Done():
			}
			t.Stop()
			continue
		}
		if fatal != "" {
			u.endAndBye(c, fatal, code)
			c.mu.Lock()
			c.worker = false
			c.mu.Unlock()
			return
		}
	}
}

// jobDoneLocked applies the outcome of a worker transaction. fatal: end
// the call with BYE (reason, code); retry: glare, send again after a wait.
func (u *UA) jobDoneLocked(c *call, j midcallJob, res *sip.Response, err error, glare int) (fatal string, code int, retry bool) {
	c.offer = offerIdle
	what := "re-INVITE"
	if j.useUpdate {
		what = "UPDATE"
	}
	switch {
	case err != nil:
		if c.phase.live() && u.ctx.Err() == nil && err != errAborted {
			return what + " failed: " + err.Error(), 408, false
		}
	case res.IsSuccess():
		if j.body != nil && !j.useUpdate {
			if r, perr := parseSDP(res.Body()); perr == nil {
				if aerr := u.applyAnswerLocked(c, r); aerr != nil {
					c.log.Warn("unusable SDP answer to re-INVITE", "error", aerr)
				}
			} else {
				c.log.Warn("bad SDP answer to re-INVITE", "error", perr)
			}
		}
		c.hold.agreed = j.wantHold
		if c.timer.fromResponse(res) || (c.timer.interval > 0 && res.GetHeader("Session-Expires") == nil) {
			u.armSessionTimerLocked(c)
		}
		u.settleLocked(c)
	case res.StatusCode == 491 && glare < 3:
		if !j.refreshOnly {
			c.hold.agreed = !j.wantHold
		} else {
			c.refreshDue = true
		}
		return "", 0, true
	case res.StatusCode == 422:
		c.timer.tooBrief(res)
		if j.refreshOnly {
			c.refreshDue = true
		}
	case res.StatusCode == 481 || res.StatusCode == 408:
		// RFC 3261 12.2.1.2: the dialog is gone.
		return what + " failed: " + statusText(res), res.StatusCode, false
	case j.useUpdate && (res.StatusCode == 405 || res.StatusCode == 501):
		// Allow listed UPDATE but the peer does not take it (baresip
		// 1.0 answers 501): refresh with re-INVITE from now on.
		c.peerAllow = ""
		c.refreshDue = true
	default:
		c.log.Warn(what+" rejected; keeping the call", "status", statusText(res))
		c.hold.agreed = j.wantHold
		if j.refreshOnly {
			u.armSessionTimerLocked(c) // try again at the next half interval
		}
	}
	return "", 0, false
}
