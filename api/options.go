package api

import (
	"log/slog"
	"time"
)

// Option configures optional extensions of a Server.
type Option func(*options)

type options struct {
	reloader Reloader       // reload command; nil: not offered
	level    *slog.LevelVar // log-level command; nil: not offered
	tracer   Tracer         // trace and sip-trace commands; nil: not offered
	version  string         // pong's version; "": pong has only token and tag
	now      func() time.Time
	hold     time.Duration // a new client's hold (holdTime; tests lengthen it)
	started  time.Time
	// startedText is started in pong: RFC 3339 UTC with nanoseconds.
	startedText string
}

// WithReloader serves the `reload` extension with r. Without it, `reload`
// gets a fail saying that reloading is not available.
func WithReloader(r Reloader) Option {
	return func(o *options) { o.reloader = r }
}

// WithLogLevel lets clients read and set the daemon's log level with the
// `log-level` command.
func WithLogLevel(v *slog.LevelVar) Option {
	return func(o *options) { o.level = v }
}

// WithVersion makes `pong` carry the daemon's version and its uptime,
// counted from started (the zero time: from NewServer).
func WithVersion(version string, started time.Time) Option {
	return func(o *options) { o.version, o.started = version, started }
}

// WithTracer serves the `trace` and `sip-trace` extensions with t (trace.go).
// Without it, they get a fail saying that the SIP trace is not available.
func WithTracer(t Tracer) Option {
	return func(o *options) { o.tracer = t }
}

// withClock replaces time.Now (tests).
func withClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}
