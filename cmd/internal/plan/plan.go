// Package plan loads the SIP plan, the daemon's TOML configuration
// (sipplan.toml(5), docs/sipplan.md).
//
// Parse decodes strictly (unknown keys and wrong types are problems), applies
// the defaults, resolves the implied values and validates. Every problem found
// is reported at once, each naming its TOML key and, where the file has it,
// the line, so an operator fixes a plan in one pass.
package plan

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Plan is a whole SIP plan.
type Plan struct {
	TCP      TCPSettings // [tcp-settings]
	SIP      SIPSettings // [sip-settings]
	RTP      RTPSettings // [rtp-settings]
	Audio    Audio       // [audio]
	Log      Log         // [log]
	Metrics  Metrics     // [metrics]
	Accounts []Account   // [accounts.NAME] in the order they appear in the file

	// Warnings are settings the file sets that have no effect with the
	// rest of the plan (a sink with the loopback backend, say). Parse fills
	// it; the plan is valid all the same.
	Warnings Problems
}

// TCPSettings is [tcp-settings], the control API listener.
type TCPSettings struct {
	Address         string         // listen IP; default "0.0.0.0"
	Port            int            // default 3550
	Allow           []netip.Prefix // peers that may connect; empty: any. A bare IP is a /32 or /128.
	MaxClients      int            // simultaneous API connections; default 64
	MaxMessageBytes int            // largest accepted command, NUL excluded; default 65536
	EventHistory    int            // broadcast events kept for the API's resume; default 1024
}

// SIPSettings is [sip-settings], the user agent.
type SIPSettings struct {
	Address         string   // bind IP; default "0.0.0.0"
	Port            int      // default 5060
	Transports      []string // "udp", "tcp", "tls"; default ["udp"]
	TLSPort         int      // TLS listener port (transport "tls"); default 5061
	TLSCertificate  string   // PEM certificate (chain) of the TLS listener and client; required with "tls"
	TLSKey          string   // PEM private key of TLSCertificate
	TLSCA           string   // PEM CAs that verify servers; empty: the system pool
	TLSVerify       bool     // verify servers' certificates (chain and name); default true
	PublicAddress   string   // IP or host name put in Contact/Via/SDP; empty: derived from Address
	UserAgent       string   // User-Agent header; default "Telestra"
	RegisterExpires Duration // Expires asked for in REGISTER; default 300s, at least 10s
	RegisterRetry   Duration // first retry after a failed REGISTER, doubling up to 5 min; default 5s
	// RegisterTimeout is how long a REGISTER waits for an answer before the
	// server counts as down (failover); default 32s (RFC 3261 Timer F), 1s..32s.
	RegisterTimeout Duration
	// FailbackInterval is how often an account on a backup server probes
	// its primary with OPTIONS; default 60s.
	FailbackInterval Duration
	// KeepaliveInterval is how often a registered account sends OPTIONS
	// to the server it is registered at; no answer within
	// register-timeout is that server down. "0s": off; default 30s.
	KeepaliveInterval Duration
	EndedCallLinger   Duration // how long an ended call stays in get-status; default 10s
	SessionExpires    Duration // RFC 4028 session interval; default 1800s, at least 90s
	// Trusted networks may send out-of-dialog requests (INVITE, OPTIONS,
	// ...) to every account, whatever its accept-from; default none.
	Trusted []netip.Prefix
	// Reject is how a refused out-of-dialog request is answered: "403"
	// (default) or "silent" (no answer).
	Reject string
}

// RTPSettings is [rtp-settings], the media path.
type RTPSettings struct {
	PortMin      int      // first RTP port, even; default 16384
	PortMax      int      // last port (RTCP may use it); default 16999
	Codecs       []string // preference order for offers and answers; "G722", "PCMU", "PCMA"; default PCMU, PCMA
	PTime        Duration // packet time, 10ms..60ms in 10ms steps; default 20ms
	JitterBuffer Duration // receive buffer depth; default 40ms
	Timeout      Duration // hang up an active call after this long without RTP; default 30s
	SRTP         string   // "off" (default), "optional" or "required": SDES-keyed SRTP, over TLS only
}

// Audio is [audio], the appliance's sound channels.
type Audio struct {
	Backend     string // "loopback", "pulse", "alsa"; default "loopback"
	PulseServer string // empty: the default server
	// PipeWireQuantum is the graph period, in samples at 48 kHz, that the
	// pulse backend's streams ask pipewire-pulse for; default
	// DefaultPipeWireQuantum.
	PipeWireQuantum int
	Channels        []Channel // [audio.channels.NAME] in file order
}

// Channel is one [audio.channels.NAME] table.
type Channel struct {
	Name     string
	Sink     string // pulse sink or ALSA playback PCM; empty: the default device
	Source   string // pulse source or ALSA capture PCM; empty: the default device
	Loopback string // loopback backend only: "echo" (default), "tone:HZ", "silence"
}

// Log is [log].
type Log struct {
	Level string // "debug", "info", "warn", "error"; default "info"
	// SIPTrace logs every SIP message sent and received at debug level;
	// default false.
	SIPTrace bool
}

