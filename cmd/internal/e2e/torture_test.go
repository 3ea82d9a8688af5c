//go:build integration

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// tortureDir is the RFC 4475 corpus: $SIP_TORTURE_DIR, else
// ../shared/sip-torture beside the checkout (where CI has it). The files
// are test data of the machine, not of the project: they are not copied in.
func tortureDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("SIP_TORTURE_DIR"); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "wsinv.dat")); err != nil {
			t.Fatalf("SIP_TORTURE_DIR=%s: %v", dir, err)
		}
		return dir
	}
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	var tried []string
	for _, r := range []string{root, mainCheckout(root)} {
		if r == "" {
			continue
		}
		dir := filepath.Join(r, "..", "shared", "sip-torture")
		if _, err := os.Stat(filepath.Join(dir, "wsinv.dat")); err == nil {
			return dir
		}
		tried = append(tried, dir)
	}
	t.Fatalf("RFC 4475 torture messages not found in %s: put the 49 .dat files in ../shared/sip-torture "+
		"beside the checkout or set SIP_TORTURE_DIR", strings.Join(tried, " or "))
	return ""
}

// mainCheckout is the main working tree of a git worktree at root (its
// .git is a file naming .../.git/worktrees/NAME), else "".
func mainCheckout(root string) string {
	b, err := os.ReadFile(filepath.Join(root, ".git"))
	if err != nil {
		return ""
	}
	gitdir, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir: ")
	if !ok {
		return ""
	}
	i := strings.Index(gitdir, string(filepath.Separator)+".git"+string(filepath.Separator)+"worktrees")
	if i < 0 {
		return ""
	}
	return gitdir[:i]
}

// tortureWant is what RFC 4475 asks of a UAS for one message.
type tortureWant struct {
	codes  []int // acceptable final answers; none and !ring: no answer at all
	ring   bool  // a valid INVITE for an account: 180, then the test declines it
	header string
	closes bool // stream: the connection is closed after the answer
}

func codes(c ...int) tortureWant { return tortureWant{codes: c} }

var (
	silent  = tortureWant{}
	ringing = tortureWant{ring: true}
)

