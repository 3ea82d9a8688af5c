package sip

import (
	"testing"
	"time"
)

// The defaults are the plan's; a zero Config value means the stated
// minimum, and a negative one is rejected.
func TestConfigZeroMeansMinimum(t *testing.T) {
	u, err := newUA(Config{}, nil, nil, nil, &fakeAlloc{})
	if err != nil {
		t.Fatal(err)
	}
	if u.cfg.RegisterExpires != 10*time.Second || u.cfg.RegisterRetry != time.Second ||
		u.cfg.EndedCallLinger != 0 || u.seInterval != 90 || u.cfg.UserAgent != "" {
		t.Errorf("zero config became expires %v, retry %v, linger %v, session %ds, user agent %q",
			u.cfg.RegisterExpires, u.cfg.RegisterRetry, u.cfg.EndedCallLinger, u.seInterval, u.cfg.UserAgent)
	}
	u, err = newUA(Config{RegisterExpires: time.Hour, RegisterRetry: 5 * time.Second, SessionExpires: 1800 * time.Second},
		nil, nil, nil, &fakeAlloc{})
	if err != nil {
		t.Fatal(err)
	}
	if u.cfg.RegisterExpires != time.Hour || u.cfg.RegisterRetry != 5*time.Second || u.seInterval != 1800 {
		t.Errorf("config values changed: expires %v, retry %v, session %ds", u.cfg.RegisterExpires, u.cfg.RegisterRetry, u.seInterval)
	}
	for _, cfg := range []Config{
		{RegisterExpires: -time.Second}, {RegisterRetry: -time.Second},
		{EndedCallLinger: -time.Second}, {SessionExpires: -time.Second},
	} {
		if _, err := newUA(cfg, nil, nil, nil, &fakeAlloc{}); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
