package sip

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// TestTransportTo: requests of a dialog go over the transport its first
// hop names when we listen on it, else over the dialog's transport, else
// the outbound one (found with SIPp over TCP against a UDP-first plan: the
// BYE went out over UDP to a TCP-only peer).
func TestTransportTo(t *testing.T) {
	uri := func(param string) sip.Uri {
		u := sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: 5090, UriParams: sip.NewParams()}
		if param != "" {
			u.UriParams.Add("transport", param)
		}
		return u
	}
	for _, tc := range []struct {
		name          string
		udp, tcp      int
		out, dialog   string
		param, wantTP string
	}{
		{name: "no param, outbound UDP", udp: 1, tcp: 1, out: "UDP", wantTP: "UDP"},
		{name: "no param, TCP dialog", udp: 1, tcp: 1, out: "UDP", dialog: "TCP", wantTP: "TCP"},
		{name: "tcp param beats UDP first", udp: 1, tcp: 1, out: "UDP", param: "tcp", wantTP: "TCP"},
		{name: "upper-case param", udp: 1, tcp: 1, out: "UDP", param: "TCP", wantTP: "TCP"},
		{name: "udp param in a TCP dialog", udp: 1, tcp: 1, out: "TCP", dialog: "TCP", param: "udp", wantTP: "UDP"},
		{name: "tcp param but no TCP listener", udp: 1, out: "UDP", param: "tcp", wantTP: "UDP"},
		{name: "unknown param", udp: 1, tcp: 1, out: "TCP", param: "sctp", wantTP: "TCP"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &UA{udpPort: tc.udp, tcpPort: tc.tcp, outTransport: tc.out}
			if got := u.transportTo(uri(tc.param), tc.dialog); got != tc.wantTP {
				t.Errorf("transportTo(transport=%q, dialog %q) = %q, want %q", tc.param, tc.dialog, got, tc.wantTP)
			}
		})
	}
}
