// Package sip is the SIP user agent of the daemon, on github.com/emiago/sipgo.
//
// One UA serves every account of the plan over one set of listeners. It
// registers the accounts, places and answers calls, keeps the dialogs
// (route sets, re-INVITE/UPDATE, session timers) and drives one media
// session per call. sipgo supplies the transport and transaction layers;
// the dialog layer is ours so that every in-dialog request follows the
// route set and is retried with digest credentials.
package sip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/telestra/telestra-sip/sip/edge"
	"github.com/telestra/telestra-sip/sip/media"
)

// Sentinel errors; the API turns err.Error() into the fail text, so wrap
// them with the account/call context (fmt.Errorf("...: %w", ErrX)).
var (
	ErrUnknownAccount = errors.New("unknown account")
	ErrUnknownCall    = errors.New("unknown call")
	ErrCallState      = errors.New("call is not in a state that allows this")
	ErrNoServer       = errors.New("account has no server and no local account matches")
	ErrTooManyCalls   = errors.New("account has reached max-calls")
	// ErrClosed is returned by commands after Shutdown started.
	ErrClosed = errors.New("SIP user agent is shutting down")
	// ErrNotStarted is returned by commands before Start.
	ErrNotStarted = errors.New("SIP user agent is not started")
)

// Account is one [accounts.NAME] of the plan.
type Account struct {
	Name        string
	User        string
	Pass        string
	AuthUser    string   // digest user name; empty: User
	Server      string   // host[:port]; empty: no registration, local/direct calls
	Backups     []string // further servers in priority order (failover.go)
	DisplayName string   // empty: Name
	Register    bool
	MaxCalls    int             // <= 0: no limit
	Audio       media.AudioPort // the account's channel; nil: no audio
	AudioName   string          // channel name; accounts sharing a channel share one binding
	AcceptFrom  Accept          // who may send out-of-dialog requests (trust.go)
}

// Config is [sip-settings] plus the media configuration. The defaults are
// the plan's (plan.Default); here a zero value means the stated minimum.
type Config struct {
	Address    string   // bind address
	Port       int      // bind port; 0: chosen by the kernel (tests)
	Transports []string // "udp", "tcp", "tls"; the first is used for outbound requests; at least one
	// TLSPort is the TLS listener's port (transport "tls"); 0: chosen by
	// the kernel.
	TLSPort int
	// TLS names the certificate files (tls.go).
	TLS           TLSConfig
	PublicAddress string // Contact/Via/SDP address; empty: derived from Address
	UserAgent     string // User-Agent and Server header; empty: none sent
	// RegisterExpires is the registration lifetime asked for; 0: 10 s.
	RegisterExpires time.Duration
	// RegisterRetry is the first retry after a failed REGISTER, doubling
	// up to 5 min; 0: 1 s.
	RegisterRetry time.Duration
	// RegisterTimeout is how long a REGISTER waits for its final answer
	// before the server counts as down; 0: 64*T1 (32 s, RFC 3261 Timer F).
	RegisterTimeout time.Duration
	// FailbackInterval is how often an account on a backup server probes
	// its primary with OPTIONS; 0: 1 s.
	FailbackInterval time.Duration
	// KeepaliveInterval is how often a registered account sends OPTIONS
	// to the server it is registered at (keepalive.go); no answer within
	// RegisterTimeout is a server down. 0: no keepalive; else at least 1 s.
	KeepaliveInterval time.Duration
	// EndedCallLinger is how long an ended call stays in Status; 0: it
	// leaves at the next Status or new call.
	EndedCallLinger time.Duration
	// SessionExpires is the RFC 4028 interval we ask for; 0 (and anything
	// shorter): the RFC's minimum, 90 s.
	SessionExpires time.Duration
	// Codecs lists the audio codecs offered, in order of preference, by
	// name (media.Supported); empty: Media.Codecs, which then must list one.
	Codecs []string
	// Media is the RTP configuration; its PTime (the SDP's a=ptime) must
	// be set.
	Media media.Config
	// Trusted sources may send out-of-dialog requests to every account,
	// whatever its AcceptFrom.
	Trusted []netip.Prefix
	// RejectSilently drops refused out-of-dialog requests instead of
	// answering 403.
	RejectSilently bool
	// SRTP is "off" (or empty), "optional" or "required" (srtp.go).
	SRTP string
	// Resolver looks up host names (servers, Route hops); nil: the system's.
	Resolver Resolver
}

// AccountStatus is a snapshot for get-status.
type AccountStatus struct {
	Account      string
	Code         int    // final code of the latest REGISTER transaction; 0: none
	Refused      uint64 // out-of-dialog requests refused by AcceptFrom
	Calls        []CallStatus
	Registration Registration
}

