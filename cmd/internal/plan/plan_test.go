package plan

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

const secret = "hunter2-SECRET" // the password of every test plan; must never reach an error

// baseTables is a minimal valid plan, table by table, in file order.
var baseTables = []struct {
	name  string
	lines []string
}{
	{"tcp-settings", nil},
	{"sip-settings", nil},
	{"rtp-settings", nil},
	{"audio", nil},
	{"audio.channels.ch1", nil},
	{"accounts.account-1", []string{`user = "3001"`, `pass = "` + secret + `"`}},
	{"log", nil},
}

// doc builds a plan from the base with edits applied. An edit is
// "[table] key = value" (set or replace), "[table] key" (delete the key)
// or "[table]" (add an empty table). Tables not in the base are appended in
// the order first edited.
func doc(t *testing.T, edits ...string) string {
	t.Helper()
	type table struct {
		name  string
		lines []string
	}
	var tables []*table
	byName := map[string]*table{}
	for _, bt := range baseTables {
		tb := &table{bt.name, append([]string(nil), bt.lines...)}
		tables = append(tables, tb)
		byName[bt.name] = tb
	}
	for _, e := range edits {
		name, rest, ok := strings.Cut(strings.TrimPrefix(e, "["), "]")
		if !ok || !strings.HasPrefix(e, "[") {
			t.Fatalf("bad edit %q", e)
		}
		tb := byName[name]
		if tb == nil {
			tb = &table{name: name}
			tables = append(tables, tb)
			byName[name] = tb
		}
		rest = strings.TrimSpace(rest)
		if rest == "" {
			continue
		}
		key, _, set := strings.Cut(rest, " = ")
		key = strings.TrimSpace(key)
		kept := tb.lines[:0:0]
		for _, l := range tb.lines {
			if k, _, _ := strings.Cut(l, " = "); k != key {
				kept = append(kept, l)
			}
		}
		if set {
			kept = append(kept, rest)
		}
		tb.lines = kept
	}
	var b strings.Builder
	for _, tb := range tables {
		fmt.Fprintf(&b, "[%s]\n", tb.name)
		for _, l := range tb.lines {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// lineAfter is the 1-based line of the first line starting with prefix
// after the line header.
func lineAfter(text, header, prefix string) int {
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if l == header {
			for j := i + 1; j < len(lines); j++ {
				if strings.HasPrefix(lines[j], prefix) {
					return j + 1
				}
			}
		}
	}
	return 0
}

// lineOf is the 1-based line of the first line of text starting with
// prefix.
func lineOf(text, prefix string) int {
	for i, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return i + 1
		}
	}
	return 0
}

func problemsOf(t *testing.T, err error) Problems {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error is not Problems: %v", err)
	}
	return ps
}

func mustParse(t *testing.T, text string) *Plan {
	t.Helper()
	p, err := Parse([]byte(text), "test.toml")
	if err != nil {
		t.Fatalf("plan:\n%s\nunexpected problems:\n%v", text, err)
	}
	return p
}

func pfx(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, v := range s {
		out[i] = netip.MustParsePrefix(v)
	}
	return out
}

func dur(s string) Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return Duration{d}
}

func acct(p *Plan) Account { return p.Accounts[0] }

