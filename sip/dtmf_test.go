package sip

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telestra/telestra-sip/sip/media"
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

// dtmfCallIn sets up an answered incoming call whose offer is body, with
// the peer's Allow header allow ("" for none).
func dtmfCallIn(t *testing.T, body []byte, allow string) (*harness, *pcall, int) {
	t.Helper()
	p := newPeer(t)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Audio: &fakePort{"c"}}}, nil)
	var hdrs []sip.Header
	if allow != "" {
		hdrs = append(hdrs, sip.NewHeader("Allow", allow))
	}
	pc := p.call(t, h.ua.udpPort, "3001", body, hdrs...)
	ev := h.ev.wait(t, CallIncoming, 2*time.Second)
	if err := h.ua.Answer("a1", ev.CallID); err != nil {
		t.Fatal(err)
	}
	res := pc.final(t, 3*time.Second)
	pc.ack(t, res, nil)
	h.ev.wait(t, CallAnswered, 2*time.Second)
	return h, pc, ev.CallID
}

func noEventSDP(port int) []byte {
	return []byte(fmt.Sprintf("v=0\r\no=peer 42 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n", port))
}

// TestDTMFByRTP: with telephone-event negotiated, digits (and pauses) are
// queued on the media session in order, a second SendDTMF after the
// first; received digits become DTMFReceived events until the call ends.
func TestDTMFByRTP(t *testing.T) {
	h, pc, id := dtmfCallIn(t, peerSDP(30000, "sendrecv", "", 1), "")
	if err := h.ua.SendDTMF("a1", id, "1,#", 0); err != nil {
		t.Fatal(err)
	}
	if err := h.ua.SendDTMF("a1", id, "b", 250*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	sess := h.alloc.session(0)
	want := []fakeDigit{{'1', 100 * time.Millisecond}, {',', dtmfPause}, {'#', 100 * time.Millisecond}, {'b', 250 * time.Millisecond}}
	if got := sess.digits(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("queued %v, want %v", got, want)
	}
	for _, tc := range []struct {
		digits string
		dur    time.Duration
	}{{"", 0}, {"12E", 0}, {"1", 10 * time.Millisecond}, {"1", 6 * time.Second}} {
		if err := h.ua.SendDTMF("a1", id, tc.digits, tc.dur); err == nil {
			t.Errorf("SendDTMF(%q, %v) accepted", tc.digits, tc.dur)
		}
	}
	sess.receive(media.DTMF{Digit: '5', Duration: 120 * time.Millisecond})
	ev := h.ev.wait(t, DTMFReceived, 2*time.Second)
	if ev.Digit != '5' || ev.Duration != 120*time.Millisecond || ev.CallID != id {
		t.Errorf("event %+v", ev)
	}
	if res := pc.d.do(sip.BYE, nil); res.StatusCode != 200 {
		t.Fatalf("BYE %d", res.StatusCode)
	}
	h.ev.wait(t, CallEnded, 2*time.Second)
	sess.receive(media.DTMF{Digit: '6'})
	h.ev.none(t, 100*time.Millisecond)
	if err := h.ua.SendDTMF("a1", id, "1", 0); !errors.Is(err, ErrCallState) {
		t.Errorf("SendDTMF on an ended call: %v", err)
	}
}

// TestDTMFByInfo: without telephone-event the digits go out as INFO
// dtmf-relay one after another; INFO digits from the peer are events; a
// peer that allows no INFO gets none and SendDTMF fails with ErrNoDTMF.
func TestDTMFByInfo(t *testing.T) {
	h, pc, id := dtmfCallIn(t, noEventSDP(30000), "INVITE, ACK, BYE, CANCEL, INFO")
	if err := h.ua.SendDTMF("a1", id, "4*", 0); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Signal=4\r\nDuration=100", "Signal=*\r\nDuration=100"} {
		req := pc.d.p.expect(sip.INFO, 3*time.Second)
		if ct := req.GetHeader("Content-Type"); ct == nil || ct.Value() != "application/dtmf-relay" || !strings.Contains(string(req.Body()), want) {
			t.Errorf("INFO %v body %q, want %q", ct, req.Body(), want)
		}
	}
	info := pc.d.request(sip.INFO, []byte("Signal=9\r\nDuration=180\r\n"))
	info.RemoveHeader("Content-Type")
	info.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
	if res := pc.d.p.do(info); res.StatusCode != 200 {
		t.Errorf("INFO answered %d", res.StatusCode)
	}
	ev := h.ev.wait(t, DTMFReceived, 2*time.Second)
	if ev.Digit != '9' || ev.Duration != 180*time.Millisecond {
		t.Errorf("event %+v", ev)
	}
	bad := pc.d.request(sip.INFO, []byte("Signal=Z\r\n"))
	bad.RemoveHeader("Content-Type")
	bad.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
	if res := pc.d.p.do(bad); res.StatusCode != 400 {
		t.Errorf("bad INFO answered %d, want 400", res.StatusCode)
	}

	h2, _, id2 := dtmfCallIn(t, noEventSDP(30002), "INVITE, ACK, BYE, CANCEL")
	if err := h2.ua.SendDTMF("a1", id2, "1", 0); !errors.Is(err, ErrNoDTMF) {
		t.Errorf("SendDTMF to a peer without telephone-event and INFO: %v, want ErrNoDTMF", err)
	}
}
