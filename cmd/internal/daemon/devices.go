package daemon

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/telestra/telestra-sip/cmd/internal/plan"
	"github.com/telestra/telestra-sip/hw"
)

// CheckDevices opens and closes every audio channel of p as the daemon
// would at start, and returns one error per channel that does not open
// (telestra-sipd -check -devices, for the unit's ExecStartPre). The errors
// name the channel's table, the backend and the devices asked for.
func CheckDevices(p *plan.Plan, log *slog.Logger) []error {
	cfg := hwConfig(p)
	var errs []error
	for _, c := range p.Audio.Channels {
		ch, err := hw.Open(cfg, channelConfig(c), log.With("component", "hw", "channel", c.Name))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (%s backend, %s): %w", toml.Key{"audio", "channels", c.Name}, p.Audio.Backend, devicesOf(p, c), err))
			continue
		}
		if err := ch.Close(); err != nil {
			errs = append(errs, fmt.Errorf("%s: close: %w", toml.Key{"audio", "channels", c.Name}, err))
		}
	}
	return errs
}

// devicesOf says which devices a channel uses, for the ready line and
// errors: "sink=X source=Y" ("default" for an empty one) or the loopback
// mode.
func devicesOf(p *plan.Plan, c plan.Channel) string {
	if p.Audio.Backend == "loopback" {
		return "loopback=" + c.Loopback
	}
	dev := func(s string) string {
		if s == "" {
			return "default"
		}
		return s
	}
	return "sink=" + dev(c.Sink) + " source=" + dev(c.Source)
}

// channelSummary is every channel of p with its devices, for the ready line:
// "ch1(sink=... source=...) ch2(...)".
func channelSummary(p *plan.Plan) string {
	parts := make([]string, len(p.Audio.Channels))
	for i, c := range p.Audio.Channels {
		parts[i] = c.Name + "(" + devicesOf(p, c) + ")"
	}
	return strings.Join(parts, " ")
}