// TestKeys covers every key: its default (no edit), valid values and
// invalid ones, whose problem must name the key and its line.
func TestKeys(t *testing.T) {
	tests := []struct {
		name    string
		edits   []string
		get     func(*Plan) any // for valid cases
		want    any
		wantKey string // for invalid cases: the key the problem names
		wantMsg string // optional substring of that problem
	}{
		// [tcp-settings]
		{name: "tcp address default", get: func(p *Plan) any { return p.TCP.Address }, want: "0.0.0.0"},
		{name: "tcp address ipv4", edits: []string{`[tcp-settings] address = "127.0.0.1"`}, get: func(p *Plan) any { return p.TCP.Address }, want: "127.0.0.1"},
		{name: "tcp address ipv6", edits: []string{`[tcp-settings] address = "::1"`}, get: func(p *Plan) any { return p.TCP.Address }, want: "::1"},
		{name: "tcp address host name", edits: []string{`[tcp-settings] address = "localhost"`}, wantKey: "tcp-settings.address", wantMsg: "IP address"},
		{name: "tcp address garbage", edits: []string{`[tcp-settings] address = "1.2.3"`}, wantKey: "tcp-settings.address"},
		{name: "tcp address type", edits: []string{`[tcp-settings] address = 5`}, wantKey: "tcp-settings.address", wantMsg: "must be a string"},
		{name: "tcp address ipv6 bracketed", edits: []string{`[tcp-settings] address = "[::1]"`}, wantKey: "tcp-settings.address", wantMsg: `"::1"`},
		{name: "tcp address ipv6 with port", edits: []string{`[tcp-settings] address = "[::1]:3550"`}, wantKey: "tcp-settings.address", wantMsg: "without brackets or port"},
		{name: "tcp port default", get: func(p *Plan) any { return p.TCP.Port }, want: 3550},
		{name: "tcp port low", edits: []string{`[tcp-settings] port = 1`}, get: func(p *Plan) any { return p.TCP.Port }, want: 1},
		{name: "tcp port high", edits: []string{`[tcp-settings] port = 65535`}, get: func(p *Plan) any { return p.TCP.Port }, want: 65535},
		{name: "tcp port zero", edits: []string{`[tcp-settings] port = 0`}, wantKey: "tcp-settings.port", wantMsg: "1 to 65535"},
		{name: "tcp port too big", edits: []string{`[tcp-settings] port = 65536`}, wantKey: "tcp-settings.port"},
		{name: "tcp port negative", edits: []string{`[tcp-settings] port = -1`}, wantKey: "tcp-settings.port"},
		{name: "tcp port huge", edits: []string{`[tcp-settings] port = 99999999999`}, wantKey: "tcp-settings.port", wantMsg: "out of range"},
		{name: "tcp port string", edits: []string{`[tcp-settings] port = "3550"`}, wantKey: "tcp-settings.port", wantMsg: "whole number, not a string"},
		{name: "tcp port float", edits: []string{`[tcp-settings] port = 3550.5`}, wantKey: "tcp-settings.port", wantMsg: "not a float"},
		{name: "allow default", get: func(p *Plan) any { return p.TCP.Allow }, want: []netip.Prefix(nil)},
		{name: "allow empty", edits: []string{`[tcp-settings] allow = []`}, get: func(p *Plan) any { return p.TCP.Allow }, want: []netip.Prefix(nil)},
		{name: "allow ips and cidrs", edits: []string{`[tcp-settings] allow = ["127.0.0.1", "::1", "127.0.0.0/8", "2001:db8::/32"]`},
			get: func(p *Plan) any { return p.TCP.Allow }, want: pfx("127.0.0.1/32", "::1/128", "127.0.0.0/8", "2001:db8::/32")},
		{name: "allow host bits cleared", edits: []string{`[tcp-settings] allow = ["127.1.2.3/8"]`}, get: func(p *Plan) any { return p.TCP.Allow }, want: pfx("127.0.0.0/8")},
		{name: "allow not an address", edits: []string{`[tcp-settings] allow = ["127.0.0.1", "nope"]`}, wantKey: "tcp-settings.allow", wantMsg: `entry 2: "nope"`},
		{name: "allow bad length", edits: []string{`[tcp-settings] allow = ["127.0.0.1/33"]`}, wantKey: "tcp-settings.allow"},
		{name: "allow zone", edits: []string{`[tcp-settings] allow = ["fe80::1%eth0"]`}, wantKey: "tcp-settings.allow"},
		{name: "allow ipv4-mapped address", edits: []string{`[tcp-settings] allow = ["::ffff:127.0.0.1"]`}, get: func(p *Plan) any { return p.TCP.Allow }, want: pfx("127.0.0.1/32")},
		{name: "allow ipv4-mapped prefix", edits: []string{`[tcp-settings] allow = ["::ffff:127.0.0.0/104", "::ffff:0:0/96"]`}, get: func(p *Plan) any { return p.TCP.Allow }, want: pfx("127.0.0.0/8", "0.0.0.0/0")},
		{name: "allow ipv6 loopback", edits: []string{`[tcp-settings] allow = ["::1/128"]`}, get: func(p *Plan) any { return p.TCP.Allow }, want: pfx("::1/128")},
		{name: "allow not an array", edits: []string{`[tcp-settings] allow = "127.0.0.1"`}, wantKey: "tcp-settings.allow", wantMsg: "array of strings"},
		{name: "allow number entry", edits: []string{`[tcp-settings] allow = [1]`}, wantKey: "tcp-settings.allow", wantMsg: "entry 1 must be a string"},
		{name: "max-clients default", get: func(p *Plan) any { return p.TCP.MaxClients }, want: 64},
		{name: "max-clients one", edits: []string{`[tcp-settings] max-clients = 1`}, get: func(p *Plan) any { return p.TCP.MaxClients }, want: 1},
		{name: "max-clients zero", edits: []string{`[tcp-settings] max-clients = 0`}, wantKey: "tcp-settings.max-clients"},
		{name: "max-message-bytes default", get: func(p *Plan) any { return p.TCP.MaxMessageBytes }, want: 65536},
		{name: "max-message-bytes min", edits: []string{`[tcp-settings] max-message-bytes = 1024`}, get: func(p *Plan) any { return p.TCP.MaxMessageBytes }, want: 1024},
		{name: "max-message-bytes too small", edits: []string{`[tcp-settings] max-message-bytes = 1023`}, wantKey: "tcp-settings.max-message-bytes"},
		{name: "max-message-bytes too big", edits: []string{`[tcp-settings] max-message-bytes = 16777217`}, wantKey: "tcp-settings.max-message-bytes"},
		{name: "event-history default", get: func(p *Plan) any { return p.TCP.EventHistory }, want: 1024},
		{name: "event-history one", edits: []string{`[tcp-settings] event-history = 1`}, get: func(p *Plan) any { return p.TCP.EventHistory }, want: 1},
		{name: "event-history zero", edits: []string{`[tcp-settings] event-history = 0`}, wantKey: "tcp-settings.event-history"},
		{name: "event-history too big", edits: []string{`[tcp-settings] event-history = 65537`}, wantKey: "tcp-settings.event-history"},
		{name: "metrics off by default", get: func(p *Plan) any { return p.Metrics.Address }, want: ""},
		{name: "metrics address", edits: []string{`[metrics] address = "127.0.0.1:9550"`}, get: func(p *Plan) any { return p.Metrics.Address }, want: "127.0.0.1:9550"},
		{name: "metrics IPv6", edits: []string{`[metrics] address = "[::1]:9550"`}, get: func(p *Plan) any { return p.Metrics.Address }, want: "[::1]:9550"},
		{name: "metrics without port", edits: []string{`[metrics] address = "127.0.0.1"`}, wantKey: "metrics.address"},
		{name: "metrics host name", edits: []string{`[metrics] address = "localhost:9550"`}, wantKey: "metrics.address"},
		{name: "metrics port zero", edits: []string{`[metrics] address = "127.0.0.1:0"`}, wantKey: "metrics.address"},
		{name: "metrics on the API port", edits: []string{`[metrics] address = "127.0.0.1:3550"`}, wantKey: "metrics.address"},
		{name: "metrics on the SIP TCP port", edits: []string{`[metrics] address = "127.0.0.1:5060"`, `[sip-settings] transports = ["udp", "tcp"]`}, wantKey: "metrics.address", wantMsg: `SIP port with transport "tcp"`},
		{name: "metrics on the SIP UDP port is fine", edits: []string{`[metrics] address = "127.0.0.1:5060"`}, get: func(p *Plan) any { return p.Metrics.Address }, want: "127.0.0.1:5060"},
		{name: "metrics on the TLS port", edits: []string{`[metrics] address = "127.0.0.1:5061"`, `[sip-settings] transports = ["udp", "tls"]`, `[sip-settings] tls-certificate = "/c"`, `[sip-settings] tls-key = "/k"`},
			wantKey: "metrics.address", wantMsg: "TLS port"},
		{name: "metrics unknown key", edits: []string{`[metrics] port = 9550`}, wantKey: "metrics.port"},

		// [sip-settings]
		{name: "sip address default", get: func(p *Plan) any { return p.SIP.Address }, want: "0.0.0.0"},
		{name: "sip address any v6", edits: []string{`[sip-settings] address = "::"`}, get: func(p *Plan) any { return p.SIP.Address }, want: "::"},
		{name: "sip address host name", edits: []string{`[sip-settings] address = "pbx.example.com"`}, wantKey: "sip-settings.address"},
		{name: "sip address ipv6", edits: []string{`[sip-settings] address = "2001:db8::1"`}, get: func(p *Plan) any { return p.SIP.Address }, want: "2001:db8::1"},
		{name: "sip address ipv6 with port", edits: []string{`[sip-settings] address = "[2001:db8::1]:5060"`}, wantKey: "sip-settings.address", wantMsg: `"::"`},
		{name: "sip port default", get: func(p *Plan) any { return p.SIP.Port }, want: 5060},
		{name: "sip port set", edits: []string{`[sip-settings] port = 5070`}, get: func(p *Plan) any { return p.SIP.Port }, want: 5070},
		{name: "sip port zero", edits: []string{`[sip-settings] port = 0`}, wantKey: "sip-settings.port"},
		{name: "sip port in rtp range", edits: []string{`[sip-settings] port = 16500`}, wantKey: "sip-settings.port", wantMsg: "inside the RTP range"},
		{name: "sip tcp port in rtp range is fine", edits: []string{`[sip-settings] port = 16500`, `[sip-settings] transports = ["tcp"]`}, get: func(p *Plan) any { return p.SIP.Port }, want: 16500},
		{name: "sip tcp port equals api port", edits: []string{`[sip-settings] port = 3550`, `[sip-settings] transports = ["udp", "tcp"]`}, wantKey: "tcp-settings", wantMsg: "port is not set, so it is 3550 (the default): TCP port 3550 is also the SIP port"},
		{name: "transports default", get: func(p *Plan) any { return p.SIP.Transports }, want: []string{"udp"}},
		{name: "transports both", edits: []string{`[sip-settings] transports = ["tcp", "udp"]`}, get: func(p *Plan) any { return p.SIP.Transports }, want: []string{"tcp", "udp"}},
		{name: "transports empty", edits: []string{`[sip-settings] transports = []`}, wantKey: "sip-settings.transports", wantMsg: "at least one"},
		{name: "transports sctp", edits: []string{`[sip-settings] transports = ["sctp"]`}, wantKey: "sip-settings.transports", wantMsg: `"tls"`},
		{name: "transports tls without certificate", edits: []string{`[sip-settings] transports = ["udp", "tls"]`}, wantKey: "sip-settings.tls-certificate", wantMsg: "tls-key"},
		{name: "transports tls", edits: []string{`[sip-settings] transports = ["udp", "tls"]`, `[sip-settings] tls-certificate = "/etc/telestra/tls/sip.pem"`, `[sip-settings] tls-key = "/etc/telestra/tls/sip.key"`},
			get: func(p *Plan) any { return p.SIP.Transports }, want: []string{"udp", "tls"}},
		{name: "tls-port default", get: func(p *Plan) any { return p.SIP.TLSPort }, want: 5061},
		{name: "tls-verify default", get: func(p *Plan) any { return p.SIP.TLSVerify }, want: true},
		{name: "tls-ca relative", edits: []string{`[sip-settings] tls-ca = "ca.pem"`}, wantKey: "sip-settings.tls-ca", wantMsg: "absolute"},
		{name: "tls-port on tcp port", edits: []string{`[sip-settings] transports = ["tcp", "tls"]`, `[sip-settings] tls-certificate = "/c"`, `[sip-settings] tls-key = "/k"`, `[sip-settings] tls-port = 5060`},
			wantKey: "sip-settings.tls-port", wantMsg: "own"},
		{name: "tls-port on the API port", edits: []string{`[sip-settings] transports = ["udp", "tls"]`, `[sip-settings] tls-certificate = "/c"`, `[sip-settings] tls-key = "/k"`, `[sip-settings] tls-port = 3550`},
			wantKey: "tcp-settings", wantMsg: "TCP port 3550 is also the TLS port"},
		{name: "tls server", edits: []string{`[accounts.account-1] server = "tls:pbx.example.com:5061"`}, get: func(p *Plan) any { return acct(p).Server }, want: "tls:pbx.example.com:5061"},
		{name: "transports upper case", edits: []string{`[sip-settings] transports = ["UDP"]`}, wantKey: "sip-settings.transports"},
		{name: "transports twice", edits: []string{`[sip-settings] transports = ["udp", "udp"]`}, wantKey: "sip-settings.transports", wantMsg: "twice"},
		{name: "transports string", edits: []string{`[sip-settings] transports = "udp"`}, wantKey: "sip-settings.transports"},
		{name: "public-address default", get: func(p *Plan) any { return p.SIP.PublicAddress }, want: ""},
		{name: "public-address ip", edits: []string{`[sip-settings] public-address = "127.0.0.2"`}, get: func(p *Plan) any { return p.SIP.PublicAddress }, want: "127.0.0.2"},
		{name: "public-address ipv6", edits: []string{`[sip-settings] public-address = "::1"`}, get: func(p *Plan) any { return p.SIP.PublicAddress }, want: "::1"},
		{name: "public-address host", edits: []string{`[sip-settings] public-address = "sip-host.example.com"`}, get: func(p *Plan) any { return p.SIP.PublicAddress }, want: "sip-host.example.com"},
		{name: "public-address unspecified", edits: []string{`[sip-settings] public-address = "0.0.0.0"`}, wantKey: "sip-settings.public-address"},
		{name: "public-address with port", edits: []string{`[sip-settings] public-address = "sip-host.example.com:5060"`}, wantKey: "sip-settings.public-address"},
		{name: "public-address space", edits: []string{`[sip-settings] public-address = "bad host"`}, wantKey: "sip-settings.public-address"},
		{name: "public-address leading dash", edits: []string{`[sip-settings] public-address = "-x.example.com"`}, wantKey: "sip-settings.public-address"},
		{name: "public-address ipv6 bracketed", edits: []string{`[sip-settings] public-address = "[2001:db8::10]"`}, wantKey: "sip-settings.public-address", wantMsg: "without brackets"},
		{name: "user-agent default", get: func(p *Plan) any { return p.SIP.UserAgent }, want: "Telestra"},
		{name: "user-agent set", edits: []string{`[sip-settings] user-agent = "Lab UA 1.0"`}, get: func(p *Plan) any { return p.SIP.UserAgent }, want: "Lab UA 1.0"},
		{name: "user-agent empty", edits: []string{`[sip-settings] user-agent = ""`}, wantKey: "sip-settings.user-agent"},
		{name: "user-agent newline", edits: []string{`[sip-settings] user-agent = "a\nb"`}, wantKey: "sip-settings.user-agent"},
		{name: "register-expires default", get: func(p *Plan) any { return p.SIP.RegisterExpires }, want: dur("300s")},
		{name: "register-expires min", edits: []string{`[sip-settings] register-expires = "10s"`}, get: func(p *Plan) any { return p.SIP.RegisterExpires }, want: dur("10s")},
		{name: "register-expires hour", edits: []string{`[sip-settings] register-expires = "1h"`}, get: func(p *Plan) any { return p.SIP.RegisterExpires }, want: dur("1h")},
		{name: "register-expires too short", edits: []string{`[sip-settings] register-expires = "9s"`}, wantKey: "sip-settings.register-expires", wantMsg: `at least "10s"`},
		{name: "register-expires fraction", edits: []string{`[sip-settings] register-expires = "10.5s"`}, wantKey: "sip-settings.register-expires", wantMsg: "whole seconds"},
		{name: "register-expires garbage", edits: []string{`[sip-settings] register-expires = "abc"`}, wantKey: "sip-settings.register-expires", wantMsg: "duration"},
		{name: "register-expires number", edits: []string{`[sip-settings] register-expires = 300`}, wantKey: "sip-settings.register-expires", wantMsg: "not an integer"},
		{name: "register-retry default", get: func(p *Plan) any { return p.SIP.RegisterRetry }, want: dur("5s")},
		{name: "register-retry max", edits: []string{`[sip-settings] register-retry = "5m"`}, get: func(p *Plan) any { return p.SIP.RegisterRetry }, want: dur("5m")},
		{name: "register-retry zero", edits: []string{`[sip-settings] register-retry = "0s"`}, wantKey: "sip-settings.register-retry", wantMsg: "positive"},
		{name: "register-retry negative", edits: []string{`[sip-settings] register-retry = "-1s"`}, wantKey: "sip-settings.register-retry"},
		{name: "register-retry too long", edits: []string{`[sip-settings] register-retry = "6m"`}, wantKey: "sip-settings.register-retry"},
		{name: "ended-call-linger default", get: func(p *Plan) any { return p.SIP.EndedCallLinger }, want: dur("10s")},
		{name: "ended-call-linger set", edits: []string{`[sip-settings] ended-call-linger = "1s"`}, get: func(p *Plan) any { return p.SIP.EndedCallLinger }, want: dur("1s")},
		{name: "ended-call-linger zero", edits: []string{`[sip-settings] ended-call-linger = "0s"`}, wantKey: "sip-settings.ended-call-linger"},
		{name: "session-expires default", get: func(p *Plan) any { return p.SIP.SessionExpires }, want: dur("1800s")},
		{name: "register-timeout default", get: func(p *Plan) any { return p.SIP.RegisterTimeout }, want: dur("32s")},
		{name: "register-timeout too long", edits: []string{`[sip-settings] register-timeout = "33s"`}, wantKey: "sip-settings.register-timeout", wantMsg: "Timer F"},
		{name: "failback-interval set", edits: []string{`[sip-settings] failback-interval = "5s"`}, get: func(p *Plan) any { return p.SIP.FailbackInterval }, want: dur("5s")},
		{name: "failback-interval zero", edits: []string{`[sip-settings] failback-interval = "0s"`}, wantKey: "sip-settings.failback-interval"},
		{name: "keepalive-interval set", edits: []string{`[sip-settings] keepalive-interval = "15s"`}, get: func(p *Plan) any { return p.SIP.KeepaliveInterval }, want: dur("15s")},
		{name: "keepalive-interval off", edits: []string{`[sip-settings] keepalive-interval = "0s"`}, get: func(p *Plan) any { return p.SIP.KeepaliveInterval }, want: dur("0s")},
		{name: "keepalive-interval too short", edits: []string{`[sip-settings] keepalive-interval = "500ms"`}, wantKey: "sip-settings.keepalive-interval"},
		{name: "keepalive-interval negative", edits: []string{`[sip-settings] keepalive-interval = "-1s"`}, wantKey: "sip-settings.keepalive-interval"},
		{name: "trusted default", get: func(p *Plan) any { return p.SIP.Trusted }, want: []netip.Prefix(nil)},
		{name: "trusted list", edits: []string{`[sip-settings] trusted = ["192.0.2.1", "198.51.100.0/24"]`}, get: func(p *Plan) any { return p.SIP.Trusted },
			want: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("198.51.100.0/24")}},
		{name: "trusted bad", edits: []string{`[sip-settings] trusted = ["pbx.example.com"]`}, wantKey: "sip-settings.trusted", wantMsg: "CIDR"},
		{name: "reject default", get: func(p *Plan) any { return p.SIP.Reject }, want: "403"},
		{name: "reject silent", edits: []string{`[sip-settings] reject = "silent"`}, get: func(p *Plan) any { return p.SIP.Reject }, want: "silent"},
		{name: "reject other", edits: []string{`[sip-settings] reject = "486"`}, wantKey: "sip-settings.reject", wantMsg: `"403", "silent"`},
		{name: "session-expires min", edits: []string{`[sip-settings] session-expires = "90s"`}, get: func(p *Plan) any { return p.SIP.SessionExpires }, want: dur("90s")},
		{name: "session-expires too short", edits: []string{`[sip-settings] session-expires = "89s"`}, wantKey: "sip-settings.session-expires", wantMsg: `at least "90s"`},
		{name: "session-expires fraction", edits: []string{`[sip-settings] session-expires = "100500ms"`}, wantKey: "sip-settings.session-expires"},

		// [rtp-settings]
		{name: "port-min default", get: func(p *Plan) any { return p.RTP.PortMin }, want: 16384},
		{name: "port-max default", get: func(p *Plan) any { return p.RTP.PortMax }, want: 16999},
		{name: "port range smallest for 4 calls", edits: []string{`[rtp-settings] port-min = 40000`, `[rtp-settings] port-max = 40007`},
			get: func(p *Plan) any { return [2]int{p.RTP.PortMin, p.RTP.PortMax} }, want: [2]int{40000, 40007}},
		{name: "port range of 2 for 1 call", edits: []string{`[rtp-settings] port-min = 40000`, `[rtp-settings] port-max = 40001`, `[accounts.account-1] max-calls = 1`},
			get: func(p *Plan) any { return [2]int{p.RTP.PortMin, p.RTP.PortMax} }, want: [2]int{40000, 40001}},
		{name: "port-min odd", edits: []string{`[rtp-settings] port-min = 16385`}, wantKey: "rtp-settings.port-min", wantMsg: "even"},
		{name: "port-min equals port-max", edits: []string{`[rtp-settings] port-max = 16384`}, wantKey: "rtp-settings", wantMsg: "port-min is not set, so it is 16384 (the default): must be even and below port-max"},
		{name: "port-min above port-max", edits: []string{`[rtp-settings] port-min = 17000`}, wantKey: "rtp-settings.port-min"},
		{name: "port-min zero", edits: []string{`[rtp-settings] port-min = 0`}, wantKey: "rtp-settings.port-min"},
		{name: "port-max too big", edits: []string{`[rtp-settings] port-max = 70000`}, wantKey: "rtp-settings.port-max"},
		{name: "port range too small for max-calls", edits: []string{`[rtp-settings] port-max = 16389`}, wantKey: "rtp-settings.port-max", wantMsg: "room for 3 calls"},
		{name: "codecs default", get: func(p *Plan) any { return p.RTP.Codecs }, want: []string{"PCMU", "PCMA"}},
		{name: "codecs one", edits: []string{`[rtp-settings] codecs = ["PCMA"]`}, get: func(p *Plan) any { return p.RTP.Codecs }, want: []string{"PCMA"}},
		{name: "codecs empty", edits: []string{`[rtp-settings] codecs = []`}, wantKey: "rtp-settings.codecs"},
		{name: "codecs wideband first", edits: []string{`[rtp-settings] codecs = ["G722", "PCMU", "PCMA"]`}, get: func(p *Plan) any { return p.RTP.Codecs }, want: []string{"G722", "PCMU", "PCMA"}},
		{name: "codecs unknown", edits: []string{`[rtp-settings] codecs = ["PCMU", "G729"]`}, wantKey: "rtp-settings.codecs", wantMsg: `"G729"`},
		{name: "codecs twice", edits: []string{`[rtp-settings] codecs = ["PCMU", "PCMU"]`}, wantKey: "rtp-settings.codecs", wantMsg: "twice"},
		{name: "codecs lower case", edits: []string{`[rtp-settings] codecs = ["pcmu"]`}, wantKey: "rtp-settings.codecs"},
		{name: "ptime default", get: func(p *Plan) any { return p.RTP.PTime }, want: dur("20ms")},
		{name: "ptime 10ms", edits: []string{`[rtp-settings] ptime = "10ms"`}, get: func(p *Plan) any { return p.RTP.PTime }, want: dur("10ms")},
		{name: "ptime 60ms", edits: []string{`[rtp-settings] ptime = "60ms"`}, get: func(p *Plan) any { return p.RTP.PTime }, want: dur("60ms")},
		{name: "ptime 15ms", edits: []string{`[rtp-settings] ptime = "15ms"`}, wantKey: "rtp-settings.ptime"},
		{name: "ptime 70ms", edits: []string{`[rtp-settings] ptime = "70ms"`}, wantKey: "rtp-settings.ptime"},
		{name: "ptime zero", edits: []string{`[rtp-settings] ptime = "0s"`}, wantKey: "rtp-settings.ptime"},
		{name: "jitter-buffer default", get: func(p *Plan) any { return p.RTP.JitterBuffer }, want: dur("40ms")},
		{name: "jitter-buffer min", edits: []string{`[rtp-settings] jitter-buffer = "20ms"`}, get: func(p *Plan) any { return p.RTP.JitterBuffer }, want: dur("20ms")},
		{name: "jitter-buffer max", edits: []string{`[rtp-settings] jitter-buffer = "200ms"`}, get: func(p *Plan) any { return p.RTP.JitterBuffer }, want: dur("200ms")},
		{name: "jitter-buffer zero", edits: []string{`[rtp-settings] jitter-buffer = "0s"`}, wantKey: "rtp-settings.jitter-buffer"},
		{name: "jitter-buffer below the floor", edits: []string{`[rtp-settings] jitter-buffer = "19ms"`}, wantKey: "rtp-settings.jitter-buffer", wantMsg: `from "20ms" to "200ms"`},
		{name: "jitter-buffer above the media limit", edits: []string{`[rtp-settings] jitter-buffer = "201ms"`}, wantKey: "rtp-settings.jitter-buffer", wantMsg: `from "20ms" to "200ms"`},
		{name: "jitter-buffer 1s", edits: []string{`[rtp-settings] jitter-buffer = "1s"`}, wantKey: "rtp-settings.jitter-buffer", wantMsg: `(got "1s")`},
		{name: "timeout default", get: func(p *Plan) any { return p.RTP.Timeout }, want: dur("30s")},
		{name: "timeout set", edits: []string{`[rtp-settings] timeout = "5m"`}, get: func(p *Plan) any { return p.RTP.Timeout }, want: dur("5m")},
		{name: "timeout zero", edits: []string{`[rtp-settings] timeout = "0s"`}, wantKey: "rtp-settings.timeout"},

		// [audio]
		{name: "backend default", get: func(p *Plan) any { return p.Audio.Backend }, want: "loopback"},
		{name: "backend pulse", edits: []string{`[audio] backend = "pulse"`}, get: func(p *Plan) any { return p.Audio.Backend }, want: "pulse"},
		{name: "backend alsa", edits: []string{`[audio] backend = "alsa"`}, get: func(p *Plan) any { return p.Audio.Backend }, want: "alsa"},
		{name: "backend unknown", edits: []string{`[audio] backend = "oss"`}, wantKey: "audio.backend", wantMsg: `"loopback", "pulse", "alsa"`},
		{name: "backend upper case", edits: []string{`[audio] backend = "Pulse"`}, wantKey: "audio.backend"},
		{name: "pulse-server default", get: func(p *Plan) any { return p.Audio.PulseServer }, want: ""},
		{name: "pulse-server set", edits: []string{`[audio] pulse-server = "unix:/run/pulse/native"`}, get: func(p *Plan) any { return p.Audio.PulseServer }, want: "unix:/run/pulse/native"},
		{name: "pulse-server control", edits: []string{`[audio] pulse-server = "a\tb"`}, wantKey: "audio.pulse-server"},
		{name: "pipewire-quantum default", get: func(p *Plan) any { return p.Audio.PipeWireQuantum }, want: 256},
		{name: "pipewire-quantum 1024", edits: []string{`[audio] pipewire-quantum = 1024`}, get: func(p *Plan) any { return p.Audio.PipeWireQuantum }, want: 1024},
		{name: "pipewire-quantum 2048", edits: []string{`[audio] pipewire-quantum = 2048`}, get: func(p *Plan) any { return p.Audio.PipeWireQuantum }, want: 2048},
		{name: "pipewire-quantum not a power of two", edits: []string{`[audio] pipewire-quantum = 300`}, wantKey: "audio.pipewire-quantum", wantMsg: "power of two from 256 to 2048"},
		{name: "pipewire-quantum below pipewire-pulse's floor", edits: []string{`[audio] pipewire-quantum = 128`}, wantKey: "audio.pipewire-quantum"},
		{name: "pipewire-quantum too large", edits: []string{`[audio] pipewire-quantum = 4096`}, wantKey: "audio.pipewire-quantum"},
		{name: "pipewire-quantum zero", edits: []string{`[audio] pipewire-quantum = 0`}, wantKey: "audio.pipewire-quantum"},
		{name: "pipewire-quantum a string", edits: []string{`[audio] pipewire-quantum = "256"`}, wantKey: "audio.pipewire-quantum"},
		{name: "channel fields default", get: func(p *Plan) any { return p.Audio.Channels }, want: []Channel{{Name: "ch1", Loopback: "echo"}}},
		{name: "channel sink and source", edits: []string{`[audio.channels.ch1] sink = "plughw:0,0"`, `[audio.channels.ch1] source = "plughw:1,0"`},
			get: func(p *Plan) any { return p.Audio.Channels[0] }, want: Channel{Name: "ch1", Sink: "plughw:0,0", Source: "plughw:1,0", Loopback: "echo"}},
		{name: "channel sink control", edits: []string{`[audio.channels.ch1] sink = "a\u0000"`}, wantKey: "audio.channels.ch1.sink"},
		{name: "channel source control", edits: []string{`[audio.channels.ch1] source = "a\r"`}, wantKey: "audio.channels.ch1.source"},
		{name: "loopback silence", edits: []string{`[audio.channels.ch1] loopback = "silence"`}, get: func(p *Plan) any { return p.Audio.Channels[0].Loopback }, want: "silence"},
		{name: "loopback tone", edits: []string{`[audio.channels.ch1] loopback = "tone:1000"`}, get: func(p *Plan) any { return p.Audio.Channels[0].Loopback }, want: "tone:1000"},
		{name: "loopback tone 1 Hz", edits: []string{`[audio.channels.ch1] loopback = "tone:1"`}, get: func(p *Plan) any { return p.Audio.Channels[0].Loopback }, want: "tone:1"},
		{name: "loopback tone 3999 Hz", edits: []string{`[audio.channels.ch1] loopback = "tone:3999"`}, get: func(p *Plan) any { return p.Audio.Channels[0].Loopback }, want: "tone:3999"},
		{name: "loopback tone nyquist", edits: []string{`[audio.channels.ch1] loopback = "tone:4000"`}, wantKey: "audio.channels.ch1.loopback", wantMsg: "1 to 3999"},
		{name: "loopback tone 3 kHz on a G722 channel", edits: []string{`[rtp-settings] codecs = ["G722", "PCMU"]`, `[audio.channels.ch1] loopback = "tone:3000"`}, get: func(p *Plan) any { return p.Audio.Channels[0].Loopback }, want: "tone:3000"},
		{name: "loopback tone nyquist of a G722 channel", edits: []string{`[rtp-settings] codecs = ["G722"]`, `[audio.channels.ch1] loopback = "tone:8000"`}, wantKey: "audio.channels.ch1.loopback", wantMsg: "1 to 7999"},
		{name: "loopback tone zero", edits: []string{`[audio.channels.ch1] loopback = "tone:0"`}, wantKey: "audio.channels.ch1.loopback"},
		{name: "loopback tone fraction", edits: []string{`[audio.channels.ch1] loopback = "tone:1000.5"`}, wantKey: "audio.channels.ch1.loopback"},
		{name: "loopback tone empty", edits: []string{`[audio.channels.ch1] loopback = "tone:"`}, wantKey: "audio.channels.ch1.loopback"},
		{name: "loopback unknown", edits: []string{`[audio.channels.ch1] loopback = "noise"`}, wantKey: "audio.channels.ch1.loopback", wantMsg: `"echo", "silence" or "tone:HZ"`},
		{name: "loopback explicit empty means echo", edits: []string{`[audio.channels.ch1] loopback = ""`}, get: func(p *Plan) any { return p.Audio.Channels[0].Loopback }, want: "echo"},
		{name: "channel name with space", edits: []string{`[audio.channels."my ch"]`, `[accounts.account-1] channel = "ch1"`}, wantKey: `audio.channels."my ch"`},

		// [log]
		{name: "log level default", get: func(p *Plan) any { return p.Log.Level }, want: "info"},
		{name: "log level debug", edits: []string{`[log] level = "debug"`}, get: func(p *Plan) any { return p.Log.Level }, want: "debug"},
		{name: "log level warn", edits: []string{`[log] level = "warn"`}, get: func(p *Plan) any { return p.Log.Level }, want: "warn"},
		{name: "log level error", edits: []string{`[log] level = "error"`}, get: func(p *Plan) any { return p.Log.Level }, want: "error"},
		{name: "log level trace", edits: []string{`[log] level = "trace"`}, wantKey: "log.level"},
		{name: "log level upper case", edits: []string{`[log] level = "INFO"`}, wantKey: "log.level"},

		// [accounts.NAME]
		{name: "account defaults", get: acctAny, want: Account{Name: "account-1", User: "3001", Pass: secret, DisplayName: "account-1", Register: true, Channel: "ch1", MaxCalls: 4, AcceptFrom: AcceptFrom{Mode: "any"}}},
		{name: "server list", edits: []string{`[accounts.account-1] server = ["pbx-a.example.com", "pbx-b.example.com:5080"]`}, get: func(p *Plan) any { a := acct(p); return append([]string{a.Server}, a.Backups...) },
			want: []string{"pbx-a.example.com", "pbx-b.example.com:5080"}},
		{name: "server list of one", edits: []string{`[accounts.account-1] server = ["pbx-a.example.com"]`}, get: func(p *Plan) any { return acct(p).Backups }, want: []string{}},
		{name: "server list twice", edits: []string{`[accounts.account-1] server = ["pbx-a.example.com", "pbx-a.example.com"]`}, wantKey: "accounts.account-1.server", wantMsg: "twice"},
		{name: "server list bad entry", edits: []string{`[accounts.account-1] server = ["pbx-a.example.com", "sip:b"]`}, wantKey: "accounts.account-1.server", wantMsg: "entry 2"},
		{name: "server list empty", edits: []string{`[accounts.account-1] server = []`}, wantKey: "accounts.account-1.server", wantMsg: "empty list"},
		{name: "server list number", edits: []string{`[accounts.account-1] server = [1]`}, wantKey: "accounts.account-1.server", wantMsg: "string"},
		{name: "accept-from default with server", edits: []string{`[accounts.account-1] server = "pbx.example.com"`}, get: func(p *Plan) any { return acct(p).AcceptFrom }, want: AcceptFrom{Mode: "server"}},
		{name: "accept-from any", edits: []string{`[accounts.account-1] server = "pbx.example.com"`, `[accounts.account-1] accept-from = "any"`}, get: func(p *Plan) any { return acct(p).AcceptFrom }, want: AcceptFrom{Mode: "any"}},
		{name: "accept-from list", edits: []string{`[accounts.account-1] accept-from = ["192.0.2.7", "2001:db8::/32"]`}, get: func(p *Plan) any { return acct(p).AcceptFrom },
			want: AcceptFrom{Mode: "list", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32")}}},
		{name: "accept-from server without server", edits: []string{`[accounts.account-1] accept-from = "server"`}, wantKey: "accounts.account-1.accept-from", wantMsg: "needs a server"},
		{name: "accept-from unknown word", edits: []string{`[accounts.account-1] accept-from = "pbx"`}, wantKey: "accounts.account-1.accept-from", wantMsg: `"server", "any"`},
		{name: "accept-from bad network", edits: []string{`[accounts.account-1] accept-from = ["127.0.0.0/33"]`}, wantKey: "accounts.account-1.accept-from", wantMsg: "CIDR"},
		{name: "accept-from empty list", edits: []string{`[accounts.account-1] accept-from = []`}, wantKey: "accounts.account-1.accept-from", wantMsg: "nobody"},
		{name: "accept-from number", edits: []string{`[accounts.account-1] accept-from = 5`}, wantKey: "accounts.account-1.accept-from", wantMsg: "array of networks"},
		{name: "user missing", edits: []string{`[accounts.account-1] user`}, wantKey: "accounts.account-1.user", wantMsg: "required"},
		{name: "user with space", edits: []string{`[accounts.account-1] user = "30 01"`}, wantKey: "accounts.account-1.user"},
		{name: "user with at", edits: []string{`[accounts.account-1] user = "3001@pbx"`}, wantKey: "accounts.account-1.user"},
		{name: "user number", edits: []string{`[accounts.account-1] user = 3001`}, wantKey: "accounts.account-1.user", wantMsg: "must be a string"},
		{name: "pass empty", edits: []string{`[accounts.account-1] pass`}, get: func(p *Plan) any { return acct(p).Pass }, want: ""},
		{name: "pass number", edits: []string{`[accounts.account-1] pass = 5`}, wantKey: "accounts.account-1.pass", wantMsg: "must be a string"},
		{name: "pass control", edits: []string{`[accounts.account-1] pass = "` + secret + `\n"`}, wantKey: "accounts.account-1.pass", wantMsg: "not shown"},
		{name: "server ip", edits: []string{`[accounts.account-1] server = "127.0.0.1"`}, get: func(p *Plan) any { return acct(p).Server }, want: "127.0.0.1"},
		{name: "server ip port", edits: []string{`[accounts.account-1] server = "127.0.0.1:5070"`}, get: func(p *Plan) any { return acct(p).Server }, want: "127.0.0.1:5070"},
		{name: "server ipv6 port", edits: []string{`[accounts.account-1] server = "[::1]:5070"`}, get: func(p *Plan) any { return acct(p).Server }, want: "[::1]:5070"},
		{name: "server ipv6", edits: []string{`[accounts.account-1] server = "::1"`}, get: func(p *Plan) any { return acct(p).Server }, want: "::1"},
		{name: "server ipv6 bracketed", edits: []string{`[accounts.account-1] server = "[2001:db8::1]"`}, get: func(p *Plan) any { return acct(p).Server }, want: "[2001:db8::1]"},
		{name: "server ipv6 unbracketed with port", edits: []string{`[accounts.account-1] server = "2001:db8::1]:5060"`}, wantKey: "accounts.account-1.server", wantMsg: `"[2001:db8::1]:5060"`},
		{name: "server ipv6 missing bracket", edits: []string{`[accounts.account-1] server = "[2001:db8::1:5060"`}, wantKey: "accounts.account-1.server", wantMsg: "in brackets"},
		{name: "server ipv4 in brackets", edits: []string{`[accounts.account-1] server = "[127.0.0.1]:5060"`}, wantKey: "accounts.account-1.server", wantMsg: "only an IPv6 address goes in brackets"},
		{name: "server ipv6 zone", edits: []string{`[accounts.account-1] server = "[fe80::1%eth0]:5060"`}, wantKey: "accounts.account-1.server", wantMsg: "zone"},
		{name: "server name in brackets", edits: []string{`[accounts.account-1] server = "[pbx.example.com]"`}, wantKey: "accounts.account-1.server", wantMsg: "only an IPv6 address goes in brackets"},
		{name: "server host", edits: []string{`[accounts.account-1] server = "pbx.example.com"`}, get: func(p *Plan) any { return acct(p).Server }, want: "pbx.example.com"},
		{name: "server host port", edits: []string{`[accounts.account-1] server = "pbx.example.com:5080"`}, get: func(p *Plan) any { return acct(p).Server }, want: "pbx.example.com:5080"},
		{name: "server sip uri", edits: []string{`[accounts.account-1] server = "sip:pbx.example.com"`}, wantKey: "accounts.account-1.server", wantMsg: "sip: scheme"},
		{name: "server port zero", edits: []string{`[accounts.account-1] server = "pbx.example.com:0"`}, wantKey: "accounts.account-1.server"},
		{name: "server port text", edits: []string{`[accounts.account-1] server = "pbx.example.com:x"`}, wantKey: "accounts.account-1.server"},
		{name: "server space", edits: []string{`[accounts.account-1] server = "bad host"`}, wantKey: "accounts.account-1.server"},
		{name: "auth-user set", edits: []string{`[accounts.account-1] auth-user = "cisco-digest"`}, get: func(p *Plan) any { return acct(p).AuthUser }, want: "cisco-digest"},
		{name: "auth-user space", edits: []string{`[accounts.account-1] auth-user = "a b"`}, wantKey: "accounts.account-1.auth-user"},
		{name: "display-name set", edits: []string{`[accounts.account-1] display-name = "Desk 1"`}, get: func(p *Plan) any { return acct(p).DisplayName }, want: "Desk 1"},
		{name: "display-name control", edits: []string{`[accounts.account-1] display-name = "a\u0007"`}, wantKey: "accounts.account-1.display-name"},
		{name: "register false stays false", edits: []string{`[accounts.account-1] register = false`}, get: func(p *Plan) any { return acct(p).Register }, want: false},
		{name: "register true", edits: []string{`[accounts.account-1] register = true`}, get: func(p *Plan) any { return acct(p).Register }, want: true},
		{name: "register true without server is fine", edits: []string{`[accounts.account-1] register = true`, `[accounts.account-1] server = ""`}, get: func(p *Plan) any { return acct(p).Register }, want: true},
		{name: "register string", edits: []string{`[accounts.account-1] register = "yes"`}, wantKey: "accounts.account-1.register", wantMsg: "true or false"},
		{name: "channel explicit", edits: []string{`[audio.channels.ch2]`, `[accounts.account-1] channel = "ch2"`}, get: func(p *Plan) any { return acct(p).Channel }, want: "ch2"},
		{name: "channel unknown", edits: []string{`[accounts.account-1] channel = "nope"`}, wantKey: "accounts.account-1.channel", wantMsg: `no channel "nope"`},
		{name: "channel needed with two channels", edits: []string{`[audio.channels.ch2]`}, wantKey: "accounts.account-1.channel", wantMsg: "ch1, ch2"},
		{name: "channel shared implicitly", edits: []string{`[accounts.account-2] user = "3002"`, `[accounts.account-1] channel`, `[audio.channels.ch1]`},
			wantKey: "accounts.account-2", wantMsg: `channel is not set, so it is "ch1" (the only channel in [audio.channels]): channel "ch1" is already bound to account "account-1"`},
		{name: "bad user is not reported again as auth-user", edits: []string{`[accounts.account-1] user = "30 01"`}, wantKey: "accounts.account-1.user"},
		{name: "channel shared", edits: []string{`[accounts.account-2] user = "3002"`, `[accounts.account-2] channel = "ch1"`}, wantKey: "accounts.account-2.channel", wantMsg: `bound to account "account-1"`},
		{name: "max-calls default", get: func(p *Plan) any { return acct(p).MaxCalls }, want: 4},
		{name: "max-calls one", edits: []string{`[accounts.account-1] max-calls = 1`}, get: func(p *Plan) any { return acct(p).MaxCalls }, want: 1},
		{name: "max-calls zero", edits: []string{`[accounts.account-1] max-calls = 0`}, wantKey: "accounts.account-1.max-calls"},
		{name: "max-calls string", edits: []string{`[accounts.account-1] max-calls = "4"`}, wantKey: "accounts.account-1.max-calls"},
		{name: "same user on other server", edits: []string{`[audio.channels.ch2]`, `[accounts.account-1] channel = "ch1"`,
			`[accounts.account-2] user = "3001"`, `[accounts.account-2] server = "pbx.example.com"`, `[accounts.account-2] channel = "ch2"`},
			get: func(p *Plan) any { return len(p.Accounts) }, want: 2},
		{name: "same user same server", edits: []string{`[audio.channels.ch2]`, `[accounts.account-1] channel = "ch1"`,
			`[accounts.account-2] user = "3001"`, `[accounts.account-2] channel = "ch2"`}, wantKey: "accounts.account-2.user", wantMsg: "already uses user"},
		{name: "account name with space", edits: []string{`[accounts."my phone"] user = "3002"`, `[audio.channels.ch2]`,
			`[accounts.account-1] channel = "ch1"`, `[accounts."my phone"] channel = "ch2"`}, wantKey: `accounts."my phone"`, wantMsg: "API"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := doc(t, tc.edits...)
			p, err := Parse([]byte(text), "test.toml")
			if tc.wantKey == "" {
				if err != nil {
					t.Fatalf("plan:\n%s\nunexpected problems:\n%v", text, err)
				}
				if got := tc.get(p); !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("got %#v, want %#v", got, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("plan:\n%s\nparsed, want a problem with %s", text, tc.wantKey)
			}
			ps := problemsOf(t, err)
			var found *Problem
			for i := range ps {
				if ps[i].Key == tc.wantKey {
					found = &ps[i]
					break
				}
			}
			if found == nil {
				t.Fatalf("no problem names %s:\n%v", tc.wantKey, err)
			}
			if !strings.Contains(found.Msg, tc.wantMsg) {
				t.Errorf("problem %q does not say %q", found.Msg, tc.wantMsg)
			}
			if found.Source != "test.toml" {
				t.Errorf("source %q, want test.toml", found.Source)
			}
			// A key the file sets must come with its line.
			for _, e := range tc.edits {
				table, rest, _ := strings.Cut(e[1:], "] ")
				key, _, set := strings.Cut(rest, " = ")
				if set && table+"."+key == tc.wantKey {
					if want := lineAfter(text, "["+table+"]", rest); found.Line != want {
						t.Errorf("line %d, want %d\n%s", found.Line, want, text)
					}
				}
			}
			if !strings.Contains(err.Error(), tc.wantKey) {
				t.Errorf("Error() does not name %s:\n%v", tc.wantKey, err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("password in error:\n%v", err)
			}
		})
	}
}

func acctAny(p *Plan) any { return acct(p) }

// TestImplicitChannel: a plan without [audio.channels] gets one loopback
// echo channel "ch1", which a single account uses without naming it.
func TestImplicitChannel(t *testing.T) {
	p := mustParse(t, "[accounts.a]\nuser = \"1\"\n")
	if want := []Channel{{Name: "ch1", Loopback: "echo"}}; !reflect.DeepEqual(p.Audio.Channels, want) {
		t.Fatalf("channels %v, want %v", p.Audio.Channels, want)
	}
	if p.Accounts[0].Channel != "ch1" {
		t.Fatalf("account channel %q, want ch1", p.Accounts[0].Channel)
	}
	// A channel named in the account must still exist.
	_, err := Parse([]byte("[accounts.a]\nuser = \"1\"\nchannel = \"ch2\"\n"), "x")
	if ps := problemsOf(t, err); len(ps) != 1 || ps[0].Key != "accounts.a.channel" || ps[0].Line != 3 {
		t.Fatalf("got %v", err)
	}
}

func TestAccountsNotATable(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"integer", "accounts = 5\n", "not an integer"},
		{"channels integer", "[audio]\nchannels = 5\n[accounts.a]\nuser = \"1\"\n", "not an integer"},
		{"channel integer", "[audio]\nchannels = {ch1 = 5}\n[accounts.a]\nuser = \"1\"\n", "not an integer"},
		{"array of tables", "[[accounts]]\nuser = \"1\"\n", "not an array"},
		{"account is a string", "[accounts]\na = \"x\"\n", "not a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), "x")
			ps := problemsOf(t, err)
			if len(ps) != 1 || !strings.Contains(ps[0].Msg, "must be a table") || !strings.Contains(ps[0].Msg, tc.want) || ps[0].Line == 0 {
				t.Fatalf("got %#v", ps)
			}
		})
	}
}

