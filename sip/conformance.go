package sip

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"

	"github.com/telestra/telestra-sip/sip/edge"
)

// udpRequestLimit is RFC 3261 §18.1.1's size for a request over UDP when
// the path MTU is unknown; above it a request must go over a congestion
// controlled transport. It does not apply to responses, which go back the
// way their request came (§18.2.2).
const udpRequestLimit = 1300

var tuneOnce sync.Once

// tuneSipgo sets sipgo's two process-wide knobs this UA needs, once per
// process and before any listener or transaction runs (they are package
// variables that sipgo reads unsynchronised):
//
//   - UDPMTUSize: the UDP size limit is lifted (see newEdge).
//   - Timer_M = 0: every INVITE client transaction of this UA is ended by
//     its owner on the final response (runOutgoing, reinvite), and the UA
//     core ACKs a 2xx and every retransmission of it itself
//     (onStrayResponse): RFC 3261 §17.1.1.2 and §13.2.2.4. sipgo keeps
//     RFC 6026's Accepted state instead, and its Terminate leaves Timer M
//     (64*T1) running, whose closure holds the transaction (the INVITE and
//     the 2xx with its SDP) for 32 s after every answered call: most of the
//     live heap under a steady call rate. With 0 the Accepted state ends as
//     soon as the 2xx is passed up. Timer D (an INVITE answered >= 300,
//     absorbing retransmissions of that answer) keeps its 32 s over UDP.
func tuneSipgo() {
	tuneOnce.Do(func() {
		sip.UDPMTUSize = 65535 + 200
		sip.Timer_M = 0
	})
}

// newEdge builds the layer in front of sipgo's listeners (package edge):
// it answers the RFC 4475 messages sipgo would drop or accept wrongly.
func (u *UA) newEdge() *edge.Edge {
	// sipgo refuses to write any UDP message above UDPMTUSize-200 bytes
	// (1300), responses included: a 200 with a few Record-Routes and an SDP
	// never reached the caller. The request rule is kept in beforeSend;
	// sipgo's maintainer points at this variable for it (emiago/sipgo#206,
	// #208). tuneSipgo, called by Start before any listener runs, sets it.
	return edge.New(edge.Config{
		UserAgent: u.cur().UserAgent,
		Supported: []string{"timer", "replaces"},
		Log:       u.log,
		Admit:     u.admit,
		Now:       u.clock.Now, // the rate limits run on the UA's clock
	})
}

// beforeSend keeps RFC 3261 §18.1.1 for a request of ours and, over TCP or
// TLS, has sipgo hold the connection (streams.go). A request over UDP
// larger than 1300 bytes goes over TCP instead, with its top Via saying so;
// a connect the far end refuses (a reset, an ICMP unreachable: an RFC 2543
// peer without TCP) sends it over UDP after all. Without a TCP listener,
// where the answer or a new connection from the far end would come, it
// fails and says why.
func (u *UA) beforeSend(ctx context.Context, req *sip.Request) error {
	if !strings.EqualFold(req.Transport(), "UDP") {
		if stream(req.Transport()) {
			return u.streams.ensure(ctx, req.Transport(), req.Destination(), nextHopName(req))
		}
		return nil
	}
	n := requestSize(req)
	if n <= udpRequestLimit {
		return nil
	}
	if !u.listening("TCP") {
		return fmt.Errorf("%s of %d bytes is over the %d-byte UDP limit of RFC 3261 §18.1.1 and needs TCP, which is not in sip-settings.transports: %w",
			req.Method, n, udpRequestLimit, sip.ErrUDPMTUCongestion)
	}
	u.sendOver(req, "TCP")
	err := u.streams.ensure(ctx, "TCP", req.Destination(), "")
	switch {
	case err == nil:
		u.log.Debug("request over TCP for its size (RFC 3261 §18.1.1)", "method", req.Method, "bytes", n, "to", req.Destination())
		return nil
	case refusedConnect(err):
		u.sendOver(req, "UDP")
		u.log.Info("request over UDP after all: the far end refused TCP (RFC 3261 §18.1.1)",
			"method", req.Method, "bytes", n, "to", req.Destination(), "error", err)
		return nil
	}
	return fmt.Errorf("%s of %d bytes needs TCP (RFC 3261 §18.1.1): %w", req.Method, n, err)
}

// sendOver moves req to transport ("UDP", "TCP"): its top Via names the
// transport and our port for it, and only UDP leaves from the listening
// socket (a TCP request with a local address would take sipgo's pool entry
// of any connection accepted on our port).
func (u *UA) sendOver(req *sip.Request, transport string) {
	req.SetTransport(transport)
	if v := req.Via(); v != nil {
		v.Transport = transport
		v.Port = u.portOf(transport)
	}
	req.Laddr = sip.Addr{}
	if transport == "UDP" {
		u.udpLaddr.Copy(&req.Laddr)
	}
}

// requestSize is len(req.String()) without building the string: every
// request we send passes beforeSend, and sipgo renders it again to
// send it.
func requestSize(req *sip.Request) int {
	var n byteCount
	req.StringWrite(&n)
	return int(n)
}

// byteCount is an io.StringWriter that only counts.
type byteCount int

func (n *byteCount) WriteString(s string) (int, error) {
	*n += byteCount(len(s))
	return len(s), nil
}

// uriUser is the user part of u unescaped: RFC 3261 §19.1.4 compares
// "%75ser" and "user" equal (RFC 4475 §3.1.1.3).
func uriUser(u sip.Uri) string {
	if s, err := url.PathUnescape(u.User); err == nil {
		return s
	}
	return u.User
}

// EdgeStats are the counters of malformed and refused traffic.
func (u *UA) EdgeStats() edge.Stats {
	if u.edge == nil {
		return edge.Stats{}
	}
	return u.edge.Stats()
}

// nextHopName is the host name of the URI a request is sent to (its first
// Route, else its Request-URI: what sipgo derives the destination from
// before pinDestination puts the resolved address there), or "" for an IP
// address. Over TLS that name is what the server's certificate must show
// (RFC 3261 §26.3.1, RFC 5922 §4), not the address it resolved to.
func nextHopName(req *sip.Request) string {
	host := req.Recipient.Host
	if r := req.Route(); r != nil {
		host = r.Address.Host
	}
	host = bareHost(host)
	if ipFamily(host) != 0 {
		return ""
	}
	return host
}
