package daemon

import (
	"fmt"
	"reflect"

	"github.com/telestra/telestra-sip/cmd/internal/plan"
	"github.com/telestra/telestra-sip/hw"
)

// reload re-reads the plan on SIGHUP. An invalid plan is logged and the
// running one kept. Accounts whose settings changed re-register; calls of
// unchanged accounts are not touched. Listener and RTP settings need a
// restart, which is logged rather than half-applied.
func (d *Daemon) reload() {
	d.sdNotify("RELOADING=1")
	defer d.sdNotify("READY=1")

	np, err := plan.Load(d.opts.PlanPath)
	if err != nil {
		d.log.Error("reload: plan rejected, keeping the running plan", "plan", d.opts.PlanPath, "err", err)
		return
	}
	if err := d.apply(np); err != nil {
		d.log.Error("reload: not applied, keeping the running plan", "err", err)
		return
	}
	d.log.Info("reload: plan applied", "plan", d.opts.PlanPath, "accounts", len(np.Accounts))
}

// apply runs on run's goroutine, the only writer of d.plan and d.channels,
// so it opens devices and re-registers without holding d.mu: a get-status
// is never stuck behind a slow device or registrar.
func (d *Daemon) apply(np *plan.Plan) error {
	old := d.plan
	for _, w := range restartOnly(old, np) {
		d.log.Warn("reload: change needs a restart to take effect", "section", w)
	}

	// Open what is new or changed before touching the UA, so that a device
	// that fails to open leaves everything as it was.
	cfg := hwConfig(np)
	backendChanged := old.Audio.Backend != np.Audio.Backend || old.Audio.PulseServer != np.Audio.PulseServer
	next := map[string]openChannel{}
	var opened []hw.Channel
	for _, c := range np.Audio.Channels {
		cc := channelConfig(c)
		if cur, ok := d.channels[c.Name]; ok && cur.cfg == cc && !backendChanged {
			next[c.Name] = cur
			continue
		}
		ch, err := hw.Open(cfg, cc, d.log.With("component", "hw", "channel", c.Name))
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return fmt.Errorf("audio channel %q: %w", c.Name, err)
		}
		opened = append(opened, ch)
		next[c.Name] = openChannel{cfg: cc, ch: ch}
	}
	prev := d.channels
	d.channels = next
	if err := d.ua.Reload(d.sipAccounts(np)); err != nil {
		d.channels = prev
		for _, o := range opened {
			o.Close()
		}
		return fmt.Errorf("accounts: %w", err)
	}
	// The UA has moved every binding to the new channels: close the old ones.
	for name, oc := range prev {
		if cur, ok := next[name]; !ok || cur.ch != oc.ch {
			oc.ch.Close()
		}
	}
	d.mu.Lock()
	d.plan = np
	d.mu.Unlock()
	applyLogLevel(d.opts.Level, np.Log.Level)
	d.trace.SetSIPTrace(np.Log.SIPTrace)
	return nil
}

// restartOnly lists sections that differ but are only read at start.
func restartOnly(old, np *plan.Plan) []string {
	var out []string
	if !reflect.DeepEqual(old.TCP, np.TCP) {
		out = append(out, "tcp-settings")
	}
	if !reflect.DeepEqual(old.SIP, np.SIP) {
		out = append(out, "sip-settings")
	}
	if !reflect.DeepEqual(old.RTP, np.RTP) {
		out = append(out, "rtp-settings")
	}
	return out
}
