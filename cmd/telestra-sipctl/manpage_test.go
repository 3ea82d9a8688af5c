package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// telestra-sipctl(1) lists exactly the commands the CLI has, each with the
// CLI's own synopsis.
func TestManPageCommands(t *testing.T) {
	b, err := os.ReadFile("../../docs/man/telestra-sipctl.1.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start, end := strings.Index(text, "\n# COMMANDS\n"), strings.Index(text, "\n# EXIT STATUS\n")
	if start < 0 || end < start {
		t.Fatal("no COMMANDS section before EXIT STATUS")
	}
	item := regexp.MustCompile(`(?m)^\*\*([a-z-]+)\*\*(.*)$`)
	documented := map[string]string{}
	for _, m := range item.FindAllStringSubmatch(text[start:end], -1) {
		if _, seen := documented[m[1]]; !seen { // the definition comes first
			documented[m[1]] = strings.TrimSpace(m[2])
		}
	}
	strip := strings.NewReplacer("*", "")
	for _, cmd := range commandTable() {
		args, ok := documented[cmd.name]
		if !ok {
			t.Errorf("telestra-sipctl(1) does not document %q", cmd.name)
			continue
		}
		if got := strip.Replace(args); got != cmd.args {
			t.Errorf("telestra-sipctl(1) shows %q %q; the CLI's usage is %q", cmd.name, got, cmd.args)
		}
		delete(documented, cmd.name)
	}
	for name := range documented {
		t.Errorf("telestra-sipctl(1) documents %q, which the CLI does not have", name)
	}
}