func TestDefault(t *testing.T) {
	d := Default()
	want := &Plan{
		TCP: TCPSettings{Address: "0.0.0.0", Port: 3550, MaxClients: 64, MaxMessageBytes: 65536, EventHistory: 1024},
		SIP: SIPSettings{Address: "0.0.0.0", Port: 5060, Transports: []string{"udp"}, UserAgent: "Telestra",
			RegisterExpires: dur("300s"), RegisterRetry: dur("5s"), EndedCallLinger: dur("10s"), SessionExpires: dur("1800s"),
			TLSPort: 5061, TLSVerify: true,
			RegisterTimeout: dur("32s"), FailbackInterval: dur("60s"), KeepaliveInterval: dur("30s"),
			Reject: "403"},
		RTP: RTPSettings{PortMin: 16384, PortMax: 16999, Codecs: []string{"PCMU", "PCMA"},
			PTime: dur("20ms"), JitterBuffer: dur("40ms"), Timeout: dur("30s"), SRTP: "off"},
		Audio: Audio{Backend: "loopback", PipeWireQuantum: DefaultPipeWireQuantum},
		Log:   Log{Level: "info"},
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("Default() = %+v\nwant %+v", d, want)
	}
	// Without accounts the plan is not usable, and Validate says so.
	ps := problemsOf(t, d.Validate())
	if len(ps) != 1 || ps[0].Key != "accounts" {
		t.Fatalf("Default().Validate() = %v, want one problem about accounts", ps)
	}
	d.Audio.Channels = []Channel{{Name: "ch1", Loopback: "echo"}}
	d.Accounts = []Account{{Name: "a", User: "1", Register: true, Channel: "ch1", MaxCalls: 1}}
	if err := d.Validate(); err != nil {
		t.Fatalf("Default() with one account: %v", err)
	}
	// Validate does not fill in anything: a plan built in Go must name its
	// channel.
	d.Accounts[0].Channel = ""
	ps = problemsOf(t, d.Validate())
	if len(ps) != 1 || ps[0].Key != "accounts.a.channel" || ps[0].Line != 0 || ps[0].Source != "" {
		t.Fatalf("got %#v", ps)
	}
	if got, want := ps.Error(), "accounts.a.channel: required: no [audio.channels.NAME] table is defined"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}

