package plan

import (
	"fmt"
	"strings"

	"github.com/BurntSushi/toml"
)

func channelKey(name, field string) string {
	return toml.Key{"audio", "channels", name, field}.String()
}
func accountKey(name, field string) string { return toml.Key{"accounts", name, field}.String() }

// written reports whether the file sets key (a value or a table).
func (d *decoder) written(key string) bool {
	_, ok := d.refs[key]
	return ok
}

// ownKey rewords a problem about a value the file does not set (a default
// or a fallback) so that it names a key the operator wrote, the nearest
// table above, and says where the value came from. A problem about a value
// that is absent ("required") is left as it is.
func (d *decoder) ownKey(pr Problem, values map[string]string, p *Plan) Problem {
	v, ok := values[pr.Key]
	if pr.Key == "" || d.written(pr.Key) || !ok || v == `""` || v == "[]" || v == "" {
		return pr
	}
	parts := splitKey(pr.Key)
	leaf := parts[len(parts)-1]
	table := ""
	for i := len(parts) - 1; i > 0; i-- {
		if k := strings.Join(parts[:i], "."); d.written(k) {
			table = k
			break
		}
	}
	from := "the default"
	switch {
	case parts[0] == "accounts" && leaf == "channel":
		if d.written("audio.channels") {
			from = "the only channel in [audio.channels]"
		} else {
			from = "the default channel, as the plan has no [audio.channels]"
		}
	case parts[0] == "accounts" && leaf == "auth-user":
		from = "the user"
	case parts[0] == "accounts" && leaf == "display-name":
		from = "the account name"
	}
	if table == "" {
		leaf = pr.Key // no table of it in the file: name it in full
	}
	pr.Key = table
	pr.Msg = fmt.Sprintf("%s is not set, so it is %s (%s): %s", leaf, v, from, pr.Msg)
	return pr
}

// splitKey splits a dotted TOML key as toml.Key.String writes it (parts
// with dots or spaces are quoted).
func splitKey(k string) []string {
	var parts []string
	var cur strings.Builder
	quoted := false
	for _, r := range k {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case r == '.' && !quoted:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(parts, cur.String())
}

// warnings lists settings the file sets that have no effect with the rest
// of the plan: the daemon runs, but not as the operator meant.
func (d *decoder) warnings(p *Plan) Problems {
	var ws Problems
	add := func(key, format string, args ...any) {
		ws = append(ws, Problem{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	backend := fmt.Sprintf("the backend is %q", p.Audio.Backend)
	if !d.written("audio.backend") {
		backend = fmt.Sprintf("the backend is %q, the default, as [audio] sets no backend", p.Audio.Backend)
	}
	if p.Audio.PulseServer != "" && p.Audio.Backend != "pulse" {
		add("audio.pulse-server", "ignored: %s; only the pulse backend uses it", backend)
	}
	if p.Audio.PipeWireQuantum != DefaultPipeWireQuantum && p.Audio.Backend != "pulse" {
		add("audio.pipewire-quantum", "ignored: %s; only the pulse backend uses it (with pipewire-pulse)", backend)
	}
	for _, c := range p.Audio.Channels {
		for _, f := range []struct{ field, value string }{{"sink", c.Sink}, {"source", c.Source}} {
			if f.value != "" && p.Audio.Backend == "loopback" {
				add(channelKey(c.Name, f.field), "ignored: %s, which plays no device; set [audio] backend = \"pulse\" or \"alsa\" to use %q", backend, f.value)
			}
		}
		if k := channelKey(c.Name, "loopback"); d.written(k) && p.Audio.Backend != "loopback" {
			add(k, "ignored: %s; only the loopback backend uses it", backend)
		}
	}
	for _, a := range p.Accounts {
		if k := accountKey(a.Name, "register"); a.Register && a.Server == "" && d.written(k) {
			add(k, "has no effect: the account has no server to register with")
		}
	}
	return ws
}