// CallStatus is one call of an AccountStatus.
type CallStatus struct {
	ID        int
	Caller    string // user parts
	Callee    string
	Started   bool   // media established
	Stopped   bool   // ended (lingers for EndedCallLinger)
	State     string // ringing early active held ended
	Direction string // in out
	Active    bool   // bound to the account's audio channel
	Media     media.Stats

	Hold        string        // HoldNone, HoldLocal, HoldRemote, HoldBoth
	Duration    time.Duration // since the answer (0 before it), frozen at the end
	EndReason   string        // the CallEnded reason once ended
	EndCode     int           // the CallEnded code once ended
	LocalMedia  string        // our RTP address:port ("" before a session exists)
	RemoteMedia string        // the peer's RTP address:port from its SDP ("" before one)
	Quality     media.Quality // of the stream we receive; zero before RTP arrives
}

// Call states as reported in CallStatus.State.
const (
	StateRinging = "ringing"
	StateEarly   = "early"
	StateActive  = "active"
	StateHeld    = "held"
	StateEnded   = "ended"
)

const (
	allowHeader     = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER, NOTIFY"
	supportedHeader = "timer, replaces"
	minExpires      = 10 * time.Second
	minRetry        = time.Second
	maxRetry        = 5 * time.Minute
	minSE           = 90 // seconds, RFC 4028 minimum
	defaultRingTime = 3 * time.Minute
	minFailback     = time.Second
	minKeepalive    = time.Second
)

// UA is the user agent: one SIP stack serving every account of the plan.
type UA struct {
	// set is the configuration in force; Reconfigure swaps it whole.
	set     atomic.Pointer[settings]
	log     *slog.Logger
	clock   clock
	onEvent func(Event)
	alloc   mediaAllocator

	// Tunables; tests shorten them.
	minSE      int           // seconds
	ackTimeout time.Duration // 64*T1: no ACK for our 2xx
	ringTime   time.Duration // outgoing call with no final answer
	t1, t2     time.Duration // 2xx retransmission (RFC 3261 13.3.1.4)

	sua  *sipgo.UserAgent
	srv  *sipgo.Server
	cli  *sipgo.Client
	edge *edge.Edge // in front of sipgo's listeners (conformance.go)
	// streams dials our TCP and TLS connections and tracks every stream
	// (streams.go); tcpOut and tlsOut hand the dialled ones to sipgo.
	streams        *streams
	tcpOut, tlsOut *handoff

	outTransport string    // "UDP", "TCP" or "TLS"
	tls          *tlsStore // nil: no TLS
	tlsLn        net.Listener
	tlsPort      int
	udpConn      net.PacketConn
	udpLaddr     sip.Addr
	tcpLn        net.Listener
	udpPort      int
	tcpPort      int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// mu guards the tables and flags below (and the accounts' fields and
	// each call's tab); a call's own fields are under call.mu, which is
	// taken first (see phase.go).
	mu       sync.Mutex
	started  bool
	closing  bool // Shutdown began: no new calls
	closed   bool // goroutines are being waited for: no new ones
	serveErr error
	accounts []*account
	byName   map[string]*account
	calls    map[int]*call
	dialogs  map[string]*call // Call-ID "|" local tag
	nextID   int
	bound    map[string]*call // audio channel key -> call bound to it
	hosts    hostMemo         // own lock: read while mu is held, never I/O under it
	rejects  rejectAcks       // own lock: ACKs of rejected INVITEs (rejected.go)

	trace traceState // trace.go
}

// New builds the UA; nothing is bound until Start.
func New(cfg Config, accounts []Account, onEvent func(Event), log *slog.Logger) (*UA, error) {
	eng, err := media.NewEngine(cfg.Media, log)
	if err != nil {
		return nil, fmt.Errorf("sip: media: %w", err)
	}
	return newUA(cfg, accounts, onEvent, log, engineAllocator{eng})
}