// Metrics is [metrics], the Prometheus endpoint.
type Metrics struct {
	Address string // HOST:PORT serving /metrics; default "": off
}

// Account is one [accounts.NAME] table. After Parse, DisplayName and Channel
// are never empty: their documented fallbacks are filled in. AuthUser stays
// empty when the file leaves it out, so the digest user follows User, also
// when a login replaces User.
type Account struct {
	Name   string // the table name; the API's "account"
	User   string // SIP user (extension)
	Pass   string // digest password; never logged or shown in errors
	Server string // registrar/proxy host[:port]; empty: no registration, local/direct calls only
	// Backups are further servers after Server, in priority order
	// (server = [...]): failover.
	Backups     []string
	AuthUser    string // digest user name; empty: User (the effective one, after a login)
	DisplayName string // From display name; empty in the file: Name
	Register    bool   // register with Server; default true (nothing to do without a Server)
	Channel     string // audio channel of the account's active call
	MaxCalls    int    // calls at once; further incoming INVITEs get 486; default 4
	// AcceptFrom is who may send the account out-of-dialog requests:
	// "server" (its servers' addresses; the default with a server), "any"
	// (the default without one), or a list of networks (besides the
	// servers).
	AcceptFrom AcceptFrom
}

// AcceptFrom is an account's accept-from. After Parse, Mode is never empty;
// an empty Mode (a plan built in Go) means the default.
type AcceptFrom struct {
	Mode     string         // "server", "any" or "list"
	Prefixes []netip.Prefix // Mode "list"
}

// Modes of AcceptFrom.
const (
	AcceptServer = "server"
	AcceptAny    = "any"
	AcceptList   = "list"
)

func (a AcceptFrom) String() string {
	if a.Mode != AcceptList {
		return a.Mode
	}
	s := make([]string, len(a.Prefixes))
	for i, p := range a.Prefixes {
		s[i] = p.String()
	}
	return "[" + strings.Join(s, " ") + "]"
}

// String leaves the password out, so printing a plan never shows it.
func (a Account) String() string {
	pass := ""
	if a.Pass != "" {
		pass = "(set)"
	}
	return fmt.Sprintf("{Name:%s User:%s Pass:%s Server:%s AuthUser:%s DisplayName:%q Register:%t Channel:%s MaxCalls:%d AcceptFrom:%s}",
		a.Name, a.User, pass, strings.Join(append([]string{a.Server}, a.Backups...), ","), a.AuthUser, a.DisplayName, a.Register, a.Channel, a.MaxCalls, a.AcceptFrom)
}

// DigestUser is the user name the account authenticates with: auth-user,
// else user.
func (a Account) DigestUser() string {
	if a.AuthUser != "" {
		return a.AuthUser
	}
	return a.User
}

// LogValue leaves the password out of structured logs.
func (a Account) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", a.Name),
		slog.String("user", a.User),
		slog.String("server", a.Server),
		slog.Bool("register", a.Register),
		slog.String("channel", a.Channel),
	)
}

// Defaults that are part of the product (docs/sipplan.md lists them).
const (
	DefaultChannel  = "ch1" // created when the plan defines no [audio.channels]
	DefaultLoopback = "echo"
	DefaultMaxCalls = 4
	// DefaultPipeWireQuantum is hw.DefaultPipeWireQuantum (the plan does
	// not link the audio backends; TestDefaultsMatchBackends holds them
	// equal).
	DefaultPipeWireQuantum = 256
	RejectForbidden        = "403"    // [sip-settings] reject: answer 403 Forbidden
	RejectSilent           = "silent" // [sip-settings] reject: no answer
)

// The pipewire-quantum range: pipewire-pulse raises a stream's request to
// its pulse.min.quantum, 256/48000 unless configured, and 2048 is
// PipeWire's default clock.max-quantum.
const (
	MinPipeWireQuantum = 256
	MaxPipeWireQuantum = 2048
)

// Default returns a plan with every default applied and no accounts or
// channels.
func Default() *Plan {
	return &Plan{
		TCP: TCPSettings{
			Address:         "0.0.0.0",
			Port:            3550,
			MaxClients:      64,
			MaxMessageBytes: 65536,
			EventHistory:    1024,
		},
		SIP: SIPSettings{
			Address:           "0.0.0.0",
			Port:              5060,
			Transports:        []string{"udp"},
			TLSPort:           5061,
			TLSVerify:         true,
			UserAgent:         "Telestra",
			RegisterExpires:   Duration{300 * time.Second},
			RegisterRetry:     Duration{5 * time.Second},
			RegisterTimeout:   Duration{32 * time.Second},
			FailbackInterval:  Duration{60 * time.Second},
			KeepaliveInterval: Duration{30 * time.Second},
			EndedCallLinger:   Duration{10 * time.Second},
			SessionExpires:    Duration{1800 * time.Second},
			Reject:            RejectForbidden,
		},
		RTP: RTPSettings{
			PortMin:      16384,
			PortMax:      16999,
			Codecs:       []string{"PCMU", "PCMA"},
			PTime:        Duration{20 * time.Millisecond},
			JitterBuffer: Duration{40 * time.Millisecond},
			Timeout:      Duration{30 * time.Second},
			SRTP:         "off",
		},
		Audio: Audio{Backend: "loopback", PipeWireQuantum: DefaultPipeWireQuantum},
		Log:   Log{Level: "info"},
	}
}

