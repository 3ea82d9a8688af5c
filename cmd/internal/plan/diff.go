package plan

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Setting is one key of a plan with its value as TOML writes it (strings
// quoted, durations as "300s", lists as ["a", "b"]). Tables of accounts and
// channels are settings too (Value ""), so that Diff can say one was added.
type Setting struct {
	Key   string // e.g. "sip-settings.port", "accounts.account-1.user", "accounts.account-1"
	Value string // "" for a table; "(set)" or "(not set)" for a password
}

// Settings lists every key of p in the order docs/sipplan.md documents them,
// accounts and channels in plan order. A password's value is never shown.
func Settings(p *Plan) []Setting {
	var out []Setting
	add := func(key, value string) { out = append(out, Setting{key, value}) }
	t := p.TCP
	add("tcp-settings.address", quote(t.Address))
	add("tcp-settings.port", strconv.Itoa(t.Port))
	allow := make([]string, len(t.Allow))
	for i, pf := range t.Allow {
		allow[i] = pf.String()
	}
	add("tcp-settings.allow", list(allow))
	add("tcp-settings.max-clients", strconv.Itoa(t.MaxClients))
	add("tcp-settings.max-message-bytes", strconv.Itoa(t.MaxMessageBytes))
	add("tcp-settings.event-history", strconv.Itoa(t.EventHistory))
	s := p.SIP
	add("sip-settings.address", quote(s.Address))
	add("sip-settings.port", strconv.Itoa(s.Port))
	add("sip-settings.transports", list(s.Transports))
	add("sip-settings.tls-port", strconv.Itoa(s.TLSPort))
	add("sip-settings.tls-certificate", quote(s.TLSCertificate))
	add("sip-settings.tls-key", quote(s.TLSKey))
	add("sip-settings.tls-ca", quote(s.TLSCA))
	add("sip-settings.tls-verify", strconv.FormatBool(s.TLSVerify))
	add("sip-settings.public-address", quote(s.PublicAddress))
	add("sip-settings.user-agent", quote(s.UserAgent))
	add("sip-settings.register-expires", quote(s.RegisterExpires.text()))
	add("sip-settings.register-retry", quote(s.RegisterRetry.text()))
	add("sip-settings.register-timeout", quote(s.RegisterTimeout.text()))
	add("sip-settings.failback-interval", quote(s.FailbackInterval.text()))
	add("sip-settings.keepalive-interval", quote(s.KeepaliveInterval.text()))
	add("sip-settings.ended-call-linger", quote(s.EndedCallLinger.text()))
	add("sip-settings.session-expires", quote(s.SessionExpires.text()))
	trusted := make([]string, len(s.Trusted))
	for i, pf := range s.Trusted {
		trusted[i] = pf.String()
	}
	add("sip-settings.trusted", list(trusted))
	add("sip-settings.reject", quote(s.Reject))
	r := p.RTP
	add("rtp-settings.port-min", strconv.Itoa(r.PortMin))
	add("rtp-settings.port-max", strconv.Itoa(r.PortMax))
	add("rtp-settings.codecs", list(r.Codecs))
	add("rtp-settings.ptime", quote(r.PTime.text()))
	add("rtp-settings.jitter-buffer", quote(r.JitterBuffer.text()))
	add("rtp-settings.timeout", quote(r.Timeout.text()))
	add("rtp-settings.srtp", quote(r.SRTP))
	add("audio.backend", quote(p.Audio.Backend))
	add("audio.pulse-server", quote(p.Audio.PulseServer))
	add("audio.pipewire-quantum", strconv.Itoa(p.Audio.PipeWireQuantum))
	for _, c := range p.Audio.Channels {
		key := func(field string) string { return toml.Key{"audio", "channels", c.Name, field}.String() }
		add(toml.Key{"audio", "channels", c.Name}.String(), "")
		add(key("sink"), quote(c.Sink))
		add(key("source"), quote(c.Source))
		add(key("loopback"), quote(c.Loopback))
	}
	add("log.level", quote(p.Log.Level))
	add("log.sip-trace", strconv.FormatBool(p.Log.SIPTrace))
	add("metrics.address", quote(p.Metrics.Address))
	for _, a := range p.Accounts {
		key := func(field string) string { return toml.Key{"accounts", a.Name, field}.String() }
		add(toml.Key{"accounts", a.Name}.String(), "")
		add(key("user"), quote(a.User))
		pass := "(not set)"
		if a.Pass != "" {
			pass = "(set)"
		}
		add(key("pass"), pass)
		if len(a.Backups) > 0 {
			add(key("server"), list(append([]string{a.Server}, a.Backups...)))
		} else {
			add(key("server"), quote(a.Server))
		}
		add(key("auth-user"), quote(a.DigestUser()))
		add(key("display-name"), quote(a.DisplayName))
		add(key("register"), strconv.FormatBool(a.Register))
		add(key("channel"), quote(a.Channel))
		add(key("max-calls"), strconv.Itoa(a.MaxCalls))
		switch a.AcceptFrom.Mode {
		case "": // the default, which follows server
			add(key("accept-from"), "")
		case AcceptList:
			nets := make([]string, len(a.AcceptFrom.Prefixes))
			for i, pf := range a.AcceptFrom.Prefixes {
				nets[i] = pf.String()
			}
			add(key("accept-from"), list(nets))
		default:
			add(key("accept-from"), quote(a.AcceptFrom.Mode))
		}
	}
	return out
}

// Change is one difference between two plans.
type Change struct {
	Key string
	// Kind is "added" or "removed" for an account or channel table, else
	// "changed".
	Kind     string
	Old, New string // the values (Setting.Value); "" for a table
}

// Change kinds.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// String is "KEY: added", "KEY: removed" or "KEY = OLD → NEW"; a password
// change reads "KEY changed (value not shown)".
func (c Change) String() string {
	switch {
	case c.Kind != Changed:
		return c.Key + ": " + c.Kind
	case passKey(c.Key) != "" && c.Old == c.New:
		return c.Key + " changed (value not shown)"
	}
	return c.Key + " = " + c.Old + " → " + c.New
}

// Diff lists what differs from old to new, in Settings order, old's removed
// tables first. A table added or removed is one change, not one per key. A
// value that only followed its fallback (auth-user following user,
// display-name the account name) is not listed: the key it follows is.
func Diff(old, new *Plan) []Change {
	was := map[string]string{}
	for _, s := range Settings(old) {
		was[s.Key] = s.Value
	}
	now := map[string]string{}
	ns := Settings(new)
	for _, s := range ns {
		now[s.Key] = s.Value
	}
	var out []Change
	var gone []string // removed tables: their keys are not listed
	for _, s := range Settings(old) {
		if _, ok := now[s.Key]; ok || underAny(s.Key, gone) {
			continue
		}
		gone = append(gone, s.Key)
		out = append(out, Change{Key: s.Key, Kind: Removed})
	}
	var added []string
	for _, s := range ns {
		ov, ok := was[s.Key]
		switch {
		case underAny(s.Key, added):
		case !ok:
			added = append(added, s.Key)
			out = append(out, Change{Key: s.Key, Kind: Added})
		case ov != s.Value || passKey(s.Key) != "" && passChanged(old, new, s.Key):
			if followsFallback(old, new, s.Key) {
				continue
			}
			out = append(out, Change{Key: s.Key, Kind: Changed, Old: ov, New: s.Value})
		}
	}
	return out
}

func underAny(key string, tables []string) bool {
	for _, t := range tables {
		if strings.HasPrefix(key, t+".") {
			return true
		}
	}
	return false
}

// passKey returns key if it is an account's pass key, else "".
func passKey(key string) string {
	if strings.HasPrefix(key, "accounts.") && strings.HasSuffix(key, ".pass") {
		return key
	}
	return ""
}

// passChanged compares the passwords themselves, which Settings hides.
func passChanged(old, new *Plan, key string) bool {
	name := accountOf(key)
	a, _ := old.Account(name)
	b, _ := new.Account(name)
	return a.Pass != b.Pass
}

// accountOf is NAME of "accounts.NAME.field" (NAME may be quoted).
func accountOf(key string) string {
	rest := strings.TrimPrefix(key, "accounts.")
	rest = rest[:strings.LastIndexByte(rest, '.')]
	if n, err := strconv.Unquote(rest); err == nil {
		return n
	}
	return rest
}

// followsFallback: auth-user equal to user (or display-name equal to the
// account name) in both plans only followed the value it falls back to.
func followsFallback(old, new *Plan, key string) bool {
	if !strings.HasPrefix(key, "accounts.") {
		return false
	}
	a, _ := old.Account(accountOf(key))
	b, _ := new.Account(accountOf(key))
	switch {
	case strings.HasSuffix(key, ".auth-user"):
		return a.DigestUser() == a.User && b.DigestUser() == b.User
	case strings.HasSuffix(key, ".display-name"):
		return a.DisplayName == a.Name && b.DisplayName == b.Name
	}
	return false
}

func quote(s string) string { return strconv.Quote(s) }

func list(items []string) string {
	q := make([]string, len(items))
	for i, s := range items {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
