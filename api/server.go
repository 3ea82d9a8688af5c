package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults applied by NewServer to zero Config fields that are not plan
// settings; the plan's (plan.Default) come from the daemon.
const (
	DefaultQueueLen     = 256
	DefaultWriteTimeout = 5 * time.Second
	// hubBacklog is how many broadcasts and probes may wait for the hub.
	hubBacklog = 8192
	// flushTimeout bounds how long a stopping server spends writing what is
	// still queued for a client.
	flushTimeout = 500 * time.Millisecond
)

// Config is the [tcp-settings] part of the SIP plan.
type Config struct {
	Address string         // listen address; "" = every interface
	Port    int            // TCP port; 0 = chosen by the kernel (tests)
	Allow   []netip.Prefix // client addresses allowed; empty = any
	// MaxClients is the number of simultaneous clients, at least 1 (0 is
	// rejected by Listen). One more is sent a fail "too many clients ..."
	// and closed.
	MaxClients int
	// MaxMessageBytes is the longest accepted message, at least 1 byte (0
	// is rejected by Listen).
	MaxMessageBytes int
	// QueueLen is the number of messages queued for one client (default
	// 256); a client whose queue is full is disconnected.
	QueueLen int
	// WriteTimeout bounds one write to a client (default 5s); a client
	// that does not read for that long is disconnected.
	WriteTimeout time.Duration
	// EventHistory is how many broadcast events are kept for `resume`, at
	// least 1 (0 is rejected by Listen).
	EventHistory int
}

// validate rejects the zero values of the plan settings, which have no
// default here.
func (c Config) validate() error {
	switch {
	case c.MaxClients < 1:
		return fmt.Errorf("api: max-clients %d: at least 1 client must be allowed", c.MaxClients)
	case c.MaxMessageBytes < 1:
		return fmt.Errorf("api: max-message-bytes %d: must be positive", c.MaxMessageBytes)
	case c.EventHistory < 1:
		return fmt.Errorf("api: event-history %d: at least 1 event must be kept", c.EventHistory)
	}
	return nil
}

// Server is the TCP API: it accepts clients, runs their commands on a
// Controller and fans broadcast events out to every client.
type Server struct {
	cfg  Config                 // as NewServer had it: Listen binds its Address and Port
	live atomic.Pointer[Config] // in force; Reconfigure swaps it
	ctrl Controller
	log  *slog.Logger

	ln net.Listener

	// events carries broadcasts, probes and test hooks to the hub.
	events     chan hubMsg
	register   chan registration
	unregister chan *client

	stats counters
	trace traceState // trace.go

	hist     *history      // owned by the hub goroutine
	arrivals arrivals      // owned by the hub goroutine
	latest   atomic.Uint64 // hist.seq, for pong
	opts     options

	closeOnce sync.Once
	closing   chan struct{} // closed by Close
	mu        sync.Mutex
	serving   bool          // Serve was called
	served    chan struct{} // closed when Serve returns
}

// NewServer returns a server; call Listen, then Serve.
func NewServer(cfg Config, ctrl Controller, log *slog.Logger, opts ...Option) *Server {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := options{now: time.Now, hold: holdTime}
	for _, opt := range opts {
		opt(&o)
	}
	if o.started.IsZero() {
		o.started = o.now()
	}
	o.startedText = o.started.UTC().Format(time.RFC3339Nano)
	s := &Server{
		hist:       newHistory(cfg.EventHistory),
		opts:       o,
		cfg:        cfg,
		ctrl:       ctrl,
		log:        log,
		events:     make(chan hubMsg, hubBacklog),
		trace:      traceState{msgs: make(chan SIPMessage, traceBacklog)},
		register:   make(chan registration),
		unregister: make(chan *client),
		closing:    make(chan struct{}),
		served:     make(chan struct{}),
	}
	s.live.Store(&cfg)
	return s
}

// conf is the configuration in force.
func (s *Server) conf() *Config { return s.live.Load() }

// Reconfigure puts a reload's [tcp-settings] in force without closing
// anything: allow and max-message-bytes apply to the connections accepted
// after it, max-clients to the next connection (a lower limit disconnects
// no one), event-history resizes the history, keeping the newest events.
// The listener's address and port cannot change (it is bound).
func (s *Server) Reconfigure(cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	if cfg.Address != s.cfg.Address || cfg.Port != s.cfg.Port {
		return fmt.Errorf("api: the listener is bound to %s: a new address or port needs a restart",
			net.JoinHostPort(s.cfg.Address, strconv.Itoa(s.cfg.Port)))
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	cfg.Allow = slices.Clone(cfg.Allow)
	old := s.live.Swap(&cfg)
	if n := cfg.EventHistory; n != old.EventHistory {
		// The history is the hub's: it resizes it between two events.
		select {
		case s.events <- hubMsg{fn: func() { s.hist.resize(n) }}:
		case <-s.closing:
		}
	}
	return nil
}

// Close stops the server as the end of Serve's ctx does: the broadcasts
// already handed to the hub are delivered, clients get what was queued for
// them, then everything is closed. It returns once Serve has returned (at
// once when Serve was never called, after closing the listener).
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.mu.Lock()
	serving := s.serving
	s.mu.Unlock()
	if serving {
		<-s.served
		return nil
	}
	if s.ln != nil {
		return s.ln.Close()
	}
	return nil
}

