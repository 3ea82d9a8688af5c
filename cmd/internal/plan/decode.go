package plan

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// The decoder walks the document one table at a time: each table is decoded
// into map[string]toml.Primitive and each known key's value converted on its
// own, so one wrong value does not hide the others, and keys are matched
// exactly (toml's struct decoding would accept "Port" for "port").
type decoder struct {
	source string
	md     toml.MetaData
	probs  Problems
	refs   map[string]keyRef // every key the file sets, by its String form
}

// keyRef locates a key's value, for finding its line when a problem needs
// it. Lines are looked up only then: each lookup costs a pass over the file.
type keyRef struct {
	key  toml.Key
	prim toml.Primitive
}

// Bounds that keep a hostile or broken file from costing much: a real plan
// is a few kilobytes with a handful of problems.
const (
	maxPlanBytes = 1 << 20
	maxProblems  = 100
)

func newDecoder(source string) *decoder {
	return &decoder{source: source, refs: map[string]keyRef{}}
}

func (d *decoder) ref(key toml.Key, prim toml.Primitive) {
	d.refs[key.String()] = keyRef{key, prim}
}

// problems returns the collected problems, sorted by line, as an error.
func (d *decoder) problems() error {
	ps := append(Problems(nil), d.probs...)
	var more int
	if len(ps) > maxProblems {
		more, ps = len(ps)-maxProblems, ps[:maxProblems]
	}
	for i := range ps {
		ps[i].Source = d.source
		if ps[i].Line == 0 {
			ps[i].Line = d.lineOf(ps[i].Key)
		}
	}
	sortProblems(ps)
	if more > 0 {
		ps = append(ps, Problem{Source: d.source, Msg: fmt.Sprintf("%d more problems not shown; fix the ones above first", more)})
	}
	return &ps
}

// lineOf is the line of a key or, for a key the file leaves out, of the
// nearest table above it that the file has.
func (d *decoder) lineOf(k string) int {
	for k != "" {
		if r, ok := d.refs[k]; ok {
			if line := d.keyLine(r.key, r.prim); line > 0 {
				return line
			}
		}
		j := strings.LastIndexByte(k, '.')
		if j < 0 {
			break
		}
		k = k[:j]
	}
	return 0
}

