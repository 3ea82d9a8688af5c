package plan

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// documentedDefaults is every key's default as Settings writes it, for a
// plan whose account and channel tables set nothing (the documented
// fallbacks of auth-user, display-name and channel are not values).
func documentedDefaults() map[string]string {
	p := Default()
	p.Audio.Channels = []Channel{{Name: "NAME", Loopback: DefaultLoopback}}
	p.Accounts = []Account{defaultAccount("NAME")}
	out := map[string]string{}
	for _, s := range Settings(p) {
		if s.Value != "" {
			out[s.Key] = s.Value
		}
	}
	out["accounts.NAME.pass"] = `""`
	// user is required and channel follows a rule: neither has a default.
	delete(out, "accounts.NAME.user")
	delete(out, "accounts.NAME.channel")
	return out
}

// docTable maps a section heading of the docs to the TOML table of its keys:
// the first [table] it names ("[audio] and [audio.channels.NAME]" is audio).
func docTable(heading string) string {
	m := regexp.MustCompile(`\[([A-Za-z0-9.-]+)\]`).FindStringSubmatch(heading)
	if m == nil {
		return ""
	}
	return m[1]
}

// checkDefaults compares documented key → default pairs with the code and
// reports keys the code has that the document lacks.
func checkDefaults(t *testing.T, doc string, got map[string]string) {
	t.Helper()
	want := documentedDefaults()
	for k, v := range got {
		d, ok := want[k]
		switch {
		case !ok && v != "":
			t.Errorf("%s documents %s = %s, a key with no default in the code", doc, k, v)
		case ok && v != d:
			t.Errorf("%s: %s default is documented as %s; plan.Default() has %s", doc, k, v, d)
		}
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("%s does not document %s (default %s)", doc, k, want[k])
		}
	}
}

// One true value for every default: docs/sipplan.md's tables and
// sipplan.toml(5) say what plan.Default() says.
func TestDocumentedDefaults(t *testing.T) {
	t.Run("docs/sipplan.md", func(t *testing.T) {
		b, err := os.ReadFile("../../../docs/sipplan.md")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		table := ""
		row := regexp.MustCompile("^\\| `([a-z-]+)` \\| [^|]+ \\| ([^|]+) \\|")
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "## ") {
				table = docTable(line)
				continue
			}
			if strings.HasPrefix(line, "Each `[audio.channels.NAME]` table") {
				table = "audio.channels.NAME"
			}
			m := row.FindStringSubmatch(line)
			if m == nil || table == "" {
				continue
			}
			v := strings.TrimSpace(m[2])
			if !strings.HasPrefix(v, "`") { // "(required)", "see below"
				got[table+"."+m[1]] = ""
				continue
			}
			got[table+"."+m[1]] = strings.Trim(v, "`")
		}
		checkDefaults(t, "docs/sipplan.md", without(got, "accounts.NAME.user", "accounts.NAME.channel"))
	})
	t.Run("sipplan.toml(5)", func(t *testing.T) {
		b, err := os.ReadFile("../../../docs/man/sipplan.toml.5.md")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		table := ""
		kv := regexp.MustCompile(`\*\*([a-z-]+)\*\*( = ("[^"]*"|\[[^\]]*\]|[0-9a-z]+))?`)
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "# ") {
				table = docTable(line)
				continue
			}
			if table == "" || !strings.HasPrefix(line, "**") {
				continue
			}
			for _, m := range kv.FindAllStringSubmatch(line, -1) {
				got[table+"."+m[1]] = m[3]
			}
		}
		checkDefaults(t, "sipplan.toml(5)", without(got, "accounts.NAME.user", "accounts.NAME.channel"))
	})
}

// without drops keys documented without a default value: a required one,
// one whose default is a rule.
func without(m map[string]string, keys ...string) map[string]string {
	for _, k := range keys {
		if m[k] != "" {
			continue // documented with a value: checkDefaults reports it
		}
		delete(m, k)
	}
	return m
}

