// streams.go owns the stream connections (TCP, TLS) of a sipgo stack.
//
// Left to itself, sipgo dials the connection a request needs out of sight
// of the edge: nothing vets what arrives on it, the trace misses it, and
// nothing can close it cleanly at shutdown (the transport's Clear zeroes
// the reference count under the connection's reader, which then logs
// "TCP ref went negative"). So we dial ourselves: the connection is wrapped
// by the edge and handed to sipgo's accept loop through a handoff
// listener; sipgo then reads it as an accepted one and, with its default
// connection reuse, sends every request for that address over it.
//
//	ensure ─► dial (+TLS handshake) ─► edge.Stream ─► handoff.Accept ─► sipgo pool
//
// Every stream, accepted or dialled, is tracked, so that close can shut
// each one under sipgo's reader and wait until sipgo has let go of it.
//
// When its reader ends, sipgo closes a connection by zeroing its reference
// count, references its transactions still hold included; each of those
// then takes the count below zero as it ends ("TCP ref went negative"). So
// a stream the far end closed (a peer that sends BYE and closes at once,
// SIPp's connection per call) is taken out of sipgo's pool at once and its
// reader sees the end only when no transaction holds it any more (see
// drain).
package sip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"
)

// streams is the stream side of one sipgo stack. The handoffs are set up
// before serving starts and only read after.
type streams struct {
	pool        func(network string) *sip.ConnectionPool
	wrap        func(net.Conn) net.Conn       // the edge; nil: none
	tlsConf     func(host string) *tls.Config // client side of a "tls" dial to host; nil: crypto/tls's defaults
	dialTimeout time.Duration
	handoffs    map[string]*handoff // by network: "tcp", "tls"

	mu      sync.Mutex
	dialing map[string]chan struct{} // network|address -> closed when that dial ends
	live    map[*trackedConn]struct{}
}

func newStreams(tl *sip.TransportLayer, wrap func(net.Conn) net.Conn, tlsConf func(host string) *tls.Config) *streams {
	return &streams{
		pool: tl.Pool, wrap: wrap, tlsConf: tlsConf,
		// A connect that gets no answer fails within the time the
		// request's transaction would have waited (Timer B/F).
		dialTimeout: 64 * sip.T1,
		handoffs:    map[string]*handoff{},
		dialing:     map[string]chan struct{}{},
		live:        map[*trackedConn]struct{}{},
	}
}

// listener tracks the connections l accepts for network ("tcp", "tls").
func (s *streams) listener(network string, l net.Listener) net.Listener {
	return &trackingListener{Listener: l, s: s, network: network}
}

type trackingListener struct {
	net.Listener
	s       *streams
	network string
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.s.track(l.network, c), nil
}

// handoff makes the listener through which our dials of network reach
// sipgo; serve it with ServeTCP ("tcp") or ServeTLS ("tls"). addr is the
// real listener's address (sipgo records its port as a listening one).
func (s *streams) handoff(network string, addr net.Addr) *handoff {
	h := &handoff{addr: addr, in: make(chan handed), done: make(chan struct{})}
	s.handoffs[network] = h
	return h
}