func (d *decoder) add(key string, format string, args ...any) {
	d.probs = append(d.probs, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// section is one table's schema: its keys, each with a setter that
// converts the raw value.
type section struct {
	key    toml.Key
	fields map[string]func(key string, v any)
}

func (d *decoder) decode(data []byte) *Plan {
	p := Default()
	if len(data) > maxPlanBytes {
		d.add("", "the plan is %d bytes; the limit is %d", len(data), maxPlanBytes)
		return nil
	}
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			// The message can quote the offending text; on a pass line that
			// would be the password, so the line number has to do.
			d.probs = append(d.probs, Problem{Key: pe.LastKey, Line: pe.Position.Line,
				Msg: "TOML syntax error: " + redactSyntax(pe)})
		} else {
			d.add("", "TOML syntax error: %v", err)
		}
		return nil
	}
	d.md = md

	tcp := section{toml.Key{"tcp-settings"}, map[string]func(string, any){
		"address":           d.str(&p.TCP.Address),
		"port":              d.integer(&p.TCP.Port),
		"allow":             d.prefixes(&p.TCP.Allow),
		"max-clients":       d.integer(&p.TCP.MaxClients),
		"max-message-bytes": d.integer(&p.TCP.MaxMessageBytes),
		"event-history":     d.integer(&p.TCP.EventHistory),
	}}
	sip := section{toml.Key{"sip-settings"}, map[string]func(string, any){
		"address":            d.str(&p.SIP.Address),
		"port":               d.integer(&p.SIP.Port),
		"transports":         d.strs(&p.SIP.Transports),
		"tls-port":           d.integer(&p.SIP.TLSPort),
		"tls-certificate":    d.str(&p.SIP.TLSCertificate),
		"tls-key":            d.str(&p.SIP.TLSKey),
		"tls-ca":             d.str(&p.SIP.TLSCA),
		"tls-verify":         d.boolean(&p.SIP.TLSVerify),
		"public-address":     d.str(&p.SIP.PublicAddress),
		"user-agent":         d.str(&p.SIP.UserAgent),
		"register-expires":   d.duration(&p.SIP.RegisterExpires),
		"register-retry":     d.duration(&p.SIP.RegisterRetry),
		"register-timeout":   d.duration(&p.SIP.RegisterTimeout),
		"failback-interval":  d.duration(&p.SIP.FailbackInterval),
		"keepalive-interval": d.duration(&p.SIP.KeepaliveInterval),
		"ended-call-linger":  d.duration(&p.SIP.EndedCallLinger),
		"session-expires":    d.duration(&p.SIP.SessionExpires),
		"trusted":            d.prefixes(&p.SIP.Trusted),
		"reject":             d.str(&p.SIP.Reject),
	}}
	rtp := section{toml.Key{"rtp-settings"}, map[string]func(string, any){
		"port-min":      d.integer(&p.RTP.PortMin),
		"port-max":      d.integer(&p.RTP.PortMax),
		"codecs":        d.strs(&p.RTP.Codecs),
		"ptime":         d.duration(&p.RTP.PTime),
		"jitter-buffer": d.duration(&p.RTP.JitterBuffer),
		"timeout":       d.duration(&p.RTP.Timeout),
		"srtp":          d.str(&p.RTP.SRTP),
	}}
	logs := section{toml.Key{"log"}, map[string]func(string, any){
		"level":     d.str(&p.Log.Level),
		"sip-trace": d.boolean(&p.Log.SIPTrace),
	}}
	metrics := section{toml.Key{"metrics"}, map[string]func(string, any){
		"address": d.str(&p.Metrics.Address),
	}}
	var channels, accounts map[string]toml.Primitive
	audio := section{toml.Key{"audio"}, map[string]func(string, any){
		"backend":          d.str(&p.Audio.Backend),
		"pulse-server":     d.str(&p.Audio.PulseServer),
		"pipewire-quantum": d.integer(&p.Audio.PipeWireQuantum),
	}}

	for _, name := range sortedKeys(top) {
		prim := top[name]
		key := toml.Key{name}
		d.ref(key, prim)
		switch name {
		case "tcp-settings":
			d.table(tcp, prim, nil)
		case "sip-settings":
			d.table(sip, prim, nil)
		case "rtp-settings":
			d.table(rtp, prim, nil)
		case "log":
			d.table(logs, prim, nil)
		case "metrics":
			d.table(metrics, prim, nil)
		case "audio":
			d.table(audio, prim, map[string]func(toml.Primitive){
				"channels": func(cp toml.Primitive) { channels = d.subtables(toml.Key{"audio", "channels"}, cp) },
			})
		case "accounts":
			accounts = d.subtables(key, prim)
		default:
			d.add(key.String(), "unknown table or key (known: %s)", knownTop)
		}
	}

	for _, name := range d.ordered(toml.Key{"audio", "channels"}, channels) {
		c := Channel{Name: name}
		d.table(section{toml.Key{"audio", "channels", name}, map[string]func(string, any){
			"sink":     d.str(&c.Sink),
			"source":   d.str(&c.Source),
			"loopback": d.str(&c.Loopback),
		}}, channels[name], nil)
		// Kept even when broken, so that accounts naming it do not get a
		// second problem.
		p.Audio.Channels = append(p.Audio.Channels, c)
	}
	for _, name := range d.ordered(toml.Key{"accounts"}, accounts) {
		a := defaultAccount(name)
		ok := d.table(section{toml.Key{"accounts", name}, map[string]func(string, any){
			"user":         d.str(&a.User),
			"pass":         d.str(&a.Pass), // problems show types, never values
			"server":       d.servers(&a.Server, &a.Backups),
			"auth-user":    d.str(&a.AuthUser),
			"display-name": d.str(&a.DisplayName),
			"register":     d.boolean(&a.Register),
			"channel":      d.str(&a.Channel),
			"max-calls":    d.integer(&a.MaxCalls),
			"accept-from":  d.acceptFrom(&a.AcceptFrom),
		}}, accounts[name], nil)
		if ok {
			p.Accounts = append(p.Accounts, a)
		}
	}

	d.undecoded()
	return p
}

const knownTop = "tcp-settings, sip-settings, rtp-settings, audio, log, metrics, accounts"

// table decodes one table of the schema; sub names keys that are tables of
// their own. It reports whether the value was a table.
func (d *decoder) table(s section, prim toml.Primitive, sub map[string]func(toml.Primitive)) bool {
	m, ok := d.tableMap(s.key, prim)
	if !ok {
		return false
	}
	for _, name := range sortedKeys(m) {
		key := append(append(toml.Key(nil), s.key...), name)
		ks := key.String()
		d.ref(key, m[name])
		if f, ok := sub[name]; ok {
			f(m[name])
			continue
		}
		set, ok := s.fields[name]
		if !ok {
			d.add(ks, "unknown key (known in [%s]: %s)", s.key, known(s.fields, sub))
			continue
		}
		var v any
		if err := d.md.PrimitiveDecode(m[name], &v); err != nil {
			d.add(ks, "cannot read value: %v", err)
			continue
		}
		set(ks, v)
	}
	return true
}

