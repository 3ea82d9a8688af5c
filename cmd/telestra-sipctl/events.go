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
	// started is pong's start time of the daemon run last seen; resume
	// names it, so that the daemon tells when it has restarted since.
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
		return c.explain(err, c.timeout)
	}
	f := &follower{last: m.Seq, started: m.Started}
	for {
		err := c.printEvents(ctx, cl, f, asJSON)
		cl.Close()
		if ctx.Err() != nil {
			return nil
		}
		fmt.Fprintf(c.stderr, "telestra-sipctl: %v; reconnecting\n", c.explain(err, c.timeout))
		if cl = c.redial(ctx); cl == nil {
			return nil // interrupted
		}
		c.resume(cl, f)
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
			// Ours, sent after each resume: the run we now follow.
			f.started = m.Started
			continue
		}
		if m.Event == api.EventFail && m.Cmd == api.CmdResume {
			fmt.Fprintf(c.stderr, "telestra-sipctl: %s\n", m.Error)
			continue
		}
		// The latest printed, not the highest: after a restart the new
		// run counts from 1 again.
		f.last = m.Seq
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

// resume asks for what was missed as the connection's first command, so
// the replay and the live stream come in order (docs/api.md), naming the
// run it saw; a daemon that restarted since says so in a fail, printed on
// stderr, and sends its new run's events. The ping after it tells the run
// now followed.
func (c *cli) resume(cl *client.Client, f *follower) {
	fmt.Fprintf(c.stderr, "telestra-sipctl: reconnected to %s; resuming after event %d\n", c.addr, f.last)
	if err := cl.Resume(f.last, f.started); err != nil {
		fmt.Fprintf(c.stderr, "telestra-sipctl: resume: %v\n", err)
		return
	}
	if err := cl.Send(map[string]any{"cmd": api.CmdPing}); err != nil {
		fmt.Fprintf(c.stderr, "telestra-sipctl: ping: %v\n", err)
	}
}
