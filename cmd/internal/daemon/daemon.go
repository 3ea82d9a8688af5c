// Package daemon wires the SIP plan, the audio channels (hw), the user agent
// (sip) and the TCP API (api) into the running telestra-sipd, and owns its
// lifecycle: readiness, watchdog, reload and shutdown.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/debugserver"
	"github.com/telestra/telestra-sip/cmd/internal/metrics"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
	"github.com/telestra/telestra-sip/hw"
	"github.com/telestra/telestra-sip/sip"
	"github.com/telestra/telestra-sip/sip/media"
)

// ShutdownGrace bounds the drain on SIGTERM: calls get BYE/CANCEL and
// accounts are un-registered within it, so the process exits within 2 s.
const ShutdownGrace = 1500 * time.Millisecond

// Options are what main hands to Run.
type Options struct {
	PlanPath string
	Plan     *plan.Plan
	Log      *slog.Logger
	Level    *slog.LevelVar   // set from [log] level, also on reload
	Reload   <-chan os.Signal // SIGHUP: re-read PlanPath
	Notifier Notifier         // nil: sd_notify through $NOTIFY_SOCKET
	Version  string           // in pong and build_info
	Started  time.Time        // process start, for pong's uptime_s; zero: when Run starts
	// RuntimeDir is $RUNTIME_DIRECTORY: the API address is written there
	// for telestra-sipctl (runtime.go). "": not written.
	RuntimeDir string
	// DebugAddr is -debug-addr: a loopback IP:PORT for the diagnostics
	// endpoint (package debugserver). "": off.
	DebugAddr string
}

// Daemon is one running telestra-sipd.
type Daemon struct {
	opts   Options
	log    *slog.Logger
	notify Notifier

	// Only the goroutine of run (start, reload, stop) writes plan and
	// touches channels; mu guards plan for the controller's readers.
	mu        sync.Mutex
	plan      *plan.Plan
	reloadErr bool // the last reload was rejected (STATUS= says so)
	channels  map[string]openChannel
	audio     *audioHealth // the channels' health, for any goroutine
	// running is the plan the listeners and media started with: what a
	// reload compares the settings that need a restart against.
	running *plan.Plan

	reloads  chan reloadRequest // the API's reload, served by run
	stopping chan struct{}      // closed when run stops serving reloads

	statusPoke chan struct{} // wakes statusLoop; capacity 1

	ua      *sip.UA
	server  *api.Server
	trace   *tracer
	hub     eventHub         // server, or what wrapHub made of it
	metrics *metrics.Metrics // always fed; served when [metrics] address is set
	// wrapHub lets a test stand between the event path and the hub.
	wrapHub func(eventHub) eventHub
	trim    *memTrimmer
	// debugAddr is the bound -debug-addr (tests bind port 0); set by run
	// before READY=1.
	debugAddr net.Addr
}

type openChannel struct {
	cfg hw.ChannelConfig
	ch  hw.Channel
}

// Run starts the daemon and blocks until ctx is cancelled (SIGINT/SIGTERM),
// then drains: every call is ended, every account un-registered.
func Run(ctx context.Context, opts Options) error {
	return newDaemon(opts).run(ctx)
}

func newDaemon(opts Options) *Daemon {
	d := &Daemon{
		opts:     opts,
		log:      opts.Log,
		notify:   opts.Notifier,
		plan:     opts.Plan,
		running:  opts.Plan,
		channels: map[string]openChannel{},
		audio:    newAudioHealth(hwConfig(opts.Plan).Format),
		reloads:  make(chan reloadRequest),
		stopping: make(chan struct{}),

		statusPoke: make(chan struct{}, 1),
	}
	if d.notify == nil {
		d.notify = systemdNotifier{}
	}
	if d.opts.Started.IsZero() {
		d.opts.Started = time.Now()
	}
	applyLogLevel(opts.Level, opts.Plan.Log.Level)
	d.metrics = metrics.New(opts.Version, metrics.Sources{Accounts: d.metricsAccounts, API: d.apiStats, SIPEdge: d.sipEdge,
		Audio: d.audioMetrics})
	d.trim = newMemTrimmer()
	return d
}