// ensure makes sure sipgo holds a connection for a request over transport
// ("TCP", "TLS") to dest (host:port), dialling it if needed. A destination
// that is not an IP address, or a transport without a handoff, is left to
// sipgo. name is the host name dest was resolved from ("" for none): a TLS
// server proves that name, not the address (RFC 5922 §4).
func (s *streams) ensure(ctx context.Context, transport, dest, name string) error {
	network := strings.ToLower(transport)
	h := s.handoffs[network]
	if h == nil {
		return nil
	}
	host, port, err := net.SplitHostPort(dest)
	if err != nil {
		return nil // sipgo reports it
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return nil
	}
	// sipgo keys its pool by the remote address as net.IP prints it.
	key := net.JoinHostPort(ip.Unmap().String(), port)
	if name == "" {
		name = host
	}
	for {
		if s.pooled(network, key, name) {
			return nil
		}
		s.mu.Lock()
		if w, ok := s.dialing[network+"|"+key]; ok {
			s.mu.Unlock()
			select {
			case <-w:
				continue // that dial ended: look again (or dial ourselves)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		w := make(chan struct{})
		s.dialing[network+"|"+key] = w
		s.mu.Unlock()
		err := s.dial(ctx, h, network, key, name)
		s.mu.Lock()
		delete(s.dialing, network+"|"+key)
		s.mu.Unlock()
		close(w)
		return err
	}
}

// pooled reports whether sipgo holds a connection to key that a request
// whose server must prove name may take. sipgo's pool knows addresses
// only: a TLS connection we dialled for one name would carry the requests
// for any other name at the same address, whose server then proved
// nothing. A TLS connection we dialled is taken for the name its server
// proved, or for one its certificate also shows (checked as a handshake
// would, with the tls-ca and tls-verify in force), as HTTP/2 coalesces
// connections (RFC 9113 §9.1.1); otherwise a new dial, with that name as
// SNI, has the server prove it, and takes the pool entry. A connection
// the peer opened to us is taken as before: we verified no name on it.
func (s *streams) pooled(network, key, name string) bool {
	c := s.pool(network).Get(key)
	if c == nil {
		return false
	}
	defer c.Ref(-1) // Get took a reference; only a look was wanted
	if network != "tls" {
		return true
	}
	tc, ok := c.(*sip.TCPConnection)
	if !ok {
		return true
	}
	st, ok := tc.Conn.(*trackedConn)
	if !ok || st.tls == nil || st.name == name {
		return true // not dialled by us, or for this very name
	}
	if s.tlsConf == nil {
		return false // crypto/tls's defaults: a new handshake checks name
	}
	verify := s.tlsConf(name).VerifyConnection
	return verify != nil && verify(st.tls.ConnectionState()) == nil
}

// dial connects to key, over TLS for network "tls" (verifying host, the
// name or address the server must prove, as sipgo does), and hands the
// connection to sipgo.
func (s *streams) dial(ctx context.Context, h *handoff, network, key, host string) error {
	d := net.Dialer{Timeout: s.dialTimeout}
	c, err := d.DialContext(ctx, "tcp", key)
	if err != nil {
		return fmt.Errorf("%s connection to %s: %w", strings.ToUpper(network), key, err)
	}
	if network == "tls" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: host}
		if s.tlsConf != nil {
			cfg = s.tlsConf(host) // verified with the tls-ca and tls-verify in force
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = c.Close()
			return fmt.Errorf("TLS handshake error with %s: %w", key, err)
		}
		c = tc
	}
	tlsConn, _ := c.(*tls.Conn)
	if s.wrap != nil {
		c = s.wrap(c)
	}
	st := s.track(network, c)
	st.tls, st.name = tlsConn, host // before sipgo (and pooled) can see st
	return h.give(ctx, st)
}

// trackedConn is a stream connection: sipgo's Close (when its reader ends)
// forgets it. Once stopping, its reader gets EOF, which sipgo takes as the
// peer's close: it drops the connection from its pool and closes it, with
// nothing to complain about (a socket closed under it would fail its own
// Close, logged as "connection pool not clean cleanup").
type trackedConn struct {
	net.Conn
	s       *streams
	network string
	// tls is a TLS connection we dialled (nil for any other) and name the
	// host name or IP address its server proved.
	tls      *tls.Conn
	name     string
	once     sync.Once
	gone     chan struct{}
	stopping atomic.Bool
}

func (c *trackedConn) Read(p []byte) (int, error) {
	if c.stopping.Load() {
		return 0, io.EOF
	}
	n, err := c.Conn.Read(p)
	if err != nil && c.stopping.Load() {
		return n, io.EOF // the deadline stop set
	}
	if err != nil && n == 0 {
		c.s.drain(c)
	}
	return n, err
}

// drainPoll is how often drain looks at sipgo's count; drainGrace is how
// long it gives the last messages c carried to reach their transactions
// (sipgo hands each message to a goroutine of its own, which takes its
// reference only then).
const (
	drainPoll  = 5 * time.Millisecond
	drainGrace = 50 * time.Millisecond
)

