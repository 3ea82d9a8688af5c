package api

// Option configures optional extensions of a Server.
type Option func(*options)

type options struct {
	reloader Reloader // reload command; nil: not offered
	tracer   Tracer   // trace and sip-trace commands; nil: not offered
}

// WithReloader serves the `reload` extension with r. Without it, `reload`
// gets a fail saying that reloading is not available.
func WithReloader(r Reloader) Option {
	return func(o *options) { o.reloader = r }
}

// WithTracer serves the `trace` and `sip-trace` extensions with t (trace.go).
// Without it, they get a fail saying that the SIP trace is not available.
func WithTracer(t Tracer) Option {
	return func(o *options) { o.tracer = t }
}
