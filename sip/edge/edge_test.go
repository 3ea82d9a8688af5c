package edge

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

var src = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5999}

// msg joins lines with CRLF and ends the header (the body, if any, is the
// last element after an empty one).
func msg(lines ...string) []byte { return []byte(strings.Join(lines, "\r\n")) }

func opts(extra ...string) []byte {
	l := []string{"OPTIONS sip:user@example.com SIP/2.0",
		"Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw;rport",
		"To: sip:user@example.com", "From: sip:caller@example.net;tag=34525",
		"Call-ID: c1@example.net", "CSeq: 8 OPTIONS", "Max-Forwards: 70"}
	l = append(l, extra...)
	return msg(append(l, "Content-Length: 0", "", "")...)
}

func newTestEdge() *Edge {
	return New(Config{UserAgent: "test", Supported: []string{"timer"}})
}

func statusOf(b []byte) string {
	l, _, _ := bytes.Cut(b, []byte("\r\n"))
	return string(l)
}

func TestVet(t *testing.T) {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
	invite := func(extra ...string) []byte {
		l := []string{"INVITE sip:user@example.com SIP/2.0",
			"Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKinv1",
			"To: sip:user@example.com", "From: sip:caller@example.net;tag=1",
			"Call-ID: inv1@example.net", "CSeq: 1 INVITE", "Max-Forwards: 70"}
		l = append(l, extra...)
		return msg(l...)
	}
	withSDP := func(ct string, extra ...string) []byte {
		b := invite(append(extra, "Content-Type: "+ct, "Content-Length: "+strconv.Itoa(len(sdp)), "", sdp)...)
		return b
	}
	for _, tc := range []struct {
		name   string
		in     []byte
		status string // "" passes to sipgo unchanged; "drop": neither passes nor answers
		header string // a line the answer must have
	}{
		{name: "valid OPTIONS", in: opts()},
		{name: "keeps a known Require", in: opts("Require: timer")},
		{name: "version 7.0", in: bytes.Replace(opts(), []byte("SIP/2.0\r\n"), []byte("SIP/7.0\r\n"), 1), status: "SIP/2.0 505 Version Not Supported"},
		{name: "unknown Require", in: opts("Require: foo, timer, bar"), status: "SIP/2.0 420 Bad Extension", header: "Unsupported: foo, bar"},
		{name: "CSeq mismatch", in: bytes.Replace(opts(), []byte("CSeq: 8 OPTIONS"), []byte("CSeq: 8 INVITE"), 1), status: "SIP/2.0 400 CSeq Method Mismatch"},
		{name: "unknown method mismatch is the UA's 501", in: bytes.Replace(bytes.Replace(opts(), []byte("CSeq: 8 OPTIONS"), []byte("CSeq: 8 INVITE"), 1), []byte("OPTIONS sip"), []byte("NEWMETHOD sip"), 1)},
		{name: "two Call-IDs", in: opts("Call-ID: other@example.net"), status: "SIP/2.0 400 Multiple Call-ID Values"},
		{name: "two Content-Lengths", in: opts("l: 5"), status: "SIP/2.0 400 Multiple Content-Length Values"},
		{name: "unknown scheme", in: bytes.Replace(opts(), []byte("sip:user@example.com SIP"), []byte("foo:bar SIP"), 1), status: "SIP/2.0 416 Unsupported URI Scheme"},
		{name: "unparseable scheme", in: bytes.Replace(opts(), []byte("sip:user@example.com SIP"), []byte("soap.beep://192.0.2.1:3002 SIP"), 1), status: "SIP/2.0 416 Unsupported URI Scheme"},
		{name: "headers in Request-URI", in: bytes.Replace(opts(), []byte("sip:user@example.com SIP"), []byte("sip:user@example.com?Route=%3Csip:x%3E SIP"), 1), status: "SIP/2.0 400 Headers In Request-URI"},
		{name: "non-GMT date", in: opts("Date: Fri, 01 Jan 2010 16:00:00 EST"), status: "SIP/2.0 400 Invalid Date"},
		{name: "GMT date", in: opts("Date: Fri, 01 Jan 2010 16:00:00 GMT")},
		{name: "missing Call-ID", in: bytes.Replace(opts(), []byte("Call-ID: c1@example.net\r\n"), nil, 1), status: "SIP/2.0 400 Missing Call-ID"},
		{name: "two spaces in request line", in: bytes.Replace(opts(), []byte("OPTIONS sip"), []byte("OPTIONS  sip"), 1), status: "SIP/2.0 400 Bad Request"},
		{name: "unterminated quote", in: bytes.Replace(opts(), []byte("From: sip:caller"), []byte("From: \"Mr J. User <sip:caller"), 1), status: "SIP/2.0 400 Bad Request"},
		{name: "no Via: nothing to answer", in: bytes.Replace(opts("l: x"), []byte("Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw;rport\r\n"), nil, 1), status: "drop"},
		{name: "unparseable ACK", in: bytes.Replace(bytes.Replace(opts(), []byte("OPTIONS sip"), []byte("ACK  sip"), 1), []byte("8 OPTIONS"), []byte("8 ACK"), 1), status: "drop"},
		{name: "ACK without CSeq", in: bytes.Replace(bytes.Replace(opts(), []byte("OPTIONS sip"), []byte("ACK sip"), 1), []byte("CSeq: 8 OPTIONS\r\n"), nil, 1), status: "drop"},
		{name: "ACK with an unknown Require passes", in: bytes.Replace(bytes.Replace(opts("Require: foo"), []byte("OPTIONS sip"), []byte("ACK sip"), 1), []byte("8 OPTIONS"), []byte("8 ACK"), 1)},
		{name: "ACK with bad version", in: bytes.Replace(bytes.Replace(opts(), []byte("OPTIONS sip"), []byte("ACK sip"), 1), []byte("SIP/2.0\r\n"), []byte("SIP/7.0\r\n"), 1), status: "drop"},
		{name: "garbage", in: []byte("\x16\x03\x01 hello there\r\n\r\n"), status: "drop"},
		{name: "unparseable response", in: msg("SIP/2.0 4294967301 big", "Via: SIP/2.0/UDP x;branch=z9hG4bKa", "", ""), status: "drop"},
		{name: "valid response", in: msg("SIP/2.0 200 OK", "Via: SIP/2.0/UDP x;branch=z9hG4bKa", "From: <sip:a@b>;tag=1", "To: <sip:c@d>;tag=2", "Call-ID: x", "CSeq: 1 OPTIONS", "Content-Length: 0", "", "")},
		{name: "INVITE with SDP", in: withSDP("application/sdp")},
		{name: "INVITE with unknown body", in: withSDP("application/unknownformat"), status: "SIP/2.0 415 Unsupported Media Type", header: "Accept: application/sdp"},
		{name: "INVITE with gzip body", in: withSDP("application/sdp", "Content-Encoding: gzip"), status: "SIP/2.0 415 Unsupported Media Type", header: "Accept-Encoding: identity"},
		{name: "INVITE not accepting SDP", in: withSDP("application/sdp", "Accept: text/nobodyKnowsThis"), status: "SIP/2.0 406 Not Acceptable"},
		{name: "INVITE accepting */*", in: withSDP("application/sdp", "Accept: */*")},
		{name: "Content-Length past the datagram", in: invite("Content-Length: 9999", "", "v=0\r\n"), status: "SIP/2.0 400 Bad Request"},
		{name: "negative Content-Length", in: invite("Content-Length: -999", "", "v=0\r\n"), status: "SIP/2.0 400 Bad Request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := newTestEdge().vet(tc.in, src)
			switch tc.status {
			case "":
				if v.reply != nil || !bytes.Equal(v.pass, tc.in) {
					t.Fatalf("want passed unchanged; reply %q, pass %q", v.reply, v.pass)
				}
			case "drop":
				if v.reply != nil || v.pass != nil {
					t.Fatalf("want dropped; reply %q, pass %q", v.reply, v.pass)
				}
			default:
				if v.pass != nil {
					t.Errorf("passed to sipgo too")
				}
				if got := statusOf(v.reply); got != tc.status {
					t.Fatalf("answer %q, want %q\n%s", got, tc.status, v.reply)
				}
				if tc.header != "" && !bytes.Contains(v.reply, []byte("\r\n"+tc.header+"\r\n")) {
					t.Errorf("answer lacks %q:\n%s", tc.header, v.reply)
				}
			}
		})
	}
}