// Prose elsewhere in the docs that gives a default, "`key` (default V)" or
// "`[table] key` (default V)", says what plan.Default() says.
func TestDefaultsInProse(t *testing.T) {
	defaults := documentedDefaults()
	byLeaf := map[string][]string{} // key name → full keys
	for k := range defaults {
		leaf := k[strings.LastIndexByte(k, '.')+1:]
		byLeaf[leaf] = append(byLeaf[leaf], k)
	}
	files := []string{"../../../README.md"}
	for _, dir := range []string{"../../../docs/*.md", "../../../docs/man/*.md"} {
		m, err := filepath.Glob(dir)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	re := regexp.MustCompile("`(?:\\[([a-z.-]+)\\] )?([a-z-]+)`\\s*\\(default `?([^),`]+)`?")
	checked := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range re.FindAllStringSubmatch(line, -1) {
				key := m[1] + "." + m[2]
				if m[1] == "" {
					if len(byLeaf[m[2]]) != 1 {
						continue // ambiguous ("port") or not a plan key
					}
					key = byLeaf[m[2]][0]
				}
				def, ok := defaults[key]
				if !ok {
					continue
				}
				checked++
				if !sameValue(m[3], def) {
					t.Errorf("%s:%d: %s default written as %q; plan.Default() has %s", filepath.Base(f), i+1, key, m[3], def)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("found no default in the prose: the pattern is broken")
	}
}

// sameValue compares a value from prose ("3600 s", "10 s", "64", "1800")
// with a Settings value ("300s", 64, "1800s").
func sameValue(doc, def string) bool {
	doc = strings.Trim(strings.ReplaceAll(strings.TrimSpace(doc), " ", ""), `"`)
	def = strings.Trim(def, `"`)
	if doc == def {
		return true
	}
	dd, err1 := time.ParseDuration(def)
	if err1 != nil {
		return false
	}
	if n, err := strconv.Atoi(doc); err == nil {
		return time.Duration(n)*time.Second == dd
	}
	d, err := time.ParseDuration(doc)
	return err == nil && d == dd
}

// The deployment examples are valid, warning-free plans, and the guides
// show them exactly as the files are.
func TestDeployExamples(t *testing.T) {
	for _, ex := range []struct{ file, doc string }{
		{"../../../testdata/deploy/kamailio.toml", "../../../docs/deploy-kamailio.md"},
		{"../../../testdata/deploy/cucm.toml", "../../../docs/deploy-cucm.md"},
	} {
		t.Run(filepath.Base(ex.file), func(t *testing.T) {
			p, err := Load(ex.file)
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Warnings) > 0 {
				t.Fatalf("warnings: %v", p.Warnings)
			}
			file, err := os.ReadFile(ex.file)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := os.ReadFile(ex.doc)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(doc), "```toml\n"+string(file)+"```\n") {
				t.Fatalf("%s does not show %s as it is (in a ```toml block)", ex.doc, ex.file)
			}
		})
	}
}

// Settings (and so Diff, reload's report and the documentation tests)
// covers every key the decoder knows: a key added to the schema but not to
// Settings fails here. The decoder's own "known" lists are the reference.
func TestSettingsCoverEveryKey(t *testing.T) {
	known := regexp.MustCompile(`\(known(?: in \[[^\]]+\])?: ([^)]*)\)`)
	knownKeys := func(text string) []string {
		t.Helper()
		_, err := Parse([]byte(text), "k.toml")
		for _, p := range problemsOf(t, err) {
			if m := known.FindStringSubmatch(p.Msg); m != nil {
				return strings.Split(m[1], ", ")
			}
		}
		t.Fatalf("no list of known keys for:\n%s\n%v", text, err)
		return nil
	}
	p := Default()
	p.Audio.Channels = []Channel{{Name: "c"}}
	p.Accounts = []Account{{Name: "a"}}
	have := map[string]bool{}
	for _, s := range Settings(p) {
		have[s.Key] = true
	}
	tables := map[string]string{ // table → a key of it
		"tcp-settings": "", "sip-settings": "", "rtp-settings": "", "audio": "", "log": "", "metrics": "",
		"audio.channels.c": "", "accounts.a": "",
	}
	for _, top := range knownKeys("zzz-unknown = 1\n") {
		if _, ok := tables[top]; !ok && top != "accounts" {
			t.Errorf("the plan has a table [%s] that Settings and this test do not cover", top)
		}
	}
	for table := range tables {
		for _, k := range knownKeys("[" + table + "]\nzzz-unknown = 1\n") {
			if table == "audio" && k == "channels" {
				continue
			}
			if !have[table+"."+k] {
				t.Errorf("Settings lacks %s.%s", table, k)
			}
		}
	}
}