func (d *Daemon) run(ctx context.Context) (err error) {
	p := d.plan
	if err := d.openChannels(ctx, p); err != nil {
		if ctx.Err() != nil {
			// Stopped while waiting for the sound server: a stop, not a failure.
			d.log.Info("stopped during start-up", "err", err)
			return nil
		}
		return err
	}
	defer d.closeChannels()

	var wg sync.WaitGroup
	defer wg.Wait()

	ua, err := sip.New(sipConfig(p), d.sipAccounts(p), d.onSIPEvent, d.log.With("component", "sip"))
	if err != nil {
		return fmt.Errorf("sip user agent: %w", err)
	}
	d.ua = ua
	if d.opts.DebugAddr != "" {
		stopDebug, err := d.startDebug(&wg)
		if err != nil {
			return err
		}
		defer stopDebug()
	}

	ctrl := &controller{d: d}
	d.trace = &tracer{d: d}
	d.server = api.NewServer(apiConfig(p), ctrl, d.log.With("component", "api"), api.WithReloader(ctrl),
		api.WithLogLevel(d.opts.Level), api.WithVersion(d.opts.Version, d.opts.Started), api.WithTracer(d.trace))
	d.hub = d.server
	if d.wrapHub != nil {
		d.hub = d.wrapHub(d.server)
	}
	if err := d.server.Listen(); err != nil {
		return fmt.Errorf("API listener on %s: %w", net.JoinHostPort(p.TCP.Address, fmt.Sprint(p.TCP.Port)), err)
	}
	if dir := runtimeDir(d.opts.RuntimeDir); dir != "" {
		path, err := writeAPIAddress(dir, d.server.Addr())
		if err != nil {
			d.log.Warn("telestra-sipctl will not find the API without -addr", "err", err)
		} else {
			defer os.Remove(path)
		}
	}
	var metricsSrv *metrics.Server
	if p.Metrics.Address != "" {
		if metricsSrv, err = d.metrics.Listen(p.Metrics.Address, d.log.With("component", "metrics")); err != nil {
			_ = d.server.Close() // closes the bound API listener
			return err
		}
	}

	uaCtx, stopUA := context.WithCancel(context.Background())
	defer stopUA()
	if err := ua.Start(uaCtx); err != nil {
		_ = d.server.Close() // closes the bound API listener
		if metricsSrv != nil {
			_ = metricsSrv.Close()
		}
		return fmt.Errorf("SIP listener on %s: %w", net.JoinHostPort(p.SIP.Address, fmt.Sprint(p.SIP.Port)), err)
	}
	if metricsSrv != nil {
		mctx, stopMetrics := context.WithCancel(context.Background())
		wg.Add(2)
		go func() {
			defer wg.Done()
			if err := metricsSrv.Serve(mctx); err != nil {
				d.log.Error("metrics endpoint stopped", "err", err)
			}
		}()
		// Sampled often enough that an ended call's last RTP counts are
		// read before it stops being listed.
		go func() {
			defer wg.Done()
			d.metrics.RunSampler(mctx, func() time.Duration {
				d.mu.Lock()
				defer d.mu.Unlock()
				return sampleInterval(d.plan)
			})
		}()
		defer stopMetrics()
	}

	d.trace.SetSIPTrace(p.Log.SIPTrace)
	srvDone := make(chan error, 1)
	go func() { srvDone <- d.server.Serve(context.Background()) }()

	// Both sockets are bound: tell systemd.
	d.sdNotify("READY=1")
	if metricsSrv != nil {
		d.log.Info("metrics endpoint ready", "address", "http://"+metricsSrv.Addr().String()+"/metrics")
	}
	d.log.Info("telestra-sipd ready", "api", d.server.Addr().String(),
		"sip", net.JoinHostPort(p.SIP.Address, fmt.Sprint(p.SIP.Port)), "accounts", len(p.Accounts),
		"backend", p.Audio.Backend, "channels", channelSummary(p))

	wdCtx, stopWD := context.WithCancel(ctx)
	wg.Add(3)
	go func() { defer wg.Done(); d.watchdog(wdCtx) }()
	go func() { defer wg.Done(); d.statusLoop(wdCtx, statusPeriod) }()
	trimTick := time.NewTicker(trimCheck)
	defer trimTick.Stop()
	go func() { defer wg.Done(); d.trim.run(wdCtx, trimTick.C) }()

	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-d.opts.Reload:
			d.reload()
		case req := <-d.reloads:
			req.reply <- d.reload()
		case err := <-srvDone:
			// The API server only returns early on a fatal listener error.
			close(d.stopping)
			stopWD()
			_ = d.server.Close()
			d.shutdownUA()
			return fmt.Errorf("API server stopped: %w", err)
		}
	}

	close(d.stopping)
	d.sdNotify("STOPPING=1")
	d.log.Info("telestra-sipd stopping")
	stopWD()
	d.shutdownUA()
	// The UA has handed its last events (the shutdown's call-ended) to the
	// hub; Close delivers them before it closes the clients.
	_ = d.server.Close()
	if err := <-srvDone; err != nil && !errors.Is(err, context.Canceled) {
		d.log.Warn("API server stopped with error", "err", err)
	}
	return nil
}

