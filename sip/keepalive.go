// keepalive.go owns the keepalive of a registration. Without it a server
// that hangs (a SIGSTOPped or wedged PBX) is noticed only at the next
// REGISTER refresh, up to 2/3 of the granted lifetime later plus
// register-timeout; calls meant for the account are lost meanwhile. So, as
// phones do, a registered account sends OPTIONS to the server it is
// registered at every keepalive-interval, over the transport of its
// REGISTER (the same UDP socket or TCP/TLS connection). Any answer, even
// a 404 or 407, shows a live server. No answer within register-timeout, or
// a transport error, is the server being down: the same outcome as a
// REGISTER that got no answer, so an account with several servers moves
// to the next and one with one server is unreachable and retries. A time-out
// counts only once that server has answered a keepalive: a registrar that
// ignores OPTIONS from its phones (keeping them alive by the REGISTER
// refresh, as UCM's line side does) would otherwise be "down" at every
// ping, and the account would fail over in a loop.
//
// OPTIONS rather than the CRLF ping of RFC 5626 §4.4.1: that is defined
// for an outbound flow the registrar agreed to (Supported: outbound, a
// reg-id), which neither Kamailio's default configuration nor UCM offers,
// and its pong is a bare CRLF that sipgo's stream reader swallows, so
// nothing above it could see the answer. OPTIONS works over UDP too and
// proves the server's SIP layer, not just its kernel, is alive.
package sip

import (
	"context"
	"errors"
	"fmt"
)

// keepalive pings the server the account is registered at. down reports
// the server as down, with res the failure recorded on the account (as
// registerOnce records a REGISTER's); gen is the account's generation when
// the ping began: a command since then makes the outcome stale.
func (u *UA) keepalive(ctx context.Context, a *account, gen uint64) (res regResult, down bool) {
	u.mu.Lock()
	eff := a.effLocked()
	u.mu.Unlock()
	timeout := u.cur().RegisterTimeout
	tctx, cancel := context.WithTimeout(ctx, timeout)
	_, err := u.pingServer(tctx, a, eff.Server)
	timedOut := errors.Is(tctx.Err(), context.DeadlineExceeded)
	cancel()
	switch {
	case err == nil:
		u.mu.Lock()
		if gen == a.gen && a.kaAnswered != eff.Server {
			a.kaAnswered = eff.Server
		}
		u.mu.Unlock()
		return regResult{}, false
	case ctx.Err() != nil:
		return regResult{}, false // aborted by a command or shutdown
	case timedOut:
		u.mu.Lock()
		silent := a.kaAnswered != eff.Server
		u.mu.Unlock()
		if silent {
			return regResult{}, false // never answered one: its REGISTER refresh judges it
		}
		res = regResult{code: 408, unreachable: true,
			reason: fmt.Sprintf("408 Request Timeout (no answer to the keepalive OPTIONS within %v)", timeout)}
	default:
		res = regFailure(err)
		res.reason = fmt.Sprintf("%s (keepalive OPTIONS)", res.reason)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if gen != a.gen {
		return regResult{}, false
	}
	return u.failedLocked(a, eff, res), true
}
