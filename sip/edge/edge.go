// Package edge stands between the SIP sockets and sipgo's transport layer.
// It sees every message before sipgo does and answers, by itself, what
// sipgo would drop or mishandle: requests sipgo cannot parse get a 400 (or
// 416 for a Request-URI scheme it does not know) built from their Via,
// From, To, Call-ID and CSeq; well-formed requests RFC 3261 and RFC 4475
// say a UAS must refuse get 505, 400, 416, 420, 415 or 406 statelessly.
// Valid messages sipgo cannot take as they are (LWS around '=' in
// parameters, an RFC 2543 request without branch or From tag) are
// rewritten into an equivalent form. Everything else passes untouched.
//
//	UDP socket ──► PacketConn.ReadFrom ──► vet ──► sipgo (UDP transport)
//	TCP conn   ──► Conn.Read ─ frame ───► vet ──► sipgo (TCP transport)
//	                                       └──► stateless answer, log, count
//
// A TCP connection is one a Listener accepted or one we dialled (Stream).
//
// Log lines about rejected traffic are rate-limited per source and reason,
// and stateless answers per source, so a flood costs little.
package edge

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Config of an Edge.
type Config struct {
	// UserAgent goes into the Server header of stateless answers.
	UserAgent string
	// Supported are the option tags a Require may name (RFC 3261 §8.2.2.3).
	Supported []string
	// Log receives the rate-limited reports of rejected traffic.
	Log *slog.Logger
	// Now is the clock of the rate limits; nil means time.Now.
	Now func() time.Time
	// Admit screens every out-of-dialog request (no To tag) except ACK
	// and CANCEL, which belong to an INVITE transaction, by its source
	// address; nil admits everything. It runs on the socket's reader, so
	// it must not block (no I/O).
	Admit func(req *sip.Request, src netip.Addr) Admission
}

// Admission is what Config.Admit decides about a request.
type Admission int

// Admissions.
const (
	Admit          Admission = iota // hand it to the stack
	Refuse                          // answer 403 Forbidden statelessly
	RefuseSilently                  // drop it without an answer
)

// Stats counts what the edge did; every field only grows.
type Stats struct {
	Malformed uint64 // messages sipgo could not parse (answered 400/416/513 or dropped)
	Rejected  uint64 // well-formed requests the edge refused (505, 400, 416, 420, 415, 406)
	Dropped   uint64 // messages dropped without an answer (responses, ACKs, no Via, answer limit)
	Rewritten uint64 // valid requests rewritten for sipgo (LWS in parameters, RFC 2543 ids)
	Answers   uint64 // stateless answers sent
	LogLines  uint64 // log lines written about rejected traffic
	Untrusted uint64 // out-of-dialog requests Config.Admit refused (answered 403 or dropped)
}

// Edge vets messages; one serves every listener of a UA. Safe for
// concurrent use.
type Edge struct {
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
	parser *sip.Parser

	malformed, rejected, dropped, rewritten, answers, logLines, untrusted atomic.Uint64

	logLimit    *limiter // log lines per source and reason
	answerLimit *limiter // stateless answers per source

	tap atomic.Pointer[Tap]    // nil: no trace (tap.go)
	ua  atomic.Pointer[string] // Config.UserAgent, or SetUserAgent's

	closing atomic.Bool // Quiesce: drop what arrives
}

// Log and answer limits: one line per source and reason per logEvery, at
// most logBurst lines per logEvery in all; at most answersPerSecond
// stateless answers to one source.
const (
	logEvery         = 10 * time.Second
	logBurst         = 20
	answersPerSecond = 50
	excerptLen       = 80
)

// New returns an Edge.
func New(cfg Config) *Edge {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	e := &Edge{
		cfg: cfg, log: log, now: now, parser: sip.NewParser(),
		logLimit:    newLimiter(logEvery, 1, logBurst),
		answerLimit: newLimiter(time.Second, answersPerSecond, 0),
	}
	e.SetUserAgent(cfg.UserAgent)
	return e
}

// SetUserAgent replaces Config.UserAgent for the answers after it (a
// reload).
func (e *Edge) SetUserAgent(ua string) { e.ua.Store(&ua) }

