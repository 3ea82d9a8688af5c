package api

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"syscall"
	"time"
)

// client is one connection. Frames for it are either written at once by its
// reader goroutine (reply: nothing queued, no write in flight) or queued for
// its writer goroutine; the hub and the Controller only ever queue, never
// write, so neither can block on a client. All of that is decided under mu,
// so frames reach the socket in the order they were handed over.
type client struct {
	conn   net.Conn
	remote string
	// Owned by the hub goroutine (history.go): joined is the seq of the
	// latest broadcast when the client was admitted, or released from its
	// hold; every later one is sent to it live. While held, broadcasts wait
	// in the history until its first command or holdUntil.
	joined    uint64
	held      bool
	holdUntil time.Time
	// commanded is set by the reader goroutine at the first message.
	commanded bool
	max       int             // queue bound
	raw       syscall.RawConn // for reply's non-blocking write; nil: always queue
	rw        rawWrite        // tryWrite's callback for raw, built once

	mu      sync.Mutex
	queue   [][]byte // frames waiting for the writer goroutine, at most max
	writing bool     // a write to conn is in flight (reader or writer)
	waiter  bool     // the writer waits for the reader's write to end
	// wake (capacity 1) tells the writer goroutine that queue is not empty
	// or, when waiter is set, that writing ended.
	wake chan struct{}

	// quit is closed once by stop; the queue is never closed, so a late
	// enqueue from the hub or the Controller cannot panic.
	quit chan struct{}
	once sync.Once
	why  string // set before quit is closed
}

func newClient(conn net.Conn, queueLen int) *client {
	c := &client{
		conn:   conn,
		remote: conn.RemoteAddr().String(),
		max:    queueLen,
		queue:  make([][]byte, 0, min(queueLen, 16)),
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
	}
	if sc, ok := conn.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			c.raw = raw
			limitUnsent(raw)
			c.rw.fn = c.rw.write
		}
	}
	return c
}

// rawWrite is the callback of tryWrite with its argument and results: a
// closure made per call escapes to the heap (allocations on every
// answer). Only the writer of the moment uses it (client.writing).
type rawWrite struct {
	b   []byte
	n   int
	err error
	fn  func(fd uintptr) bool // write, as a func value made once
}

func (w *rawWrite) write(fd uintptr) bool {
	for {
		w.n, w.err = syscall.Write(int(fd), w.b)
		if w.err != syscall.EINTR {
			return true // done, whatever happened: never wait here
		}
	}
}

// tryWrite writes as much of b as the socket takes now, without waiting:
// n < len(b) with a nil error means the socket buffer is full.
func (c *client) tryWrite(b []byte) (int, error) {
	w := &c.rw
	w.b, w.n, w.err = b, 0, nil
	err := c.raw.Write(w.fn)
	n, werr := max(w.n, 0), w.err
	w.b, w.err = nil, nil
	if err != nil {
		return 0, err // closed
	}
	if werr == syscall.EAGAIN {
		werr = nil
	}
	return n, werr
}

// enqueue queues a frame without blocking. When the queue is full it stops
// the client; overflow reports that this call did so (for the log).
func (c *client) enqueue(frame []byte) (queued, overflow bool) {
	c.mu.Lock()
	queued, full := c.pushLocked(frame)
	c.mu.Unlock()
	if full {
		overflow = c.overflowed()
	}
	return queued, overflow
}

// overflowed stops the client for a full queue; it reports whether this
// call did it.
func (c *client) overflowed() bool {
	done := c.stop("queue full")
	// Close now: a write to this client may be stuck until its deadline.
	c.conn.Close()
	return done
}

// pushLocked appends frame to the queue and wakes the writer; full reports
// a queue already at its bound (the frame is then dropped).
func (c *client) pushLocked(frame []byte) (queued, full bool) {
	if c.stopped() {
		return false, false
	}
	if len(c.queue) >= c.max {
		return false, true
	}
	c.queue = append(c.queue, frame)
	c.signal()
	return true, false
}

