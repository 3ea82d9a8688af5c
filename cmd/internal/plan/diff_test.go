package plan

import (
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	const base = "[accounts.a]\nuser = \"3001\"\npass = \"" + secret + "\"\nserver = \"127.0.0.1\"\n"
	tests := []struct {
		name string
		new  string
		want []string
	}{
		{name: "same", new: base},
		{name: "password changed, never shown", new: strings.Replace(base, secret, secret+"x", 1),
			want: []string{"accounts.a.pass changed (value not shown)"}},
		{name: "password removed", new: strings.Replace(base, "pass = \""+secret+"\"\n", "", 1),
			want: []string{`accounts.a.pass = (set) → (not set)`}},
		{name: "user changed: auth-user and display-name follow silently", new: strings.Replace(base, "3001", "3002", 1),
			want: []string{`accounts.a.user = "3001" → "3002"`}},
		{name: "auth-user of its own", new: base + "auth-user = \"digest-a\"\n",
			want: []string{`accounts.a.auth-user = "3001" → "digest-a"`}},
		{name: "table added and a setting changed", new: base + "register = false\n[audio.channels.c2]\n[log]\nlevel = \"debug\"\n",
			// The implicit ch1 gives way to the first channel the file has.
			want: []string{`audio.channels.ch1: removed`, `audio.channels.c2: added`, `log.level = "info" → "debug"`,
				`accounts.a.register = true → false`, `accounts.a.channel = "ch1" → "c2"`}},
		{name: "restart settings are changes too", new: "[sip-settings]\nport = 5070\ntransports = [\"udp\", \"tcp\"]\n" + base,
			want: []string{`sip-settings.port = 5060 → 5070`, `sip-settings.transports = ["udp"] → ["udp", "tcp"]`}},
	}
	old, err := Parse([]byte(base), "old.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			np, err := Parse([]byte(tc.new), "new.toml")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, c := range Diff(old, np) {
				got = append(got, c.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			if strings.Contains(strings.Join(got, "\n"), secret) {
				t.Fatal("a password in a change")
			}
		})
	}
}

// Tables added and removed are one change each, removed ones first, and a
// name with a dot is quoted as TOML writes it.
func TestDiffTables(t *testing.T) {
	old := mustParse(t, "[audio.channels.c1]\n[audio.channels.c2]\n[accounts.a]\nuser = \"1\"\nchannel = \"c1\"\n[accounts.gone]\nuser = \"2\"\nchannel = \"c2\"\n")
	np := mustParse(t, "[audio.channels.c1]\n[audio.channels.\"c.3\"]\n[accounts.a]\nuser = \"1\"\nchannel = \"c1\"\n[accounts.\"b.2\"]\nuser = \"3\"\nchannel = \"c.3\"\n")
	var got []string
	for _, c := range Diff(old, np) {
		got = append(got, c.String())
	}
	want := []string{`audio.channels.c2: removed`, `accounts.gone: removed`, `audio.channels."c.3": added`, `accounts."b.2": added`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
