package sip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Hosts are kept bare inside the UA ("::1", as in Via, SDP and the socket
// API); a URI gets the bracketed form ("[::1]", RFC 3261 §25.1
// IPv6reference). sipgo parses URI hosts with their brackets and prints a
// bare IPv6 host bracketed, but joins Destination() without them, so every
// URI we build must carry the brackets itself.

// dnsTimeout bounds one host-name lookup.
const dnsTimeout = 5 * time.Second

// Resolver looks up the addresses of a host name (*net.Resolver does).
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// bareHost strips the brackets of an IPv6 reference: "[::1]" -> "::1".
func bareHost(h string) string {
	if len(h) > 2 && h[0] == '[' && h[len(h)-1] == ']' {
		return h[1 : len(h)-1]
	}
	return h
}

// uriHost is h as a URI host: an IPv6 literal in brackets.
func uriHost(h string) string {
	h = bareHost(h)
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// hostPort joins host and port for the socket API ("[::1]:5060").
func hostPort(host string, port int) string {
	return net.JoinHostPort(bareHost(host), strconv.Itoa(port))
}

// splitHostPort splits "host:port" or "[v6]:port" into a bare host and
// the port; without a port the whole string is the host.
func splitHostPort(s string) (string, string, error) {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return bareHost(s), "", fmt.Errorf("%q: %w", s, err)
	}
	return h, p, nil
}

// ipFamily is 4 or 6 for an IP literal (bracketed or not), 0 otherwise.
// An IPv4-mapped IPv6 address counts as IPv4.
func ipFamily(h string) int {
	a, err := netip.ParseAddr(bareHost(h))
	switch {
	case err != nil:
		return 0
	case a.Unmap().Is4():
		return 4
	}
	return 6
}

// listenNetwork is the network for net.Listen* on address: "0.0.0.0" and
// other IPv4 addresses bind IPv4 only (as the plan documents), "::" or ""
// bind both families (Linux dual stack), another IPv6 address IPv6 only.
func listenNetwork(proto, address string) string {
	a, err := netip.ParseAddr(bareHost(address))
	switch {
	case err != nil:
		return proto
	case a.Unmap().Is4():
		return proto + "4"
	case a.IsUnspecified():
		return proto
	}
	return proto + "6"
}

// bindFamily is the family our sockets can talk to: 4, 6, or 0 for both.
func (u *UA) bindFamily() int {
	if a, err := netip.ParseAddr(bareHost(u.cur().Address)); err == nil && a.IsUnspecified() && a.Is6() {
		return 0
	}
	return ipFamily(u.cur().Address)
}

// resolve returns the address of host (an IP literal or a name) that our
// sockets can reach: the first the resolver gives in the bound family, so
// that an account's Via, Contact, SDP and packets all use one family.
func (u *UA) resolve(ctx context.Context, host string) (netip.Addr, error) {
	host = bareHost(host)
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	r := u.cur().Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("resolve %s: %w", host, err)
	}
	fam := u.bindFamily()
	for _, a := range addrs {
		a = a.Unmap()
		if fam == 0 || fam == 4 && a.Is4() || fam == 6 && a.Is6() {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("resolve %s: no IPv%d address (sip-settings.address is %s)", host, fam, u.cur().Address)
}

// pinDestination puts the address resolve chose for a host name in req's
// destination (Route or Request-URI), so that sipgo sends to the family
// localHost chose for Via, Contact and SDP. It only reads what hostInfo
// resolved before (no I/O: callers may hold u.mu); a name not resolved yet
// is left to sipgo.
func (u *UA) pinDestination(req *sip.Request) {
	host, port, err := net.SplitHostPort(req.Destination())
	if err != nil || ipFamily(host) != 0 {
		return
	}
	if info, ok := u.hosts.get(host); ok && info.remote.IsValid() {
		req.SetDestination(net.JoinHostPort(info.remote.String(), port))
	}
}

// hostTTL is how long a resolved host stays valid for hostInfo; the
// registration refresh of an account re-resolves its server about as
// often, so a registrar that moves is followed.
const hostTTL = time.Minute

// hostInfo is what we know of a peer host: the address we reach it at and
// our address towards it.
type hostInfo struct {
	remote netip.Addr // invalid: not resolved
	local  string     // our interface address towards remote
	at     time.Time
}

// hostMemo caches hostInfo by bare host; entries are stamped with the UA's
// clock (u.clock), so a test moves the TTL as it moves every other timer.
type hostMemo struct {
	mu sync.Mutex
	m  map[string]hostInfo
}

func (m *hostMemo) get(host string) (hostInfo, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.m[bareHost(host)]
	return h, ok
}

func (m *hostMemo) put(host string, h hostInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]hostInfo{}
	}
	m.m[host] = h
}

// hostInfo resolves dest (at most once per hostTTL) and asks the kernel
// which local address routes to it. It does I/O: never call it with u.mu
// held.
func (u *UA) hostInfo(dest string) hostInfo {
	dest = bareHost(dest)
	fallback := hostInfo{local: loopbackOf(u.bindFamily())}
	if dest == "" {
		return fallback
	}
	now := u.clock.Now()
	if h, ok := u.hosts.get(dest); ok && now.Sub(h.at) < hostTTL {
		return h
	}
	ctx, cancel := context.WithTimeout(u.ctxOrBackground(), dnsTimeout)
	ip, err := u.resolve(ctx, dest)
	cancel()
	if err != nil {
		u.log.Debug("cannot resolve host", "host", dest, "error", err)
		return fallback // not remembered: the next request tries again
	}
	h := hostInfo{remote: ip, local: loopbackOf(ipFamily(ip.String())), at: now}
	// A UDP "connection" sends nothing; it only asks the kernel for the route.
	if c, err := net.Dial("udp", hostPort(ip.String(), 5060)); err == nil {
		if la, ok := c.LocalAddr().(*net.UDPAddr); ok && !la.IP.IsUnspecified() {
			h.local = la.IP.String()
		}
		c.Close()
	}
	u.hosts.put(dest, h)
	return h
}

func (u *UA) ctxOrBackground() context.Context {
	if u.ctx != nil {
		return u.ctx
	}
	return context.Background()
}

// loopbackOf is the loopback address of host's family.
func loopbackOf(family int) string {
	if family == 6 {
		return "::1"
	}
	return "127.0.0.1"
}