func TestEmptyPlanNeedsAccounts(t *testing.T) {
	_, err := Parse(nil, "empty.toml")
	ps := problemsOf(t, err)
	if len(ps) != 1 || ps[0].Key != "accounts" || !strings.Contains(ps[0].Msg, "[accounts.NAME]") {
		t.Fatalf("got %v", err)
	}
}

func TestUnknownKeys(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		wantKey string
		line    int
	}{
		{"top-level key", "x = 1\n[accounts.a]\nuser = \"1\"\n", "x", 1},
		{"top-level table", "[accounts.a]\nuser = \"1\"\n\n[sip]\nport = 5\n", "sip", 4},
		{"nested key", "[accounts.a]\nuser = \"1\"\n[sip-settings]\nport = 5070\nprot = 5060\n", "sip-settings.prot", 5},
		{"wrong case", "[accounts.a]\nuser = \"1\"\n[sip-settings]\nPort = 5070\n", "sip-settings.Port", 4},
		{"nested table", "[accounts.a]\nuser = \"1\"\n[rtp-settings.extra]\nk = 1\n", "rtp-settings.extra", 3},
		{"dotted key", "[accounts.a]\nuser = \"1\"\n[audio]\nbackend = \"loopback\"\npulse.server = \"x\"\n", "audio.pulse", 5},
		{"account key", "[accounts.a]\nuser = \"1\"\npassword = \"x\"\n", "accounts.a.password", 3},
		{"account sub-table", "[accounts.a]\nuser = \"1\"\n[accounts.a.extra]\n", "accounts.a.extra", 3},
		{"channel key", "[audio.channels.ch1]\nloop = \"echo\"\n[accounts.a]\nuser = \"1\"\n", "audio.channels.ch1.loop", 2},
		{"inline table", "[accounts.a]\nuser = \"1\"\n[log]\nlevel = \"info\"\nformat = {json = true}\n", "log.format", 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), "sipplan.toml")
			ps := problemsOf(t, err)
			if len(ps) != 1 {
				t.Fatalf("want exactly one problem, got:\n%v", err)
			}
			if ps[0].Key != tc.wantKey || ps[0].Line != tc.line || !strings.Contains(ps[0].Msg, "unknown") {
				t.Fatalf("got %#v, want key %s line %d", ps[0], tc.wantKey, tc.line)
			}
			want := fmt.Sprintf("sipplan.toml:%d: %s: unknown", tc.line, tc.wantKey)
			if !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("Error() = %q, want prefix %q", err.Error(), want)
			}
		})
	}
}