// TestStatelessAnswer: the answer carries the request's Vias (rport
// filled), From, To with a tag that is the same for a retransmission,
// Call-ID and CSeq, and parses.
func TestStatelessAnswer(t *testing.T) {
	e := newTestEdge()
	in := bytes.Replace(opts(), []byte("CSeq: 8 OPTIONS"), []byte("CSeq: 8 INVITE"), 1)
	a := e.vet(in, src).reply
	b := e.vet(in, src).reply
	if !bytes.Equal(a, b) {
		t.Errorf("two answers to one request differ:\n%s\n%s", a, b)
	}
	for _, want := range []string{
		"Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw;rport=5999;received=127.0.0.1\r\n",
		"From: sip:caller@example.net;tag=34525\r\n", "To: sip:user@example.com;tag=", "Call-ID: c1@example.net\r\n",
		"CSeq: 8 INVITE\r\n", "Server: test\r\n", "Content-Length: 0\r\n\r\n",
	} {
		if !bytes.Contains(a, []byte(want)) {
			t.Errorf("answer lacks %q:\n%s", want, a)
		}
	}
	if _, err := e.parser.ParseSIP(a); err != nil {
		t.Errorf("answer does not parse: %v\n%s", err, a)
	}
}

// TestRewrite: LWS around '=' and ';' (legal) is squeezed so sipgo finds
// the From tag; an RFC 2543 request (no branch, no From tag) gets a branch
// derived from what §17.2.3 matches on, the same for its ACK.
func TestRewrite(t *testing.T) {
	e := newTestEdge()
	ws := msg("INVITE sip:vivekg@example.com SIP/2.0",
		"TO :", " sip:vivekg@example.com ;   tag    = 1918181833n",
		"from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>", "  ;", "  tag = 98asjd8",
		"Call-ID: ws@192.0.2.1", "cseq: 0009", "  INVITE", "Via  : SIP  /   2.0", " /UDP", "    192.0.2.2;branch=390skdjuw",
		"Content-Length: 0", "", "")
	v := e.vet(ws, src)
	if v.reply != nil || v.pass == nil {
		t.Fatalf("want passed; reply %s", v.reply)
	}
	m, err := e.parser.ParseSIP(v.pass)
	if err != nil {
		t.Fatal(err)
	}
	if tag, _ := m.From().Params.Get("tag"); tag != "98asjd8" {
		t.Errorf("From tag %q after rewrite:\n%s", tag, v.pass)
	}
	if m.From().DisplayName != `J Rosenberg \\\"` {
		t.Errorf("display name %q changed", m.From().DisplayName)
	}

	inv := msg("INVITE sip:UserB@example.com SIP/2.0", "Via: SIP/2.0/UDP iftgw.example.com",
		"From: <sip:+13035551111@ift.client.example.net;user=phone>", "To: sip:+16505552222@ss1.example.net;user=phone",
		"Call-ID: inv2543.1717@ift.client.example.com", "CSeq: 56 INVITE", "", "")
	ack := msg("ACK sip:UserB@example.com SIP/2.0", "Via: SIP/2.0/UDP iftgw.example.com",
		"From: <sip:+13035551111@ift.client.example.net;user=phone>", "To: sip:+16505552222@ss1.example.net;user=phone;tag=x",
		"Call-ID: inv2543.1717@ift.client.example.com", "CSeq: 56 ACK", "", "")
	var branches []string
	for _, b := range [][]byte{inv, ack} {
		v := e.vet(b, src)
		if v.pass == nil {
			t.Fatalf("not passed: %s", v.reply)
		}
		m, err := e.parser.ParseSIP(v.pass)
		if err != nil {
			t.Fatal(err)
		}
		br, _ := m.Via().Params.Get("branch")
		if !strings.HasPrefix(br, "z9hG4bK-2543-") {
			t.Fatalf("branch %q", br)
		}
		branches = append(branches, br)
	}
	if branches[0] != branches[1] {
		t.Errorf("INVITE and ACK branches differ: %v", branches)
	}
	if got := e.Stats().Rewritten; got != 3 {
		t.Errorf("Rewritten %d, want 3", got)
	}
}