// Quiesce makes the sockets drop every message that arrives from now on,
// for a stack that is closing: sipgo handles each message on a goroutine of
// its own, and one that runs after the socket closed would send its answer
// from a new socket.
func (e *Edge) Quiesce() { e.closing.Store(true) }

// Stats returns the counters.
func (e *Edge) Stats() Stats {
	return Stats{
		Malformed: e.malformed.Load(), Rejected: e.rejected.Load(), Dropped: e.dropped.Load(),
		Rewritten: e.rewritten.Load(), Answers: e.answers.Load(), LogLines: e.logLines.Load(),
		Untrusted: e.untrusted.Load(),
	}
}

// verdict is what to do with one message.
type verdict struct {
	pass      []byte // bytes for sipgo; nil: nothing
	reply     []byte // stateless answer to send back; nil: none
	closeConn bool   // stream: the framing is lost, close after the reply
}

// keepAlive reports a datagram or stream chunk of only CRLF/NUL, which
// sipgo handles itself (RFC 5626 keep-alives).
func keepAlive(b []byte) bool {
	for _, c := range b {
		if c != '\r' && c != '\n' && c != 0 {
			return false
		}
	}
	return true
}

var knownMethods = []string{"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK",
	"SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"}

// singleValue are headers a request may carry once (RFC 3261 §7.3.1,
// RFC 4475 §3.3.8).
var singleValue = []struct{ name, out string }{
	{"call-id", "Call-ID"}, {"from", "From"}, {"to", "To"}, {"cseq", "CSeq"},
	{"max-forwards", "Max-Forwards"}, {"content-length", "Content-Length"}, {"content-type", "Content-Type"},
}

// vet decides about one complete message b from src.
func (e *Edge) vet(b []byte, src net.Addr) verdict {
	// Nearly every message a UA receives is a response, and a response
	// only needs its start line here: no split of the whole header.
	start := startLine(b)
	method := methodOf(start)
	if method == "" {
		if _, err := e.parser.ParseSIP(b); err != nil {
			e.malformed.Add(1)
			e.drop(src, "unparseable response", start, err)
			return verdict{}
		}
		return verdict{pass: b}
	}
	raw := splitRaw(b)
	m, uri, version, lineOK := requestLine(raw.start)
	if lineOK && version != "SIP/2.0" && strings.HasPrefix(strings.ToUpper(version), "SIP/") {
		if m == "ACK" {
			e.dropped.Add(1)
			return verdict{}
		}
		e.rejected.Add(1)
		return e.answer(&raw, src, 505, "Version Not Supported", "SIP version "+version, nil)
	}
	msg, err := e.parser.ParseSIP(b)
	if err != nil {
		e.malformed.Add(1)
		if method == "ACK" {
			e.drop(src, "unparseable ACK", raw.start, err)
			return verdict{}
		}
		if lineOK && !knownScheme(uriScheme(strings.Trim(uri, "<>"))) && uriScheme(uri) != "" {
			return e.answer(&raw, src, 416, "Unsupported URI Scheme", "Request-URI scheme", err)
		}
		return e.answer(&raw, src, 400, "Bad Request", "unparseable request", err)
	}
	req, ok := msg.(*sip.Request)
	if !ok {
		e.malformed.Add(1)
		return e.answer(&raw, src, 400, "Bad Request", "unparseable request", nil)
	}
	if nb, nreq, what := e.rewrite(b, &raw, req); nb != nil {
		e.rewritten.Add(1)
		e.log.Debug("SIP request rewritten for the stack", "source", addrString(src), "what", what, "start", excerpt(raw.start))
		b, req, raw = nb, nreq, splitRaw(nb)
	}
	if v, screened := e.screen(&raw, req, src); screened {
		return v
	}
	code, reason, extra := e.check(&raw, req)
	if req.IsAck() {
		if code == 400 {
			// sipgo would answer an ACK it cannot match with a 400; an ACK
			// never gets an answer (RFC 3261 §17.2.1).
			e.rejected.Add(1)
			e.dropped.Add(1)
			e.drop(src, "broken ACK: "+reason, raw.start, nil)
			return verdict{}
		}
		return verdict{pass: b}
	}
	if code != 0 {
		e.rejected.Add(1)
		return e.answer(&raw, src, code, reason, reason, nil, extra...)
	}
	return verdict{pass: b}
}