// subtables decodes a table whose keys are names of tables (accounts,
// channels).
func (d *decoder) subtables(key toml.Key, prim toml.Primitive) map[string]toml.Primitive {
	m, ok := d.tableMap(key, prim)
	if !ok {
		return nil
	}
	return m
}

func (d *decoder) tableMap(key toml.Key, prim toml.Primitive) (map[string]toml.Primitive, bool) {
	d.ref(key, prim)
	// toml decodes a non-table into a map as an empty map, without an
	// error, so look at the value first.
	var v any
	if err := d.md.PrimitiveDecode(prim, &v); err != nil {
		d.add(key.String(), "cannot read value: %v", err)
		return nil, false
	}
	if _, ok := v.(map[string]any); !ok {
		d.add(key.String(), "must be a table ([%s]), not %s", key, tomlType(v))
		return nil, false
	}
	var m map[string]toml.Primitive
	if err := d.md.PrimitiveDecode(prim, &m); err != nil {
		d.add(key.String(), "cannot read table: %v", err)
		return nil, false
	}
	return m, true
}

// ordered returns the names of the sub-tables of parent in the order the
// file first mentions them.
func (d *decoder) ordered(parent toml.Key, m map[string]toml.Primitive) []string {
	pos := map[string]int{}
	for i, k := range d.md.Keys() {
		if len(k) <= len(parent) || !hasPrefix(k, parent) {
			continue
		}
		if _, ok := pos[k[len(parent)]]; !ok {
			pos[k[len(parent)]] = i
		}
	}
	names := sortedKeys(m)
	sort.SliceStable(names, func(i, j int) bool { return pos[names[i]] < pos[names[j]] })
	return names
}

func hasPrefix(k, prefix toml.Key) bool {
	for i := range prefix {
		if k[i] != prefix[i] {
			return false
		}
	}
	return true
}

// undecoded is the safety net behind the schema walk: any key toml saw but
// nothing decoded, and that no problem already covers, is reported.
func (d *decoder) undecoded() {
	reported := map[string]bool{}
	for _, p := range d.probs {
		reported[p.Key] = true
	}
next:
	for _, k := range d.md.Undecoded() {
		for i := 1; i <= len(k); i++ {
			if reported[k[:i].String()] {
				continue next
			}
		}
		// Values of known keys that are tables or arrays of tables (a type
		// problem reported above) leave their children undecoded.
		d.add(k.String(), "unknown key")
		reported[k.String()] = true
	}
}

// line finds the line of a value's key. toml v1.6 keeps key positions
// private but puts them in the ParseError of a failed decode, so decode into
// a value that always fails.
func (d *decoder) line(prim toml.Primitive) int {
	var pr lineProbe
	var pe toml.ParseError
	if err := d.md.PrimitiveDecode(prim, &pr); errors.As(err, &pe) {
		return pe.Position.Line
	}
	return 0
}

// keyLine is the line of key, whose value is prim. A table the file only
// implies ("[a.b]" implies "a", "x.y = 1" implies "x") has no line of its
// own: it gets the line of the first key under it.
func (d *decoder) keyLine(key toml.Key, prim toml.Primitive) int {
	for _, k := range d.md.Keys() {
		if len(k) < len(key) || !hasPrefix(k, key) {
			continue
		}
		p := prim
		for _, part := range k[len(key):] {
			var m map[string]toml.Primitive
			if err := d.md.PrimitiveDecode(p, &m); err != nil {
				return d.line(prim)
			}
			next, ok := m[part]
			if !ok {
				return d.line(prim)
			}
			p = next
		}
		return d.line(p)
	}
	return d.line(prim)
}

type lineProbe struct{}

var errProbe = errors.New("line probe")

func (*lineProbe) UnmarshalTOML(any) error { return errProbe }

// redactSyntax gives toml's syntax message without the text it quotes when
// the error is on a pass line.
func redactSyntax(pe toml.ParseError) string {
	last := pe.LastKey
	if i := strings.LastIndexByte(last, '.'); i >= 0 {
		last = last[i+1:]
	}
	if last == "pass" && !strings.Contains(pe.Message, "has already been defined") {
		return "in the value of pass (not shown)"
	}
	return pe.Message
}

