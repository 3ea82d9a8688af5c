// settings.go owns the UA's configuration in force and its change by a
// reload (Reconfigure). What is bound at Start (the listeners' address,
// ports and transports, the RTP bind address, the packet time and the
// audio rate the channels run at) is fixed for the UA's life; everything
// else is swapped whole, at once, for what comes next: the next
// registration, keepalive or probe, the next call, the next request
// screened. A call keeps the settings it was set up with (call.set): its
// codecs, SRTP policy and session interval do not change under it.
package sip

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/emiago/sipgo/sip"
)

// settings is a Config with its defaults applied, and what follows from it.
// It is never changed once stored: Reconfigure stores a new one.
type settings struct {
	Config
	codecs     []string // offered and accepted, in order of preference
	seInterval int      // RFC 4028 interval we ask for, in seconds
}

// cur is the configuration in force.
func (u *UA) cur() *settings { return u.set.Load() }

// newSettings checks cfg and applies the stated minimums.
func newSettings(cfg Config) (*settings, error) {
	if len(cfg.Transports) == 0 {
		return nil, errors.New("sip: no transport: list udp, tcp or both")
	}
	for _, t := range cfg.Transports {
		if t != "udp" && t != "tcp" && t != "tls" {
			return nil, fmt.Errorf("sip: transport %q is not supported: use \"udp\", \"tcp\" or \"tls\"", t)
		}
	}
	if cfg.RegisterExpires < 0 || cfg.RegisterRetry < 0 || cfg.EndedCallLinger < 0 || cfg.SessionExpires < 0 ||
		cfg.KeepaliveInterval < 0 {
		return nil, errors.New("sip: negative duration in the configuration")
	}
	if cfg.RegisterExpires == 0 {
		cfg.RegisterExpires = minExpires
	}
	if cfg.RegisterRetry == 0 {
		cfg.RegisterRetry = minRetry
	}
	switch cfg.SRTP {
	case "":
		cfg.SRTP = SRTPOff
	case SRTPOff, SRTPOptional, SRTPRequired:
	default:
		return nil, fmt.Errorf("sip: srtp %q: use \"off\", \"optional\" or \"required\"", cfg.SRTP)
	}
	if cfg.RegisterTimeout <= 0 || cfg.RegisterTimeout > 64*sip.T1 {
		cfg.RegisterTimeout = 64 * sip.T1
	}
	if cfg.FailbackInterval <= 0 {
		cfg.FailbackInterval = minFailback
	}
	if cfg.KeepaliveInterval > 0 && cfg.KeepaliveInterval < minKeepalive {
		cfg.KeepaliveInterval = minKeepalive
	}
	codecs := cfg.Codecs
	if len(codecs) == 0 {
		codecs = cfg.Media.Codecs
	}
	if cfg.Media.PTime <= 0 {
		return nil, fmt.Errorf("sip: media ptime %v: it goes into every SDP and must be set", cfg.Media.PTime)
	}
	if len(offerCodecs(codecs)) == 0 {
		return nil, fmt.Errorf("sip: none of the codecs %v is supported: use PCMU or PCMA", codecs)
	}
	cfg.Trusted = slices.Clone(cfg.Trusted)
	se := int(cfg.SessionExpires / time.Second)
	return &settings{Config: cfg, codecs: slices.Clone(codecs), seInterval: max(se, minSE)}, nil
}

// ErrNeedsRestart: a Reconfigure changed a setting that is bound at Start.
var ErrNeedsRestart = errors.New("is bound when the SIP user agent starts; it needs a restart")

// fixedChange names the first setting of next that differs from what the
// UA was started with and cannot change while it runs; "" when none.
func (s *settings) fixedChange(next *settings) string {
	switch {
	case s.Address != next.Address:
		return "address"
	case s.Port != next.Port:
		return "port"
	case !slices.Equal(s.Transports, next.Transports):
		return "transports"
	case s.TLSPort != next.TLSPort:
		return "tls-port"
	case !s.Media.BindIP.Equal(next.Media.BindIP):
		return "media bind address"
	case s.Media.PTime != next.Media.PTime:
		return "ptime"
	case s.Media.AudioRate != next.Media.AudioRate:
		return "audio rate"
	}
	return ""
}

// Reconfigure puts cfg in force while the UA runs (a reload). Settings
// bound at Start must be unchanged (ErrNeedsRestart otherwise). New TLS
// files are loaded first: if they do not load, nothing changes. From then
// on, new registrations, keepalives, probes, calls and screened requests
// follow cfg; calls in progress keep the settings they were set up with.
// Accounts re-register at once when what they register with changed (the
// Contact address, the lifetime asked for, the TLS trust).
func (u *UA) Reconfigure(cfg Config) error {
	next, err := newSettings(cfg)
	if err != nil {
		return err
	}
	old := u.cur()
	if key := old.fixedChange(next); key != "" {
		return fmt.Errorf("sip: %s %w", key, ErrNeedsRestart)
	}
	// Tests inject a resolver; a reload has none to give.
	if next.Resolver == nil {
		next.Resolver = old.Resolver
	}
	tlsChanged := next.TLS != old.TLS
	if tlsChanged && u.tls != nil {
		if err := u.tls.load(next.TLS); err != nil {
			return fmt.Errorf("sip: TLS: %w (the running certificates are kept)", err)
		}
	}
	if err := u.alloc.Reconfigure(next.Media); err != nil {
		if tlsChanged && u.tls != nil {
			_ = u.tls.load(old.TLS) // it loaded before: put it back
		}
		return fmt.Errorf("sip: media: %w", err)
	}
	u.set.Store(next)
	if u.edge != nil {
		u.edge.SetUserAgent(next.UserAgent)
	}
	reregister := tlsChanged || next.PublicAddress != old.PublicAddress || next.RegisterExpires != old.RegisterExpires
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, a := range u.accounts {
		switch {
		case !a.running:
		case reregister && a.wantsRegistration():
			u.sendCmdLocked(a, regCmd{kind: cmdRegister})
		default:
			a.retime()
		}
	}
	return nil
}

// trusts reports whether ip is in [sip-settings] trusted.
func (s *settings) trusts(ip netip.Addr) bool { return prefixesContain(s.Trusted, ip) }
