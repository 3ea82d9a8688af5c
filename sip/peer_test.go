package sip

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// peer is an in-process SIP endpoint on 127.0.0.1 built on sipgo: it plays
// registrar, proxy, called party and caller in the tests.
type peer struct {
	t    *testing.T
	ua   *sipgo.UserAgent
	srv  *sipgo.Server
	cli  *sipgo.Client
	conn net.PacketConn
	port int

	mu       sync.Mutex
	handlers map[sip.RequestMethod]func(*sip.Request, sip.ServerTransaction)
	got      chan *sip.Request
	tcp      bool
	tcpLn    net.Listener
	host     string // the peer's IP address: 127.0.0.1 unless newPeerAt
	// streams dials the peer's TCP connections and closes them all before
	// its sipgo stack closes, as the UA does (streams.go).
	streams *streams
}

func newPeer(t *testing.T) *peer { return newPeerOn(t, false) }

// newPeerOn starts a peer; with tcp it also listens on TCP (same port) and
// sends its requests over TCP.
func newPeerOn(t *testing.T, tcp bool) *peer { return newPeerAt(t, "127.0.0.1", tcp) }

// newPeerAt starts a peer on another loopback address (127.0.0.2: a
// stranger to accounts whose server is on 127.0.0.1).
func newPeerAt(t *testing.T, host string, tcp bool) *peer {
	t.Helper()
	// The UA sets sipgo's knobs at its first Start; a peer already serving
	// would read them unsynchronised. Set them before any peer runs.
	tuneSipgo()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("testpeer"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(testLogger(t)),
			sip.WithTransactionLayerUnhandledResponseHandler(func(*sip.Response) {})),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(testLogger(t))))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua, sipgo.WithServerLogger(testLogger(t)))
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientLogger(testLogger(t)))
	conn, l := listenPair(t, host, tcp)
	p := &peer{t: t, ua: ua, srv: srv, cli: cli, conn: conn, port: conn.LocalAddr().(*net.UDPAddr).Port,
		handlers: map[sip.RequestMethod]func(*sip.Request, sip.ServerTransaction){},
		got:      make(chan *sip.Request, 200), tcp: tcp, host: host,
		streams: newStreams(ua.TransportLayer(), nil, nil)}
	var out *handoff
	if tcp {
		p.tcpLn = l
		out = p.streams.handoff("tcp", l.Addr())
		go srv.ServeTCP(p.streams.listener("tcp", l))
		go srv.ServeTCP(out)
	}
	for _, m := range []sip.RequestMethod{sip.INVITE, sip.ACK, sip.BYE, sip.CANCEL, sip.REGISTER, sip.OPTIONS, sip.UPDATE, sip.INFO, sip.REFER, sip.NOTIFY} {
		srv.OnRequest(m, p.dispatch)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.ServeUDP(conn) }()
	pool := ua.TransportLayer().Pool("udp")
	for i := 0; i < 1000; i++ {
		if c := pool.Get(conn.LocalAddr().String()); c != nil {
			c.TryClose()
			break
		}
		time.Sleep(time.Millisecond)
	}
	t.Cleanup(func() {
		ua.TransactionLayer().Close() // no retransmission after the socket (as the UA's Shutdown)
		conn.Close()
		<-done
		if tcp {
			l.Close()
			out.Close()
		}
		ua.TransactionLayer().Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := p.streams.close(ctx); err != nil {
			t.Errorf("peer: %v", err)
		}
		ua.Close()
	})
	return p
}

// listenPair opens a UDP socket on a free port and, with tcp, a TCP listener
// on the same port. The kernel picks the UDP port without looking at TCP, so
// the TCP port can be taken (by another test's ephemeral connection): pick
// again rather than fail.
func listenPair(t *testing.T, host string, tcp bool) (net.PacketConn, net.Listener) {
	t.Helper()
	var lastErr error
	for i := 0; i < 20; i++ {
		conn, err := net.ListenPacket("udp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		if !tcp {
			return conn, nil
		}
		l, err := net.Listen("tcp", conn.LocalAddr().String())
		if err == nil {
			return conn, l
		}
		conn.Close()
		lastErr = err
	}
	t.Fatalf("no port free for both UDP and TCP: %v", lastErr)
	return nil, nil
}

