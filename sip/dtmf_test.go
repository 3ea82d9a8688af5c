package sip

import (
	"testing"
	"time"
)

func TestParseDTMFInfo(t *testing.T) {
	tests := []struct {
		name  string
		ctype string
		body  string
		digit rune
		dur   time.Duration
		ok    bool
	}{
		{"dtmf-relay", "application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", '5', 160 * time.Millisecond, true},
		{"lower case, spaces, no duration", "Application/DTMF-Relay; charset=x", "signal = #\n", '#', 0, true},
		{"letter", "application/dtmf-relay", "Signal=b\r\nDuration=250", 'B', 250 * time.Millisecond, true},
		{"event code for star", "application/dtmf-relay", "Signal=10\r\nDuration=100", '*', 100 * time.Millisecond, true},
		{"application/dtmf", "application/dtmf", "7", '7', 0, true},
		{"absurd duration ignored", "application/dtmf-relay", "Signal=1\r\nDuration=99999999", '1', 0, true},
		{"no signal", "application/dtmf-relay", "Duration=100", 0, 0, false},
		{"bad signal", "application/dtmf-relay", "Signal=E", 0, 0, false},
		{"other type", "application/media_control+xml", "<x/>", 0, 0, false},
		{"empty", "", "", 0, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, dur, ok := parseDTMFInfo(tc.ctype, []byte(tc.body))
			if d != tc.digit || dur != tc.dur || ok != tc.ok {
				t.Errorf("got %q %v %v, want %q %v %v", d, dur, ok, tc.digit, tc.dur, tc.ok)
			}
		})
	}
}

func FuzzParseDTMFInfo(f *testing.F) {
	f.Add("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n")
	f.Add("application/dtmf", "#")
	f.Fuzz(func(t *testing.T, ctype, body string) {
		d, _, ok := parseDTMFInfo(ctype, []byte(body))
		if ok != (d != 0) || (ok && dtmfRune(string(d)) != d) {
			t.Fatalf("digit %q ok %v", d, ok)
		}
	})
}

func TestValidDTMF(t *testing.T) {
	tests := []struct {
		name   string
		digits string
		ok     bool
	}{
		{"all", "0123456789*#ABCDabcd,", true},
		{"empty", "", false},
		{"letter E", "12E", false},
		{"space", "1 2", false},
		{"too many", string(make([]byte, MaxDTMFDigits+1)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := validDTMF(tc.digits); (err == nil) != tc.ok {
				t.Errorf("validDTMF(%q) = %v", tc.digits, err)
			}
		})
	}
}
