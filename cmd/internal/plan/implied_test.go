package plan

import (
	"strings"
	"testing"
)

// Problems name keys the file has, or say where a value came from.
func TestProblemsNameWrittenKeys(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string // every problem, as Problem.String
	}{
		{name: "bad user is not repeated as auth-user", text: "[accounts.a]\nuser = \"30 01\"\n",
			want: []string{`p.toml:2: accounts.a.user: must be a SIP user part without spaces, control characters or any of @ : < > " \ (got "30 01")`}},
		{name: "bad auth-user of its own", text: "[accounts.a]\nuser = \"3001\"\nauth-user = \"a b\"\n",
			want: []string{`p.toml:3: accounts.a.auth-user: must not contain spaces, quotes, backslashes or control characters (got "a b")`}},
		{name: "default channel shared", text: "[accounts.a]\nuser = \"1\"\n[accounts.b]\nuser = \"2\"\n",
			want: []string{`p.toml:3: accounts.b: channel is not set, so it is "ch1" (the default channel, as the plan has no [audio.channels]): ` +
				`channel "ch1" is already bound to account "a"; each account needs its own channel`}},
		{name: "default SIP port inside a written RTP range", text: "[rtp-settings]\nport-min = 5000\nport-max = 6000\n[accounts.a]\nuser = \"1\"\n",
			want: []string{`p.toml: sip-settings.port is not set, so it is 5060 (the default): UDP port 5060 is inside the RTP range 5000-6000; move one of them`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.text), "p.toml")
			ps := problemsOf(t, err)
			var got []string
			for _, p := range ps {
				got = append(got, p.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestWarnings(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []string
	}{
		{name: "none", text: "[audio]\nbackend = \"pulse\"\n[audio.channels.c]\nsink = \"s\"\n[accounts.a]\nuser = \"1\"\n"},
		{name: "devices with the default backend",
			text: "[audio.channels.c]\nsink = \"alsa_output.usb\"\nsource = \"alsa_input.usb\"\n[accounts.a]\nuser = \"1\"\n",
			want: []string{
				`p.toml:2: audio.channels.c.sink: ignored: the backend is "loopback", the default, as [audio] sets no backend, which plays no device; set [audio] backend = "pulse" or "alsa" to use "alsa_output.usb"`,
				`p.toml:3: audio.channels.c.source: ignored: the backend is "loopback", the default, as [audio] sets no backend, which plays no device; set [audio] backend = "pulse" or "alsa" to use "alsa_input.usb"`,
			}},
		{name: "pulse-server and loopback key with alsa",
			text: "[audio]\nbackend = \"alsa\"\npulse-server = \"unix:/run/pulse/native\"\n[audio.channels.c]\nloopback = \"tone:440\"\n[accounts.a]\nuser = \"1\"\n",
			want: []string{
				`p.toml:3: audio.pulse-server: ignored: the backend is "alsa"; only the pulse backend uses it`,
				`p.toml:5: audio.channels.c.loopback: ignored: the backend is "alsa"; only the loopback backend uses it`,
			}},
		{name: "pipewire-quantum with loopback",
			text: "[audio]\npipewire-quantum = 512\n[accounts.a]\nuser = \"1\"\n",
			want: []string{
				`p.toml:2: audio.pipewire-quantum: ignored: the backend is "loopback", the default, as [audio] sets no backend; only the pulse backend uses it (with pipewire-pulse)`,
			}},
		{name: "register without server", text: "[accounts.a]\nuser = \"1\"\nregister = true\n",
			want: []string{`p.toml:3: accounts.a.register: has no effect: the account has no server to register with`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Parse([]byte(tc.text), "p.toml")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range p.Warnings {
				got = append(got, w.String())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
