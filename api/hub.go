package api

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
)

// client is one connection. Its reader goroutine (serveClient) and the hub
// both put frames on send, never blocking: a full queue stops the client.
type client struct {
	conn   net.Conn
	remote string
	send   chan []byte
	// quit is closed once by stop; send is never closed, so a late
	// enqueue from the hub or the reader cannot panic.
	quit chan struct{}
	once sync.Once
	why  string // set before quit is closed
}

func newClient(conn net.Conn, queueLen int) *client {
	return &client{
		conn:   conn,
		remote: conn.RemoteAddr().String(),
		send:   make(chan []byte, queueLen),
		quit:   make(chan struct{}),
	}
}

// enqueue queues a frame without blocking. When the queue is full it stops
// the client; overflow reports that this call did so (for the log).
func (c *client) enqueue(frame []byte) (queued, overflow bool) {
	select {
	case <-c.quit:
		return false, false
	default:
	}
	select {
	case c.send <- frame:
		return true, false
	default:
		overflow = c.stop("queue full")
		// Close now: the writer may be stuck in a write to this client
		// until its deadline.
		c.conn.Close()
		return false, overflow
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
	select {
	case <-c.quit:
		return c.why
	default:
		return ""
	}
}

type registration struct {
	c     *client
	reply chan bool // true: admitted
}

// hubMsg is one item for the hub: a broadcast event, a probe, or (tests)
// a function to run on the hub goroutine.
type hubMsg struct {
	event any
	probe chan struct{}
	fn    func()
}

// runHub owns the client set until stop is closed. Serve closes stop only
// after every client goroutine ended, so unregister never blocks for good.
func (s *Server) runHub(stop <-chan struct{}, drain <-chan chan struct{}) {
	clients := make(map[*client]struct{})
	handle := func(m hubMsg) {
		switch {
		case m.probe != nil:
			close(m.probe)
		case m.fn != nil:
			m.fn()
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
			s.stats.clients.Store(int64(len(clients)))
			r.reply <- true
		case c := <-s.unregister:
			delete(clients, c)
			s.stats.clients.Store(int64(len(clients)))
		case m := <-s.events:
			handle(m)
		case done := <-drain:
			for n := len(s.events); n > 0; n-- {
				handle(<-s.events)
			}
			close(done)
		case <-stop:
			return
		}
	}
}

func (s *Server) fanOut(clients map[*client]struct{}, ev any) {
	frame, err := encodeEvent(ev)
	if err != nil {
		s.log.Error("broadcast dropped", "err", err)
		return
	}
	for c := range clients {
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
		s.stats.droppedClients.Add(1)
		s.log.Warn("API client disconnected: its queue is full (it does not read its socket)",
			"remote", c.remote, "queue_len", s.cfg.QueueLen)
	}
	return queued
}

// Broadcast sends a CallIncoming, CallAnswered, CallEnded or Fail event to
// every client. It never blocks: the event waits for the hub in a large
// buffer, and when even that is full the event is dropped, counted in
// Stats.DroppedEvents and logged.
func (s *Server) Broadcast(ev any) {
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
