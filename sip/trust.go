// trust.go owns whom an account listens to: which sources may send it
// out-of-dialog requests (screened in sip/edge before sipgo sees them),
// and whose digest challenges it answers (only its servers', so that a
// stranger's 401/407 never harvests a crackable digest: SIPDigestLeak).
package sip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/emiago/sipgo/sip"

	"github.com/telestra/telestra-sip/sip/edge"
)

// Accept is an account's accept-from: the sources whose out-of-dialog
// requests (INVITE, OPTIONS, MESSAGE, REFER, ...) reach the account. The
// zero value is "server": the resolved addresses of the account's servers,
// or anyone for an account without a server. Trust is by IP address; the
// source port is not compared (a PBX sends from several ports).
type Accept struct {
	Any      bool           // anyone ("any")
	Prefixes []netip.Prefix // these networks, besides the servers
}

// errUntrustedChallenge: a 401/407 from somewhere other than the account's
// servers is not answered.
var errUntrustedChallenge = errors.New("challenge does not come from the account's server; no credentials sent")

// servers lists the account's servers in priority order.
func (a Account) servers() []string {
	if a.Server == "" {
		return nil
	}
	return append([]string{a.Server}, a.Backups...)
}

// serverHost is the bare host of a server entry ("" if it does not parse).
func serverHost(server string) string {
	u, err := serverURI(server)
	if err != nil {
		return ""
	}
	return bareHost(u.Host)
}

// setServersLocked recomputes the account's known server addresses after
// its servers changed: IP literals at once (no I/O, so a server is trusted
// from the first packet), names keep what was resolved for them until
// resolveServers looks them up again.
func (a *account) setServersLocked() {
	old := a.addrs
	a.addrs = map[string][]netip.Addr{}
	for _, s := range a.eff.servers() {
		h := serverHost(s)
		if h == "" {
			continue
		}
		if ip, err := netip.ParseAddr(h); err == nil {
			a.addrs[h] = []netip.Addr{ip.Unmap()}
		} else {
			a.addrs[h] = old[h]
		}
	}
}

// resolveServers looks up the account's server names (A and AAAA), for
// trust and for answering challenges. It does I/O: never with u.mu held.
func (u *UA) resolveServers(ctx context.Context, a *account) {
	u.mu.Lock()
	var names []string
	for h := range a.addrs {
		if _, err := netip.ParseAddr(h); err != nil {
			names = append(names, h)
		}
	}
	u.mu.Unlock()
	var r Resolver = net.DefaultResolver
	if u.cur().Resolver != nil {
		r = u.cur().Resolver
	}
	for _, h := range names {
		lctx, cancel := context.WithTimeout(ctx, dnsTimeout)
		ips, err := r.LookupNetIP(lctx, "ip", h)
		cancel()
		if err != nil {
			u.log.Debug("cannot resolve server", "account", a.plan.Name, "server", h, "error", err)
			continue // keep what we had: a DNS hiccup must not untrust the PBX
		}
		for i := range ips {
			ips[i] = ips[i].Unmap()
		}
		u.mu.Lock()
		if _, still := a.addrs[h]; still {
			a.addrs[h] = ips
		}
		u.mu.Unlock()
	}
}

// isServerLocked reports whether ip is an address of one of the account's
// servers.
func (a *account) isServerLocked(ip netip.Addr) bool {
	for _, ips := range a.addrs {
		if slices.Contains(ips, ip) {
			return true
		}
	}
	return false
}

// acceptsLocked applies the account's accept-from to a source address.
func (a *account) acceptsLocked(ip netip.Addr) bool {
	acc := a.eff.AcceptFrom
	if acc.Any || (len(a.eff.servers()) == 0 && len(acc.Prefixes) == 0) {
		return true
	}
	return a.isServerLocked(ip) || prefixesContain(acc.Prefixes, ip)
}

func prefixesContain(list []netip.Prefix, ip netip.Addr) bool {
	for _, p := range list {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// admit is the edge's screen (edge.Config.Admit) for out-of-dialog
// requests: [sip-settings] trusted sources, our own local calls, and the
// accept-from of the account the request is for. A request for no account
// is admitted when some account would take it from there (it then gets its
// 404, or the 200 of an OPTIONS). It runs on a socket reader: no I/O.
func (u *UA) admit(req *sip.Request, src netip.Addr) edge.Admission {
	if prefixesContain(u.cur().Trusted, src) {
		return edge.Admit
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if cid := req.CallID(); cid != nil && u.dialogs[cid.Value()+"|"+fromTag(req)] != nil {
		// Our own INVITE to a local account: its Call-ID and From tag are ours.
		return edge.Admit
	}
	refuse := edge.Refuse
	if u.cur().RejectSilently {
		refuse = edge.RefuseSilently
	}
	if a := u.matchAccountLocked(req); a != nil {
		if a.acceptsLocked(src) {
			return edge.Admit
		}
		a.refused++
		return refuse
	}
	for _, a := range u.accounts {
		if a.acceptsLocked(src) {
			return edge.Admit
		}
	}
	return refuse
}

// credsLocked are the account's digest credentials and the servers
// allowed to challenge for them (account fields: UA.mu).
func (a *account) credsLocked() credentials {
	cr := credentials{user: a.authUser(), pass: a.eff.Pass, account: a.plan.Name}
	for _, ips := range a.addrs {
		cr.servers = append(cr.servers, ips...)
	}
	return cr
}

// authorize adds credentials for the challenge in res to req, but only
// when res comes from one of the account's servers (directly, or as the
// next hop of a dialog's route set): a challenge from anyone else fails
// the request with a log line, never with a digest response.
func (u *UA) authorize(req *sip.Request, res *sip.Response, cr credentials) error {
	src, err := netip.ParseAddrPort(res.Source())
	if err != nil || !slices.Contains(cr.servers, src.Addr().Unmap()) {
		u.log.Warn("digest challenge not answered: it does not come from the account's server",
			"account", cr.account, "method", string(req.Method), "from", res.Source(), "status", statusText(res))
		return fmt.Errorf("%s from %s: %w", statusText(res), res.Source(), errUntrustedChallenge)
	}
	return authorize(req, res, cr)
}
