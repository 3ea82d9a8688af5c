package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
	"github.com/telestra/telestra-sip/hw"
	"github.com/telestra/telestra-sip/sip"
	"github.com/telestra/telestra-sip/sip/media"
)

// bound are the settings bound when the daemon starts, each with why a
// change waits for a restart: a socket to re-bind, or media the audio
// channels and the RTP scheduler are built for. Every other setting is
// applied by a reload (docs/sipplan.md "Reload").
var bound = map[string]string{
	"tcp-settings.address":    "the API listener is bound to it",
	"tcp-settings.port":       "the API listener is bound to it",
	"sip-settings.address":    "the SIP listeners and the RTP sockets bind to it",
	"sip-settings.port":       "the SIP listeners are bound to it",
	"sip-settings.transports": "each transport is a listener, bound at start",
	"sip-settings.tls-port":   "the TLS listener is bound to it",
	"rtp-settings.ptime":      "the audio channels and the RTP scheduler run at the packet time they started with",
	"metrics.address":         "the metrics listener is bound to it",
}

// restartReason says why the change of key from running to next needs a
// restart; "" when a reload applies it.
func restartReason(running, next *plan.Plan, key string) string {
	if r, ok := bound[key]; ok {
		return r
	}
	if key == "rtp-settings.codecs" {
		// Codecs of the same band are a new offer for new calls; a change
		// of band changes the rate every audio channel is open at.
		if was, now := media.ChannelRate(running.RTP.Codecs), media.ChannelRate(next.RTP.Codecs); was != now {
			return fmt.Sprintf("the audio channels run at %d Hz and these codecs need %d Hz", was, now)
		}
	}
	return ""
}

// inForce is next as the running daemon can apply it: what is bound at
// start keeps the running value.
func inForce(running, next *plan.Plan) *plan.Plan {
	p := *next
	p.TCP.Address, p.TCP.Port = running.TCP.Address, running.TCP.Port
	p.SIP.Address, p.SIP.Port, p.SIP.TLSPort = running.SIP.Address, running.SIP.Port, running.SIP.TLSPort
	p.SIP.Transports = running.SIP.Transports
	p.RTP.PTime = running.RTP.PTime
	if restartReason(running, next, "rtp-settings.codecs") != "" {
		p.RTP.Codecs = running.RTP.Codecs
	}
	p.Metrics = running.Metrics
	return &p
}

// reloadResult is what a reload did: the changes applied, those that wait
// for a restart, or why nothing was applied.
type reloadResult struct {
	applied  []plan.Change
	restart  []restartChange
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
		out.Changes = append(out.Changes, apiChange(ch, ""))
	}
	for _, ch := range r.restart {
		out.Changes = append(out.Changes, apiChange(ch.Change, ch.reason))
	}
	for _, w := range r.warnings {
		out.Warnings = append(out.Warnings, w.String())
	}
	return out, nil
}

// restartChange is a change that waits for a restart, and why.
type restartChange struct {
	plan.Change
	reason string
}

func apiChange(c plan.Change, reason string) api.Change {
	text := c.String()
	if reason != "" {
		text += " (needs a restart: " + reason + "; " + c.Old + " is in effect)"
	}
	return api.Change{Key: c.Key, Kind: c.Kind, Old: c.Old, New: c.New, Restart: reason != "", Reason: reason, Text: text}
}

// reload re-reads the plan (on SIGHUP or the API's reload). An invalid plan
// is logged and the running one kept. Accounts whose settings changed
// re-register; calls of unchanged accounts are not touched; calls in
// progress keep the settings they were set up with. What is bound at start
// (bound) needs a restart: those changes are reported against the values
// running, so reverting an edit stops the report.
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
		if restartReason(d.running, np, c.Key) == "" {
			res.applied = append(res.applied, c)
		}
	}
	for _, c := range plan.Diff(d.running, np) {
		if r := restartReason(d.running, np, c.Key); r != "" {
			res.restart = append(res.restart, restartChange{c, r})
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
		d.log.Warn("reload: change needs a restart to take effect", "key", c.Key, "running", c.Old, "plan", c.New, "reason", c.reason)
	}
	for _, w := range np.Warnings {
		d.log.Warn("SIP plan warning", "problem", w.String())
	}
	d.metrics.Reload(true)
	// The TLS files are re-read whether or not the plan changed (a renewed
	// certificate keeps its path); the running ones stay if they do not load.
	if err := d.ua.ReloadTLS(); err != nil {
		d.log.Error("reload: TLS certificates not re-read", "err", err)
		// Each on the key of its file (a CA that does not load is not the
		// certificate's problem).
		probs := tlsProblems(sip.TLSFileErrors(err))
		if len(probs) == 0 {
			probs = plan.Problems{{Key: "sip-settings.tls-certificate", Msg: err.Error()}}
		}
		for _, p := range probs {
			p.Msg += " (not re-read: the running certificates are kept)"
			res.warnings = append(res.warnings, p)
		}
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
	// At the rate and packet time the media engine runs at.
	live := inForce(d.running, np)
	cfg := hwConfig(live)
	backendChanged := old.Audio.Backend != np.Audio.Backend || old.Audio.PulseServer != np.Audio.PulseServer ||
		old.Audio.PipeWireQuantum != np.Audio.PipeWireQuantum
	next := map[string]openChannel{}
	opened := map[string]hw.Channel{}
	closeOpened := func() {
		for name, o := range opened {
			d.closeChannel(name, o)
		}
	}
	for _, c := range np.Audio.Channels {
		cc := channelConfig(c)
		if cur, ok := d.channels[c.Name]; ok && cur.cfg == cc && !backendChanged {
			next[c.Name] = cur
			continue
		}
		ch, err := hw.Open(cfg, cc, d.log.With("component", "hw", "channel", c.Name))
		if err != nil {
			closeOpened()
			return fmt.Errorf("audio channel %q (%s backend): %w", c.Name, np.Audio.Backend, err)
		}
		d.audio.opened(c.Name, ch)
		opened[c.Name] = ch
		next[c.Name] = openChannel{cfg: cc, ch: ch}
	}
	// The settings first: new TLS files that do not load reject the
	// reload before any account changes.
	if err := d.ua.Reconfigure(sipConfig(live)); err != nil {
		closeOpened()
		return fmt.Errorf("[sip-settings]/[rtp-settings]: %w", err)
	}
	prev := d.channels
	d.channels = next
	if err := d.ua.Reload(d.sipAccounts(np)); err != nil {
		d.channels = prev
		closeOpened()
		if rerr := d.ua.Reconfigure(sipConfig(inForce(d.running, old))); rerr != nil {
			err = errors.Join(err, rerr)
		}
		return fmt.Errorf("accounts: %w", err)
	}
	// Validated with the plan, and the address and port are the running
	// ones: it cannot fail.
	if err := d.server.Reconfigure(apiConfig(live)); err != nil {
		d.log.Error("reload: [tcp-settings] not applied", "err", err)
	}
	// The UA has moved every binding to the new channels: close the old ones.
	for name, oc := range prev {
		if cur, ok := next[name]; !ok || cur.ch != oc.ch {
			d.closeChannel(name, oc.ch)
		}
	}
	d.mu.Lock()
	d.plan = np
	d.mu.Unlock()
	applyLogLevel(d.opts.Level, np.Log.Level)
	d.trace.SetSIPTrace(np.Log.SIPTrace)
	return nil
}
