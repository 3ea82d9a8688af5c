package api

import (
	"strings"
	"testing"
)

func TestEncodeStatusExtensions(t *testing.T) {
	zero := 0
	st := Status{Account: "a1", AccountStatus: 503, Calls: []Call{{
		CallID: 2, Caller: "3001", Callee: "3002", Stopped: true, State: "ended", Direction: "out",
		DurationS: 0, EndReason: "remote hangup", EndCode: &zero, RemoteMedia: "[::1]:30000",
	}}, Registration: &Registration{State: "unreachable", Server: "127.0.0.1:5070", Transport: "udp",
		LastError: "408 Request Timeout (no answer from the registrar)", RetryIn: 4}}
	got := strings.TrimSuffix(string(encodeStatus(st, "")), "\x00")
	want := `{"event":"status","account":"a1","calls":[{"call_id":2,"caller":"3001","callee":"3002","started":false,"stopped":true,` +
		`"state":"ended","direction":"out","active":false,"packets_sent":0,"packets_received":0,"packets_lost":0,"jitter_ms":0,` +
		`"hold":"","duration_s":0,"end_reason":"remote hangup","end_code":0,"remote_media":"[::1]:30000",` +
		`"octets_sent":0,"octets_received":0,"rtt_ms":0,"mos":0,"r_factor":0}],"account_status":503,` +
		`"registration":{"state":"unreachable","server":"127.0.0.1:5070","transport":"udp","expires_in_s":0,` +
		`"last_error":"408 Request Timeout (no answer from the registrar)","retry_in_s":4}}`
	if got != want {
		t.Errorf("status\n got %s\nwant %s", got, want)
	}
}
