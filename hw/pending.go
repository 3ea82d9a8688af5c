package hw

import (
	"errors"
	"log/slog"
)

// Temporary until the alsa backend lands in the next commit.
func openALSA(Config, ChannelConfig, *slog.Logger) (Channel, error) {
	return nil, errors.New("alsa backend not in this build yet: use backend \"loopback\"")
}