func newUA(cfg Config, accounts []Account, onEvent func(Event), log *slog.Logger, alloc mediaAllocator) (*UA, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if onEvent == nil {
		onEvent = func(Event) {}
	}
	set, err := newSettings(cfg)
	if err != nil {
		return nil, err
	}
	u := &UA{
		log:          log,
		onEvent:      onEvent,
		alloc:        alloc,
		clock:        wallClock{},
		minSE:        minSE,
		ackTimeout:   64 * sip.T1,
		ringTime:     defaultRingTime,
		t1:           sip.T1,
		t2:           sip.T2,
		outTransport: strings.ToUpper(cfg.Transports[0]),
		byName:       map[string]*account{},
		calls:        map[int]*call{},
		dialogs:      map[string]*call{},
		bound:        map[string]*call{},
	}
	u.set.Store(set)
	u.trace.queue = make(chan TraceMessage, traceQueue)
	for _, a := range accounts {
		if a.Name == "" {
			return nil, errors.New("sip: an account has no name")
		}
		if _, dup := u.byName[a.Name]; dup {
			return nil, fmt.Errorf("sip: account %q is defined twice", a.Name)
		}
		acc := newAccount(a)
		u.accounts = append(u.accounts, acc)
		u.byName[a.Name] = acc
	}
	return u, nil
}

// Start binds the SIP listeners (returning once they are bound) and starts
// registering. ctx bounds the UA's background work.
func (u *UA) Start(ctx context.Context) error {
	u.mu.Lock()
	if u.started {
		u.mu.Unlock()
		return errors.New("sip: Start called twice")
	}
	u.started = true
	u.mu.Unlock()

	tuneSipgo()
	uaOpts := []sipgo.UserAgentOption{sipgo.WithUserAgent(u.cur().UserAgent)}
	var dialTLS func(host string) *tls.Config
	if slices.Contains(u.cur().Transports, "tls") {
		st, err := newTLSStore(u.cur().TLS)
		if err != nil {
			return fmt.Errorf("sip: TLS: %w", err)
		}
		if st.cur.Load().cert == nil {
			return errors.New("sip: transport \"tls\" needs tls-certificate and tls-key for its listener")
		}
		u.tls = st
		dialTLS = st.dialConfig // ours (IP addresses); sipgo's own (host names):
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(st.clientConfig()))
	}
	sua, err := sipgo.NewUA(append(uaOpts,
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(u.log),
			sip.WithTransactionLayerUnhandledResponseHandler(u.onStrayResponse),
		),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(u.log)),
		sipgo.WithUserAgentParser(newParser()))...,
	)
	if err != nil {
		return fmt.Errorf("sip: %w", err)
	}
	srv, err := sipgo.NewServer(sua, sipgo.WithServerLogger(u.log))
	if err != nil {
		return fmt.Errorf("sip: %w", err)
	}
	cli, err := sipgo.NewClient(sua, sipgo.WithClientLogger(u.log))
	if err != nil {
		return fmt.Errorf("sip: %w", err)
	}
	u.sua, u.srv, u.cli = sua, srv, cli
	u.registerHandlers()

	u.edge = u.newEdge()
	u.edge.SetTap(u.tap)
	u.streams = newStreams(sua.TransportLayer(), u.edge.Stream, dialTLS)
	if err := u.listen(); err != nil {
		sua.Close()
		return err
	}
	u.ctx, u.cancel = context.WithCancel(ctx)

	if u.udpConn != nil {
		u.serve("udp", func() error { return srv.ServeUDP(u.udpConn) })
		if err := u.waitUDPReady(); err != nil {
			u.cancel()
			u.closeListeners() // ends the UDP serve goroutine
			u.wg.Wait()
			sua.Close()
			return err
		}
	}
	if u.tcpLn != nil {
		u.serve("tcp", func() error { return srv.ServeTCP(u.tcpLn) })
		u.serve("tcp (dialled)", func() error { return srv.ServeTCP(u.tcpOut) })
	}
	if u.tlsLn != nil {
		u.serve("tls", func() error { return srv.ServeTLS(u.tlsLn) })
		u.serve("tls (dialled)", func() error { return srv.ServeTLS(u.tlsOut) })
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		u.traceLoop()
	}()
	// The listeners follow the Start context too, not only Shutdown.
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		<-u.ctx.Done()
		u.closeListeners()
	}()

	u.mu.Lock()
	for _, a := range u.accounts {
		u.startAccountLocked(a)
	}
	u.mu.Unlock()
	u.log.Info("SIP user agent started", "udp", u.udpPort, "tcp", u.tcpPort, "tls", u.tlsPort, "outbound", u.outTransport)
	return nil
}

// listen binds the configured transports. With port 0 the kernel picks the
// first transport's port and the others must get the same one, which another
// socket may hold (the kernel picks a UDP port without looking at TCP): then
// it picks again, a few times, rather than fail a start nothing else chose.
func (u *UA) listen() error {
	for try := 1; ; try++ {
		err := u.listenOnce()
		if err == nil || u.cur().Port != 0 || try == 10 || !errors.Is(err, syscall.EADDRINUSE) {
			return err
		}
		u.udpConn, u.tcpLn, u.tlsLn, u.tcpOut, u.tlsOut = nil, nil, nil, nil, nil
		u.udpPort, u.tcpPort, u.tlsPort = 0, 0, 0
		u.udpLaddr = sip.Addr{}
	}
}