// Listen binds the listening socket. It is separate from Serve so that the
// daemon can report READY=1 once the port is bound.
func (s *Server) Listen() error {
	if s.ln != nil {
		return errors.New("api: Listen called twice")
	}
	if err := s.cfg.validate(); err != nil {
		return err
	}
	addr := net.JoinHostPort(s.cfg.Address, strconv.Itoa(s.cfg.Port))
	ln, err := net.Listen(listenNetwork(s.cfg.Address), addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address; nil before Listen.
func (s *Server) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Serve accepts clients until ctx is done or Close is called (calling
// Listen first if needed),
// then closes the listener and every connection, giving each client up to
// half a second to receive what was already queued for it, and returns once
// every goroutine it started has ended. It returns nil after ctx is done, or
// the error that stopped the accept loop.
func (s *Server) Serve(ctx context.Context) error {
	s.mu.Lock()
	if s.serving {
		s.mu.Unlock()
		return errors.New("api: Serve called twice")
	}
	s.serving = true
	s.mu.Unlock()
	defer close(s.served)
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	hubStop := make(chan struct{})
	hubDrain := make(chan chan struct{})
	var hubWG sync.WaitGroup
	hubWG.Go(func() { s.runHub(hubStop, hubDrain) })

	// connCtx ends the clients; it is also the ctx the Controller gets.
	connCtx, stopConns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConns()
	var conns sync.WaitGroup
	acceptDone := make(chan error, 1)
	go func() { acceptDone <- s.acceptLoop(ctx, connCtx, &conns) }()

	var err error
	select {
	case <-ctx.Done():
		s.ln.Close()
		<-acceptDone
	case <-s.closing:
		s.ln.Close()
		<-acceptDone
	case err = <-acceptDone:
		s.ln.Close()
	}
	// Deliver the broadcasts already handed to the hub (e.g. the call-ended
	// events of a shutdown), then stop the clients, then the hub.
	drained := make(chan struct{})
	hubDrain <- drained
	<-drained
	stopConns()
	conns.Wait()
	close(hubStop)
	hubWG.Wait()
	return err
}

// acceptLoop accepts until the listener is closed; ctx is Serve's, connCtx
// the one given to clients.
func (s *Server) acceptLoop(ctx, connCtx context.Context, conns *sync.WaitGroup) error {
	var backoff time.Duration
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporaryAccept(err) {
				// EMFILE and friends: wait instead of spinning.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-ctx.Done():
					return nil
				}
			}
			return fmt.Errorf("accept on %s: %w", s.ln.Addr(), err)
		}
		backoff = 0
		s.admit(ctx, connCtx, conn, conns)
	}
}

// admit applies the allow-list and the client limit, then starts the
// client's goroutines.
func (s *Server) admit(ctx, connCtx context.Context, conn net.Conn, conns *sync.WaitGroup) {
	remote := conn.RemoteAddr().String()
	if !s.allowed(conn.RemoteAddr()) {
		s.stats.refused.Add(1)
		s.log.Warn("API connection refused: address not in [tcp-settings] allow", "remote", remote)
		conn.Close()
		return
	}
	cfg := s.conf()
	c := newClient(conn, cfg.QueueLen)
	reply := make(chan bool, 1)
	select {
	case s.register <- registration{c, reply}:
	case <-ctx.Done():
		conn.Close()
		return
	}
	if !<-reply {
		s.stats.rejected.Add(1)
		s.log.Warn("API connection closed: too many clients", "remote", remote, "max_clients", cfg.MaxClients)
		conns.Go(func() {
			msg := encodeFail("", "", fmt.Sprintf("too many clients: max-clients is %d; try again later", cfg.MaxClients))
			conn.SetWriteDeadline(time.Now().Add(time.Second))
			conn.Write(msg)
			conn.Close()
		})
		return
	}
	s.stats.accepted.Add(1)
	s.log.Debug("API client connected", "remote", remote)
	conns.Go(func() { s.serveClient(connCtx, c, cfg) })
}

