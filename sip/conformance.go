package sip

import (
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
	// never reached the caller. The request rule is kept in checkRequestSize;
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

// checkRequestSize keeps RFC 3261 §18.1.1 for the requests we send: one
// over UDP larger than 1300 bytes fails (as sipgo made it before) rather
// than going out fragmented. Switching it to TCP is not done yet.
func checkRequestSize(req *sip.Request) error {
	if !strings.EqualFold(req.Transport(), "UDP") {
		return nil
	}
	if n := requestSize(req); n > udpRequestLimit {
		return fmt.Errorf("%s of %d bytes is over the %d-byte UDP limit of RFC 3261 §18.1.1: %w",
			req.Method, n, udpRequestLimit, sip.ErrUDPMTUCongestion)
	}
	return nil
}

// requestSize is len(req.String()) without building the string: every
// request we send passes checkRequestSize, and sipgo renders it again to
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