func (u *UA) listenOnce() error {
	host := u.cur().Address
	port := u.cur().Port
	for _, t := range u.cur().Transports {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		switch t {
		case "udp":
			if u.udpConn != nil {
				continue
			}
			c, err := net.ListenPacket(listenNetwork("udp", host), addr)
			if err != nil {
				u.closeListeners()
				return fmt.Errorf("sip: listen udp %s: %w (is another SIP service using the port?)", addr, err)
			}
			u.udpConn = u.edge.PacketConn(c)
			la := c.LocalAddr().(*net.UDPAddr)
			u.udpPort = la.Port
			u.udpLaddr = sip.Addr{IP: la.IP, Port: la.Port}
		case "tcp":
			if u.tcpLn != nil {
				continue
			}
			l, err := net.Listen(listenNetwork("tcp", host), addr)
			if err != nil {
				u.closeListeners()
				return fmt.Errorf("sip: listen tcp %s: %w (is another SIP service using the port?)", addr, err)
			}
			u.tcpLn = u.streams.listener("tcp", u.edge.Listener(l))
			u.tcpOut = u.streams.handoff("tcp", l.Addr())
			u.tcpPort = l.Addr().(*net.TCPAddr).Port
		case "tls":
			if u.tlsLn != nil {
				continue
			}
			taddr := net.JoinHostPort(host, strconv.Itoa(u.cur().TLSPort))
			l, err := net.Listen(listenNetwork("tcp", host), taddr)
			if err != nil {
				u.closeListeners()
				return fmt.Errorf("sip: listen tls %s: %w (is another SIP service using the port?)", taddr, err)
			}
			// The edge reads what TLS decrypted: the same vetting as TCP.
			u.tlsLn = u.streams.listener("tls", u.edge.Listener(tls.NewListener(l, u.tls.serverConfig())))
			u.tlsOut = u.streams.handoff("tls", l.Addr())
			u.tlsPort = l.Addr().(*net.TCPAddr).Port
			continue // its own port: not the one UDP and TCP share
		}
		if port == 0 {
			// Kernel-chosen: serve both transports on the same port.
			if u.udpPort != 0 {
				port = u.udpPort
			} else {
				port = u.tcpPort
			}
		}
	}
	return nil
}

func (u *UA) closeListeners() {
	if u.udpConn != nil {
		u.udpConn.Close()
	}
	u.closeStreamListeners()
}

// closeStreamListeners stops accepting TCP and TLS connections (accepted
// ones stay open).
func (u *UA) closeStreamListeners() {
	for _, l := range []net.Listener{u.tcpLn, u.tlsLn} {
		if l != nil {
			l.Close()
		}
	}
	for _, h := range []*handoff{u.tcpOut, u.tlsOut} {
		if h != nil {
			h.Close()
		}
	}
}

func (u *UA) serve(name string, f func() error) {
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		err := f()
		if u.ctx.Err() == nil && !u.isClosed() {
			if err == nil {
				err = errors.New("stopped")
			}
			u.mu.Lock()
			u.serveErr = fmt.Errorf("sip: %s listener: %w", name, err)
			u.mu.Unlock()
			u.log.Error("SIP listener stopped", "transport", name, "error", err)
		}
	}()
}

// waitUDPReady waits until sipgo has put the UDP listener into its pool,
// so that our requests leave from the listening port (the registrar and
// peers answer to it).
func (u *UA) waitUDPReady() error {
	pool := u.sua.TransportLayer().Pool("udp")
	key := u.udpConn.LocalAddr().String()
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if c := pool.Get(key); c != nil {
			c.TryClose()
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return errors.New("sip: UDP listener did not come up within 2s")
}

// Healthy reports an error when the UA's internal loops have stopped.
func (u *UA) Healthy() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case !u.started:
		return ErrNotStarted
	case u.closing:
		return ErrClosed
	case u.serveErr != nil:
		return u.serveErr
	}
	return nil
}

