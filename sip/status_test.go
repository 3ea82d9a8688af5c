package sip

import (
	"testing"
	"time"
)

func TestRegState(t *testing.T) {
	now := time.Unix(1000, 0)
	srv := Account{Server: "127.0.0.1:5070", Register: true}
	tests := []struct {
		name string
		eff  Account
		rec  regRecord
		want string
	}{
		{name: "no server", eff: Account{Register: true}, want: RegNoServer},
		{name: "no server, logged out", eff: Account{}, rec: regRecord{loggedOut: true}, want: RegNoServer},
		{name: "register = false", eff: Account{Server: "127.0.0.1"}, want: RegDisabled},
		{name: "first attempt", eff: srv, want: RegRegistering},
		{name: "registered", eff: srv, rec: regRecord{outcome: regOK, expiresAt: now.Add(time.Second)}, want: RegRegistered},
		{name: "binding expired, refresh under way", eff: srv, rec: regRecord{outcome: regOK, expiresAt: now}, want: RegRegistering},
		{name: "rejected", eff: srv, rec: regRecord{outcome: regRejected, lastError: "403 Forbidden"}, want: RegRejected},
		{name: "unreachable", eff: srv, rec: regRecord{outcome: regUnreachable}, want: RegUnreachable},
		{name: "logged out", eff: srv, rec: regRecord{loggedOut: true}, want: RegLoggedOut},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := regState(tt.eff, tt.rec, now); got != tt.want {
				t.Errorf("regState = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestHoldName(t *testing.T) {
	tests := []struct {
		name string
		h    holdState
		want string
	}{
		{name: "none", want: HoldNone},
		{name: "local", h: holdState{want: true}, want: HoldLocal},
		{name: "local, not yet agreed", h: holdState{want: true, agreed: false}, want: HoldLocal},
		{name: "remote", h: holdState{remote: true}, want: HoldRemote},
		{name: "both", h: holdState{want: true, agreed: true, remote: true}, want: HoldBoth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := holdName(tt.h); got != tt.want {
				t.Errorf("holdName = %q, want %q", got, tt.want)
			}
		})
	}
}
