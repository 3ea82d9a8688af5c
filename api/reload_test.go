package api

import (
	"context"
	"errors"
	"testing"
)

type fakeReloader struct {
	r   Reloaded
	err error
}

func (f fakeReloader) Reload(context.Context) (Reloaded, error) { return f.r, f.err }

func TestReloadCommand(t *testing.T) {
	tests := []struct {
		name     string
		reloader Reloader // nil: server without the extension
		want     string
	}{
		{name: "not available", want: `{"event":"fail","account":"","error":"reload is not available on this server","cmd":"reload"}`},
		{name: "nothing changed", reloader: fakeReloader{r: Reloaded{Plan: "/p.toml"}},
			want: `{"event":"reloaded","plan":"/p.toml","changes":[]}`},
		{name: "changes", reloader: fakeReloader{r: Reloaded{Plan: "/p.toml", Changes: []Change{
			{Key: "accounts.a", Kind: "added", Text: "accounts.a: added"},
			{Key: "sip-settings.port", Kind: "changed", Old: "5060", New: "5070", Restart: true, Text: "sip-settings.port = 5060 → 5070"},
		}}},
			want: `{"event":"reloaded","plan":"/p.toml","changes":[{"key":"accounts.a","kind":"added","text":"accounts.a: added"},` +
				`{"key":"sip-settings.port","kind":"changed","old":"5060","new":"5070","restart":true,"text":"sip-settings.port = 5060 → 5070"}]}`},
		{name: "rejected lists every problem", reloader: fakeReloader{err: &ReloadRejected{Plan: "/p.toml", Problems: []string{"/p.toml:2: a: bad", "/p.toml:3: b: bad"}}},
			want: `{"event":"fail","account":"","error":"reload of /p.toml rejected, the running plan is kept (2 problems): /p.toml:2: a: bad; /p.toml:3: b: bad",` +
				`"cmd":"reload","problems":["/p.toml:2: a: bad","/p.toml:3: b: bad"]}`},
		{name: "other error", reloader: fakeReloader{err: errors.New("telestra-sipd is stopping")},
			want: `{"event":"fail","account":"","error":"telestra-sipd is stopping","cmd":"reload"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []Option
			if tc.reloader != nil {
				opts = append(opts, WithReloader(tc.reloader))
			}
			s := NewServer(withLimits(Config{Address: "127.0.0.1"}), &fakeController{}, testLogger(t), opts...)
			if err := s.Listen(); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Serve(ctx) }()
			defer func() { cancel(); <-done }()
			c := dial(t, s)
			c.send(`{"cmd":"reload"}` + "\x00")
			if got := c.nextRaw(); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			// Tagged, the same answer echoes the tag (its last field).
			c.send(`{"cmd":"reload","tag":"t"}` + "\x00")
			if got, want := c.nextRaw(), tc.want[:len(tc.want)-1]+`,"tag":"t"}`; got != want {
				t.Fatalf("tagged: got  %s\nwant %s", got, want)
			}
		})
	}
}
