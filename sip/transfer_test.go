package sip

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
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

// peerRequest is pc's in-dialog request with a body of content type ct.
func peerRequest(pc *pcall, m sip.RequestMethod, ct string, body []byte, hdrs ...sip.Header) *sip.Request {
	req := pc.d.request(m, body, hdrs...)
	req.RemoveHeader("Content-Type")
	if ct != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", ct))
	}
	return req
}

// TestReferAccepted: the peer's REFER is accepted 202; CallTransferred
// names the new call before its CallAnswered; the NOTIFYs report 100
// (active) and 200 (terminated); the transferor's BYE ends the old call
// "transferred". A second REFER during the referral gets 491.
func TestReferAccepted(t *testing.T) {
	h, pc, id := dtmfCallIn(t, peerSDP(30000, "sendrecv", "", 1), "")
	p := pc.d.p
	invites := make(chan *sip.Request, 4)
	p.handle(sip.INVITE, func(req *sip.Request, tx sip.ServerTransaction) {
		invites <- req
		if err := tx.Respond(p.answer(req, 200, "OK", "target", peerSDP(30010, "sendrecv", "", 1))); err != nil {
			t.Error(err)
		}
	})
	notifies := make(chan *sip.Request, 4)
	p.handle(sip.NOTIFY, func(req *sip.Request, tx sip.ServerTransaction) {
		notifies <- req
		if err := tx.Respond(p.answer(req, 200, "OK", "", nil)); err != nil {
			t.Error(err)
		}
	})
	target := fmt.Sprintf("<sip:7777@127.0.0.1:%d>", p.port)
	res := p.do(peerRequest(pc, sip.REFER, "", nil, sip.NewHeader("Refer-To", target), sip.NewHeader("Referred-By", "<sip:5555@127.0.0.1>")))
	if res.StatusCode != 202 {
		t.Fatalf("REFER answered %d, want 202", res.StatusCode)
	}
	tr := h.ev.wait(t, CallTransferred, 2*time.Second)
	if tr.CallID != id || tr.NewCallID == id || !strings.Contains(tr.Target, "7777") {
		t.Errorf("CallTransferred %+v", tr)
	}
	var inv *sip.Request
	select {
	case inv = <-invites:
	case <-time.After(3 * time.Second):
		t.Fatal("no INVITE to the Refer-To target")
	}
	if v := inv.GetHeader("Referred-By"); v == nil || !strings.Contains(v.Value(), "5555") {
		t.Errorf("new INVITE without the REFER's Referred-By: %v", v)
	}
	ans := h.ev.wait(t, CallAnswered, 3*time.Second)
	if ans.CallID != tr.NewCallID {
		t.Errorf("CallAnswered %+v, want call %d", ans, tr.NewCallID)
	}
	var frags []string
	for len(frags) < 2 {
		var n *sip.Request
		select {
		case n = <-notifies:
		case <-time.After(3 * time.Second):
			t.Fatalf("NOTIFYs %q, want two", frags)
		}
		st := n.GetHeader("Subscription-State")
		frags = append(frags, strings.TrimSpace(string(n.Body()))+" / "+st.Value())
		if ev := n.GetHeader("Event"); ev == nil || !strings.HasPrefix(ev.Value(), "refer") {
			t.Errorf("NOTIFY Event %v", ev)
		}
	}
	if !strings.HasPrefix(frags[0], "SIP/2.0 100 Trying / active") || !strings.HasPrefix(frags[1], "SIP/2.0 200 OK / terminated") {
		t.Errorf("NOTIFYs %q, want 100 active then 200 terminated", frags)
	}
	res = p.do(peerRequest(pc, sip.REFER, "", nil, sip.NewHeader("Refer-To", target)))
	if res.StatusCode != 491 {
		t.Errorf("second REFER answered %d, want 491", res.StatusCode)
	}
	if res := pc.d.do(sip.BYE, nil); res.StatusCode != 200 {
		t.Fatalf("BYE %d", res.StatusCode)
	}
	ended := h.ev.wait(t, CallEnded, 2*time.Second)
	if ended.CallID != id || ended.Reason != "transferred" {
		t.Errorf("old call ended %+v, want transferred", ended)
	}
	if st := h.call(t, "a1", tr.NewCallID); st.State != StateActive || !st.Active {
		t.Errorf("new call %+v, want active on the channel", st)
	}
}

