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

var liftUDPLimit sync.Once

// raiseUDPLimit lifts sipgo's UDP size limit once per process (see newEdge).
func raiseUDPLimit() { liftUDPLimit.Do(func() { sip.UDPMTUSize = 65535 + 200 }) }

// newEdge builds the layer in front of sipgo's listeners (package edge):
// it answers the RFC 4475 messages sipgo would drop or accept wrongly.
func (u *UA) newEdge() *edge.Edge {
	// sipgo refuses to write any UDP message above UDPMTUSize-200 bytes
	// (1300), responses included: a 200 with a few Record-Routes and an SDP
	// never reached the caller. The request rule is kept in checkRequestSize;
	// sipgo's maintainer points at this variable for it (emiago/sipgo#206,
	// #208). Set once, before any listener runs, so no reader races it.
	raiseUDPLimit()
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
	if n := len(req.String()); n > udpRequestLimit {
		return fmt.Errorf("%s of %d bytes is over the %d-byte UDP limit of RFC 3261 §18.1.1: %w",
			req.Method, n, udpRequestLimit, sip.ErrUDPMTUCongestion)
	}
	return nil
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