// tortureCases: every message of RFC 4475 (section in the comment) over
// UDP, and over TCP the 13 meant for a stream: the ten whose top Via is
// TCP or TLS and the three whose RFC text says what a stream does with
// them (clerr, ncl, mcl01).
var tortureCases = []struct {
	name    string
	udp     tortureWant
	tcp     *tortureWant
	section string
}{
	// 3.1.1 valid messages: parsed and processed.
	{"wsinv", codes(481), nil, "3.1.1.1"}, // its To has a tag: an unknown dialog
	{"intmeth", codes(501), &tortureWant{codes: []int{501}}, "3.1.1.2"},
	{"esc01", ringing, nil, "3.1.1.3"},
	{"escnull", codes(405), nil, "3.1.1.4"},
	{"esc02", codes(501), &tortureWant{codes: []int{501}}, "3.1.1.5"},
	{"lwsdisp", codes(200), nil, "3.1.1.6"},
	{"longreq", ringing, &ringing, "3.1.1.7"},
	{"dblreq", codes(405), nil, "3.1.1.8"},
	{"semiuri", codes(200), nil, "3.1.1.9"},
	{"transports", codes(200), nil, "3.1.1.10"},
	{"mpart01", codes(405), nil, "3.1.1.11"},
	{"unreason", silent, nil, "3.1.1.12"},
	{"noreason", silent, nil, "3.1.1.13"},
	// 3.1.2 invalid messages.
	{"badinv01", codes(400), nil, "3.1.2.1"},
	{"clerr", codes(400), &silent, "3.1.2.2"}, // a stream waits for the rest of the body
	{"ncl", codes(400), &tortureWant{codes: []int{400}, closes: true}, "3.1.2.3"},
	{"scalar02", codes(400), &tortureWant{codes: []int{400}}, "3.1.2.4"},
	{"scalarlg", silent, &silent, "3.1.2.5"},
	{"quotbal", codes(400), nil, "3.1.2.6"},
	{"ltgtruri", codes(400), nil, "3.1.2.7"},
	{"lwsruri", codes(400), nil, "3.1.2.8"},
	{"lwsstart", codes(400), nil, "3.1.2.9"},
	{"trws", codes(400), &tortureWant{codes: []int{400}}, "3.1.2.10"},
	{"escruri", codes(400), nil, "3.1.2.11"},
	{"baddate", codes(400), nil, "3.1.2.12"},
	{"regbadct", codes(400, 405), nil, "3.1.2.13"},
	{"badaspec", codes(400), nil, "3.1.2.14"},
	{"baddn", codes(400), nil, "3.1.2.15"},
	{"badvers", codes(505), nil, "3.1.2.16"},
	{"mismatch01", codes(400), nil, "3.1.2.17"},
	{"mismatch02", codes(501, 400), nil, "3.1.2.18"},
	{"bigcode", silent, nil, "3.1.2.19"},
	// 3.2 transaction layer.
	{"badbranch", codes(200, 400), nil, "3.2.1"},
	// 3.3 application layer.
	{"insuf", codes(400), nil, "3.3.1"},
	{"unkscm", codes(416), &tortureWant{codes: []int{416}}, "3.3.2"},
	{"novelsc", codes(416, 404), &tortureWant{codes: []int{416, 404}}, "3.3.3"},
	{"unksm2", codes(400, 405), nil, "3.3.4"},
	{"bext01", tortureWant{codes: []int{420}, header: "Unsupported: nothingSupportsThis, nothingSupportsThisEither"},
		&tortureWant{codes: []int{420}, header: "Unsupported: nothingSupportsThis, nothingSupportsThisEither"}, "3.3.5"},
	{"invut", codes(415), nil, "3.3.6"},
	{"regaut01", codes(405), &tortureWant{codes: []int{405}}, "3.3.7"},
	{"multi01", codes(400), nil, "3.3.8"},
	{"mcl01", codes(400), &tortureWant{codes: []int{400}, closes: true}, "3.3.9"},
	{"bcast", silent, nil, "3.3.10"},
	{"zeromf", codes(200), nil, "3.3.11"},
	{"cparam01", codes(405), nil, "3.3.12"},
	{"cparam02", codes(405), nil, "3.3.13"},
	{"regescrt", codes(405), nil, "3.3.14"},
	{"sdp01", codes(406, 400), nil, "3.3.15"},
	// 3.4 backward compatibility.
	{"inv2543", ringing, nil, "3.4.1"},
}

