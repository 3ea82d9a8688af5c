package edge

import (
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Headers whose parameters sipgo reads: LWS around ';', '=' and ',' there
// is legal (RFC 3261 §25.1, RFC 4475 §3.1.1.1) but sipgo keeps it in the
// parameter names, so "tag = x" is no tag.
var paramHeaders = []string{"from", "to", "via", "contact", "route", "record-route"}

// rewrite returns b in a form sipgo handles the way RFC 3261 means, with
// the request parsed again and what was done; nil when b needs nothing.
func (e *Edge) rewrite(b []byte, raw *rawMessage, req *sip.Request) ([]byte, *sip.Request, string) {
	var did []string
	out := *raw
	out.headers = append([]header(nil), raw.headers...)
	changed := false
	for i, h := range out.headers {
		if !slices.Contains(paramHeaders, h.name) {
			continue
		}
		if n := squeezeLWS(h.value); n != h.value {
			out.headers[i].value = n
			changed = true
		}
	}
	if changed {
		did = append(did, "LWS in parameters")
		if b, req = e.reparse(&out); req == nil {
			return nil, nil, ""
		}
	}
	if needs2543Branch(req) {
		for i, h := range out.headers {
			if h.name == "via" {
				out.headers[i].value = withBranch(h.value, rfc2543Branch(&out))
				break
			}
		}
		did = append(did, "RFC 2543 transaction id")
		if _, ok := out.first("contact"); !ok && req.IsInvite() {
			// RFC 2543 §6.13: without Contact, the From address is where the
			// dialog's requests go; RFC 3261 §8.1.1.8 makes it mandatory.
			if c := contactFromFrom(firstValue(&out, "from")); c != "" {
				out.headers = append(out.headers, header{name: "contact", value: c})
				did = append(did, "Contact from From")
			}
		}
		if b, req = e.reparse(&out); req == nil {
			return nil, nil, ""
		}
	}
	if len(did) == 0 {
		return nil, nil, ""
	}
	return b, req, strings.Join(did, ", ")
}

// reparse writes m out and parses it; a nil request when it does not
// parse as one.
func (e *Edge) reparse(m *rawMessage) ([]byte, *sip.Request) {
	b := m.bytes()
	msg, err := e.parser.ParseSIP(b)
	req, ok := msg.(*sip.Request)
	if err != nil || !ok {
		return nil, nil
	}
	return b, req
}

// bytes writes the message again: start line, unfolded headers, body.
func (m *rawMessage) bytes() []byte {
	var sb strings.Builder
	sb.WriteString(m.start)
	sb.WriteString("\r\n")
	for _, h := range m.headers {
		if h.name == "" {
			sb.WriteString(h.value)
		} else {
			sb.WriteString(h.name)
			sb.WriteString(": ")
			sb.WriteString(h.value)
		}
		sb.WriteString("\r\n")
	}
	sb.WriteString("\r\n")
	sb.Write(m.body)
	return []byte(sb.String())
}

// squeezeLWS drops white space next to ';', '=', ',' and '/' outside quoted
// strings and <>; nothing else changes.
func squeezeLWS(v string) string {
	isSep := func(c byte) bool { return c == ';' || c == '=' || c == ',' || c == '/' }
	isWS := func(c byte) bool { return c == ' ' || c == '\t' }
	out := outside(v)
	var sb strings.Builder
	for i := 0; i < len(v); i++ {
		if out[i] && isWS(v[i]) {
			j := i
			for j < len(v) && isWS(v[j]) {
				j++
			}
			prevSep := sb.Len() > 0 && isSep(sb.String()[sb.Len()-1])
			if prevSep || j == len(v) || isSep(v[j]) {
				i = j - 1
				continue
			}
		}
		sb.WriteByte(v[i])
	}
	return sb.String()
}

// needs2543Branch: a request without an RFC 3261 branch and without a
// From tag, which sipgo cannot key a transaction for (RFC 3261 §17.2.3
// matches it on Request-URI, From tag, Call-ID, CSeq and top Via; RFC
// 2543 has no From tag at all).
func needs2543Branch(req *sip.Request) bool {
	via := req.Via()
	from := req.From()
	if via == nil || from == nil {
		return false
	}
	if br, ok := via.Params.Get("branch"); ok && strings.HasPrefix(br, sip.RFC3261BranchMagicCookie) && len(br) > len(sip.RFC3261BranchMagicCookie) {
		return false
	}
	_, tagged := from.Params.Get("tag")
	return !tagged
}

// rfc2543Branch derives a branch from what RFC 3261 §17.2.3 matches an
// RFC 2543 request on, so the INVITE, its retransmissions, its CANCEL and
// the ACK of a non-2xx answer share one transaction.
func rfc2543Branch(m *rawMessage) string {
	h := fnv.New64a()
	_, uri, _, _ := requestLine(m.start)
	via, _ := m.first("via")
	top, _, _ := strings.Cut(via, ",")
	cseq, _ := m.first("cseq")
	num, _, _ := strings.Cut(strings.TrimSpace(cseq), " ")
	for _, s := range []string{uri, top, firstValue(m, "call-id"), num, firstValue(m, "from")} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return sip.RFC3261BranchMagicCookie + "-2543-" + strconv.FormatUint(h.Sum64(), 36)
}

func firstValue(m *rawMessage, name string) string {
	v, _ := m.first(name)
	return v
}

// withBranch sets the branch of the first value of a Via header.
func withBranch(via, branch string) string {
	first, rest, list := strings.Cut(via, ",")
	var kept []string
	for i, p := range strings.Split(first, ";") {
		if i > 0 {
			k, _, _ := strings.Cut(p, "=")
			if strings.EqualFold(strings.TrimSpace(k), "branch") {
				continue
			}
		}
		kept = append(kept, p)
	}
	out := strings.Join(kept, ";") + ";branch=" + branch
	if list {
		out += "," + rest
	}
	return out
}

// contactFromFrom is the name-addr of a From value without its header
// parameters.
func contactFromFrom(from string) string {
	if i := strings.IndexByte(from, '<'); i >= 0 {
		if j := strings.IndexByte(from[i:], '>'); j >= 0 {
			return from[i : i+j+1]
		}
		return ""
	}
	uri, _, _ := strings.Cut(from, ";")
	uri = strings.TrimSpace(uri)
	if uri == "" {
		return ""
	}
	return "<" + uri + ">"
}