func TestTypeErrors(t *testing.T) {
	tests := []struct {
		name, line, wantKey, wantMsg string
		table                        string
	}{
		{"int as string", `port = "x"`, "sip-settings.port", "must be a whole number, not a string", "sip-settings"},
		{"string as int", `user-agent = 5`, "sip-settings.user-agent", "must be a string", "sip-settings"},
		{"string as bool", `user-agent = true`, "sip-settings.user-agent", "not a boolean", "sip-settings"},
		{"list as string", `transports = "udp"`, "sip-settings.transports", `array of strings (["..."]), not a string`, "sip-settings"},
		{"list of ints", `transports = [1, 2]`, "sip-settings.transports", "entry 1 must be a string, not an integer", "sip-settings"},
		{"duration as int", `timeout = 30`, "rtp-settings.timeout", "duration string", "rtp-settings"},
		{"duration as date", `timeout = 1979-05-27`, "rtp-settings.timeout", "not a date/time", "rtp-settings"},
		{"int as table", `port-min = {a = 1}`, "rtp-settings.port-min", "not a table", "rtp-settings"},
		{"int as array", `port-min = [1]`, "rtp-settings.port-min", "not an array", "rtp-settings"},
		{"bool as int", `register = 1`, "accounts.a.register", "true or false, not an integer", "accounts.a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text := "[accounts.a]\nuser = \"1\"\n"
			if tc.table != "accounts.a" {
				text += "[" + tc.table + "]\n"
			}
			text += "# comment\n" + tc.line + "\n"
			_, err := Parse([]byte(text), "p.toml")
			ps := problemsOf(t, err)
			if len(ps) != 1 {
				t.Fatalf("want one problem, got:\n%v", err)
			}
			wantLine := lineOf(text, tc.line)
			if ps[0].Key != tc.wantKey || ps[0].Line != wantLine || !strings.Contains(ps[0].Msg, tc.wantMsg) {
				t.Fatalf("got %#v, want key %s line %d msg %q", ps[0], tc.wantKey, wantLine, tc.wantMsg)
			}
		})
	}
}