// drain runs on c's reader once the far end closed c (or it broke). After
// drainGrace, in which the last requests find c in sipgo's pool for their
// answers, c leaves the pool, so that no new request takes it, and drain
// returns when no transaction holds c any more (sipgo's count is back at
// what the reader and the idle reference hold), after 64*T1 at most, or at
// close. A transaction can still answer on a connection the far end only
// half-closed.
func (s *streams) drain(c *trackedConn) {
	pool := s.pool(c.network)
	key := c.RemoteAddr().String()
	sc := pool.Get(key)
	if sc == nil {
		return
	}
	defer sc.Ref(-1) // Get's
	if tc, ok := sc.(*sip.TCPConnection); !ok || tc.Conn != net.Conn(c) {
		return // another connection from that address: not ours to touch
	}
	start := time.Now()
	for !c.stopping.Load() && time.Since(start) < drainGrace {
		time.Sleep(drainPoll)
	}
	if now := pool.Get(key); now != nil {
		if now == sc {
			pool.Delete(key)
		}
		now.Ref(-1)
	}
	idle := 1 + sip.TransportIdleConnection + 1 // reader, idle, our Get
	for !c.stopping.Load() && time.Since(start) < 64*sip.T1 && sc.Ref(0) > idle {
		time.Sleep(drainPoll)
	}
}

// stop ends the reader's wait (see Read).
func (c *trackedConn) stop() {
	c.stopping.Store(true)
	_ = c.Conn.SetReadDeadline(time.Now())
}

func (s *streams) track(network string, c net.Conn) *trackedConn {
	st := &trackedConn{Conn: c, s: s, network: network, gone: make(chan struct{})}
	s.mu.Lock()
	s.live[st] = struct{}{}
	s.mu.Unlock()
	return st
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.live, c)
		c.s.mu.Unlock()
		close(c.gone)
	})
	return c.Conn.Close()
}

// close ends every stream's reader, after which sipgo drops it from its
// pool and closes it with its count intact, and waits for that (or ctx).
// Call it after the listeners and the transaction layer are closed and
// before the stack's own Close.
func (s *streams) close(ctx context.Context) error {
	s.mu.Lock()
	all := make([]*trackedConn, 0, len(s.live))
	for st := range s.live {
		all = append(all, st)
	}
	s.mu.Unlock()
	for _, st := range all {
		st.stop()
	}
	for i, st := range all {
		select {
		case <-st.gone:
		case <-ctx.Done():
			return fmt.Errorf("%d SIP connections still open: %w", len(all)-i, ctx.Err())
		}
	}
	return nil
}

// handoff is a net.Listener whose connections are the ones we dialled.
// sipgo's accept loop (one goroutine) puts what Accept returns in its pool
// before it calls Accept again, so the next call tells give it is there.
type handoff struct {
	addr net.Addr
	in   chan handed
	done chan struct{}
	stop sync.Once
	last chan struct{} // of the connection returned last; the accept loop's
}

type handed struct {
	c     net.Conn
	taken chan struct{}
}

func (h *handoff) Accept() (net.Conn, error) {
	if h.last != nil {
		close(h.last)
		h.last = nil
	}
	select {
	case x := <-h.in:
		h.last = x.taken
		return x.c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.stop.Do(func() { close(h.done) })
	return nil
}

func (h *handoff) Addr() net.Addr { return h.addr }

// give hands c to sipgo and returns once it is in sipgo's pool. A c that
// never reached sipgo is closed.
func (h *handoff) give(ctx context.Context, c net.Conn) error {
	x := handed{c: c, taken: make(chan struct{})}
	select {
	case h.in <- x:
	case <-h.done:
		_ = c.Close()
		return net.ErrClosed
	case <-ctx.Done():
		_ = c.Close()
		return ctx.Err()
	}
	// sipgo owns c now; its pool entry is a matter of the next Accept.
	select {
	case <-x.taken:
		return nil
	case <-h.done:
		return net.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refusedConnect reports a connect the far end refused: a TCP reset, or an
// ICMP port or protocol unreachable (Linux reports the latter as
// ENOPROTOOPT). RFC 3261 §18.1.1 then sends a request that went over TCP
// only for its size over UDP.
func refusedConnect(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.ENOPROTOOPT) || errors.Is(err, syscall.EPROTONOSUPPORT)
}