func known(fields map[string]func(string, any), sub map[string]func(toml.Primitive)) string {
	names := make([]string, 0, len(fields)+len(sub))
	for n := range fields {
		names = append(names, n)
	}
	for n := range sub {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// The setters below convert a decoded TOML value (string, int64, float64,
// bool, []any, map[string]any, time) into the plan's field, or report what
// type the key needs.

func (d *decoder) typeErr(key, want string, v any) {
	d.add(key, "must be %s, not %s", want, tomlType(v))
}

func (d *decoder) str(dst *string) func(string, any) {
	return func(key string, v any) {
		s, ok := v.(string)
		if !ok {
			d.typeErr(key, `a string ("...")`, v)
			return
		}
		*dst = s
	}
}

func (d *decoder) integer(dst *int) func(string, any) {
	return func(key string, v any) {
		n, ok := v.(int64)
		if !ok {
			d.typeErr(key, "a whole number", v)
			return
		}
		if n < math.MinInt32 || n > math.MaxInt32 {
			d.add(key, "out of range (got %d)", n)
			return
		}
		*dst = int(n)
	}
}

func (d *decoder) boolean(dst *bool) func(string, any) {
	return func(key string, v any) {
		b, ok := v.(bool)
		if !ok {
			d.typeErr(key, "true or false", v)
			return
		}
		*dst = b
	}
}

func (d *decoder) strs(dst *[]string) func(string, any) {
	return func(key string, v any) {
		list, ok := v.([]any)
		if !ok {
			d.typeErr(key, `an array of strings (["..."])`, v)
			return
		}
		out := make([]string, 0, len(list))
		for i, e := range list {
			s, ok := e.(string)
			if !ok {
				d.add(key, "entry %d must be a string, not %s", i+1, tomlType(e))
				return
			}
			out = append(out, s)
		}
		*dst = out
	}
}

func (d *decoder) duration(dst *Duration) func(string, any) {
	return func(key string, v any) {
		s, ok := v.(string)
		if !ok {
			d.typeErr(key, `a duration string like "300s" or "20ms"`, v)
			return
		}
		var du Duration
		if err := du.UnmarshalText([]byte(s)); err != nil {
			d.add(key, `must be a duration like "300s" or "20ms" (got %q)`, s)
			return
		}
		*dst = du
	}
}

func (d *decoder) prefixes(dst *[]netip.Prefix) func(string, any) {
	return func(key string, v any) {
		var list []string
		d.strs(&list)(key, v)
		if list == nil {
			return
		}
		out := make([]netip.Prefix, 0, len(list))
		bad := false
		for i, s := range list {
			pf, err := parsePrefix(s)
			if err != nil {
				d.add(key, "entry %d: %q is neither an IP address nor a CIDR like \"127.0.0.0/8\"", i+1, s)
				bad = true
				continue
			}
			out = append(out, pf)
		}
		if !bad && len(out) > 0 {
			*dst = out
		} else if !bad {
			*dst = nil
		}
	}
}

// servers reads server: "host[:port]" or an array of them in priority
// order (the first is the primary, the rest its backups).
func (d *decoder) servers(primary *string, backups *[]string) func(string, any) {
	return func(key string, v any) {
		switch v := v.(type) {
		case string:
			*primary, *backups = v, nil
		case []any:
			var list []string
			n := len(d.probs)
			d.strs(&list)(key, v)
			if len(d.probs) > n {
				return
			}
			if len(list) == 0 {
				d.add(key, `an empty list: write "" for an account without a server`)
				return
			}
			*primary, *backups = list[0], list[1:]
		default:
			d.typeErr(key, `a string ("host[:port]") or an array of them`, v)
		}
	}
}

// acceptFrom reads accept-from: "server", "any", or an array of networks.
func (d *decoder) acceptFrom(dst *AcceptFrom) func(string, any) {
	return func(key string, v any) {
		switch v := v.(type) {
		case string:
			if v != AcceptServer && v != AcceptAny {
				d.add(key, `must be "server", "any" or a list of networks like ["192.0.2.0/24"] (got %q)`, v)
				return
			}
			*dst = AcceptFrom{Mode: v}
		case []any:
			var list []netip.Prefix
			n := len(d.probs)
			d.prefixes(&list)(key, v)
			if len(d.probs) > n {
				return
			}
			if len(list) == 0 {
				d.add(key, `an empty list accepts nobody, not even the server; write "server" for that`)
				return
			}
			*dst = AcceptFrom{Mode: AcceptList, Prefixes: list}
		default:
			d.typeErr(key, `"server", "any" or an array of networks`, v)
		}
	}
}

// parsePrefix accepts a CIDR or a bare IP (a /32 or /128). Host bits are
// cleared so that the prefix prints as the network it matches. An
// IPv4-mapped address or prefix (::ffff:127.0.0.1, ::ffff:0:0/96) becomes
// the IPv4 one it stands for: the API sees IPv4 clients of a dual-stack
// socket as plain IPv4 addresses.
func parsePrefix(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.Prefix{}, errors.New("zone not allowed")
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	pf, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	if a := pf.Addr(); a.Is4In6() && pf.Bits() >= 96 {
		pf = netip.PrefixFrom(a.Unmap(), pf.Bits()-96)
	}
	return pf.Masked(), nil
}

func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	case nil:
		return "empty"
	}
	return "a date/time"
}