// screen applies Config.Admit to an out-of-dialog request; screened is
// false when the request goes on.
func (e *Edge) screen(raw *rawMessage, req *sip.Request, src net.Addr) (v verdict, screened bool) {
	if e.cfg.Admit == nil || req.IsAck() || req.IsCancel() {
		return verdict{}, false
	}
	if to := req.To(); to == nil || to.Params.Has("tag") {
		return verdict{}, false
	}
	switch e.cfg.Admit(req, ipOf(src)) {
	case Refuse:
		e.untrusted.Add(1)
		return e.answerAt(slog.LevelWarn, raw, src, 403, "Forbidden", "untrusted source", nil), true
	case RefuseSilently:
		e.untrusted.Add(1)
		e.dropped.Add(1)
		e.drop(src, "untrusted source", raw.start, nil)
		return verdict{}, true
	}
	return verdict{}, false
}

// ipOf is the IP address of a socket address (IPv4-mapped made IPv4).
func ipOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.AddrPort().Addr().Unmap()
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case nil:
		return netip.Addr{}
	}
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// uriHasHeaders: a '?' after the host part of a SIP URI (in the user part
// it is a legal character, RFC 3261 §25.1 user-unreserved).
func uriHasHeaders(uri string) bool {
	if i := strings.LastIndexByte(uri, '@'); i >= 0 {
		uri = uri[i+1:]
	}
	return strings.Contains(uri, "?")
}

// gmtDate: RFC 3261 §20.17 dates end in GMT (UTC is taken too).
func gmtDate(d string) bool {
	f := strings.Fields(d)
	return len(f) > 0 && (f[len(f)-1] == "GMT" || f[len(f)-1] == "UTC")
}

func knownScheme(s string) bool { return s == "sip" || s == "sips" || s == "tel" }

// check applies the rules sipgo does not: the status to answer (0 for
// none), its reason phrase and extra header lines.
func (e *Edge) check(raw *rawMessage, req *sip.Request) (int, string, []string) {
	for _, h := range []struct{ name, out string }{{"from", "From"}, {"to", "To"}, {"call-id", "Call-ID"}, {"cseq", "CSeq"}} {
		if _, ok := raw.first(h.name); !ok {
			return 400, "Missing " + h.out, nil
		}
	}
	for _, h := range singleValue {
		if len(raw.all(h.name)) > 1 {
			return 400, "Multiple " + h.out + " Values", nil
		}
	}
	method := string(req.Method)
	if cseq := req.CSeq(); cseq != nil && string(cseq.MethodName) != method && slices.Contains(knownMethods, method) {
		// An unknown method with a mismatched CSeq gets its 501 from the UA
		// (RFC 4475 §3.1.2.18 prefers it to a 400).
		return 400, "CSeq Method Mismatch", nil
	}
	scheme := strings.ToLower(req.Recipient.Scheme)
	if !knownScheme(scheme) {
		return 416, "Unsupported URI Scheme", nil
	}
	if _, uri, _, _ := requestLine(raw.start); (scheme == "sip" || scheme == "sips") && uriHasHeaders(uri) {
		// RFC 3261 §19.1.5: headers are not allowed in a Request-URI
		// (RFC 4475 §3.1.2.11).
		return 400, "Headers In Request-URI", nil
	}
	if date, ok := raw.first("date"); ok && !gmtDate(date) {
		// RFC 3261 §20.17: SIP dates are GMT only (RFC 4475 §3.1.2.12).
		return 400, "Invalid Date", nil
	}
	if method != "CANCEL" {
		if bad := e.unsupported(raw.all("require")); len(bad) > 0 {
			return 420, "Bad Extension", []string{"Unsupported: " + strings.Join(bad, ", ")}
		}
	}
	if method == "INVITE" || method == "UPDATE" {
		if len(req.Body()) > 0 {
			ct, _ := raw.first("content-type")
			mt, _, _ := strings.Cut(ct, ";")
			if !strings.EqualFold(strings.TrimSpace(mt), "application/sdp") {
				return 415, "Unsupported Media Type", []string{"Accept: application/sdp"}
			}
			if enc, ok := raw.first("content-encoding"); ok && !strings.EqualFold(strings.TrimSpace(enc), "identity") {
				return 415, "Unsupported Media Type", []string{"Accept-Encoding: identity", "Accept: application/sdp"}
			}
		}
		if accepts := raw.all("accept"); len(accepts) > 0 && !acceptsSDP(accepts) {
			return 406, "Not Acceptable", []string{"Accept: application/sdp"}
		}
	}
	return 0, "", nil
}