// startDebug binds the -debug-addr endpoint and serves it in a goroutine
// of wg until the returned stop is called.
func (d *Daemon) startDebug(wg *sync.WaitGroup) (stop func(), err error) {
	srv, err := debugserver.Listen(d.opts.DebugAddr, debugserver.WithSIPEdge(func() debugserver.SIPEdge {
		return debugserver.SIPEdge(d.sipEdge())
	}), debugserver.WithAudio(d.debugAudio))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ctx); err != nil {
			d.log.Warn("debug endpoint stopped", "err", err)
		}
	}()
	d.debugAddr = srv.Addr()
	d.log.Info("debug endpoint listening (diagnostics only)", "addr", srv.Addr().String())
	return cancel, nil
}

func (d *Daemon) shutdownUA() {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	if err := d.ua.Shutdown(ctx); err != nil {
		d.log.Warn("SIP shutdown incomplete", "err", err)
	}
}

func (d *Daemon) sdNotify(state string) {
	if err := d.notify.Notify(state); err != nil {
		d.log.Warn("sd_notify failed", "state", state, "err", err)
	}
}

func applyLogLevel(v *slog.LevelVar, level string) {
	if v == nil {
		return
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err == nil {
		v.Set(l)
	}
}

func apiConfig(p *plan.Plan) api.Config {
	return api.Config{
		Address:         p.TCP.Address,
		Port:            p.TCP.Port,
		Allow:           append([]netip.Prefix(nil), p.TCP.Allow...),
		MaxClients:      p.TCP.MaxClients,
		MaxMessageBytes: p.TCP.MaxMessageBytes,
		EventHistory:    p.TCP.EventHistory,
	}
}

func sipConfig(p *plan.Plan) sip.Config {
	return sip.Config{
		Address:    p.SIP.Address,
		Port:       p.SIP.Port,
		Transports: append([]string(nil), p.SIP.Transports...),
		TLSPort:    p.SIP.TLSPort,
		TLS: sip.TLSConfig{Certificate: p.SIP.TLSCertificate, Key: p.SIP.TLSKey, CA: p.SIP.TLSCA,
			Verify: p.SIP.TLSVerify},
		PublicAddress:     p.SIP.PublicAddress,
		UserAgent:         p.SIP.UserAgent,
		RegisterExpires:   p.SIP.RegisterExpires.Duration,
		RegisterRetry:     p.SIP.RegisterRetry.Duration,
		RegisterTimeout:   p.SIP.RegisterTimeout.Duration,
		FailbackInterval:  p.SIP.FailbackInterval.Duration,
		KeepaliveInterval: p.SIP.KeepaliveInterval.Duration,
		EndedCallLinger:   p.SIP.EndedCallLinger.Duration,
		SessionExpires:    p.SIP.SessionExpires.Duration,
		Trusted:           append([]netip.Prefix(nil), p.SIP.Trusted...),
		RejectSilently:    p.SIP.Reject == plan.RejectSilent,
		SRTP:              p.RTP.SRTP,
		Media: media.Config{
			BindIP:       net.ParseIP(p.SIP.Address),
			PortMin:      p.RTP.PortMin,
			PortMax:      p.RTP.PortMax,
			Codecs:       append([]string(nil), p.RTP.Codecs...),
			AudioRate:    media.ChannelRate(p.RTP.Codecs),
			PTime:        p.RTP.PTime.Duration,
			JitterBuffer: p.RTP.JitterBuffer.Duration,
			Timeout:      p.RTP.Timeout.Duration,
		},
	}
}

// sipAccounts maps the plan's accounts to the UA's, each with its channel.
// Only run's goroutine calls it (it reads d.channels).
func (d *Daemon) sipAccounts(p *plan.Plan) []sip.Account {
	out := make([]sip.Account, 0, len(p.Accounts))
	for _, a := range p.Accounts {
		acc := sip.Account{
			Name:        a.Name,
			User:        a.User,
			Pass:        a.Pass,
			AuthUser:    a.AuthUser,
			Server:      a.Server,
			Backups:     append([]string(nil), a.Backups...),
			DisplayName: a.DisplayName,
			Register:    a.Register,
			MaxCalls:    a.MaxCalls,
			AudioName:   a.Channel,
			AcceptFrom:  sip.Accept{Any: a.AcceptFrom.Mode == plan.AcceptAny},
		}
		if a.AcceptFrom.Mode == plan.AcceptList {
			acc.AcceptFrom.Prefixes = append([]netip.Prefix(nil), a.AcceptFrom.Prefixes...)
		}
		if oc, ok := d.channels[a.Channel]; ok {
			acc.Audio = oc.ch
		}
		out = append(out, acc)
	}
	return out
}

func hwConfig(p *plan.Plan) hw.Config {
	return hw.Config{
		Backend:         p.Audio.Backend,
		PulseServer:     p.Audio.PulseServer,
		PipeWireQuantum: p.Audio.PipeWireQuantum,
		Format:          hw.Format{Rate: media.ChannelRate(p.RTP.Codecs), Channels: 1},
		FrameTime:       p.RTP.PTime.Duration,
		// The device's own buffer: ALSA's buffer (plus two frames) and
		// period, PulseAudio's record fragment and request size derive
		// from it; the pulse backend's playback and capture margins adapt
		// on top (docs/audio.md). 10 ms: clean on PulseAudio in the hw tests.
		Buffer: 10 * time.Millisecond,
	}
}

// SoundServerWait is how long a start waits for a pulse server that is not
// running yet (PipeWire in a user session, PulseAudio started after us):
// within the unit's TimeoutStartSec=30s, and logged while it waits. A
// reload does not wait: it fails and keeps the running plan.
const SoundServerWait = 20 * time.Second

func channelConfig(c plan.Channel) hw.ChannelConfig {
	return hw.ChannelConfig{Name: c.Name, Sink: c.Sink, Source: c.Source, Loopback: c.Loopback}
}

// openChannels opens every channel of p; on failure the ones opened are
// closed. The wait for a late sound server ends with ctx (SIGTERM).
func (d *Daemon) openChannels(ctx context.Context, p *plan.Plan) error {
	cfg := hwConfig(p)
	cfg.ServerWait = SoundServerWait
	for _, c := range p.Audio.Channels {
		cc := channelConfig(c)
		ch, err := hw.OpenContext(ctx, cfg, cc, d.log.With("component", "hw", "channel", c.Name))
		if err != nil {
			d.closeChannels()
			return fmt.Errorf("audio channel %q (%s backend): %w", c.Name, p.Audio.Backend, err)
		}
		d.channels[c.Name] = openChannel{cfg: cc, ch: ch}
		d.audio.opened(c.Name, ch)
	}
	return nil
}

func (d *Daemon) closeChannels() {
	for name, oc := range d.channels {
		if err := d.closeChannel(name, oc.ch); err != nil {
			d.log.Warn("closing audio channel", "channel", name, "err", err)
		}
		delete(d.channels, name)
	}
}

// closeChannel closes ch, the channel opened as name, and keeps its
// counters in name's (audioHealth).
func (d *Daemon) closeChannel(name string, ch hw.Channel) error {
	err := ch.Close()
	d.audio.closed(name, ch)
	return err
}
