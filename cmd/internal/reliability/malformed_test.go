//go:build integration

package reliability

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sipMsg builds a request to the daemon; clDelta skews Content-Length.
type sipMsg struct {
	method, ruri, callID, fromTag, toTag, branch string
	headers                                      []string
	body                                         string
	clDelta                                      int
	vias                                         int // extra Vias below ours
}

func (m sipMsg) render(transport, local string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", m.method, m.ruri)
	fmt.Fprintf(&b, "Via: SIP/2.0/%s %s;branch=%s;rport\r\n", transport, local, m.branch)
	for i := range m.vias {
		fmt.Fprintf(&b, "Via: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bK-proxy-%d-%s\r\n", transport, 6000+i, i, m.branch)
	}
	fmt.Fprintf(&b, "From: <sip:tester@127.0.0.1>;tag=%s\r\n", m.fromTag)
	to := "<" + m.ruri + ">"
	if m.toTag != "" {
		to += ";tag=" + m.toTag
	}
	fmt.Fprintf(&b, "To: %s\r\nCall-ID: %s\r\nCSeq: 1 %s\r\nMax-Forwards: 70\r\n", to, m.callID, m.method)
	fmt.Fprintf(&b, "Contact: <sip:tester@%s;transport=%s>\r\n", local, strings.ToLower(transport))
	for _, h := range m.headers {
		b.WriteString(h + "\r\n")
	}
	if m.body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(m.body)+m.clDelta, m.body)
	return []byte(b.String())
}

// sipConn is a UDP socket or TCP connection to the daemon's SIP port.
type sipConn struct {
	transport string // UDP or TCP
	c         net.Conn
	buf       bytes.Buffer
}