func TestSyntaxError(t *testing.T) {
	text := "[accounts.a]\nuser = \"1\"\n[sip-settings]\nport = = 5\n"
	_, err := Parse([]byte(text), "p.toml")
	ps := problemsOf(t, err)
	if len(ps) != 1 || ps[0].Line != 4 || !strings.Contains(ps[0].Msg, "syntax") {
		t.Fatalf("got %#v", ps)
	}
	if !strings.HasPrefix(err.Error(), "p.toml:4: ") {
		t.Fatalf("Error() = %q", err.Error())
	}
}

// TestManyProblems: one Parse reports every problem, in line order, the
// decoding ones and the validation ones together.
func TestManyProblems(t *testing.T) {
	text := `[tcp-settings]
port = "x"
prot = 1
[sip-settings]
port = 0
transports = ["sctp"]
[rtp-settings]
port-min = 16385
[audio]
backend = "oss"
[audio.channels.ch1]
loopback = "tone:9000"
[accounts.a]
pass = "` + secret + `"
register = "yes"
[accounts.b]
user = "2"
channel = "nope"
`
	_, err := Parse([]byte(text), "many.toml")
	ps := problemsOf(t, err)
	want := []struct {
		key  string
		line int
	}{
		{"tcp-settings.port", 2},
		{"tcp-settings.prot", 3},
		{"sip-settings.port", 5},
		{"sip-settings.transports", 6},
		{"rtp-settings.port-min", 8},
		{"audio.backend", 10},
		{"audio.channels.ch1.loopback", 12},
		{"accounts.a.user", 13}, // left out: the line of its table
		{"accounts.a.register", 15},
		{"accounts.b.channel", 18},
	}
	if len(ps) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(want), err)
	}
	for i, w := range want {
		if ps[i].Key != w.key || ps[i].Line != w.line {
			t.Errorf("problem %d: got %s line %d, want %s line %d", i, ps[i].Key, ps[i].Line, w.key, w.line)
		}
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != len(want) {
		t.Errorf("Error() has %d lines, want one per problem:\n%v", len(lines), err)
	}
	if strings.Contains(err.Error(), secret) {
		t.Errorf("password in error")
	}
}

