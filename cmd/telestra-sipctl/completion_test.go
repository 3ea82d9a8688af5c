package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary stand in for telestra-sipctl in the
// completion test (the completion runs "telestra-sipctl status").
func TestMain(m *testing.M) {
	if os.Getenv("TELESTRA_SIPCTL_TEST_AS_CLI") == "1" {
		os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// bashCompletionLib is the bash-completion package's library, which an
// interactive bash on RHEL loads; the completion also works without it.
const bashCompletionLib = "/usr/share/bash-completion/bash_completion"

// complete runs the packaged completion function in bash for the words
// (the last one is being completed) and returns the candidates; with lib,
// bash-completion's library is loaded first (_init_completion).
func complete(t *testing.T, path string, lib bool, words ...string) []string {
	t.Helper()
	script := `source ../../packaging/telestra-sipctl.bash-completion
COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}
_telestra_sipctl
printf '%s\n' "${COMPREPLY[@]}"`
	if lib {
		script = "source " + bashCompletionLib + "\n" + script
	}
	cmd := exec.Command("bash", append([]string{"-c", script, "bash", "telestra-sipctl"}, words...)...)
	cmd.Env = append(os.Environ(), "PATH="+path, "TELESTRA_SIPCTL_TEST_AS_CLI=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	got := strings.Fields(string(out))
	return got
}

func TestBashCompletion(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Fatal("bash not found: install the Debian package bash")
	}
	if _, err := os.Stat(bashCompletionLib); err != nil {
		t.Fatalf("%v: install the Debian package bash-completion", err)
	}
	s, _ := startServer(t)
	addr := s.Addr().String()
	bin := t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(self, filepath.Join(bin, "telestra-sipctl")); err != nil {
		t.Fatal(err)
	}
	path := bin + string(os.PathListSeparator) + os.Getenv("PATH")

	var names []string
	for _, cmd := range commandTable() {
		names = append(names, cmd.name)
	}
	tests := []struct {
		name  string
		words []string
		want  string // space-separated, in compgen's order
	}{
		{name: "every command and global flag", words: []string{""},
			want: strings.Join(names, " ") + " -addr -plan -timeout -h -help -version"},
		{name: "command prefix", words: []string{"st"}, want: "status"},
		{name: "command after flags", words: []string{"-timeout", "2s", "re"}, want: "reload"},
		{name: "help topic", words: []string{"help", "sw"}, want: "switch"},
		{name: "status flag", words: []string{"status", "--j"}, want: "--json"},
		{name: "hangup flag", words: []string{"hangup", "--d"}, want: "--decline"},
		{name: "accounts from the daemon", words: []string{"-addr", addr, "call", ""}, want: "account-1 account-2"},
		{name: "account prefix", words: []string{"-addr", addr, "hangup", "account-2"}, want: "account-2"},
		{name: "call IDs of the account", words: []string{"-addr", addr, "hangup", "account-1", ""}, want: "5 6 7"},
		{name: "nothing after the arguments", words: []string{"-addr", addr, "logout", "account-1", ""}, want: ""},
		{name: "no daemon, no accounts", words: []string{"-addr", "127.0.0.1:1", "call", ""}, want: ""},
	}
	for _, lib := range []bool{false, true} {
		for _, tc := range tests {
			t.Run(fmt.Sprintf("%s/bash-completion=%v", tc.name, lib), func(t *testing.T) {
				if got := strings.Join(complete(t, path, lib, tc.words...), " "); got != tc.want {
					t.Fatalf("completing %q: got %q, want %q", tc.words, got, tc.want)
				}
			})
		}
	}
}
