package hw

import (
	"errors"
	"log/slog"
)

// Temporary until the pulse and alsa backends land in the following commits.
func openPulse(Config, ChannelConfig, *slog.Logger) (Channel, error) {
	return nil, errors.New("pulse backend not in this build yet: use backend \"loopback\"")
}

func openALSA(Config, ChannelConfig, *slog.Logger) (Channel, error) {
	return nil, errors.New("alsa backend not in this build yet: use backend \"loopback\"")
}
