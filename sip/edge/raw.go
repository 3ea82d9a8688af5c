package edge

import (
	"bytes"
	"hash/fnv"
	"net"
	"strconv"
	"strings"
)

// rawMessage is a message split into its text parts without trusting its
// grammar: enough to answer a request sipgo cannot parse.
type rawMessage struct {
	start   string   // first line, as received
	headers []header // unfolded, in order
	body    []byte
	ended   bool // the empty line ending the header was seen
}

type header struct {
	name  string // canonical: lower case, compact forms expanded
	value string // unfolded, trimmed
}

// compact forms of RFC 3261 §7.3.3 and the extensions we meet.
var compactNames = map[string]string{
	"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
	"c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
	"v": "via", "o": "event", "u": "allow-events", "r": "refer-to", "x": "session-expires",
}

func canonicalName(n string) string {
	n = strings.ToLower(strings.TrimSpace(n))
	if long, ok := compactNames[n]; ok {
		return long
	}
	return n
}

// headerEnd is the offset just past the empty line ending the header, or
// -1. Bare LF line ends are accepted as sipgo accepts them.
func headerEnd(b []byte) int {
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	if i := bytes.Index(b, []byte("\n\n")); i >= 0 {
		return i + 2
	}
	return -1
}

// startLine is splitRaw(b).start without splitting the rest: the text up
// to the first LF, less the CR of a CRLF.
func startLine(b []byte) string {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return string(b)
}

func splitRaw(b []byte) rawMessage {
	var m rawMessage
	head := b
	if end := headerEnd(b); end >= 0 {
		head, m.body, m.ended = b[:end], b[end:], true
	}
	lines := strings.Split(strings.ReplaceAll(string(head), "\r\n", "\n"), "\n")
	if len(lines) == 0 {
		return m
	}
	m.start = lines[0]
	for _, l := range lines[1:] {
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && len(m.headers) > 0 {
			h := &m.headers[len(m.headers)-1]
			h.value = strings.TrimSpace(h.value + " " + strings.TrimSpace(l))
			continue
		}
		name, value, ok := strings.Cut(l, ":")
		if !ok {
			m.headers = append(m.headers, header{name: "", value: l})
			continue
		}
		m.headers = append(m.headers, header{name: canonicalName(name), value: strings.TrimSpace(value)})
	}
	return m
}

func (m *rawMessage) all(name string) []string {
	var out []string
	for _, h := range m.headers {
		if h.name == name {
			out = append(out, h.value)
		}
	}
	return out
}

func (m *rawMessage) first(name string) (string, bool) {
	for _, h := range m.headers {
		if h.name == name {
			return h.value, true
		}
	}
	return "", false
}

// requestLine splits a request line by single spaces as RFC 3261 §7.1
// writes it; ok is false for anything else (extra spaces, a response).
func requestLine(start string) (method, uri, version string, ok bool) {
	parts := strings.Split(start, " ")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || strings.HasPrefix(parts[0], "SIP/") {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// methodOf is the first token of a request line ("" for a response).
func methodOf(start string) string {
	if strings.HasPrefix(start, "SIP/") {
		return ""
	}
	m, _, _ := strings.Cut(start, " ")
	return m
}

// uriScheme is the scheme of a URI ("" when it has none).
func uriScheme(uri string) string {
	s, _, ok := strings.Cut(uri, ":")
	if !ok || s == "" {
		return ""
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.') {
			return ""
		}
	}
	return strings.ToLower(s)
}

// hasParam reports whether a header value has parameter name (outside
// quotes and <>), tolerating LWS around ';' and '='.
func hasParam(value, name string) bool {
	for _, p := range params(value) {
		k, _, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), name) {
			return true
		}
	}
	return false
}

// params are the ;-separated parameters of a header value, outside
// quotes and angle brackets, up to the end of its first list element.
func params(value string) []string {
	var out []string
	start := -1
	out0 := outside(value)
	for i := 0; i < len(value); i++ {
		if !out0[i] {
			continue
		}
		switch value[i] {
		case ';':
			if start >= 0 {
				out = append(out, value[start:i])
			}
			start = i + 1
		case ',':
			// The next value of a list begins: its parameters are not ours.
			if start >= 0 {
				out = append(out, value[start:i])
			}
			return out
		}
	}
	if start >= 0 {
		out = append(out, value[start:])
	}
	return out
}

// outside marks the bytes of v that are neither in a quoted string (with
// its \ escapes) nor between < and >, nor the quotes and brackets.
func outside(v string) []bool {
	mask := make([]bool, len(v))
	inQuote, inAngle, esc := false, false, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case esc:
			esc = false
		case inQuote && c == '\\':
			esc = true
		case c == '"':
			inQuote = !inQuote
		case inQuote:
		case c == '<':
			inAngle = true
		case c == '>':
			inAngle = false
		case inAngle:
		default:
			mask[i] = true
		}
	}
	return mask
}

// statelessTag is the To tag of a stateless response: the same for every
// retransmission of one request (RFC 3261 §8.2.7).
func statelessTag(m *rawMessage) string {
	h := fnv.New64a()
	for _, n := range []string{"call-id", "from", "via", "cseq"} {
		v, _ := m.first(n)
		h.Write([]byte(v))
		h.Write([]byte{0})
	}
	return "e" + strconv.FormatUint(h.Sum64(), 36)
}

// response builds a stateless response to m (RFC 3261 §8.2.6): the Vias,
// From, To (with a tag), Call-ID and CSeq as received, so that the sender
// can match it even when the request is broken elsewhere. src fills the
// top Via's empty rport (RFC 3581).
func response(m *rawMessage, code int, reason string, src net.Addr, extra []string) []byte {
	var b bytes.Buffer
	b.WriteString("SIP/2.0 ")
	b.WriteString(strconv.Itoa(code))
	b.WriteString(" ")
	b.WriteString(reason)
	b.WriteString("\r\n")
	firstVia := true
	for _, h := range m.headers {
		if h.name != "via" {
			continue
		}
		v := h.value
		if firstVia {
			v = fillRport(v, src)
			firstVia = false
		}
		b.WriteString("Via: " + v + "\r\n")
	}
	for _, n := range []struct{ name, out string }{{"from", "From"}, {"to", "To"}, {"call-id", "Call-ID"}, {"cseq", "CSeq"}} {
		v, ok := m.first(n.name)
		if !ok {
			continue
		}
		if n.name == "to" && code != 100 && !hasParam(v, "tag") {
			v += ";tag=" + statelessTag(m)
		}
		b.WriteString(n.out + ": " + v + "\r\n")
	}
	for _, e := range extra {
		b.WriteString(e + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return b.Bytes()
}

// fillRport completes a bare rport in the first value of a Via header.
func fillRport(via string, src net.Addr) string {
	ua, ok := src.(*net.UDPAddr)
	if !ok {
		if ta, tok := src.(*net.TCPAddr); tok {
			ua = &net.UDPAddr{IP: ta.IP, Port: ta.Port}
		} else {
			return via
		}
	}
	first, rest, list := strings.Cut(via, ",")
	ps := strings.Split(first, ";")
	found := false
	for i, p := range ps {
		if i > 0 && strings.EqualFold(strings.TrimSpace(p), "rport") {
			ps[i] = "rport=" + strconv.Itoa(ua.Port) + ";received=" + ua.IP.String()
			found = true
		}
	}
	if !found {
		return via
	}
	out := strings.Join(ps, ";")
	if list {
		out += "," + rest
	}
	return out
}
