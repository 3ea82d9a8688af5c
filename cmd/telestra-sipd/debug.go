package main

import (
	"context"
	"log/slog"

	"github.com/telestra/telestra-sip/cmd/internal/debugserver"
)

// startDebug binds the -debug-addr endpoint and serves it until the returned
// stop is called, which also waits for the serve goroutine.
func startDebug(addr string, log *slog.Logger) (stop func(), err error) {
	srv, err := debugserver.Listen(addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	log.Info("debug endpoint listening (diagnostics only)", "addr", srv.Addr().String())
	return func() {
		cancel()
		if err := <-done; err != nil {
			log.Warn("debug endpoint stopped", "err", err)
		}
	}, nil
}
