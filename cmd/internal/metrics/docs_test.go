package metrics

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// documentedMetrics reads the metric table of docs/operations.md: name →
// type. A row may name several metrics, the later ones by their ending
// (`telestra_sipd_rtp_packets_sent_total`, `_received_total`), which
// replaces as many _segments of the row's first name.
func documentedMetrics(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile("`(telestra_sipd_[a-z_]+|_[a-z_]+)`")
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.Contains(cells[1], "`telestra_sipd_") {
			continue
		}
		typ := strings.TrimSpace(cells[2])
		var first string
		for _, m := range names.FindAllStringSubmatch(cells[1], -1) {
			name := m[1]
			if first == "" {
				first = name
			} else if strings.HasPrefix(name, "_") {
				segs := strings.Split(first, "_")
				name = strings.Join(segs[:len(segs)-strings.Count(name, "_")], "_") + name
			}
			out[name] = typ
		}
	}
	if len(out) == 0 {
		t.Fatal("docs/operations.md: no metric table found")
	}
	return out
}

// Every metric the registry serves is in docs/operations.md with its
// type, and the table names no metric the registry lacks.
func TestMetricsDocumented(t *testing.T) {
	src := &fakeSources{api: APIStats{Clients: 1}, audio: []AudioChannel{{Name: "ch1", Open: true, Connected: true}}}
	src.set(Account{Name: "a1", RegisterCode: 200, Calls: []Call{{ID: 1, Direction: "in", PacketsSent: 1}}})
	m := New("dev", src.sources())
	m.CallIncoming(1)
	m.CallAnswered(1) // a histogram is gathered once it has an observation
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	docs := documentedMetrics(t)
	served := map[string]bool{}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, namespace+"_") {
			continue // go_*, process_*: the client library's
		}
		served[name] = true
		typ, ok := docs[name]
		want := strings.ToLower(mf.GetType().String())
		switch {
		case !ok:
			t.Errorf("docs/operations.md does not list %s (%s)", name, want)
		case typ != want:
			t.Errorf("docs/operations.md lists %s as %q; it is a %s", name, typ, want)
		}
	}
	var stale []string
	for name := range docs {
		if !served[name] {
			stale = append(stale, name)
		}
	}
	slices.Sort(stale)
	for _, name := range stale {
		t.Errorf("docs/operations.md lists %s, which the registry does not serve", name)
	}
}
