package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTitle(t *testing.T) {
	tests := []struct {
		name        string
		doc         string
		wantName    string
		wantSection string
		wantErr     bool
	}{
		{name: "setext", doc: "telestra-sipd 8 \"2026\" \"telestra-sip\" \"System Manager's Manual\"\n====\n\n# NAME\n", wantName: "telestra-sipd", wantSection: "8"},
		{name: "atx", doc: "# sipplan.toml 5 \"2026\"\n\n# NAME\n", wantName: "sipplan.toml", wantSection: "5"},
		{name: "leading comment and blank lines", doc: "<!-- generated -->\n\ntelestra-sipctl 1\n===\n", wantName: "telestra-sipctl", wantSection: "1"},
		{name: "no section", doc: "telestra-sipd\n===\n", wantErr: true},
		{name: "section not a number", doc: "# telestra-sipd daemon\n", wantErr: true},
		{name: "no heading", doc: "just text\n\nmore text\n", wantErr: true},
		{name: "empty", doc: "", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, s, err := title([]byte(tc.doc))
			if tc.wantErr {
				if !errors.Is(err, errNoTitle) {
					t.Fatalf("title() error = %v, want errNoTitle", err)
				}
				return
			}
			if err != nil || n != tc.wantName || s != tc.wantSection {
				t.Fatalf("title() = %q, %q, %v; want %q, %q", n, s, err, tc.wantName, tc.wantSection)
			}
		})
	}
}

func TestRun(t *testing.T) {
	src, out := t.TempDir(), filepath.Join(t.TempDir(), "man")
	write := func(name, doc string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(src, name), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("a.8.md", "telestra-sipd 8 \"November 2026\" \"telestra-sip\"\n===\n\n# NAME\ntelestra-sipd - the daemon\n\n# OPTIONS\n**-check**\n:   validate the plan\n")
	write("b.md", "# sipplan.toml 5\n\n# NAME\nsipplan.toml - the plan\n")
	write("notes.txt", "ignored")

	got, err := run(src, out)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	want := []string{filepath.Join(out, "sipplan.toml.5"), filepath.Join(out, "telestra-sipd.8")}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("run wrote %v, want %v", got, want)
	}
	troff, err := os.ReadFile(want[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`.TH telestra-sipd 8 "November 2026" "telestra-sip"`, `telestra-sipd \- the daemon`, ".SH OPTIONS", `\fB-check\fP`} {
		if !strings.Contains(string(troff), s) {
			t.Errorf("telestra-sipd.8 lacks %q:\n%s", s, troff)
		}
	}

	t.Run("duplicate title", func(t *testing.T) {
		write("c.md", "# sipplan.toml 5\n")
		if _, err := run(src, out); err == nil || !strings.Contains(err.Error(), "both have the title sipplan.toml.5") {
			t.Fatalf("run error = %v, want duplicate title", err)
		}
	})
	t.Run("empty directory", func(t *testing.T) {
		if _, err := run(t.TempDir(), out); err == nil {
			t.Fatal("run on an empty directory succeeded, want an error")
		}
	})
}

func TestNonASCIIBecomesTroffGlyphs(t *testing.T) {
	p, err := convert([]byte("x 1 \"2026\" \"s\" \"m\"\n=====\n\nKEY = OLD → NEW, at most ≤ 2 — done\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := string(p.troff)
	for _, want := range []string{`OLD \(-> NEW`, `\(<= 2`, `\(em done`} {
		if !strings.Contains(got, want) {
			t.Errorf("troff lacks %q:\n%s", want, got)
		}
	}
	for _, r := range got {
		if r > 127 {
			t.Fatalf("non-ASCII %q left in the troff:\n%s", r, got)
		}
	}
}
