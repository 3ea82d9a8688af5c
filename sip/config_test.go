package sip

import (
	"strings"
	"testing"
	"time"
)

// The defaults are the plan's (plan.Default); a zero Config duration means
// the stated minimum, a negative one is rejected, and what has no minimum
// (transport, codecs, ptime) must be given.
func TestConfigZeroMeansMinimum(t *testing.T) {
	u, err := newUA(testConfig(Config{}), nil, nil, nil, &fakeAlloc{})
	if err != nil {
		t.Fatal(err)
	}
	if u.cur().RegisterExpires != 10*time.Second || u.cur().RegisterRetry != time.Second ||
		u.cur().EndedCallLinger != 0 || u.cur().seInterval != 90 || u.cur().UserAgent != "" {
		t.Errorf("zero config became expires %v, retry %v, linger %v, session %ds, user agent %q",
			u.cur().RegisterExpires, u.cur().RegisterRetry, u.cur().EndedCallLinger, u.cur().seInterval, u.cur().UserAgent)
	}
	u, err = newUA(testConfig(Config{RegisterExpires: time.Hour, RegisterRetry: 5 * time.Second, SessionExpires: 1800 * time.Second}),
		nil, nil, nil, &fakeAlloc{})
	if err != nil {
		t.Fatal(err)
	}
	if u.cur().RegisterExpires != time.Hour || u.cur().RegisterRetry != 5*time.Second || u.cur().seInterval != 1800 {
		t.Errorf("config values changed: expires %v, retry %v, session %ds", u.cur().RegisterExpires, u.cur().RegisterRetry, u.cur().seInterval)
	}
	for _, cfg := range []Config{
		{RegisterExpires: -time.Second}, {RegisterRetry: -time.Second},
		{EndedCallLinger: -time.Second}, {SessionExpires: -time.Second},
	} {
		if _, err := newUA(testConfig(cfg), nil, nil, nil, &fakeAlloc{}); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// No default of the UA's own: a Config without transport, codecs or ptime
// is refused rather than filled in.
func TestConfigWithoutRequiredValues(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{name: "no transport", edit: func(c *Config) { c.Transports = nil }, want: "no transport"},
		{name: "no codecs", edit: func(c *Config) { c.Codecs, c.Media.Codecs = nil, nil }, want: "none of the codecs"},
		{name: "no ptime", edit: func(c *Config) { c.Media.PTime = 0 }, want: "ptime 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(Config{})
			tt.edit(&cfg)
			_, err := newUA(cfg, nil, nil, nil, &fakeAlloc{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("newUA: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
