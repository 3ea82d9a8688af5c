package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
	"github.com/telestra/telestra-sip/hw"
)

// restartSections are read only at start: the listeners and the media
// configuration. A reload reports their changes against what is running
// instead of half-applying them.
var restartSections = []string{"tcp-settings.", "sip-settings.", "rtp-settings.", "metrics."}

func needsRestart(key string) bool {
	for _, s := range restartSections {
		if strings.HasPrefix(key, s) {
			return true
		}
	}
	return false
}

// reloadResult is what a reload did: the changes applied, those that wait
// for a restart, or why nothing was applied.
type reloadResult struct {
	applied  []plan.Change
	restart  []plan.Change
	warnings plan.Problems
	err      error // a *api.ReloadRejected
}

// reloadRequest asks run's goroutine to reload; the answer goes to reply
// (buffered, so run never waits for the asker).
type reloadRequest struct{ reply chan reloadResult }

// errStopping answers a reload asked while the daemon shuts down.
var errStopping = errors.New("telestra-sipd is stopping; the plan was not reloaded")

// Reload is the `reload` API extension: it hands the request to run's
// goroutine, the only one that may change the plan, and waits for the
// outcome.
func (c *controller) Reload(ctx context.Context) (api.Reloaded, error) {
	d := c.d
	req := reloadRequest{reply: make(chan reloadResult, 1)}
	select {
	case d.reloads <- req:
	case <-d.stopping:
		return api.Reloaded{}, errStopping
	case <-ctx.Done():
		return api.Reloaded{}, ctx.Err()
	}
	var r reloadResult
	select {
	case r = <-req.reply:
	case <-ctx.Done():
		return api.Reloaded{}, ctx.Err()
	}
	if r.err != nil {
		return api.Reloaded{}, r.err
	}
	out := api.Reloaded{Plan: d.opts.PlanPath, Changes: []api.Change{}}
	for _, ch := range r.applied {
		out.Changes = append(out.Changes, apiChange(ch, false))
	}
	for _, ch := range r.restart {
		out.Changes = append(out.Changes, apiChange(ch, true))
	}
	for _, w := range r.warnings {
		out.Warnings = append(out.Warnings, w.String())
	}
	return out, nil
}

func apiChange(c plan.Change, restart bool) api.Change {
	text := c.String()
	if restart {
		text += " (needs a restart: " + c.Old + " is in effect)"
	}
	return api.Change{Key: c.Key, Kind: c.Kind, Old: c.Old, New: c.New, Restart: restart, Text: text}
}

// reload re-reads the plan (on SIGHUP or the API's reload). An invalid plan
// is logged and the running one kept. Accounts whose settings changed
// re-register; calls of unchanged accounts are not touched. Listener and
// RTP settings need a restart: their changes are reported against the
// values running, so reverting an edit stops the report.
func (d *Daemon) reload() reloadResult {
	d.sdNotify("RELOADING=1")
	defer d.sdNotify("READY=1")
	res := d.loadAndApply()
	d.mu.Lock()
	d.reloadErr = res.err != nil
	d.mu.Unlock()
	d.pokeStatus()
	return res
}

func (d *Daemon) loadAndApply() reloadResult {
	np, err := plan.Load(d.opts.PlanPath)
	if err != nil {
		d.log.Error("reload: plan rejected, keeping the running plan", "plan", d.opts.PlanPath, "err", err)
		d.rejected()
		return reloadResult{err: &api.ReloadRejected{Plan: d.opts.PlanPath, Problems: plan.ProblemLines(d.opts.PlanPath, err)}}
	}
	res := reloadResult{warnings: np.Warnings}
	for _, c := range plan.Diff(d.plan, np) {
		if !needsRestart(c.Key) {
			res.applied = append(res.applied, c)
		}
	}
	for _, c := range plan.Diff(d.running, np) {
		if needsRestart(c.Key) {
			res.restart = append(res.restart, c)
		}
	}
	if err := d.apply(np); err != nil {
		d.log.Error("reload: not applied, keeping the running plan", "plan", d.opts.PlanPath, "err", err)
		d.rejected()
		return reloadResult{err: &api.ReloadRejected{Plan: d.opts.PlanPath, Problems: []string{err.Error()}}}
	}
	for _, c := range res.applied {
		d.log.Info("reload: applied", "change", c.String())
	}
	for _, c := range res.restart {
		d.log.Warn("reload: change needs a restart to take effect", "key", c.Key, "running", c.Old, "plan", c.New)
	}
	for _, w := range np.Warnings {
		d.log.Warn("SIP plan: setting has no effect", "problem", w.String())
	}
	d.metrics.Reload(true)
	// The TLS files are re-read whether or not the plan changed (a renewed
	// certificate keeps its path); the running ones stay if they do not load.
	if err := d.ua.ReloadTLS(); err != nil {
		d.log.Error("reload: TLS certificates not re-read", "err", err)
		res.warnings = append(res.warnings, plan.Problem{Key: "sip-settings.tls-certificate", Msg: err.Error()})
	}
	d.log.Info("reload: plan applied", "plan", d.opts.PlanPath, "accounts", len(np.Accounts),
		"changes", len(res.applied), "restart_needed", len(res.restart))
	return res
}

// rejected counts a rejected reload. A reload, even a rejected one, puts
// the log level back to the running plan's (log-level may have changed it).
func (d *Daemon) rejected() {
	d.metrics.Reload(false)
	applyLogLevel(d.opts.Level, d.plan.Log.Level)
}

// apply runs on run's goroutine, the only writer of d.plan and d.channels,
// so it opens devices and re-registers without holding d.mu: a get-status
// is never stuck behind a slow device or registrar.
func (d *Daemon) apply(np *plan.Plan) error {
	old := d.plan
	// Open what is new or changed before touching the UA, so that a device
	// that fails to open leaves everything as it was.
	cfg := hwConfig(np)
	cfg.Format.Rate = hwConfig(d.running).Format.Rate // the running media engine's rate
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
			return fmt.Errorf("audio channel %q (%s backend): %w", c.Name, np.Audio.Backend, err)
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
