package daemon

import (
	"context"
	"fmt"
	"time"
)

// statusPeriod bounds how long a registration change (the UA reports
// failures as events, but not successes) takes to reach STATUS=.
const statusPeriod = 2 * time.Second

// statusCounts is what STATUS= says about the running daemon.
type statusCounts struct {
	accounts   int // in the plan
	registrars int // accounts that register (register = true and a server)
	registered int // last REGISTER answered 200
	calls      int // calls not yet ended
	reloadErr  bool
}

// String is the text systemctl status shows, e.g.
// "3/4 accounts registered, 2 calls".
func (c statusCounts) String() string {
	calls := plural(c.calls, "call")
	var s string
	if c.registrars == 0 && c.registered == 0 {
		s = fmt.Sprintf("%s (none registers), %s", plural(c.accounts, "account"), calls)
	} else {
		s = fmt.Sprintf("%d/%d accounts registered, %s", c.registered, max(c.registrars, c.registered), calls)
	}
	if c.reloadErr {
		s += "; last reload rejected (journalctl -u telestra-sipd -p err)"
	}
	return s
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// pokeStatus asks the status loop to recompute STATUS= now; it never blocks.
func (d *Daemon) pokeStatus() {
	select {
	case d.statusPoke <- struct{}{}:
	default:
	}
}

// statusGap is the least time between two STATUS= computations: every SIP
// event pokes the loop, and each computation walks the call tables under
// the UA lock (lingering calls included), which under a steady call rate
// cost a few per cent of the daemon's CPU for a line a human reads.
const statusGap = 250 * time.Millisecond

// statusLoop sends STATUS= after start, after each poke (SIP events,
// reloads; those of one statusGap are taken together) and whenever the
// periodic look finds the text changed, and only when it changed. run owns
// it: it stops with ctx.
func (d *Daemon) statusLoop(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	gap := time.NewTimer(0)
	defer gap.Stop()
	last := ""
	for {
		if s := d.statusCounts().String(); s != last {
			d.sdNotify("STATUS=" + s)
			last = s
		}
		gap.Reset(statusGap)
		select {
		case <-ctx.Done():
			return
		case <-gap.C:
		}
		select {
		case <-ctx.Done():
			return
		case <-d.statusPoke:
		case <-t.C:
		}
	}
}

func (d *Daemon) statusCounts() statusCounts {
	d.mu.Lock()
	accts := d.plan.Accounts
	c := statusCounts{accounts: len(accts), reloadErr: d.reloadErr}
	d.mu.Unlock()
	for _, a := range accts {
		if a.Register && a.Server != "" {
			c.registrars++
		}
		st, err := d.ua.Summary(a.Name)
		if err != nil {
			continue // removed by a reload being applied
		}
		if st.Code == 200 {
			c.registered++
		}
		c.calls += st.LiveCalls
	}
	return c
}