// defaultAccount is an account table with nothing set.
func defaultAccount(name string) Account {
	return Account{Name: name, Register: true, MaxCalls: DefaultMaxCalls}
}

// A Check looks at what a plan names outside itself, such as the files of
// its TLS settings, which this package does not open. Each problem and
// warning names its key; Parse adds the file and line. Problems make the
// plan invalid; warnings do not.
type Check func(*Plan) (problems, warnings Problems)

// Load reads and parses the plan at path.
func Load(path string, checks ...Check) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read SIP plan: %w", err)
	}
	return Parse(data, path, checks...)
}

// Parse decodes a plan, rejects unknown keys and wrong types, applies the
// defaults and fallbacks, validates and runs checks. source names the data
// in problems (usually the file path). The error is a *Problems listing
// every problem.
func Parse(data []byte, source string, checks ...Check) (*Plan, error) {
	d := newDecoder(source)
	p := d.decode(data)
	if p == nil { // TOML syntax error: nothing else can be checked
		return nil, d.problems()
	}
	p.resolve()
	if err := p.Validate(); err != nil {
		// A key that could not be decoded kept its default; what Validate
		// says about it would only repeat the problem.
		decodeProbs := len(d.probs)
		values := map[string]string{}
		for _, s := range Settings(p) {
			values[s.Key] = s.Value
		}
	next:
		for _, pr := range *err.(*Problems) {
			for _, bad := range d.probs[:decodeProbs] {
				if related(bad.Key, pr.Key) {
					continue next
				}
			}
			d.probs = append(d.probs, d.ownKey(pr, values, p))
		}
	}
	// A check's problem on a key found wrong already would repeat it (a
	// relative path that does not open, say).
	found := d.probs
	reported := func(key string) bool {
		for _, bad := range found {
			if related(bad.Key, key) {
				return true
			}
		}
		return false
	}
	var checkWarnings Problems
	for _, c := range checks {
		probs, warns := c(p)
		checkWarnings = append(checkWarnings, warns...)
		for _, pr := range probs {
			if !reported(pr.Key) {
				d.probs = append(d.probs, pr)
			}
		}
	}
	if len(d.probs) > 0 {
		return nil, d.problems()
	}
	if ws := append(d.warnings(p), checkWarnings...); len(ws) > 0 {
		d.probs = ws
		p.Warnings = *d.problems().(*Problems)
	}
	return p, nil
}

// related reports whether one key is the other or contains it.
func related(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	return a == b || strings.HasPrefix(b, a+".")
}

// resolve fills in the values the plan leaves to fallbacks.
func (p *Plan) resolve() {
	if len(p.Audio.Channels) == 0 {
		p.Audio.Channels = []Channel{{Name: DefaultChannel}}
	}
	for i := range p.Audio.Channels {
		if p.Audio.Channels[i].Loopback == "" {
			p.Audio.Channels[i].Loopback = DefaultLoopback
		}
	}
	for i := range p.Accounts {
		a := &p.Accounts[i]
		if a.Channel == "" && len(p.Audio.Channels) == 1 {
			a.Channel = p.Audio.Channels[0].Name
		}
		if a.DisplayName == "" {
			a.DisplayName = a.Name
		}
		if a.AcceptFrom.Mode == "" {
			a.AcceptFrom.Mode = AcceptAny
			if a.Server != "" {
				a.AcceptFrom.Mode = AcceptServer
			}
		}
	}
}

// Account returns the account with the given name.
func (p *Plan) Account(name string) (Account, bool) {
	for _, a := range p.Accounts {
		if a.Name == name {
			return a, true
		}
	}
	return Account{}, false
}

// Channel returns the audio channel with the given name.
func (p *Plan) Channel(name string) (Channel, bool) {
	for _, c := range p.Audio.Channels {
		if c.Name == name {
			return c, true
		}
	}
	return Channel{}, false
}

// Duration is a time.Duration written in TOML as a string such as "300s"
// or "20ms".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string ("300s", "1m30s", "20ms").
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration like \"300s\" or \"20ms\": %q", b)
	}
	d.Duration = v
	return nil
}

// String is the form MarshalText writes.
func (d Duration) String() string { return d.text() }

// MarshalText writes whole seconds as "300s" and whole milliseconds as
// "20ms", the way the plan documents them.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.text()), nil
}

func (d Duration) text() string {
	switch {
	case d.Duration != 0 && d.Duration%time.Second == 0:
		return fmt.Sprintf("%ds", d.Duration/time.Second)
	case d.Duration != 0 && d.Duration%time.Millisecond == 0:
		return fmt.Sprintf("%dms", d.Duration/time.Millisecond)
	}
	return d.Duration.String()
}