func dialSIP(t *testing.T, transport, addr string) *sipConn {
	t.Helper()
	c, err := net.DialTimeout(strings.ToLower(transport), addr, 2*time.Second)
	if err != nil {
		t.Fatalf("%s %s: %v", transport, addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return &sipConn{transport: transport, c: c}
}

func (s *sipConn) local() string { return s.c.LocalAddr().String() }

func (s *sipConn) send(t *testing.T, b []byte) {
	t.Helper()
	_ = s.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := s.c.Write(b); err != nil {
		t.Fatalf("send over %s: %v", s.transport, err)
	}
}

var statusLine = regexp.MustCompile(`SIP/2\.0 (\d{3}) [^\r\n]*\r\n`)

// final waits up to d for a final response (>= 200) to callID and returns
// its code and raw text; 0 when none came.
func (s *sipConn) final(callID string, d time.Duration) (int, string) {
	deadline := time.Now().Add(d)
	tmp := make([]byte, 65536)
	for time.Now().Before(deadline) {
		for _, msg := range splitMessages(s.buf.String()) {
			m := statusLine.FindStringSubmatch(msg)
			if m == nil || !strings.Contains(msg, callID) {
				continue
			}
			if code, _ := strconv.Atoi(m[1]); code >= 200 {
				return code, msg
			}
		}
		_ = s.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := s.c.Read(tmp)
		s.buf.Write(tmp[:n])
		if err != nil && !isTimeout(err) {
			return 0, s.buf.String()
		}
	}
	return 0, s.buf.String()
}

func splitMessages(s string) []string {
	var out []string
	for _, p := range strings.Split(s, "SIP/2.0 ") {
		if len(p) > 3 {
			out = append(out, "SIP/2.0 "+p)
		}
	}
	return out
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// toTag is the To tag of a response.
func toTag(resp string) string {
	m := regexp.MustCompile(`(?mi)^(?:To|t)\s*:[^\r\n]*;tag=([^;\s\r\n>]+)`).FindStringSubmatch(resp)
	if m == nil {
		return ""
	}
	return m[1]
}

// uniq is a fresh Call-ID, tag or branch.
func uniq(prefix string) string { return fmt.Sprintf("%s-%x", prefix, rand.Uint64()) }

func offer(pts string, rtpmaps ...string) string {
	s := "v=0\r\no=tester 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30990 RTP/AVP " + pts + "\r\n"
	for _, r := range rtpmaps {
		s += "a=rtpmap:" + r + "\r\n"
	}
	return s + "a=sendrecv\r\n"
}

// TestMalformedSIP sends broken and hostile SIP to the daemon over UDP and
// TCP. Each case either gets the final answer RFC 3261 asks for (488 for
// an offer without a common codec, 481 for a request in an unknown dialog,
// 400 where the daemon can tell the request is broken) or is dropped; after
// each, the daemon still answers OPTIONS and its API.
func TestMalformedSIP(t *testing.T) {
	e := startDaemon(t, planOpts{Accounts: []account{{Name: "acc1", User: "3001"}}, Transports: []string{"udp", "tcp"}})
	ruri := "sip:3001@" + e.sipAddr()
	inv := func(body string) sipMsg {
		return sipMsg{method: "INVITE", ruri: ruri, body: body}
	}
	huge := "X-Filler: " + strings.Repeat("a", 16000)
	garbage := make([]byte, 1500)
	for i := range garbage {
		garbage[i] = byte(rand.IntN(256))
	}
	cases := []struct {
		name  string
		raw   []byte // sent as is, else msg is rendered
		msg   sipMsg
		want  []int // acceptable finals; nil: none expected (dropped)
		check bool  // also wait for and check the answer
	}{
		{name: "garbage", raw: garbage},
		{name: "not SIP", raw: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{name: "empty lines", raw: []byte("\r\n\r\n\r\n\r\n")},
		{name: "truncated INVITE", raw: inv(offer("0", "0 PCMU/8000")).render("%T", "%L")[:120]},
		{name: "Content-Length too big", msg: sipMsg{method: "OPTIONS", ruri: ruri, body: "v=0\r\n", clDelta: 500}},
		{name: "Content-Length too small", msg: sipMsg{method: "INVITE", ruri: ruri, body: offer("0", "0 PCMU/8000"), clDelta: -40}},
		{name: "negative Content-Length", raw: []byte("OPTIONS " + ruri + " SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKneg\r\nFrom: <sip:x@127.0.0.1>;tag=1\r\nTo: <" + ruri + ">\r\nCall-ID: neg\r\nCSeq: 1 OPTIONS\r\nContent-Length: -5\r\n\r\n")},
		{name: "huge header", msg: sipMsg{method: "OPTIONS", ruri: ruri, headers: []string{huge}}},
		{name: "many Vias", msg: sipMsg{method: "OPTIONS", ruri: ruri, vias: 8}, want: []int{200}, check: true},
		{name: "bad SDP", msg: inv("this is not SDP\r\nm=\r\n"), want: []int{400, 488}, check: true},
		{name: "SDP without media", msg: inv("v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"), want: []int{488}, check: true},
		{name: "unknown codecs", msg: inv(offer("18 3 98", "18 G729/8000", "3 GSM/8000", "98 opus/48000/2")), want: []int{488}, check: true},
		{name: "BYE in unknown dialog", msg: sipMsg{method: "BYE", ruri: ruri, toTag: "nosuchtag"}, want: []int{481}, check: true},
		{name: "re-INVITE in unknown dialog", msg: sipMsg{method: "INVITE", ruri: ruri, toTag: "nosuchtag", body: offer("0", "0 PCMU/8000")}, want: []int{481}, check: true},
		{name: "INFO in unknown dialog", msg: sipMsg{method: "INFO", ruri: ruri, toTag: "nosuchtag"}, want: []int{481}, check: true},
	}
	for _, tr := range []string{"UDP", "TCP"} {
		for _, tc := range cases {
			t.Run(tr+"/"+tc.name, func(t *testing.T) {
				c := dialSIP(t, tr, e.sipAddr())
				m := tc.msg
				m.callID, m.fromTag, m.branch = uniq("mal"), uniq("ft"), "z9hG4bK"+uniq("b")
				raw := tc.raw
				if raw == nil {
					raw = m.render(tr, c.local())
				} else {
					raw = bytes.ReplaceAll(bytes.ReplaceAll(raw, []byte("%T"), []byte(tr)), []byte("%L"), []byte(c.local()))
				}
				c.send(t, raw)
				if tc.check {
					code, resp := c.final(m.callID, 3*time.Second)
					if !containsInt(tc.want, code) {
						t.Errorf("final %d, want one of %v; got:\n%.600s", code, tc.want, resp)
					}
					if m.method == "INVITE" && code >= 300 {
						ack := m
						ack.method, ack.toTag, ack.body, ack.clDelta, ack.headers = "ACK", toTag(resp), "", 0, nil
						c.send(t, ack.render(tr, c.local()))
					}
				}
				e.alive(t, tc.name)
				optionsOK(t, e, tr)
			})
		}
	}
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// optionsOK checks the daemon answers a fresh OPTIONS with 200 over tr.
func optionsOK(t *testing.T, e *daemonEnv, tr string) {
	t.Helper()
	c := dialSIP(t, tr, e.sipAddr())
	m := sipMsg{method: "OPTIONS", ruri: "sip:3001@" + e.sipAddr(), callID: uniq("opt"), fromTag: uniq("ft"), branch: "z9hG4bK" + uniq("o")}
	c.send(t, m.render(tr, c.local()))
	if code, resp := c.final(m.callID, 3*time.Second); code != 200 {
		t.Fatalf("OPTIONS over %s after the case: %d, want 200:\n%.400s", tr, code, resp)
	}
}
