package sip

import (
	"testing"
)

// TestPhaseMoves pins the phase machine's legal moves, including the two
// transfer phases: each is left for confirmed (the transfer failed) or
// ended, never entered from anything but confirmed.
func TestPhaseMoves(t *testing.T) {
	all := []phase{phaseRinging, phaseEarly, phaseAnswering, phaseConfirmed, phaseTransferring, phaseReferred, phaseEnding, phaseEnded}
	want := map[phase]string{
		phaseRinging:      "early answering confirmed ending ended",
		phaseEarly:        "confirmed ending ended",
		phaseAnswering:    "confirmed ended",
		phaseConfirmed:    "transferring referred ended",
		phaseTransferring: "confirmed ended",
		phaseReferred:     "confirmed ended",
		phaseEnding:       "ended",
		phaseEnded:        "",
	}
	for _, from := range all {
		got := ""
		for _, to := range all {
			if from.canMoveTo(to) {
				if got != "" {
					got += " "
				}
				got += to.String()
			}
		}
		if got != want[from] {
			t.Errorf("%s -> {%s}, want {%s}", from, got, want[from])
		}
	}
	for _, p := range all {
		if est := p == phaseConfirmed || p == phaseTransferring || p == phaseReferred; p.established() != est {
			t.Errorf("%s.established() = %v", p, p.established())
		}
	}
}

func TestParseSipfrag(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		code   int
		reason string
		ok     bool
	}{
		{"ok", "SIP/2.0 200 OK\r\n", 200, "OK", true},
		{"trying, no CRLF", "SIP/2.0 100 Trying", 100, "Trying", true},
		{"leading blank line and headers", "\r\nSIP/2.0 486 Busy Here\r\nContent-Length: 0\r\n", 486, "Busy Here", true},
		{"no reason", "SIP/2.0 503", 503, "", true},
		{"lower-case version", "sip/2.0 180 Ringing", 180, "Ringing", true},
		{"a request line", "INVITE sip:x@y SIP/2.0", 0, "", false},
		{"code out of range", "SIP/2.0 99 Odd", 0, "", false},
		{"empty", "", 0, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, reason, ok := parseSipfrag([]byte(tc.body))
			if code != tc.code || reason != tc.reason || ok != tc.ok {
				t.Errorf("got %d %q %v, want %d %q %v", code, reason, ok, tc.code, tc.reason, tc.ok)
			}
		})
	}
}

func TestParseReferTo(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" for an error
	}{
		{"bracketed", "<sip:3003@127.0.0.1:5070>", "sip:3003@127.0.0.1:5070"},
		{"display name and header params", `"Desk" <sip:3003@pbx;user=phone>;x=1`, "sip:3003@pbx;user=phone"},
		{"bare with URI params (baresip)", "sip:3009@127.0.0.1:7000;transport=tcp", "sip:3009@127.0.0.1:7000;transport=tcp"},
		{"attended transfer's Replaces dropped", "<sip:3003@pbx?Replaces=abc%3Bto-tag%3D1%3Bfrom-tag%3D2>", "sip:3003@pbx"},
		{"tel: refused", "<tel:+15551234>", ""},
		{"no host", "<sip:>", ""},
		{"unclosed", "<sip:3003@pbx", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := parseReferTo(tc.in)
			switch {
			case tc.want == "" && err == nil:
				t.Errorf("accepted: %v", u)
			case tc.want != "" && err != nil:
				t.Errorf("error %v", err)
			case tc.want != "" && u.String() != tc.want:
				t.Errorf("got %s, want %s", u, tc.want)
			}
		})
	}
}

func TestParseReplaces(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want replacesID
		ok   bool
	}{
		{"rfc 3891 example", "98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff",
			replacesID{callID: "98732@sip.example.com", toTag: "ff87ff", fromTag: "r33th4x0r"}, true},
		{"early-only, spaces", " abc ; to-tag = 1 ; from-tag=2;early-only",
			replacesID{callID: "abc", toTag: "1", fromTag: "2", earlyOnly: true}, true},
		{"missing from-tag", "abc;to-tag=1", replacesID{callID: "abc", toTag: "1"}, false},
		{"empty", "", replacesID{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseReplaces(tc.in)
			if got != tc.want || ok != tc.ok {
				t.Errorf("got %+v %v, want %+v %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestFragReason(t *testing.T) {
	tests := []struct {
		code   int
		reason string
		want   string
	}{
		{200, "OK", "OK"},
		{486, "486 Busy Here", "Busy Here"},
		{503, "cannot send INVITE: dial tcp: connection refused", "Service Unavailable"},
		{408, "no answer (timeout)", "Request Timeout"},
		{603, "603 Decline", "Decline"},
		{480, "", "Temporarily Unavailable"},
	}
	for _, tc := range tests {
		if got := fragReason(tc.code, tc.reason); got != tc.want {
			t.Errorf("fragReason(%d, %q) = %q, want %q", tc.code, tc.reason, got, tc.want)
		}
	}
}

func FuzzTransferHeaders(f *testing.F) {
	f.Add("SIP/2.0 200 OK\r\n", "<sip:3003@127.0.0.1>", "a;to-tag=1;from-tag=2")
	f.Add("SIP/2.0 100", "sip:x@h;transport=tcp", ";;")
	f.Fuzz(func(t *testing.T, frag, referTo, replaces string) {
		if code, _, ok := parseSipfrag([]byte(frag)); ok && (code < 100 || code > 699) {
			t.Fatalf("sipfrag code %d accepted", code)
		}
		if u, err := parseReferTo(referTo); err == nil && (u.Host == "" || u.Headers != nil && u.Headers.Length() > 0) {
			t.Fatalf("Refer-To %q gave %v", referTo, u)
		}
		if r, ok := parseReplaces(replaces); ok && (r.callID == "" || r.toTag == "" || r.fromTag == "") {
			t.Fatalf("Replaces %q gave %+v", replaces, r)
		}
	})
}
