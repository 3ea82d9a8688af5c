package plan

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/BurntSushi/toml"

	"github.com/telestra/telestra-sip/sip/media"
)

// Limits the plan enforces; docs/sipplan.md documents each.
const (
	minRegisterExpires = 10 * time.Second
	maxRegisterRetry   = 5 * time.Minute  // the back-off cap: a longer first retry makes no sense
	minSessionExpires  = 90 * time.Second // RFC 4028 Min-SE floor
	minMessageBytes    = 1024
	maxMessageBytes    = 16 << 20
	maxNameLen         = 64
	maxEventHistory    = 1 << 16 // about 10 MB of kept frames
)

// Known values of the enumerated keys, in the order the docs list them.
var (
	transports = []string{"udp", "tcp", "tls"}
	codecs     = []string{"G722", "PCMU", "PCMA"}
	backends   = []string{"loopback", "pulse", "alsa"}
	logLevels  = []string{"debug", "info", "warn", "error"}
	rejects    = []string{RejectForbidden, RejectSilent}
	srtpModes  = []string{"off", "optional", "required"}
)

// Validate checks the plan as it stands (it fills in nothing) and returns a
// *Problems listing every problem, or nil. Keys of plans built in Go carry
// no line.
func (p *Plan) Validate() error {
	v := &validator{}
	v.tcp(&p.TCP)
	v.sip(&p.SIP)
	v.rtp(&p.RTP)
	v.audio(&p.Audio, media.ChannelRate(p.RTP.Codecs))
	v.log(&p.Log)
	v.metrics(&p.Metrics)
	v.accounts(p)
	v.conflicts(p)
	if len(v.probs) == 0 {
		return nil
	}
	ps := v.probs
	return &ps
}

type validator struct{ probs Problems }

