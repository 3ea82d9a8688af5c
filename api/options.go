package api

// Option configures optional extensions of a Server.
type Option func(*options)

type options struct {
	reloader Reloader // reload command; nil: not offered
}

// WithReloader serves the `reload` extension with r. Without it, `reload`
// gets a fail saying that reloading is not available.
func WithReloader(r Reloader) Option {
	return func(o *options) { o.reloader = r }
}