// Status snapshots one account.
func (u *UA) Status(account string) (AccountStatus, error) {
	u.mu.Lock()
	a, ok := u.byName[account]
	if !ok {
		u.mu.Unlock()
		return AccountStatus{}, fmt.Errorf("account %q: %w", account, ErrUnknownAccount)
	}
	u.pruneLocked()
	st := AccountStatus{Account: a.plan.Name, Code: a.code, Refused: a.refused, Calls: []CallStatus{},
		Registration: u.registrationLocked(a, u.clock.Now())}
	type entry struct {
		c     *call
		bound bool
	}
	var calls []entry
	for _, c := range u.calls {
		if c.acct == a {
			calls = append(calls, entry{c, c.tab.bound})
		}
	}
	u.mu.Unlock()
	now := u.clock.Now()
	for _, e := range calls {
		c := e.c
		c.mu.Lock()
		cs := u.callStatusLocked(c, now)
		c.mu.Unlock()
		cs.Active = e.bound
		st.Calls = append(st.Calls, cs)
	}
	sort.Slice(st.Calls, func(i, j int) bool { return st.Calls[i].ID < st.Calls[j].ID })
	return st, nil
}

// AccountSummary is what a one-line status needs of an account.
type AccountSummary struct {
	Code      int // final code of the latest REGISTER transaction; 0: none
	LiveCalls int // calls not yet ended
}

// Summary counts an account's live calls without a snapshot of each: the
// daemon's STATUS= line is recomputed on every SIP event, and Status
// (every lingering call copied with its media figures) made that most of
// the daemon's allocation under a steady call rate.
func (u *UA) Summary(account string) (AccountSummary, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	a, ok := u.byName[account]
	if !ok {
		return AccountSummary{}, fmt.Errorf("account %q: %w", account, ErrUnknownAccount)
	}
	return AccountSummary{Code: a.code, LiveCalls: u.liveCallsLocked(a)}, nil
}

// Shutdown ends every call (BYE/CANCEL/486), un-registers every account and
// closes the listeners, within ctx.
func (u *UA) Shutdown(ctx context.Context) error {
	u.mu.Lock()
	if !u.started || u.closing {
		u.mu.Unlock()
		return nil
	}
	u.closing = true
	var live []*call
	for _, c := range u.calls {
		if !c.tab.gone {
			live = append(live, c)
		}
	}
	accts := append([]*account(nil), u.accounts...)
	u.mu.Unlock()

	// UA-owned as well (u.wg), so that the wait for every goroutine below
	// covers one still ending a call after ctx is done.
	var wg sync.WaitGroup
	spawn := func(f func()) {
		wg.Add(1)
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			defer wg.Done()
			f()
		}()
	}
	for _, c := range live {
		spawn(func() { u.terminate(ctx, c, "shutdown", false) })
	}
	for _, a := range accts {
		spawn(func() { u.stopAccount(ctx, a) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("sip: shutdown: calls and registrations not finished: %w", ctx.Err())
	}

	// sipgo handles each message on a goroutine of its own and, when its
	// answer finds no socket in the pool, opens a new one, which its
	// transport's Close later ends with the count zeroed under the reader
	// ("UDP ref went negative"). So nothing that arrives from here reaches
	// sipgo, no transaction retransmits, and the UDP socket stays open
	// until sipgo's transport is closed.
	u.edge.Quiesce()
	u.sua.TransactionLayer().Close()
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	u.closeStreamListeners()
	// The transactions let go of their connections before the streams end
	// (a reference held then would go negative), and the streams end under
	// sipgo's readers before its transport's Close, which would zero their
	// counts under the readers instead.
	u.sua.TransactionLayer().Close()
	if serr := u.streams.close(ctx); serr != nil {
		err = errors.Join(err, fmt.Errorf("sip: shutdown: %w", serr))
	}
	u.sua.Close()
	u.cancel()
	u.closeListeners()
	all := make(chan struct{})
	go func() { u.wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("sip: shutdown: goroutines still running: %w", ctx.Err())
		}
	}
	u.rejects.stop()
	if cerr := u.alloc.Close(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("sip: media: %w", cerr))
	}
	u.log.Info("SIP user agent stopped")
	return err
}

// goTracked starts f as a UA-owned goroutine unless the UA is closed.
func (u *UA) goTracked(f func()) bool {
	u.mu.Lock()
	if u.closed || !u.started {
		u.mu.Unlock()
		return false
	}
	u.wg.Add(1)
	u.mu.Unlock()
	go func() {
		defer u.wg.Done()
		f()
	}()
	return true
}

// isClosed reports whether Shutdown closes the listeners.
func (u *UA) isClosed() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.closed
}

// isClosing reports whether Shutdown began.
func (u *UA) isClosing() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.closing
}

// enter registers a sipgo handler goroutine as UA-owned for its duration.
func (u *UA) enter() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed || !u.started {
		return false
	}
	u.wg.Add(1)
	return true
}