func (e *Edge) unsupported(requires []string) []string {
	var bad []string
	for _, v := range requires {
		for _, o := range strings.Split(v, ",") {
			o = strings.TrimSpace(o)
			if o != "" && !slices.ContainsFunc(e.cfg.Supported, func(s string) bool { return strings.EqualFold(s, o) }) {
				bad = append(bad, o)
			}
		}
	}
	return bad
}

func acceptsSDP(accepts []string) bool {
	for _, v := range accepts {
		for _, t := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(t, ";")
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case "application/sdp", "application/*", "*/*", "":
				return true
			}
		}
	}
	return false
}

// answer sends a stateless response to raw (unless it is an ACK, has no
// Via, or src has had its share of answers this second), and logs.
func (e *Edge) answer(raw *rawMessage, src net.Addr, code int, reason, why string, err error, extra ...string) verdict {
	return e.answerAt(slog.LevelInfo, raw, src, code, reason, why, err, extra...)
}

// answerAt is answer with the level of its log line.
func (e *Edge) answerAt(level slog.Level, raw *rawMessage, src net.Addr, code int, reason, why string, err error, extra ...string) verdict {
	if methodOf(raw.start) == "ACK" {
		e.dropped.Add(1)
		return verdict{}
	}
	if _, ok := raw.first("via"); !ok {
		e.dropped.Add(1)
		e.drop(src, why+" without Via", raw.start, err)
		return verdict{}
	}
	if !e.answerLimit.allow(hostOf(src), e.now()) {
		e.dropped.Add(1)
		e.drop(src, "answer rate limit", raw.start, err)
		return verdict{}
	}
	if ua := *e.ua.Load(); ua != "" {
		extra = append(extra, "Server: "+ua)
	}
	e.answers.Add(1)
	e.report(level, src, why, raw.start, err, "answer", code)
	return verdict{reply: response(raw, code, reason, src, extra)}
}

// drop logs (rate-limited) a message dropped without an answer.
func (e *Edge) drop(src net.Addr, why, start string, err error) {
	e.report(slog.LevelWarn, src, why, start, err)
}

func (e *Edge) report(level slog.Level, src net.Addr, why, start string, err error, attrs ...any) {
	ok, suppressed := e.logLimit.allowReport(hostOf(src)+"|"+why, e.now())
	if !ok {
		return
	}
	e.logLines.Add(1)
	args := []any{"source", addrString(src), "reason", why, "start", excerpt(start)}
	if err != nil {
		args = append(args, "error", truncate(err.Error(), excerptLen))
	}
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	args = append(args, attrs...)
	e.log.Log(context.Background(), level, "SIP message rejected", args...)
}

func excerpt(s string) string { return truncate(strings.ToValidUTF8(s, "?"), excerptLen) }

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func hostOf(a net.Addr) string {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.IP.String()
	case *net.TCPAddr:
		return a.IP.String()
	case nil:
		return "?"
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

func addrString(a net.Addr) string {
	if a == nil {
		return "?"
	}
	return a.String()
}

// tooBig answers a message larger than the stack reads (513, RFC 3261
// §21.5.14) when it is a request with a Via; else drops it.
func (e *Edge) tooBig(b []byte, src net.Addr) verdict {
	e.malformed.Add(1)
	raw := splitRaw(b)
	if methodOf(raw.start) == "" {
		e.dropped.Add(1)
		e.drop(src, "oversized response", raw.start, fmt.Errorf("%d bytes", len(b)))
		return verdict{}
	}
	return e.answer(&raw, src, 513, "Message Too Large", "oversized request", fmt.Errorf("%d bytes", len(b)))
}
