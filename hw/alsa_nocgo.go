//go:build !cgo

package hw

import (
	"errors"
	"log/slog"
)

// errNoCgoALSA explains why this binary has no ALSA backend.
var errNoCgoALSA = errors.New("alsa backend requires a cgo build (CGO_ENABLED=1 with libasound headers: alsa-lib-devel on RHEL, libasound2-dev on Debian); use backend \"pulse\" or \"loopback\"")

func openALSA(Config, ChannelConfig, *slog.Logger) (Channel, error) {
	return nil, errNoCgoALSA
}