// TestTransferOutcome: Transfer holds the call, sends REFER with Refer-To
// and Referred-By; a NOTIFY 486 brings the call back (resumed) with
// TransferFailed; a second transfer's NOTIFY 200 ends it "transferred"
// with our BYE.
func TestTransferOutcome(t *testing.T) {
	h, pc, id := dtmfCallIn(t, peerSDP(30000, "sendrecv", "", 1), "")
	p := pc.d.p
	var dirs []string
	var mu sync.Mutex
	p.handle(sip.INVITE, func(req *sip.Request, tx sip.ServerTransaction) {
		mu.Lock()
		dirs = append(dirs, sdpDir(req.Body()))
		mu.Unlock()
		mirror := map[string]string{"sendonly": "recvonly", "sendrecv": "sendrecv"}[sdpDir(req.Body())]
		if err := tx.Respond(p.answer(req, 200, "OK", "", peerSDP(30000, mirror, "", 2))); err != nil {
			t.Error(err)
		}
	})
	p.handle(sip.REFER, func(req *sip.Request, tx sip.ServerTransaction) {
		if err := tx.Respond(p.answer(req, 202, "Accepted", "", nil)); err != nil {
			t.Error(err)
		}
	})
	notify := func(frag string) {
		t.Helper()
		res := p.do(peerRequest(pc, sip.NOTIFY, "message/sipfrag", []byte(frag),
			sip.NewHeader("Event", "refer"), sip.NewHeader("Subscription-State", "terminated;reason=noresource")))
		if res.StatusCode != 200 {
			t.Errorf("NOTIFY %q answered %d", frag, res.StatusCode)
		}
	}
	if err := h.ua.Transfer("a1", id, "sip:8888@127.0.0.1:5999"); err != nil {
		t.Fatal(err)
	}
	refer := p.expect(sip.REFER, 3*time.Second)
	if v := refer.GetHeader("Refer-To"); v == nil || !strings.Contains(v.Value(), "sip:8888@127.0.0.1:5999") {
		t.Errorf("Refer-To %v", v)
	}
	if v := refer.GetHeader("Referred-By"); v == nil || !strings.Contains(v.Value(), "3001") {
		t.Errorf("Referred-By %v", v)
	}
	if err := h.ua.Transfer("a1", id, "sip:8889@127.0.0.1:5999"); !errors.Is(err, ErrCallState) {
		t.Errorf("a second Transfer during the first: %v", err)
	}
	notify("SIP/2.0 486 Busy Here\r\n")
	f := h.ev.wait(t, TransferFailed, 2*time.Second)
	if f.Code != 486 || !strings.Contains(f.Reason, "486 Busy Here") {
		t.Errorf("TransferFailed %+v", f)
	}
	eventually(t, "resumed", 3*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(dirs) == 2 && dirs[0] == "sendonly" && dirs[1] == "sendrecv"
	})
	if st := h.call(t, "a1", id); st.State != StateActive {
		t.Errorf("after the failed transfer: %+v", st)
	}
	if err := h.ua.Transfer("a1", id, "sip:8888@127.0.0.1:5999"); err != nil {
		t.Fatal(err)
	}
	p.expect(sip.REFER, 3*time.Second)
	notify("SIP/2.0 200 OK\r\n")
	p.expect(sip.BYE, 3*time.Second)
	ended := h.ev.wait(t, CallEnded, 2*time.Second)
	if ended.Reason != "transferred" {
		t.Errorf("ended %+v, want transferred", ended)
	}
	// A NOTIFY now has no subscription.
	res := p.do(peerRequest(pc, sip.NOTIFY, "message/sipfrag", []byte("SIP/2.0 200 OK"),
		sip.NewHeader("Event", "refer"), sip.NewHeader("Subscription-State", "terminated")))
	if res.StatusCode != 481 {
		t.Errorf("late NOTIFY answered %d, want 481", res.StatusCode)
	}
}