func TestOrderPreserved(t *testing.T) {
	text := `[audio.channels.zulu]
[audio.channels.alpha]
[accounts.zeta]
user = "1"
channel = "zulu"
[sip-settings]
port = 5070
[accounts.alpha]
user = "2"
channel = "mike"
[audio.channels.mike]
[accounts.mu]
user = "3"
channel = "alpha"
`
	p := mustParse(t, text)
	var accts, chans []string
	for _, a := range p.Accounts {
		accts = append(accts, a.Name)
	}
	for _, c := range p.Audio.Channels {
		chans = append(chans, c.Name)
	}
	if want := []string{"zeta", "alpha", "mu"}; !reflect.DeepEqual(accts, want) {
		t.Errorf("accounts %v, want %v", accts, want)
	}
	if want := []string{"zulu", "alpha", "mike"}; !reflect.DeepEqual(chans, want) {
		t.Errorf("channels %v, want %v", chans, want)
	}
	// Same when written as dotted keys and inline tables.
	text = `accounts.zeta.user = "1"
accounts.alpha = { user = "2" }
accounts.mu.user = "3"
audio.backend = "loopback"
`
	_, err := Parse([]byte(text), "x")
	ps := problemsOf(t, err) // one channel for three accounts: each shared
	// The file has no channel key: the problems name the account tables
	// and say where "ch1" came from.
	if len(ps) != 2 || ps[0].Key != "accounts.alpha" || ps[1].Key != "accounts.mu" ||
		!strings.Contains(ps[0].Msg, `channel is not set, so it is "ch1" (the default channel, as the plan has no [audio.channels]): channel "ch1" is already bound to account "zeta"`) {
		t.Fatalf("got:\n%v", err)
	}
}

func TestLookup(t *testing.T) {
	p := mustParse(t, doc(t, `[audio.channels.ch2] loopback = "silence"`, `[accounts.account-1] channel = "ch1"`))
	if a, ok := p.Account("account-1"); !ok || a.User != "3001" {
		t.Errorf("Account(account-1) = %v, %v", a, ok)
	}
	if _, ok := p.Account("nope"); ok {
		t.Errorf("Account(nope) found")
	}
	if c, ok := p.Channel("ch2"); !ok || c.Loopback != "silence" {
		t.Errorf("Channel(ch2) = %v, %v", c, ok)
	}
	if _, ok := p.Channel("nope"); ok {
		t.Errorf("Channel(nope) found")
	}
}

// TestShippedPlans: the packaged default and the README quick start parse,
// and say what their comments promise.
func TestShippedPlans(t *testing.T) {
	t.Run("packaging", func(t *testing.T) {
		p, err := Load("../../../packaging/sipplan.toml")
		if err != nil {
			t.Fatal(err)
		}
		// The packaged file shows every default: it must equal Default()
		// plus its example channel and account.
		d := Default()
		d.Audio.Channels = []Channel{{Name: "ch1", Loopback: "echo"}}
		d.Accounts = []Account{{Name: "account-1", User: "3001", Pass: "sip3001", Server: "pbx.example.com",
			DisplayName: "account-1", Register: true, Channel: "ch1", MaxCalls: 4,
			AcceptFrom: AcceptFrom{Mode: "server"}}}
		if !reflect.DeepEqual(p, d) {
			t.Fatalf("packaging/sipplan.toml differs from the defaults:\n got %+v\nwant %+v", p, d)
		}
	})
	t.Run("quickstart", func(t *testing.T) {
		p, err := Load("../../../testdata/quickstart.toml")
		if err != nil {
			t.Fatal(err)
		}
		got := []any{p.TCP.Address, p.TCP.Port, p.SIP.Address, p.SIP.Port, p.RTP.PortMin, p.RTP.PortMax, p.Audio.Backend, p.Audio.Channels}
		want := []any{"127.0.0.1", 3550, "127.0.0.1", 5070, 16384, 16999, "loopback",
			[]Channel{{Name: "ch1", Loopback: "echo"}, {Name: "ch2", Loopback: "tone:1000"}}}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %v\nwant %v", got, want)
		}
		if len(p.Accounts) != 2 {
			t.Fatalf("accounts: %v", p.Accounts)
		}
		for i, w := range []struct{ name, user, ch string }{{"account-1", "3001", "ch1"}, {"account-2", "3002", "ch2"}} {
			a := p.Accounts[i]
			if a.Name != w.name || a.User != w.user || a.Channel != w.ch || a.Server != "" || a.Register {
				t.Errorf("account %d: %v", i, a)
			}
		}
	})
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(t.TempDir() + "/none.toml")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("got %v, want a not-exist error", err)
	}
}