func TestSqueezeLWS(t *testing.T) {
	for in, want := range map[string]string{
		`<sip:a@b> ; tag = x`:                     `<sip:a@b>;tag=x`,
		`"a ; b = c" <sip:a@b;x = y> ;q = 0.5`:    `"a ; b = c" <sip:a@b;x = y>;q=0.5`,
		`SIP / 2.0 / UDP h ; branch = z9hG4bK1 ,`: `SIP/2.0/UDP h;branch=z9hG4bK1,`,
		`sip:a@b`:              `sip:a@b`,
		`"x \" ; y" <sip:a@b>`: `"x \" ; y" <sip:a@b>`,
	} {
		if got := squeezeLWS(in); got != want {
			t.Errorf("squeezeLWS(%q) = %q, want %q", in, got, want)
		}
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *fakeClock               { return &fakeClock{t: time.Unix(1_000_000, 0)} }
func countLines(b *bytes.Buffer) int     { return bytes.Count(b.Bytes(), []byte("\n")) }
func logTo(b *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }
func garbage(i int) []byte               { return []byte("garbage " + strconv.Itoa(i) + strings.Repeat("x", 2500)) }
func udpFrom(port int) *net.UDPAddr      { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port} }
func otherHost(i int) *net.UDPAddr       { return &net.UDPAddr{IP: net.IPv4(127, 0, 1, byte(i)), Port: 5000} }
func vetAll(e *Edge, n int, from func(int) net.Addr) {
	for i := 0; i < n; i++ {
		e.vet(garbage(i), from(i))
	}
}

// TestFloodIsCheap: 1000 garbage datagrams (2.5 KB each) from one source
// give one log line with a bounded excerpt, and are counted; after the
// window the next line reports how many were suppressed. From 250
// sources the lines stay within the global burst.
func TestFloodIsCheap(t *testing.T) {
	var buf bytes.Buffer
	clk := newClock()
	e := New(Config{Log: logTo(&buf), Now: clk.now})
	vetAll(e, 1000, func(int) net.Addr { return udpFrom(6000) })
	if n := countLines(&buf); n != 1 {
		t.Fatalf("%d log lines for 1000 datagrams from one source, want 1:\n%s", n, buf.String())
	}
	if buf.Len() > 400 {
		t.Errorf("log line of %d bytes:\n%s", buf.Len(), buf.String())
	}
	if s := e.Stats(); s.Malformed != 1000 || s.LogLines != 1 {
		t.Errorf("stats %+v, want 1000 malformed, 1 log line", s)
	}
	clk.add(logEvery)
	e.vet(garbage(0), udpFrom(6000))
	if !strings.Contains(buf.String(), "suppressed=999") {
		t.Errorf("second line does not report 999 suppressed:\n%s", buf.String())
	}

	buf.Reset()
	clk.add(logEvery)
	vetAll(e, 250, func(i int) net.Addr { return otherHost(i) })
	if n := countLines(&buf); n > logBurst {
		t.Errorf("%d log lines for 250 sources, want at most %d", n, logBurst)
	}
}

// TestAnswersAreLimited: one source gets at most answersPerSecond
// stateless answers a second.
func TestAnswersAreLimited(t *testing.T) {
	clk := newClock()
	e := New(Config{Now: clk.now})
	bad := bytes.Replace(opts(), []byte("OPTIONS sip"), []byte("OPTIONS  sip"), 1)
	answered := 0
	for i := 0; i < 200; i++ {
		if e.vet(bad, src).reply != nil {
			answered++
		}
	}
	if answered != answersPerSecond {
		t.Errorf("%d answers in one second, want %d", answered, answersPerSecond)
	}
	clk.add(time.Second)
	if e.vet(bad, src).reply == nil {
		t.Errorf("no answer in the next second")
	}
}

func TestScreen(t *testing.T) {
	invite := func(toTag, method string) []byte {
		to := "To: sip:user@example.com"
		if toTag != "" {
			to += ";tag=" + toTag
		}
		return msg(method+" sip:user@example.com SIP/2.0",
			"Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKscr1",
			to, "From: sip:caller@example.net;tag=1",
			"Call-ID: scr1@example.net", "CSeq: 1 "+method, "Max-Forwards: 70", "Content-Length: 0", "", "")
	}
	for _, tc := range []struct {
		name      string
		in        []byte
		verdict   Admission
		wantAsked bool
		status    string // "" passes; "drop": nothing
	}{
		{name: "admitted", in: invite("", "INVITE"), verdict: Admit, wantAsked: true},
		{name: "refused", in: invite("", "INVITE"), verdict: Refuse, wantAsked: true, status: "SIP/2.0 403 Forbidden"},
		{name: "refused silently", in: invite("", "INVITE"), verdict: RefuseSilently, wantAsked: true, status: "drop"},
		{name: "OPTIONS refused", in: opts(), verdict: Refuse, wantAsked: true, status: "SIP/2.0 403 Forbidden"},
		{name: "in dialog not screened", in: invite("x", "INVITE"), verdict: Refuse},
		{name: "CANCEL not screened", in: invite("", "CANCEL"), verdict: Refuse},
		{name: "ACK not screened", in: invite("", "ACK"), verdict: Refuse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked netip.Addr
			e := New(Config{Admit: func(_ *sip.Request, src netip.Addr) Admission { asked = src; return tc.verdict }})
			from := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 5060}
			v := e.vet(tc.in, from)
			if got := asked.IsValid(); got != tc.wantAsked {
				t.Fatalf("Admit asked=%v, want %v", got, tc.wantAsked)
			}
			if tc.wantAsked && asked != netip.MustParseAddr("127.0.0.2") {
				t.Errorf("Admit got source %v", asked)
			}
			switch tc.status {
			case "":
				if v.pass == nil || v.reply != nil {
					t.Fatalf("not passed: %+v", v)
				}
			case "drop":
				if v.pass != nil || v.reply != nil {
					t.Fatalf("not dropped: %+v", v)
				}
			default:
				if v.pass != nil || statusOf(v.reply) != tc.status {
					t.Fatalf("answer %q, want %s", v.reply, tc.status)
				}
			}
			if refused := tc.status != ""; refused != (e.Stats().Untrusted == 1) {
				t.Errorf("Untrusted = %d", e.Stats().Untrusted)
			}
		})
	}
}
