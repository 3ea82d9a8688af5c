package daemon

import (
	"context"
	"errors"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"
)

// Notifier sends sd_notify(3) states.
type Notifier interface {
	Notify(state string) error
}

// systemdNotifier talks to $NOTIFY_SOCKET; without it, it does nothing.
type systemdNotifier struct{}

func (systemdNotifier) Notify(state string) error {
	_, err := sddaemon.SdNotify(false, state)
	return err
}

// watchdog pings systemd at half of WatchdogSec, but only after a health
// check through the event path and the UA has passed: a wedged daemon stops
// pinging and systemd restarts it.
func (d *Daemon) watchdog(ctx context.Context) {
	interval, err := sddaemon.SdWatchdogEnabled(false)
	if err != nil {
		d.log.Warn("watchdog settings unreadable", "err", err)
		return
	}
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval / 2)
	defer t.Stop()
	runWatchdog(ctx, interval/2, t.C, d.healthy, d.notify, d.log.Warn)
}

// healthy is the watchdog's health check.
func (d *Daemon) healthy(ctx context.Context) error {
	return errors.Join(d.hub.Probe(ctx), d.ua.Healthy())
}

// runWatchdog calls check at once and at every tick (one a period),
// bounded by half a period, and sends WATCHDOG=1 only when it succeeds.
func runWatchdog(ctx context.Context, period time.Duration, tick <-chan time.Time, check func(context.Context) error, n Notifier, warn func(string, ...any)) {
	for {
		cctx, cancel := context.WithTimeout(ctx, period/2)
		err := check(cctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			warn("health check failed: withholding watchdog ping", "err", err)
		} else if err := n.Notify("WATCHDOG=1"); err != nil {
			warn("watchdog ping failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}