func TestLoadFile(t *testing.T) {
	path := t.TempDir() + "/sipplan.toml"
	if err := os.WriteFile(path, []byte("[accounts.a]\nuser = \"1\"\n[log]\nlevel = \"loud\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := path + ":4: log.level: must be one of"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("got %v, want prefix %q", err, want)
	}
}

// TestPasswordNeverShown: whatever is wrong, the password stays out of
// errors, and out of printed or logged accounts.
func TestPasswordNeverShown(t *testing.T) {
	tests := []struct {
		name string
		text string
	}{
		{"pass with control character", "[accounts.a]\nuser = \"1\"\npass = \"" + secret + "\\u0001\"\n"},
		{"pass unquoted", "[accounts.a]\nuser = \"1\"\npass = " + secret + "\n"},
		{"pass bad escape", "[accounts.a]\nuser = \"1\"\npass = \"" + secret + "\\q\"\n"},
		{"pass unterminated", "[accounts.a]\nuser = \"1\"\npass = \"" + secret + "\n"},
		{"pass unterminated literal", "[accounts.a]\nuser = \"1\"\npass = '" + secret + "\n"},
		{"pass in array", "[accounts.a]\nuser = \"1\"\npass = [\"" + secret + "\"]\n"},
		{"pass in table", "[accounts.a]\nuser = \"1\"\npass = {p = \"" + secret + "\"}\n"},
		{"two accounts alike", "[accounts.a]\nuser = \"1\"\npass = \"" + secret + "\"\n[accounts.b]\nuser = \"1\"\npass = \"" + secret + "\"\n"},
		{"pass under unknown key", "[accounts.a]\nuser = \"1\"\npasswd = \"" + secret + "\"\n"},
		{"pass duplicated", "[accounts.a]\nuser = \"1\"\npass = \"" + secret + "\"\npass = \"" + secret + "\"\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), "p.toml")
			if err == nil {
				t.Fatal("parsed")
			}
			if strings.Contains(err.Error(), secret) || strings.Contains(fmt.Sprintf("%#v", err), secret) {
				t.Fatalf("password in error:\n%v", err)
			}
		})
	}

	p := mustParse(t, doc(t))
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("plan", "account", p.Accounts[0])
	for _, s := range []string{fmt.Sprint(p), fmt.Sprintf("%+v", p.Accounts), buf.String()} {
		if strings.Contains(s, secret) {
			t.Errorf("password printed: %s", s)
		}
	}
}

func TestErrorsAs(t *testing.T) {
	_, err := Parse([]byte("x = 1"), "p.toml")
	var ptr *Problems
	if !errors.As(err, &ptr) || len(*ptr) == 0 {
		t.Fatalf("errors.As(*Problems) failed for %T", err)
	}
	var val Problems
	if !errors.As(fmt.Errorf("wrapped: %w", err), &val) || len(val) == 0 {
		t.Fatalf("errors.As(Problems) failed through wrapping")
	}
	var ptr2 *Problems
	if !errors.As(Problems{{Msg: "m"}}, &ptr2) || len(*ptr2) != 1 {
		t.Fatal("errors.As(*Problems) from a Problems value failed")
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		name string
		p    Problem
		want string
	}{
		{"all", Problem{Key: "a.b", Line: 3, Msg: "bad", Source: "f.toml"}, "f.toml:3: a.b: bad"},
		{"no line", Problem{Key: "a.b", Msg: "bad", Source: "f.toml"}, "f.toml: a.b: bad"},
		{"no source", Problem{Key: "a.b", Line: 3, Msg: "bad"}, "line 3: a.b: bad"},
		{"key only", Problem{Key: "a.b", Msg: "bad"}, "a.b: bad"},
		{"msg only", Problem{Msg: "bad"}, "bad"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.String(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want time.Duration
		text string
	}{
		{"seconds", "300s", 300 * time.Second, "300s"},
		{"minutes", "5m", 5 * time.Minute, "300s"},
		{"millis", "20ms", 20 * time.Millisecond, "20ms"},
		{"mixed", "1m30s", 90 * time.Second, "90s"},
		{"micros", "1500us", 1500 * time.Microsecond, "1.5ms"},
		{"zero", "0s", 0, "0s"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var d Duration
			if err := d.UnmarshalText([]byte(tc.in)); err != nil {
				t.Fatal(err)
			}
			if d.Duration != tc.want {
				t.Fatalf("got %v, want %v", d.Duration, tc.want)
			}
			b, _ := d.MarshalText()
			if string(b) != tc.text || d.String() != tc.text {
				t.Fatalf("MarshalText %q, String %q, want %q", b, d.String(), tc.text)
			}
			var back Duration
			if err := back.UnmarshalText(b); err != nil || back != d {
				t.Fatalf("round trip: %v %v", back, err)
			}
		})
	}
	var d Duration
	if err := d.UnmarshalText([]byte("5")); err == nil {
		t.Fatal("a bare number was accepted as a duration")
	}
}

func TestLimits(t *testing.T) {
	_, err := Parse(bytes.Repeat([]byte("# padding\n"), maxPlanBytes/10+1), "big.toml")
	if ps := problemsOf(t, err); len(ps) != 1 || !strings.Contains(ps[0].Msg, "limit") {
		t.Fatalf("got %v", err)
	}

	var b strings.Builder
	b.WriteString("[accounts.a]\nuser = \"1\"\n[sip-settings]\n")
	for i := range maxProblems + 50 {
		fmt.Fprintf(&b, "k%03d = 1\n", i)
	}
	_, err = Parse([]byte(b.String()), "many.toml")
	ps := problemsOf(t, err)
	if len(ps) != maxProblems+1 {
		t.Fatalf("got %d problems, want %d and a summary", len(ps), maxProblems)
	}
	for i, p := range ps[:maxProblems] {
		if p.Key != fmt.Sprintf("sip-settings.k%03d", i) || p.Line != i+4 {
			t.Fatalf("problem %d: %#v", i, p)
		}
	}
	if last := ps[maxProblems]; last.Msg != "50 more problems not shown; fix the ones above first" {
		t.Fatalf("summary %#v", last)
	}
}

func TestProblemLines(t *testing.T) {
	_, parseErr := Parse([]byte("[accounts.a]\nuser = \"3001\"\n[rtp-settings]\nport-min = 16385\n"), "")
	tests := []struct {
		name string
		err  error
		want []string
	}{
		{"problems without a source get the path", parseErr, []string{"p.toml:4: rtp-settings.port-min: "}},
		{"problems keep their own source", &Problems{{Source: "other.toml", Line: 2, Key: "k", Msg: "bad"}}, []string{"other.toml:2: k: bad"}},
		{"another error is one line", fmt.Errorf("read SIP plan: %w", fs.ErrNotExist), []string{"p.toml: read SIP plan: file does not exist"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ProblemLines("p.toml", tc.err)
			if len(got) != len(tc.want) {
				t.Fatalf("got %q, want %d lines like %q", got, len(tc.want), tc.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tc.want[i]) {
					t.Errorf("line %d %q, want it to start with %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// A Check's problems and warnings get the file and line of their key;
// problems make the plan invalid, warnings do not, and a problem on a key
// found wrong already is not repeated.
func TestChecks(t *testing.T) {
	const text = `[sip-settings]
transports = ["udp", "tls"]
tls-certificate = "/etc/telestra/tls/sip.pem"
tls-key = "/etc/telestra/tls/sip.key"

[accounts.a]
user = "1"
`
	files := func(probs, warns Problems) Check {
		return func(*Plan) (Problems, Problems) { return probs, warns }
	}
	for _, tc := range []struct {
		name         string
		text         string
		checks       []Check
		wantProblems []string
		wantWarnings []string
	}{
		{name: "none", text: text, checks: []Check{files(nil, nil)}},
		{name: "a problem", text: text,
			checks:       []Check{files(Problems{{Key: "sip-settings.tls-key", Msg: "/etc/telestra/tls/sip.key: no such file"}}, nil)},
			wantProblems: []string{"test.toml:4: sip-settings.tls-key: /etc/telestra/tls/sip.key: no such file"}},
		{name: "a warning", text: text,
			checks:       []Check{files(nil, Problems{{Key: "sip-settings.tls-certificate", Msg: "expires soon"}})},
			wantWarnings: []string{"test.toml:3: sip-settings.tls-certificate: expires soon"}},
		{name: "a key the file leaves out: its table's line", text: text,
			checks:       []Check{files(Problems{{Key: "sip-settings.tls-ca", Msg: "system CA pool: none"}}, nil)},
			wantProblems: []string{"test.toml:1: sip-settings.tls-ca: system CA pool: none"}},
		{name: "problems of every check, with the plan's own", text: strings.Replace(text, `user = "1"`, `user = ""`, 1),
			checks: []Check{
				files(Problems{{Key: "sip-settings.tls-certificate", Msg: "one"}}, nil),
				files(Problems{{Key: "sip-settings.tls-key", Msg: "two"}}, nil),
			},
			wantProblems: []string{"test.toml:3: sip-settings.tls-certificate: one", "test.toml:4: sip-settings.tls-key: two", "test.toml:7: accounts.a.user:"}},
		{name: "not repeated on a key found wrong", text: strings.Replace(text, `"/etc/telestra/tls/sip.key"`, `"sip.key"`, 1),
			checks:       []Check{files(Problems{{Key: "sip-settings.tls-key", Msg: "sip.key: no such file"}}, nil)},
			wantProblems: []string{"test.toml:4: sip-settings.tls-key: must be an absolute path"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.text), "test.toml", tc.checks...)
			if len(tc.wantProblems) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, w := range p.Warnings {
					got = append(got, w.String())
				}
				if !reflect.DeepEqual(got, tc.wantWarnings) {
					t.Errorf("warnings %q, want %q", got, tc.wantWarnings)
				}
				return
			}
			ps := problemsOf(t, err)
			if len(ps) != len(tc.wantProblems) {
				t.Fatalf("problems %v, want %q", ps, tc.wantProblems)
			}
			for i, w := range tc.wantProblems {
				if !strings.HasPrefix(ps[i].String(), w) {
					t.Errorf("problem %d %q, want %q...", i, ps[i], w)
				}
			}
		})
	}
}