func (s *Server) allowed(a net.Addr) bool {
	allow := s.conf().Allow
	if len(allow) == 0 {
		return true
	}
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := ta.AddrPort().Addr().Unmap()
	for _, p := range allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// serveClient runs the client's reader in this goroutine and its writer in
// another, and unregisters it once both have ended.
// cfg is the configuration in force when it connected.
func (s *Server) serveClient(ctx context.Context, c *client, cfg *Config) {
	var writer sync.WaitGroup
	writer.Go(func() { s.writeLoop(ctx, c, cfg.WriteTimeout) })
	reason := s.readLoop(ctx, c, cfg.MaxMessageBytes)
	c.stop(reason)
	writer.Wait()
	c.conn.Close()
	s.unregister <- c // the hub outlives every client (see Serve)
	s.log.Debug("API client disconnected", "remote", c.remote, "reason", c.reason())
}

// readLoop reads and runs commands until the connection ends; it returns why.
func (s *Server) readLoop(ctx context.Context, c *client, limit int) string {
	fr := NewFrameReader(c.conn, limit)
	for {
		msg, err := fr.Next()
		switch {
		case err == nil:
			s.execute(ctx, c, msg)
		case errors.Is(err, ErrMessageTooLong):
			s.fail(c, "", "", fmt.Sprintf("message longer than max-message-bytes (%d bytes): it was discarded up to its terminating NUL", limit))
		case errors.Is(err, io.EOF):
			return "end of stream"
		case errors.Is(err, net.ErrClosed):
			return "closed"
		default:
			return err.Error()
		}
	}
}

// writeLoop writes what is queued for the client, several frames per write
// when they are waiting. After the reader saw end of stream it writes what
// is queued and returns; when ctx ends it does the same within flushTimeout.
func (s *Server) writeLoop(ctx context.Context, c *client, writeTimeout time.Duration) {
	defer c.conn.Close() // unblocks the reader
	buf := make([]byte, 0, 4096)
	// writeQueued writes one batch; done: nothing was taken (queue empty,
	// or the reader is writing and signals wake once it is done).
	writeQueued := func(timeout time.Duration) (done, ok bool) {
		c.mu.Lock()
		buf = c.takeLocked(buf[:0], 64<<10)
		c.mu.Unlock()
		if len(buf) == 0 {
			return true, true
		}
		ok = s.write(c, buf, timeout)
		c.mu.Lock()
		c.writing = false
		c.mu.Unlock()
		return false, ok
	}
	flush := func(timeout time.Duration) {
		deadline := time.NewTimer(timeout)
		defer deadline.Stop()
		for {
			c.mu.Lock()
			readerWriting := c.writing
			c.waiter = readerWriting
			c.mu.Unlock()
			if readerWriting {
				select {
				case <-c.wake:
					continue
				case <-deadline.C:
					return
				}
			}
			done, ok := writeQueued(timeout)
			if done || !ok {
				return
			}
			select {
			case <-deadline.C:
				return
			default:
			}
		}
	}
	for {
		select {
		case <-c.wake:
			for {
				done, ok := writeQueued(writeTimeout)
				if !ok {
					return
				}
				if done {
					break
				}
			}
		case <-c.quit:
			if c.reason() == "end of stream" {
				flush(writeTimeout)
			}
			return
		case <-ctx.Done():
			flush(min(flushTimeout, writeTimeout))
			return
		}
	}
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	Clients        int    // connected now
	Accepted       uint64 // connections accepted
	Refused        uint64 // refused by the allow-list
	Rejected       uint64 // closed for max-clients
	DroppedClients uint64 // disconnected for a full queue or a failed write
	DroppedEvents  uint64 // broadcasts lost because the hub backlog was full
	Commands       uint64 // messages received (valid or not)
	Fails          uint64 // fail replies to commands
}

type counters struct {
	clients                       atomic.Int64
	accepted, refused, rejected   atomic.Uint64
	droppedClients, droppedEvents atomic.Uint64
	commands, fails               atomic.Uint64
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	return Stats{
		Clients:        int(s.stats.clients.Load()),
		Accepted:       s.stats.accepted.Load(),
		Refused:        s.stats.refused.Load(),
		Rejected:       s.stats.rejected.Load(),
		DroppedClients: s.stats.droppedClients.Load(),
		DroppedEvents:  s.stats.droppedEvents.Load(),
		Commands:       s.stats.commands.Load(),
		Fails:          s.stats.fails.Load(),
	}
}

// listenNetwork: "0.0.0.0" and other IPv4 addresses listen on IPv4 only,
// "::" and "" on both families (Linux dual stack), another IPv6 address on
// IPv6 only.
func listenNetwork(address string) string {
	a, err := netip.ParseAddr(address)
	switch {
	case err != nil:
		return "tcp"
	case a.Unmap().Is4():
		return "tcp4"
	case a.IsUnspecified():
		return "tcp"
	}
	return "tcp6"
}