func (p *peer) addr() string { return net.JoinHostPort(p.host, strconv.Itoa(p.port)) }

func (p *peer) handle(m sip.RequestMethod, h func(*sip.Request, sip.ServerTransaction)) {
	p.mu.Lock()
	p.handlers[m] = h
	p.mu.Unlock()
}

func (p *peer) dispatch(req *sip.Request, tx sip.ServerTransaction) {
	select {
	case p.got <- req:
	default:
	}
	p.mu.Lock()
	h := p.handlers[req.Method]
	p.mu.Unlock()
	if h != nil {
		h(req, tx)
		return
	}
	if req.IsAck() {
		return
	}
	tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}

// expect waits for the next request of method (others are skipped).
func (p *peer) expect(m sip.RequestMethod, timeout time.Duration) *sip.Request {
	p.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case r := <-p.got:
			if r.Method == m {
				return r
			}
		case <-deadline:
			p.t.Fatalf("peer: no %s within %v", m, timeout)
			return nil
		}
	}
}

func (p *peer) prepare(req *sip.Request) {
	if p.tcp {
		req.SetTransport("TCP")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// On failure sipgo dials (or fails the request) itself, which the
		// test sees.
		_ = p.streams.ensure(ctx, "TCP", req.Destination(), "")
		return
	}
	req.SetTransport("UDP")
	req.Laddr = sip.Addr{IP: net.ParseIP(p.host).To4(), Port: p.port}
}

func (p *peer) transport() string {
	if p.tcp {
		return "TCP"
	}
	return "UDP"
}

func (p *peer) via() *sip.ViaHeader {
	v := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: p.transport(), Host: p.host, Port: p.port, Params: sip.NewParams()}
	v.Params.Add("branch", sip.GenerateBranch())
	v.Params.Add("rport", "")
	return v
}

func (p *peer) contact(user string) *sip.ContactHeader {
	uri := sip.Uri{Scheme: "sip", User: user, Host: p.host, Port: p.port, UriParams: sip.NewParams()}
	if p.tcp {
		uri.UriParams.Add("transport", "tcp")
	}
	return &sip.ContactHeader{Address: uri}
}