func (v *validator) add(key, format string, args ...any) {
	v.probs = append(v.probs, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) port(key string, n int) {
	if n < 1 || n > 65535 {
		v.add(key, "must be a port number from 1 to 65535 (got %d)", n)
	}
}

// bindAddress: the IP of a local interface, or 0.0.0.0 / :: for all.
func (v *validator) bindAddress(key, s string) {
	if a, err := netip.ParseAddr(s); err != nil || a.Zone() != "" {
		v.add(key, "must be an IP address without brackets or port, such as \"0.0.0.0\" (all IPv4), \"::\" (IPv6 and IPv4), \"127.0.0.1\" or \"::1\" (got %q)", s)
	}
}

func (v *validator) positive(key string, d Duration) bool {
	if d.Duration <= 0 {
		v.add(key, "must be a positive duration such as \"10s\" (got %q)", d.text())
		return false
	}
	return true
}

// wholeSeconds: the value goes into a SIP header in seconds.
func (v *validator) wholeSeconds(key string, d Duration, min time.Duration) {
	switch {
	case d.Duration < min:
		v.add(key, "must be at least %q (got %q)", Duration{min}.text(), d.text())
	case d.Duration%time.Second != 0:
		v.add(key, "must be whole seconds, e.g. \"300s\" (got %q)", d.text())
	}
}

// set checks a list against its allowed values: non-empty, known, no repeats.
func (v *validator) set(key string, list, allowed []string) {
	if len(list) == 0 {
		v.add(key, "must list at least one of %s", quoteList(allowed))
		return
	}
	for i, s := range list {
		if !slices.Contains(allowed, s) {
			v.add(key, "unknown value %q (allowed: %s)", s, quoteList(allowed))
		} else if slices.Index(list, s) < i {
			v.add(key, "%q is listed twice", s)
		}
	}
}

func (v *validator) oneOf(key, s string, allowed []string) {
	if !slices.Contains(allowed, s) {
		v.add(key, "must be one of %s (got %q)", quoteList(allowed), s)
	}
}

func (v *validator) tcp(t *TCPSettings) {
	v.bindAddress("tcp-settings.address", t.Address)
	v.port("tcp-settings.port", t.Port)
	for _, pf := range t.Allow {
		if !pf.IsValid() {
			v.add("tcp-settings.allow", "contains an invalid prefix")
		}
	}
	if t.MaxClients < 1 {
		v.add("tcp-settings.max-clients", "must be at least 1 (got %d)", t.MaxClients)
	}
	if t.MaxMessageBytes < minMessageBytes || t.MaxMessageBytes > maxMessageBytes {
		v.add("tcp-settings.max-message-bytes", "must be from %d to %d (got %d)", minMessageBytes, maxMessageBytes, t.MaxMessageBytes)
	}
	if t.EventHistory < 1 || t.EventHistory > maxEventHistory {
		v.add("tcp-settings.event-history", "must be from 1 to %d (got %d)", maxEventHistory, t.EventHistory)
	}
}

// metrics: empty (off) or IP:PORT to listen on.
func (v *validator) metrics(m *Metrics) {
	if m.Address == "" {
		return
	}
	host, port, err := net.SplitHostPort(m.Address)
	if err != nil {
		v.add("metrics.address", "must be IP:PORT such as \"127.0.0.1:9550\", or empty for no metrics (got %q)", m.Address)
		return
	}
	if _, err := netip.ParseAddr(host); err != nil {
		v.add("metrics.address", "must start with an IP address such as \"127.0.0.1\" (got %q)", host)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.add("metrics.address", "must end with a port number from 1 to 65535 (got %q)", port)
	}
}

func (v *validator) sip(s *SIPSettings) {
	v.bindAddress("sip-settings.address", s.Address)
	v.port("sip-settings.port", s.Port)
	v.set("sip-settings.transports", s.Transports, transports)
	v.port("sip-settings.tls-port", s.TLSPort)
	if slices.Contains(s.Transports, "tls") {
		if s.TLSCertificate == "" || s.TLSKey == "" {
			v.add("sip-settings.tls-certificate", "transport \"tls\" needs tls-certificate and tls-key (PEM files) for its listener")
		}
		if s.TLSPort == s.Port && slices.Contains(s.Transports, "tcp") {
			v.add("sip-settings.tls-port", "TCP port %d is also the SIP port with transport \"tcp\"; TLS needs its own (usually 5061)", s.TLSPort)
		}
	}
	for _, f := range []struct{ key, path string }{{"tls-certificate", s.TLSCertificate}, {"tls-key", s.TLSKey}, {"tls-ca", s.TLSCA}} {
		if f.path != "" && !strings.HasPrefix(f.path, "/") {
			v.add("sip-settings."+f.key, "must be an absolute path such as \"/etc/telestra/tls/sip.pem\" (got %q)", f.path)
		}
	}
	if s.PublicAddress != "" {
		a, err := netip.ParseAddr(s.PublicAddress)
		switch {
		case err == nil && a.IsUnspecified():
			v.add("sip-settings.public-address", "must be an address peers can reach, not %q; leave it empty to use the bind address", s.PublicAddress)
		case err != nil && !validHostname(s.PublicAddress):
			v.add("sip-settings.public-address", "must be an IP address or host name without brackets or port, such as \"192.0.2.10\", \"2001:db8::10\" or \"sip.example.com\" (got %q)", s.PublicAddress)
		}
	}
	if s.UserAgent == "" || hasControl(s.UserAgent) {
		v.add("sip-settings.user-agent", "must be non-empty text without control characters")
	}
	v.wholeSeconds("sip-settings.register-expires", s.RegisterExpires, minRegisterExpires)
	if v.positive("sip-settings.register-retry", s.RegisterRetry) && s.RegisterRetry.Duration > maxRegisterRetry {
		v.add("sip-settings.register-retry", "must be at most %q, where the back-off stops doubling (got %q)", Duration{maxRegisterRetry}.text(), s.RegisterRetry.text())
	}
	if v.positive("sip-settings.register-timeout", s.RegisterTimeout) && (s.RegisterTimeout.Duration < time.Second || s.RegisterTimeout.Duration > 32*time.Second) {
		v.add("sip-settings.register-timeout", "must be from \"1s\" to \"32s\" (RFC 3261 Timer F) (got %q)", s.RegisterTimeout.text())
	}
	v.positive("sip-settings.failback-interval", s.FailbackInterval)
	if k := s.KeepaliveInterval.Duration; k != 0 && k < time.Second {
		v.add("sip-settings.keepalive-interval", "must be \"0s\" (off) or at least \"1s\" (got %q)", s.KeepaliveInterval.text())
	}
	v.positive("sip-settings.ended-call-linger", s.EndedCallLinger)
	v.wholeSeconds("sip-settings.session-expires", s.SessionExpires, minSessionExpires)
	v.oneOf("sip-settings.reject", s.Reject, rejects)
	for _, pf := range s.Trusted {
		if !pf.IsValid() {
			v.add("sip-settings.trusted", "contains an invalid prefix")
		}
	}
}

func (v *validator) rtp(r *RTPSettings) {
	v.port("rtp-settings.port-min", r.PortMin)
	v.port("rtp-settings.port-max", r.PortMax)
	if r.PortMin%2 != 0 || r.PortMin >= r.PortMax {
		v.add("rtp-settings.port-min", "must be even and below port-max %d (got %d): RTP uses even ports, RTCP the next odd one", r.PortMax, r.PortMin)
	}
	v.set("rtp-settings.codecs", r.Codecs, codecs)
	if r.PTime.Duration < 10*time.Millisecond || r.PTime.Duration > 60*time.Millisecond || r.PTime.Duration%(10*time.Millisecond) != 0 {
		v.add("rtp-settings.ptime", "must be 10ms, 20ms, 30ms, 40ms, 50ms or 60ms (got %q)", r.PTime.text())
	}
	// The media engine's own limits: the buffer adapts within them, and
	// it refuses a plan outside them at start.
	if jb := r.JitterBuffer.Duration; jb < media.MinJitterBuffer || jb > media.MaxJitterBuffer {
		v.add("rtp-settings.jitter-buffer", "must be from %q to %q, the range the jitter buffer adapts within (got %q)",
			Duration{media.MinJitterBuffer}.text(), Duration{media.MaxJitterBuffer}.text(), r.JitterBuffer.text())
	}
	v.positive("rtp-settings.timeout", r.Timeout)
	v.oneOf("rtp-settings.srtp", r.SRTP, srtpModes)
}

// audio checks [audio]; rate is the channels' sample rate, 16000 Hz when
// G722 is among the codecs, else 8000.
func (v *validator) audio(a *Audio, rate int) {
	v.oneOf("audio.backend", a.Backend, backends)
	if hasControl(a.PulseServer) {
		v.add("audio.pulse-server", "must not contain control characters")
	}
	if q := a.PipeWireQuantum; q < MinPipeWireQuantum || q > MaxPipeWireQuantum || q&(q-1) != 0 {
		v.add("audio.pipewire-quantum", "must be a power of two from %d to %d (samples at 48 kHz; got %d)", MinPipeWireQuantum, MaxPipeWireQuantum, q)
	}
	for _, c := range a.Channels {
		key := func(field string) string { return toml.Key{"audio", "channels", c.Name, field}.String() }
		if !validName(c.Name) {
			v.add(toml.Key{"audio", "channels", c.Name}.String(), "channel name must be 1 to %d characters without spaces, quotes or control characters", maxNameLen)
		}
		if hasControl(c.Sink) {
			v.add(key("sink"), "must not contain control characters")
		}
		if hasControl(c.Source) {
			v.add(key("source"), "must not contain control characters")
		}
		if err := checkLoopback(c.Loopback, rate); err != nil {
			v.add(key("loopback"), "%v", err)
		}
	}
}

// checkLoopback checks a loopback channel mode: "echo", "silence" or
// "tone:HZ" below half the channel rate.
func checkLoopback(s string, sampleRate int) error {
	switch s {
	case "echo", "silence":
		return nil
	}
	hz, ok := strings.CutPrefix(s, "tone:")
	if !ok {
		return fmt.Errorf("must be \"echo\", \"silence\" or \"tone:HZ\" (got %q)", s)
	}
	n, err := strconv.Atoi(hz)
	if err != nil || n < 1 || n >= sampleRate/2 {
		return fmt.Errorf("tone frequency must be a whole number of Hz from 1 to %d, below half the %d Hz sample rate (got %q)", sampleRate/2-1, sampleRate, s)
	}
	return nil
}

func (v *validator) log(l *Log) {
	v.oneOf("log.level", l.Level, logLevels)
}

func (v *validator) accounts(p *Plan) {
	if len(p.Accounts) == 0 {
		v.add("accounts", "no accounts: define at least one [accounts.NAME] table with a user")
		return
	}
	channels := map[string]bool{}
	for _, c := range p.Audio.Channels {
		channels[c.Name] = true
	}
	channelOwner := map[string]string{}
	userOwner := map[string]string{} // user@server → account
	for _, a := range p.Accounts {
		key := func(field string) string { return toml.Key{"accounts", a.Name, field}.String() }
		if !validName(a.Name) {
			v.add(toml.Key{"accounts", a.Name}.String(), "account name must be 1 to %d characters without spaces, quotes or control characters: the API refers to accounts by name", maxNameLen)
		}
		switch {
		case a.User == "":
			v.add(key("user"), "required: the account's SIP user (extension), e.g. \"3001\"")
		case !validUser(a.User):
			v.add(key("user"), "must be a SIP user part without spaces, control characters or any of @ : < > \" \\ (got %q)", a.User)
		default:
			id := a.User + "@" + a.Server
			if other, dup := userOwner[id]; dup {
				v.add(key("user"), "account %q already uses user %q with the same server; local calls and registrations would be ambiguous", other, a.User)
			} else {
				userOwner[id] = a.Name
			}
		}
		if hasControl(a.Pass) {
			v.add(key("pass"), "must not contain control characters (value not shown)")
		}
		if a.Server != "" {
			if err := checkServer(a.Server); err != nil {
				v.add(key("server"), "%v", err)
			}
		}
		for i, s := range a.Backups {
			switch {
			case a.Server == "":
				v.add(key("server"), "a backup server needs a first server")
			case checkServer(s) != nil:
				v.add(key("server"), "entry %d: %v", i+2, checkServer(s))
			case s == a.Server || slices.Index(a.Backups, s) < i:
				v.add(key("server"), "%q is listed twice", s)
			}
		}
		// An auth-user that only follows user was checked as user.
		if a.AuthUser != "" && a.AuthUser != a.User && (hasControl(a.AuthUser) || strings.ContainsAny(a.AuthUser, " \t\"\\")) {
			v.add(key("auth-user"), "must not contain spaces, quotes, backslashes or control characters (got %q)", a.AuthUser)
		}
		if hasControl(a.DisplayName) {
			v.add(key("display-name"), "must not contain control characters")
		}
		switch ok := channels[a.Channel]; {
		case a.Channel == "" && len(p.Audio.Channels) > 1:
			v.add(key("channel"), "required when several channels are defined (one of %s)", channelNames(p))
		case a.Channel == "":
			v.add(key("channel"), "required: no [audio.channels.NAME] table is defined")
		case !ok:
			v.add(key("channel"), "no channel %q in [audio.channels] (defined: %s)", a.Channel, channelNames(p))
		default:
			if other, dup := channelOwner[a.Channel]; dup {
				v.add(key("channel"), "channel %q is already bound to account %q; each account needs its own channel", a.Channel, other)
			} else {
				channelOwner[a.Channel] = a.Name
			}
		}
		switch a.AcceptFrom.Mode {
		case AcceptServer:
			if a.Server == "" {
				v.add(key("accept-from"), `"server" needs a server; without one the account accepts "any" or a list of networks`)
			}
		case AcceptAny, "": // "": a plan built in Go takes the default
		case AcceptList:
			if len(a.AcceptFrom.Prefixes) == 0 {
				v.add(key("accept-from"), "an empty list accepts nobody")
			}
		default:
			v.add(key("accept-from"), `must be "server", "any" or a list of networks (got %q)`, a.AcceptFrom.Mode)
		}
		if a.MaxCalls < 1 {
			v.add(key("max-calls"), "must be at least 1 (got %d)", a.MaxCalls)
		}
	}
}

// conflicts checks what no single key shows: ports in use twice, and an RTP
// range too small for every call the accounts allow.
func (v *validator) conflicts(p *Plan) {
	if p.RTP.PortMin <= p.SIP.Port && p.SIP.Port <= p.RTP.PortMax && slices.Contains(p.SIP.Transports, "udp") {
		v.add("sip-settings.port", "UDP port %d is inside the RTP range %d-%d; move one of them", p.SIP.Port, p.RTP.PortMin, p.RTP.PortMax)
	}
	if p.TCP.Port == p.SIP.Port && slices.Contains(p.SIP.Transports, "tcp") {
		v.add("tcp-settings.port", "TCP port %d is also the SIP port with transport \"tcp\"; move one of them", p.TCP.Port)
	}
	// Every TCP listener needs a port of its own, or the second bind fails
	// at start (addresses are not compared: a wildcard overlaps them all).
	tls := slices.Contains(p.SIP.Transports, "tls")
	if tls && p.TCP.Port == p.SIP.TLSPort {
		v.add("tcp-settings.port", "TCP port %d is also the TLS port [sip-settings] tls-port; move one of them", p.TCP.Port)
	}
	if _, port, err := net.SplitHostPort(p.Metrics.Address); err == nil {
		switch port {
		case strconv.Itoa(p.TCP.Port):
			v.add("metrics.address", "port %s is also the API port [tcp-settings] port; move one of them", port)
		case strconv.Itoa(p.SIP.Port):
			if slices.Contains(p.SIP.Transports, "tcp") {
				v.add("metrics.address", "port %s is also the SIP port with transport \"tcp\"; move one of them", port)
			}
		}
		if tls && port == strconv.Itoa(p.SIP.TLSPort) {
			v.add("metrics.address", "port %s is also the TLS port [sip-settings] tls-port; move one of them", port)
		}
	}
	calls := 0
	for _, a := range p.Accounts {
		calls += max(a.MaxCalls, 0)
	}
	if pairs := (p.RTP.PortMax - p.RTP.PortMin + 1) / 2; p.RTP.PortMin < p.RTP.PortMax && calls > pairs {
		v.add("rtp-settings.port-max", "range %d-%d has room for %d calls (an even RTP and the next RTCP port each), but the accounts' max-calls add up to %d; widen the range",
			p.RTP.PortMin, p.RTP.PortMax, pairs, calls)
	}
}

// checkServer checks host[:port] with an IP (IPv6 in brackets when a port
// follows) or a host name.
func checkServer(s string) error {
	const how = "must be [tls:]host[:port] such as \"pbx.example.com\", \"127.0.0.1:5060\", \"2001:db8::1\", \"[2001:db8::1]:5060\" or \"tls:pbx.example.com:5061\""
	if rest, ok := strings.CutPrefix(strings.ToLower(s), "tls:"); ok {
		s = s[len(s)-len(rest):]
	}
	if l := strings.ToLower(s); strings.HasPrefix(l, "sip:") || strings.HasPrefix(l, "sips:") {
		return fmt.Errorf("%s, without a sip: scheme (got %q)", how, s)
	}
	// A zone (fe80::1%eth0) has no place in a SIP URI.
	noZone := func(a netip.Addr) error {
		if a.Zone() != "" {
			return fmt.Errorf("%s; an IPv6 zone (%%%s) cannot be used (got %q)", how, a.Zone(), s)
		}
		return nil
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return noZone(a)
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, ""
		if len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']' {
			host = s[1 : len(s)-1] // "[2001:db8::1]": IPv6 without a port
			if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
				return noZone(a)
			}
			return fmt.Errorf("%s; only an IPv6 address goes in brackets (got %q)", how, s)
		}
	} else {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s; the port must be from 1 to 65535 (got %q)", how, s)
		}
		if a, err := netip.ParseAddr(host); strings.HasPrefix(s, "[") && (err != nil || !a.Is6()) {
			return fmt.Errorf("%s; only an IPv6 address goes in brackets (got %q)", how, s)
		}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return noZone(a)
	}
	if strings.Contains(host, ":") {
		return fmt.Errorf("%s; an IPv6 address with a port goes in brackets (got %q)", how, s)
	}
	if !validHostname(host) {
		return fmt.Errorf("%s (got %q)", how, s)
	}
	return nil
}

// validHostname: DNS labels of letters, digits, '-' and '_', a trailing dot
// allowed.
func validHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// validName: account and channel names travel in JSON commands and logs.
func validName(s string) bool {
	if s == "" || len(s) > maxNameLen {
		return false
	}
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || r == '"' || r == '\'' || r == '\\' {
			return false
		}
	}
	return true
}

func validUser(s string) bool {
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) || strings.ContainsRune("@:<>\"\\", r) {
			return false
		}
	}
	return s != ""
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return true
		}
	}
	return false
}

func quoteList(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

func channelNames(p *Plan) string {
	if len(p.Audio.Channels) == 0 {
		return "none"
	}
	names := make([]string, len(p.Audio.Channels))
	for i, c := range p.Audio.Channels {
		names[i] = c.Name
	}
	return strings.Join(names, ", ")
}