// signal wakes the writer goroutine without blocking.
func (c *client) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// takeLocked moves queued frames, up to about limit bytes (at least one
// frame), into buf and marks a write in flight. It returns buf unchanged
// when there is nothing to write or another write is in flight.
func (c *client) takeLocked(buf []byte, limit int) []byte {
	if c.writing || len(c.queue) == 0 {
		return buf
	}
	n := 0
	for n < len(c.queue) && (n == 0 || len(buf)+len(c.queue[n]) <= limit) {
		buf = append(buf, c.queue[n]...)
		n++
	}
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	c.writing = true
	return buf
}

func (c *client) stopped() bool {
	select {
	case <-c.quit:
		return true
	default:
		return false
	}
}

// stop marks the client as ending; it reports whether this call did it.
func (c *client) stop(reason string) bool {
	done := false
	c.once.Do(func() {
		c.why = reason
		close(c.quit)
		done = true
	})
	return done
}

// reason is why the client stopped; only valid after quit is closed.
func (c *client) reason() string {
	if c.stopped() {
		return c.why
	}
	return ""
}

type registration struct {
	c     *client
	reply chan bool // true: admitted
}

// hubMsg is one item for the hub: a broadcast event, a probe, or (tests)
// a function to run on the hub goroutine.
type hubMsg struct {
	event   Event
	probe   chan struct{}
	fn      func()
	resume  *resumeReq
	release *client // its first command came: end its hold
	trace   *traceSub
}

// runHub owns the client set until stop is closed. Serve closes stop only
// after every client goroutine ended, so unregister never blocks for good.
func (s *Server) runHub(stop <-chan struct{}, drain <-chan chan struct{}) {
	clients := make(map[*client]struct{})
	tracing := tracers{}
	handle := func(m hubMsg) {
		switch {
		case m.probe != nil:
			close(m.probe)
		case m.trace != nil:
			s.subscribe(tracing, m.trace)
		case m.fn != nil:
			m.fn()
		case m.resume != nil:
			s.resume(*m.resume)
		case m.release != nil:
			s.activate(m.release)
		default:
			s.fanOut(clients, m.event)
		}
	}
	for {
		select {
		case r := <-s.register:
			if len(clients) >= s.cfg.MaxClients {
				r.reply <- false
				continue
			}
			clients[r.c] = struct{}{}
			r.c.joined = s.hist.seq
			s.arrivals.hold(r.c, s.opts.now(), s.opts.hold)
			s.stats.clients.Store(int64(len(clients)))
			r.reply <- true
		case c := <-s.unregister:
			delete(clients, c)
			s.forget(tracing, c)
			s.stats.clients.Store(int64(len(clients)))
		case m := <-s.events:
			handle(m)
		case <-s.arrivals.expired():
			s.release(s.opts.now(), false)
		case m := <-s.trace.msgs:
			s.fanOutTrace(tracing, m)
		case done := <-drain:
			for n := len(s.events); n > 0; n-- {
				handle(<-s.events)
			}
			s.release(s.opts.now(), true)
			close(done)
		case <-stop:
			return
		}
	}
}

func (s *Server) fanOut(clients map[*client]struct{}, ev Event) {
	frame, err := encodeEvent(ev)
	if err != nil {
		s.log.Error("broadcast dropped", "err", err)
		return
	}
	frame = s.hist.stamp(frame)
	s.latest.Store(s.hist.seq)
	for c := range clients {
		if c.held {
			continue // gets it from the history when released
		}
		if !s.enqueue(c, frame) {
			// Stopped: no more broadcasts for it. Its goroutines
			// unregister it once they have ended.
			delete(clients, c)
		}
	}
}

// enqueue queues a frame for c and logs when that overflows c's queue.
func (s *Server) enqueue(c *client, frame []byte) bool {
	queued, overflow := c.enqueue(frame)
	if overflow {
		s.logOverflow(c)
	}
	return queued
}

