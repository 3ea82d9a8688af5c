package main

import (
	"context"
	"fmt"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
)

// Reconnection delays of `events`: doubling from the first to the last.
const (
	redialFirst = 200 * time.Millisecond
	redialMax   = 5 * time.Second
)

// follower is the state `events` keeps across connections.
type follower struct {
	last uint64 // seq of the latest event printed, or the daemon's latest when we joined
	// started is pong's start time of the daemon run we follow: another
	// value means the daemon restarted.
	started string
}

// events prints every event until ctx ends (exit 0). When the connection is
// lost it says so on stderr, reconnects and resumes after the last event it
// printed, so that nothing is missed or printed twice; the first connection
// failing is exit 2.
func (c *cli) events(ctx context.Context, asJSON bool) error {
	cl, err := c.dial(ctx)
	if err != nil {
		return err
	}
	// The daemon's latest seq: the first resume starts after it.
	pctx, cancel := context.WithTimeout(ctx, c.timeout)
	m, err := cl.Pong(pctx)
	cancel()
	if err != nil {
		cl.Close()
		return c.explain(err)
	}
	f := &follower{last: m.Seq, started: m.Started}
	for {
		err := c.printEvents(ctx, cl, f, asJSON)
		cl.Close()
		if ctx.Err() != nil {
			return nil
		}
		fmt.Fprintf(c.stderr, "telestra-sipctl: %v; reconnecting\n", c.explain(err))
		if cl = c.redial(ctx); cl == nil {
			return nil // interrupted
		}
		c.resume(ctx, cl, f)
	}
}

// printEvents prints until the connection or ctx ends.
func (c *cli) printEvents(ctx context.Context, cl *client.Client, f *follower, asJSON bool) error {
	for {
		m, err := cl.Next(ctx)
		if err != nil {
			return err
		}
		if m.Event == api.EventPong {
			continue // ours
		}
		if m.Event == api.EventFail && m.Cmd == api.CmdResume {
			fmt.Fprintf(c.stderr, "telestra-sipctl: %s\n", m.Error)
			continue
		}
		f.last = max(f.last, m.Seq)
		if asJSON {
			fmt.Fprintf(c.stdout, "%s\n", m.Raw)
		} else {
			fmt.Fprintf(c.stdout, "%s %s\n", c.now().Format("15:04:05.000"), eventLine(m))
		}
	}
}

// redial connects again, waiting longer after each failure, until it works
// (nil when ctx ended first).
func (c *cli) redial(ctx context.Context) *client.Client {
	delay := redialFirst
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
		if cl, err := c.dial(ctx); err == nil {
			return cl
		}
		delay = min(2*delay, redialMax)
	}
}

// resume asks for what was missed. A daemon that restarted numbers its
// events from 1 again, so then everything it still keeps is asked for.
func (c *cli) resume(ctx context.Context, cl *client.Client, f *follower) {
	pctx, cancel := context.WithTimeout(ctx, c.timeout)
	m, err := cl.Pong(pctx)
	cancel()
	since := f.last
	if err == nil && (m.Started != f.started || m.Seq < f.last) {
		fmt.Fprintf(c.stderr, "telestra-sipctl: reconnected to %s: telestra-sipd restarted (up %ds); printing its events from the first it keeps\n",
			c.addr, m.UptimeS)
		since = 0
		f.last = 0
		f.started = m.Started
	} else {
		fmt.Fprintf(c.stderr, "telestra-sipctl: reconnected to %s; resuming after event %d\n", c.addr, since)
	}
	if err := cl.Resume(since); err != nil {
		fmt.Fprintf(c.stderr, "telestra-sipctl: resume: %v\n", err)
	}
}
