// failover.go owns registrar failover: an account with several servers
// registers to the first that answers, moves to the next when one stops
// answering (time-out, transport error, 5xx/6xx), probes the primary with
// OPTIONS while on a backup and returns to it when it answers. The
// registration loop (register.go) drives it; calls in progress keep the
// route set they were set up with, new calls use the server in use.
package sip

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"
)

// effLocked is the account's effective settings with Server set to the
// server in use.
func (a *account) effLocked() Account {
	e := a.eff
	if s := a.eff.servers(); len(s) > 0 {
		e.Server = s[min(max(a.cur, 0), len(s)-1)]
	}
	return e
}

// primaryLocked returns the first server and whether a backup is in use.
func (a *account) primaryLocked() (string, bool) {
	s := a.eff.servers()
	if len(s) == 0 {
		return "", false
	}
	return s[0], a.cur > 0 && a.cur < len(s)
}

// failsOver reports whether a REGISTER outcome means the server is down,
// rather than refusing us: no answer (408), a transport error (503 made by
// us) or a 5xx/6xx. A 401/403/404 would be the same at every server.
func failsOver(code int) bool { return code == 408 || code >= 500 }

// failoverLocked moves the account to its next server after a failed
// REGISTER with code; wrapped is true when that is the first server again
// (every server failed: the back-off applies).
func (a *account) failoverLocked(code int) (to string, wrapped, ok bool) {
	s := a.eff.servers()
	if len(s) < 2 || !failsOver(code) {
		return "", false, false
	}
	a.cur = (a.cur + 1) % len(s)
	return s[a.cur], a.cur == 0, true
}

// probeServer sends OPTIONS to server and reports whether it answered at
// all: any final response, even 404 or 407, shows a live server.
func (u *UA) probeServer(ctx context.Context, a *account, server string) bool {
	srvURI, err := serverURI(server)
	if err != nil {
		return false
	}
	su := srvURI
	u.mu.Lock()
	eff := a.effLocked()
	u.mu.Unlock()
	host := u.localHost(su.Host)
	req := sip.NewRequest(sip.OPTIONS, *su.Clone())
	tp := u.transportTo(*srvURI, "")
	req.AppendHeader(u.newViaOver(host, tp))
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	aor := sip.Uri{Scheme: "sip", User: eff.User, Host: su.Host}
	from := &sip.FromHeader{DisplayName: displayOf(eff), Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", newTag())
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: *su.Clone(), Params: sip.NewParams()})
	cid := sip.CallIDHeader(newCallID())
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: uint32(rand.IntN(10000)) + 1, MethodName: sip.OPTIONS})
	req.AppendHeader(u.contactHeaderOver(eff.User, host, tp))
	req.AppendHeader(sip.NewHeader("Accept", "application/sdp"))
	u.addUserAgent(req)
	req.SetBody(nil)
	u.prepareOver(req, tp)
	pctx, cancel := context.WithTimeout(ctx, u.cfg.RegisterTimeout)
	defer cancel()
	res, err := u.do(pctx, req)
	if err != nil {
		u.log.Debug("primary server still silent", "account", a.plan.Name, "server", server, "error", err)
		return false
	}
	u.log.Debug("primary server answered the probe", "account", a.plan.Name, "server", server, "status", strconv.Itoa(res.StatusCode))
	return true
}

// unregisterAt removes the binding a backup server holds after the account
// went back to its primary; best effort, bounded, so that a backup that
// died meanwhile does not stall the registration loop.
func (u *UA) unregisterAt(a *account, old Account) {
	ctx, cancel := context.WithTimeout(u.ctx, 5*time.Second)
	defer cancel()
	u.sendUnregister(ctx, a, old, slog.LevelInfo, " at the backup server")
}
