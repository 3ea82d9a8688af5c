package hw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Open opens channel ch on the backend cfg.Backend ("loopback", "pulse",
// "alsa"). The returned Channel's goroutines run until Close.
func Open(cfg Config, ch ChannelConfig, log *slog.Logger) (Channel, error) {
	return OpenContext(context.Background(), cfg, ch, log)
}

// OpenContext is Open that gives up when ctx ends: the pulse backend's wait
// for a sound server that is not running yet (Config.ServerWait) returns
// at once with ctx's error, so a daemon stopped during its start exits.
func OpenContext(ctx context.Context, cfg Config, ch ChannelConfig, log *slog.Logger) (Channel, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Format.validate(); err != nil {
		return nil, fmt.Errorf("hw: channel %q: %w", ch.Name, err)
	}
	if cfg.FrameTime <= 0 {
		return nil, fmt.Errorf("hw: channel %q: frame time %v: must be positive (the ptime)", ch.Name, cfg.FrameTime)
	}
	if cfg.Buffer <= 0 {
		cfg.Buffer = cfg.FrameTime
	}
	log = log.With("channel", ch.Name, "backend", cfg.Backend)
	var (
		c   Channel
		err error
	)
	switch cfg.Backend {
	case "loopback":
		c, err = newLoopback(ch.Loopback, cfg.Format, cfg.FrameTime)
	case "pulse":
		c, err = openPulse(ctx, cfg, ch, log)
	case "alsa":
		c, err = openALSA(cfg, ch, log)
	default:
		err = fmt.Errorf("unknown audio backend %q: want \"loopback\", \"pulse\" or \"alsa\"", cfg.Backend)
	}
	if err != nil {
		return nil, fmt.Errorf("hw: channel %q: %w", ch.Name, err)
	}
	return c, nil
}

func (f Format) validate() error {
	if f.Rate < 1000 || f.Rate > 384000 {
		return fmt.Errorf("audio format rate %d Hz: want 1000..384000 (8000 for G.711)", f.Rate)
	}
	if f.Channels < 1 || f.Channels > 8 {
		return fmt.Errorf("audio format channels %d: want 1..8 (1 for the telephone path)", f.Channels)
	}
	return nil
}

// errClosed is returned by device helpers after Close.
var errClosed = errors.New("hw: channel closed")