// TestTorture sends every RFC 4475 message to the daemon as a peer would
// (its own UDP socket or TCP connection per message) and checks the answer
// the RFC asks of a UAS, that an invalid INVITE rings no account, that the
// ACK of a final answer gets no answer, and that the API answers after
// every message. The accounts are the corpus's users (user, vivekg, UserB),
// so the Request-URIs stay as the RFC has them. One change: ";rport" is
// added to the top Via (RFC 3581). Without it RFC 3261 §18.2.2 sends a
// UDP answer to the Via's port, 5060 for most messages, where a test must
// not listen.
func TestTorture(t *testing.T) {
	dir := tortureDir(t)
	// A daemon sees each transaction once: the corpus reuses branches
	// (cparam01/cparam02, escnull/regescrt share Via and method) and a TCP
	// send repeats its UDP one, which the daemon would rightly take for
	// retransmissions of a transaction it answered to another socket.
	var daemons []*tortureDaemon
	daemonFor := func(key string) *tortureDaemon {
		for _, td := range daemons {
			if !td.keys[key] {
				td.keys[key] = true
				return td
			}
		}
		td := startTortureDaemon(t)
		td.keys[key] = true
		daemons = append(daemons, td)
		return td
	}

	type result struct{ name, transport, got string }
	var failed []result
	sends := 0
	for _, tc := range tortureCases {
		orig, err := os.ReadFile(filepath.Join(dir, tc.name+".dat"))
		if err != nil {
			t.Fatal(err)
		}
		msg := withRport(orig)
		for _, tr := range []string{"udp", "tcp"} {
			want := tc.udp
			if tr == "tcp" {
				if tc.tcp == nil {
					continue
				}
				want = *tc.tcp
			}
			sends++
			td := daemonFor(txKey(msg))
			got, err := tortureSend(t, td.c, td.events, td.target, tr, msg, want)
			if err != nil {
				failed = append(failed, result{tc.name, tr, err.Error()})
				t.Errorf("%s (RFC 4475 §%s) over %s: %v (answer %s)", tc.name, tc.section, tr, err, got)
			} else {
				t.Logf("%-10s %s: %s", tc.name, tr, got)
			}
			for _, td := range daemons {
				if td.d.Exited() {
					t.Fatalf("a daemon exited after %s over %s", tc.name, tr)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := td.c.GetStatus(ctx, "user")
				cancel()
				if err != nil {
					t.Fatalf("the API does not answer after %s over %s: %v", tc.name, tr, err)
				}
			}
		}
	}
	t.Logf("RFC 4475: %d of %d sends answered as the RFC asks", sends-len(failed), sends)
	if sends != 62 {
		t.Errorf("%d sends, want 62 (49 over UDP, 13 over TCP)", sends)
	}
}

type tortureDaemon struct {
	d         *testpeers.Daemon
	c, events *client.Client // events sees every broadcast: call-incoming must come only from valid INVITEs
	target    string
	keys      map[string]bool // transactions it has seen
}

func startTortureDaemon(t *testing.T) *tortureDaemon {
	t.Helper()
	p := &plan{
		Accounts: []account{
			{Name: "user", User: "user", Pass: "x", NoRegister: true, MaxCalls: 8},
			{Name: "vivekg", User: "vivekg", Pass: "x", NoRegister: true},
			{Name: "UserB", User: "UserB", Pass: "x", NoRegister: true},
		},
		Transports: []string{"udp", "tcp"},
		LogLevel:   "info",
	}
	d := testpeers.StartDaemon(t, p.render(t))
	td := &tortureDaemon{d: d, c: d.Client(t), events: d.Client(t),
		target: net.JoinHostPort("127.0.0.1", strconv.Itoa(p.SIPPort)), keys: map[string]bool{}}
	// A pong proves the hub admitted events: it sees the first call-incoming.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := td.events.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	return td
}

// txKey is what a server transaction is matched on (RFC 3261 §17.2.3):
// the top Via (branch and sent-by) and the CSeq method, read as text.
func txKey(msg []byte) string {
	head, _, _ := bytes.Cut(msg, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	via, method := "", ""
	for i := 1; i < len(lines); i++ {
		name, v, ok := strings.Cut(lines[i], ":")
		n := strings.ToLower(strings.TrimSpace(name))
		switch {
		case !ok:
		case (n == "via" || n == "v") && via == "":
			for i+1 < len(lines) && strings.HasPrefix(lines[i+1], " ") {
				i++
				v += lines[i]
			}
			via = strings.Join(strings.Fields(v), "")
			via, _, _ = strings.Cut(via, ",")
		case n == "cseq" && method == "":
			if f := strings.Fields(v); len(f) == 2 {
				method = f[1]
			}
		}
	}
	return strings.ToLower(via) + "|" + method
}

// tortureSend sends msg over transport and checks the answer against want;
// it returns the status line(s) seen.
func tortureSend(t *testing.T, c, events *client.Client, target, transport string, msg []byte, want tortureWant) (string, error) {
	t.Helper()
	peer, err := dialPeer(transport, target)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if err := peer.send(msg); err != nil {
		return "", err
	}
	if !want.ring && len(want.codes) == 0 {
		if b, err := peer.recv(500 * time.Millisecond); err == nil {
			return firstLine(b), errors.New("answered; RFC 4475 asks for no answer")
		}
		if n := drainIncoming(events); n > 0 {
			return "none", fmt.Errorf("rang an account (%d call-incoming)", n)
		}
		return "none", nil
	}
	var seen []string
	var final *answer
	for final == nil {
		b, err := peer.recv(3 * time.Second)
		if err != nil {
			return strings.Join(seen, ", "), fmt.Errorf("no final answer: %w", err)
		}
		// Answers to broken requests echo their broken headers: read them
		// as text, not with a parser that would refuse them too.
		res, err := parseAnswer(b)
		if err != nil {
			return strings.Join(append(seen, firstLine(b)), ", "), err
		}
		seen = append(seen, strconv.Itoa(res.code))
		if res.code == 180 && want.ring {
			ev, err := waitIncoming(events)
			if err != nil {
				return strings.Join(seen, ", "), err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = c.HangupCall(ctx, ev.Account, ev.CallID, false)
			cancel()
			if err != nil {
				return strings.Join(seen, ", "), fmt.Errorf("hangup-call: %w", err)
			}
			continue
		}
		if res.code >= 200 {
			final = res
		}
	}
	got := strings.Join(seen, ", ")
	if want.ring {
		if !slices.Contains(seen, "180") {
			return got, errors.New("did not ring (no 180)")
		}
		if final.code < 300 {
			return got, errors.New("declined call answered with a 2xx")
		}
	} else {
		if !slices.Contains(want.codes, final.code) {
			return got, fmt.Errorf("final answer %d, RFC 4475 asks for %v", final.code, want.codes)
		}
		if n := drainIncoming(events); n > 0 {
			return got, fmt.Errorf("an invalid request rang an account (%d call-incoming)", n)
		}
	}
	if want.header != "" && !bytes.Contains(final.raw, []byte("\r\n"+want.header+"\r\n")) {
		return got, fmt.Errorf("answer lacks %q:\n%s", want.header, final.raw)
	}
	if final.cseqMethod == "INVITE" {
		if err := peer.send(ackFor(msg, final)); err != nil {
			return got, err
		}
		if b, err := peer.recv(200 * time.Millisecond); err == nil {
			if r, perr := parseAnswer(b); perr == nil && r.cseqMethod == "ACK" {
				return got, fmt.Errorf("the ACK was answered: %s", firstLine(b))
			}
		}
	}
	if want.closes {
		if !peer.closedWithin(time.Second) {
			return got, errors.New("the connection stays open after a framing error")
		}
	}
	return got, nil
}

// answer is a response read as text.
type answer struct {
	code       int
	cseqMethod string
	headers    map[string]string // first value of each, by lower-case long name
	raw        []byte
}

var longNames = map[string]string{"v": "via", "f": "from", "t": "to", "i": "call-id", "l": "content-length"}

func parseAnswer(b []byte) (*answer, error) {
	head, _, _ := bytes.Cut(b, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	f := strings.Fields(lines[0])
	if len(f) < 2 || f[0] != "SIP/2.0" {
		return nil, fmt.Errorf("not a SIP/2.0 response: %q", lines[0])
	}
	code, err := strconv.Atoi(f[1])
	if err != nil || code < 100 || code > 699 {
		return nil, fmt.Errorf("bad status line %q", lines[0])
	}
	a := &answer{code: code, headers: map[string]string{}, raw: b}
	for _, l := range lines[1:] {
		name, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		n := strings.ToLower(strings.TrimSpace(name))
		if long, ok := longNames[n]; ok {
			n = long
		}
		if _, dup := a.headers[n]; !dup {
			a.headers[n] = strings.TrimSpace(v)
		}
	}
	if cs := strings.Fields(a.headers["cseq"]); len(cs) == 2 {
		a.cseqMethod = cs[1]
	}
	return a, nil
}

// ackFor builds the ACK of a non-2xx final answer (RFC 3261 §17.1.1.3):
// Request-URI of the request; top Via, From, Call-ID and CSeq number of
// the answer (which echoes the request's); To of the answer.
func ackFor(req []byte, res *answer) []byte {
	line, _, _ := bytes.Cut(req, []byte("\r\n"))
	parts := strings.Fields(string(line))
	ruri := parts[1]
	var b strings.Builder
	fmt.Fprintf(&b, "ACK %s SIP/2.0\r\n", ruri)
	for _, h := range []struct{ name, out string }{{"via", "Via"}, {"from", "From"}, {"to", "To"}, {"call-id", "Call-ID"}} {
		if v, ok := res.headers[h.name]; ok {
			fmt.Fprintf(&b, "%s: %s\r\n", h.out, v)
		}
	}
	num, _, _ := strings.Cut(res.headers["cseq"], " ")
	fmt.Fprintf(&b, "CSeq: %s ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", num)
	return []byte(b.String())
}

// withRport adds ";rport" to the first value of the top Via of msg, which
// may be folded over several lines or list several values.
func withRport(msg []byte) []byte {
	head, body, ended := bytes.Cut(msg, []byte("\r\n\r\n"))
	lines := strings.Split(string(head), "\r\n")
	for i := 1; i < len(lines); i++ {
		name, _, ok := strings.Cut(lines[i], ":")
		n := strings.ToLower(strings.TrimSpace(name))
		if !ok || (n != "via" && n != "v") {
			continue
		}
		last := i
		for last+1 < len(lines) && strings.HasPrefix(lines[last+1], " ") {
			last++
		}
		for j := i; j <= last; j++ {
			if k := strings.IndexByte(lines[j], ','); k >= 0 && (j > i || k > len(name)) {
				lines[j] = lines[j][:k] + ";rport" + lines[j][k:]
				return joinMessage(lines, body, ended)
			}
		}
		lines[last] = strings.TrimRight(lines[last], " ") + ";rport"
		return joinMessage(lines, body, ended)
	}
	return msg
}

func joinMessage(lines []string, body []byte, ended bool) []byte {
	if !ended {
		// baddn.dat lacks the empty line ending its header: keep it so.
		return []byte(strings.Join(lines, "\r\n"))
	}
	return append([]byte(strings.Join(lines, "\r\n")+"\r\n\r\n"), body...)
}

func firstLine(b []byte) string {
	l, _, _ := bytes.Cut(b, []byte("\r\n"))
	return string(l)
}

// drainIncoming counts the call-incoming events queued on events.
func drainIncoming(events *client.Client) int {
	n := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		m, err := events.Next(ctx)
		cancel()
		if err != nil {
			return n
		}
		if m.Event == api.EventCallIncoming {
			n++
		}
	}
}

func waitIncoming(events *client.Client) (client.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := events.WaitFor(ctx, func(m client.Message) bool { return m.Event == api.EventCallIncoming })
	if err != nil {
		return m, fmt.Errorf("no call-incoming after the 180: %w", err)
	}
	return m, nil
}

// sipPeer is one UDP socket or TCP connection of the test towards the
// daemon.
type sipPeer struct {
	udp    net.PacketConn
	tcp    net.Conn
	target *net.UDPAddr
	buf    []byte // TCP bytes read, not yet framed
}

func dialPeer(transport, target string) (*sipPeer, error) {
	if transport == "tcp" {
		c, err := net.DialTimeout("tcp", target, 2*time.Second)
		if err != nil {
			return nil, err
		}
		return &sipPeer{tcp: c}, nil
	}
	ua, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return &sipPeer{udp: c, target: ua}, nil
}

func (p *sipPeer) Close() {
	if p.udp != nil {
		p.udp.Close()
	}
	if p.tcp != nil {
		p.tcp.Close()
	}
}

func (p *sipPeer) send(b []byte) error {
	if p.udp != nil {
		_, err := p.udp.WriteTo(b, p.target)
		return err
	}
	_, err := p.tcp.Write(b)
	return err
}

// recv returns the next message within d.
func (p *sipPeer) recv(d time.Duration) ([]byte, error) {
	deadline := time.Now().Add(d)
	if p.udp != nil {
		buf := make([]byte, 65535)
		p.udp.SetReadDeadline(deadline)
		n, _, err := p.udp.ReadFrom(buf)
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
	p.tcp.SetReadDeadline(deadline)
	for {
		if m, rest, ok := frameTCP(p.buf); ok {
			p.buf = rest
			return m, nil
		}
		chunk := make([]byte, 16384)
		n, err := p.tcp.Read(chunk)
		p.buf = append(p.buf, chunk[:n]...)
		if err != nil {
			return nil, err
		}
	}
}

// frameTCP cuts one message off b by its Content-Length.
func frameTCP(b []byte) ([]byte, []byte, bool) {
	b = bytes.TrimLeft(b, "\r\n")
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, b, false
	}
	end += 4
	cl := 0
	for _, l := range strings.Split(string(b[:end]), "\r\n") {
		name, v, ok := strings.Cut(l, ":")
		if ok && (strings.EqualFold(strings.TrimSpace(name), "content-length") || strings.EqualFold(strings.TrimSpace(name), "l")) {
			cl, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if len(b) < end+cl {
		return nil, b, false
	}
	return b[:end+cl], b[end+cl:], true
}

// closedWithin reports whether the daemon closes the TCP connection
// within d (anything it sends before is read and ignored).
func (p *sipPeer) closedWithin(d time.Duration) bool {
	p.tcp.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 4096)
	for {
		_, err := p.tcp.Read(buf)
		if err == nil {
			continue
		}
		return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset")
	}
}