func (s *Server) logOverflow(c *client) {
	s.stats.droppedClients.Add(1)
	s.log.Warn("API client disconnected: its queue is full (it does not read its socket)",
		"remote", c.remote, "queue_len", s.cfg.QueueLen)
}

// reply hands a command's direct answer to c; only c's reader goroutine
// calls it. When nothing is queued and no write is in flight it writes the
// frame itself, without waiting: that saves the wake-up of the writer
// goroutine, often on the other CPU, on every answer. Whatever the socket
// does not take at once, and every frame while something waits, goes to the
// writer goroutine through the queue, as broadcasts do; so the reader never
// blocks on a client either, and a client that does not read is dropped
// when its queue fills or a write blocks for WriteTimeout, as before.
func (s *Server) reply(c *client, frame []byte) {
	c.mu.Lock()
	if c.raw == nil || c.writing || len(c.queue) > 0 || c.stopped() {
		_, full := c.pushLocked(frame)
		c.mu.Unlock()
		if full && c.overflowed() {
			s.logOverflow(c)
		}
		return
	}
	c.writing = true
	c.mu.Unlock()
	n, err := c.tryWrite(frame)
	c.mu.Lock()
	c.writing = false
	if err == nil && n < len(frame) {
		// The rest goes first, before what was queued meanwhile. It may
		// exceed the bound by one, as the writer's batch in flight does.
		c.queue = slices.Insert(c.queue, 0, frame[n:])
	}
	if len(c.queue) > 0 || c.waiter {
		c.signal()
	}
	c.mu.Unlock()
	if err != nil {
		s.writeFailed(c, err)
		c.conn.Close() // ends the reader and the writer
	}
}

// writeFailed stops c after a failed write. A client that closed its end
// (EPIPE, ECONNRESET: a telestra-sipctl that exits after its answer) has
// simply gone; only a client that stopped reading is worth a warning.
func (s *Server) writeFailed(c *client, err error) {
	if !c.stop("write failed: " + err.Error()) {
		return
	}
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed) {
		s.log.Debug("API client disconnected: it closed the connection", "remote", c.remote, "err", err)
		return
	}
	s.stats.droppedClients.Add(1)
	s.log.Warn("API client disconnected: write failed", "remote", c.remote, "err", err)
}

// write writes b to c with a deadline; when that fails it stops c and logs.
func (s *Server) write(c *client, b []byte, timeout time.Duration) bool {
	c.conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.conn.Write(b)
	// The deadline belongs to this write only: left in place, it would fail
	// reply's later direct write once it has passed.
	c.conn.SetWriteDeadline(time.Time{})
	if err != nil {
		s.writeFailed(c, err)
		return false
	}
	return true
}

// Broadcast sends an event to every client. It never blocks, so the SIP
// stack may call it with its lock held: the event waits for the hub in a
// large buffer (the one queue events cross between sip and the clients'
// own queues, which Probe probes), and when even that is full the event is
// dropped, counted in Stats.DroppedEvents and logged.
func (s *Server) Broadcast(ev Event) {
	select {
	case s.events <- hubMsg{event: ev}:
	default:
		if n := s.stats.droppedEvents.Add(1); n == 1 || n%1000 == 0 {
			s.log.Error("API broadcast dropped: the hub is not keeping up", "dropped_total", n, "event", ev)
		}
	}
}

// Probe sends a probe through the broadcast path and returns nil once the hub
// handled it, or ctx's error. The daemon pings the systemd watchdog only
// while Probe succeeds.
func (s *Server) Probe(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case s.events <- hubMsg{probe: done}:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// inHub runs fn on the hub goroutine (through the broadcast path), for tests
// that need to stall the hub.
func (s *Server) inHub(fn func()) {
	s.events <- hubMsg{fn: fn}
}

func isTemporaryAccept(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ECONNABORTED, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
