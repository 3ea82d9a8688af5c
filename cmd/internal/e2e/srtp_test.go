//go:build integration

package e2e

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// ulaw decodes G.711 µ-law bytes (ITU-T G.711) to samples in -1..1.
func ulaw(b []byte) []float64 {
	out := make([]float64, len(b))
	for i, u := range b {
		u = ^u
		t := (int(u&0x0f)<<3 + 0x84) << (uint(u&0x70) >> 4)
		v := t - 0x84
		if u&0x80 != 0 {
			v = -v
		}
		out[i] = float64(v) / 32768
	}
	return out
}

// TestSRTPWithBaresip: over TLS with srtp = "required", a call from a
// baresip with its srtp module (mediaenc srtp-mand) and one to it carry
// SRTP: the peer hears its 440 Hz tone echoed by the daemon (decrypted and
// encrypted again), get-status says srtp, and tshark sees RTP headers whose
// payloads are no µ-law tone.
func TestSRTPWithBaresip(t *testing.T) {
	w := newTLSWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, k: w.k}
	peer := testpeers.StartBaresip(t, "3009", testpeers.BaresipOptions{Registrar: w.k.TLSAddr(), Transport: "tls",
		TLSCA: w.ca.Cert, TLSCert: w.peerBundle, MediaEnc: "srtp-mand", Source: "ausine,440", Record: true})
	lo, hi := peer.RTPRange()
	capture := testpeers.StartCapture(t, testpeers.PortRange{Min: lo, Max: hi})
	p := w.plan(t, w.ca.Cert)
	p.SRTP = "required"
	e.start(p)
	waitRegistered(t, e.c, "acc1", 200)

	// In: the peer calls.
	if err := peer.Dial("sip:3001@" + w.k.TLSAddr() + ";transport=tls"); err != nil {
		t.Fatal(err)
	}
	m := wait(t, e.c, 10*time.Second, "call-incoming with SRTP", func(m client.Message) bool {
		return m.Event == api.EventCallIncoming && m.Account == "acc1"
	})
	if err := e.c.AnswerCall(ctx, "acc1", m.CallID); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 10*time.Second, "call-answered", event(api.EventCallAnswered, "acc1", m.CallID))
	if _, err := peer.WaitEvent(peerCtx(t, 5*time.Second), "CALL_ESTABLISHED"); err != nil {
		t.Fatal(err)
	}
	call := waitCall(t, e.c, "acc1", m.CallID, "SRTP media flowing", func(c api.Call) bool { return c.SRTP && c.PacketsReceived > 100 })
	t.Logf("daemon: %+v", call)
	time.Sleep(2 * time.Second)
	if err := peer.Hangup(); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 10*time.Second, "call-ended", event(api.EventCallEnded, "acc1", m.CallID))
	if _, err := peer.WaitEvent(peerCtx(t, 5*time.Second), "CALL_CLOSED"); err != nil {
		t.Fatal(err)
	}

	// Out: the daemon calls the peer.
	id := e.callOut(t, "acc1", "3009")
	waitCall(t, e.c, "acc1", id, "SRTP media flowing", func(c api.Call) bool { return c.SRTP && c.PacketsReceived > 100 })
	time.Sleep(2 * time.Second)
	if err := e.c.HangupCall(ctx, "acc1", id, false); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 10*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
	capture.Stop()

	// The peer heard its own tone back through the daemon's SRTP, both calls.
	wavs := peer.ReceivedWAVs()
	if len(wavs) != 2 {
		t.Fatalf("peer recordings %v, want two", wavs)
	}
	for _, f := range wavs {
		a, err := testpeers.ReadWAV(f)
		if err != nil {
			t.Fatal(err)
		}
		expectTone(t, "peer hears its echo over SRTP", a.Slice(1, a.Seconds()-0.3), 440, 0.5)
	}
	if !strings.Contains(peer.Log(), "srtp") {
		t.Logf("baresip log does not mention srtp")
	}

	// On the wire: RTP headers (SRTP keeps them), payloads that are no tone.
	payloads := capture.Fields("rtp && rtp.p_type == 0", "rtp.payload")
	if len(payloads) < 200 {
		t.Fatalf("tshark saw %d RTP packets on the peer's ports, want the calls' media", len(payloads))
	}
	var clear []float64
	for _, hx := range payloads {
		b, err := hex.DecodeString(strings.ReplaceAll(hx, ":", ""))
		if err != nil {
			t.Fatalf("payload %q: %v", hx, err)
		}
		if len(b) == 160+10 {
			b = b[:160] // the 80-bit tag follows the payload
		}
		clear = append(clear, ulaw(b)...)
	}
	if r := testpeers.ToneRatio(clear, 8000, 440); r > 0.05 {
		t.Errorf("the captured payloads decoded as µ-law hold the 440 Hz tone (ratio %.3f): media in the clear", r)
	} else {
		t.Logf("%d captured payloads decoded as µ-law: 440 Hz ratio %.4f (noise)", len(payloads), r)
	}
}

// TestSRTPRequiredRefusesPlain: with srtp = "required", a plain offer from
// a peer over TLS gets 488, and a plain answer to our offer ends the call
// with 488.
func TestSRTPRequiredRefusesPlain(t *testing.T) {
	w := newTLSWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx, k: w.k}
	peer := testpeers.StartBaresip(t, "3009", testpeers.BaresipOptions{Registrar: w.k.TLSAddr(), Transport: "tls",
		TLSCA: w.ca.Cert, TLSCert: w.peerBundle})
	p := w.plan(t, w.ca.Cert)
	p.SRTP = "required"
	e.start(p)
	waitRegistered(t, e.c, "acc1", 200)

	if err := peer.Dial("sip:3001@" + w.k.TLSAddr() + ";transport=tls"); err != nil {
		t.Fatal(err)
	}
	ev, err := peer.WaitEvent(peerCtx(t, 10*time.Second), "CALL_CLOSED")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ev.Param, "488") {
		t.Errorf("peer's plain call closed with %q, want 488", ev.Param)
	}

	id, err := e.c.MakeCall(ctx, "acc1", "3009")
	if err != nil {
		t.Fatal(err)
	}
	ended := wait(t, e.c, 10*time.Second, "call-ended after a plain answer", event(api.EventCallEnded, "acc1", id))
	if ended.Code != 488 {
		t.Errorf("call ended %q code %d, want 488", ended.Reason, ended.Code)
	}
}