// answer builds a response from the peer acting as UAS of req.
func (p *peer) answer(req *sip.Request, code int, reason, tag string, body []byte, hdrs ...sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if tag != "" {
		res.To().Params.Add("tag", tag)
	}
	if code > 100 && code < 300 && req.IsInvite() {
		res.AppendHeader(p.contact("peer"))
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if body != nil {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		res.SetBody(body)
	}
	return res
}

// peerSDP is a minimal description from the peer at RTP port port.
func peerSDP(port int, dir string, ip string, version int) []byte {
	if ip == "" {
		ip = "127.0.0.1"
	}
	return []byte(fmt.Sprintf("v=0\r\no=peer 42 %d IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"+
		"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=%s\r\n", version, ip, port, dir))
}

// pdialog is a dialog held by the peer (as caller or callee).
type pdialog struct {
	p         *peer
	callID    string
	localTag  string
	remoteTag string
	local     sip.Uri
	remote    sip.Uri
	target    sip.Uri
	routes    []string
	cseq      uint32
}

// dialogFromInvite makes the peer's UAS dialog for an INVITE it received.
func (p *peer) dialogFromInvite(req *sip.Request, tag string) *pdialog {
	d := &pdialog{p: p, callID: req.CallID().Value(), localTag: tag, cseq: 5000}
	d.remoteTag, _ = req.From().Params.Get("tag")
	d.local = req.To().Address
	d.remote = req.From().Address
	d.target = req.Contact().Address
	return d
}

func (d *pdialog) request(m sip.RequestMethod, body []byte, hdrs ...sip.Header) *sip.Request {
	req := sip.NewRequest(m, *d.target.Clone())
	req.AppendHeader(d.p.via())
	for _, r := range d.routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{Address: d.local, Params: sip.NewParams()}
	from.Params.Add("tag", d.localTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{Address: d.remote, Params: sip.NewParams()}
	if d.remoteTag != "" {
		to.Params.Add("tag", d.remoteTag)
	}
	req.AppendHeader(to)
	cid := sip.CallIDHeader(d.callID)
	req.AppendHeader(&cid)
	if m != sip.ACK {
		d.cseq++
	}
	req.AppendHeader(&sip.CSeqHeader{SeqNo: d.cseq, MethodName: m})
	if m == sip.INVITE || m == sip.UPDATE {
		req.AppendHeader(d.p.contact("peer"))
	}
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	if body != nil {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	req.SetBody(body)
	d.p.prepare(req)
	return req
}

// do sends a non-INVITE request and returns its final response.
func (d *pdialog) do(m sip.RequestMethod, body []byte, hdrs ...sip.Header) *sip.Response {
	d.p.t.Helper()
	return d.p.do(d.request(m, body, hdrs...))
}

func (p *peer) do(req *sip.Request) *sip.Response {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := p.cli.Do(ctx, req, func(*sipgo.Client, *sip.Request) error { return nil })
	if err != nil {
		p.t.Fatalf("peer %s: %v", req.Method, err)
	}
	return res
}

// reinvite sends a re-INVITE and ACKs the 2xx with ackBody(res).
func (d *pdialog) reinvite(body []byte, ackBody func(*sip.Response) []byte, hdrs ...sip.Header) *sip.Response {
	d.p.t.Helper()
	req := d.request(sip.INVITE, body, hdrs...)
	res := d.p.do(req)
	if res.IsSuccess() {
		var ab []byte
		if ackBody != nil {
			ab = ackBody(res)
		}
		ack := d.request(sip.ACK, ab)
		ack.CSeq().SeqNo = req.CSeq().SeqNo
		if err := d.p.cli.WriteRequest(ack, func(*sipgo.Client, *sip.Request) error { return nil }); err != nil {
			d.p.t.Fatal(err)
		}
	}
	return res
}

// pcall is an INVITE the peer sends to the UA (an incoming call for it).
type pcall struct {
	d   *pdialog
	inv *sip.Request
	tx  sip.ClientTransaction
}

func (p *peer) call(t *testing.T, uaPort int, user string, body []byte, hdrs ...sip.Header) *pcall {
	t.Helper()
	target := sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: uaPort}
	d := &pdialog{p: p, callID: newCallID(), localTag: newTag(), cseq: 100,
		local:  sip.Uri{Scheme: "sip", User: "5555", Host: p.host},
		remote: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1"},
		target: target}
	req := d.request(sip.INVITE, body, hdrs...)
	req.From().DisplayName = "Peer Five"
	tx, err := p.cli.TransactionRequest(context.Background(), req, func(*sipgo.Client, *sip.Request) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tx.Terminate)
	return &pcall{d: d, inv: req, tx: tx}
}

// next returns the next response to the INVITE.
func (c *pcall) next(t *testing.T, timeout time.Duration) *sip.Response {
	t.Helper()
	select {
	case r := <-c.tx.Responses():
		return r
	case <-c.tx.Done():
		t.Fatalf("INVITE transaction ended: %v", c.tx.Err())
	case <-time.After(timeout):
		t.Fatalf("no response to INVITE within %v", timeout)
	}
	return nil
}

// final skips provisional responses.
func (c *pcall) final(t *testing.T, timeout time.Duration) *sip.Response {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := c.next(t, time.Until(deadline))
		if !r.IsProvisional() {
			return r
		}
	}
}

// established records the dialog from the 2xx and ACKs it.
func (c *pcall) ack(t *testing.T, res *sip.Response, body []byte) {
	t.Helper()
	c.d.remoteTag, _ = res.To().Params.Get("tag")
	c.d.target = res.Contact().Address
	ack := c.d.request(sip.ACK, body)
	ack.CSeq().SeqNo = c.inv.CSeq().SeqNo
	if err := c.d.p.cli.WriteRequest(ack, func(*sipgo.Client, *sip.Request) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// cancel sends CANCEL for the INVITE.
func (c *pcall) cancel(t *testing.T) *sip.Response {
	t.Helper()
	r := cancelFor(c.inv)
	c.d.p.prepare(r)
	return c.d.p.do(r)
}

func sdpDir(body []byte) string {
	for _, l := range strings.Split(string(body), "\n") {
		l = strings.TrimSpace(l)
		switch l {
		case "a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive":
			return l[2:]
		}
	}
	return ""
}

func sdpOrigin(body []byte) string {
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "o=") {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
