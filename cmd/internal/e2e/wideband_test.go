//go:build integration

package e2e

import (
	"math"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
	"github.com/telestra/telestra-sip/hw"
)

// peerHeard returns what the peer decoded during its only call, without
// the first second and the last 0.2 s.
func peerHeard(t *testing.T, p *testpeers.Baresip, d time.Duration) testpeers.Audio {
	t.Helper()
	wavs := p.ReceivedWAVs()
	if len(wavs) != 1 {
		t.Fatalf("peer recordings %v, want one *-dec.wav", wavs)
	}
	a, err := testpeers.ReadWAV(wavs[0])
	if err != nil {
		t.Fatal(err)
	}
	if a.Seconds() < d.Seconds()-1 {
		t.Fatalf("peer recorded %.1f s of a %v call", a.Seconds(), d)
	}
	return a.Slice(1, a.Seconds()-0.2)
}

// activeCodec waits until the call is active and returns its codec.
func activeCodec(t *testing.T, e *env, id int) string {
	t.Helper()
	c := waitCall(t, e.c, "acc1", id, "active call", func(c api.Call) bool { return c.State == "active" })
	return c.Codec
}

// TestWideband: calls with baresip's g722 module (libspandsp) both ways.
// A 3 kHz tone, which G.711 cannot carry, reaches the peer at 3 kHz and at
// the loopback tone's level, decoded by the peer at 16 kHz; the peer's
// 440 Hz comes back from an echo channel; codec choice follows the plan's
// order (docs/media.md), and G.711-only peers still get G.711.
func TestWideband(t *testing.T) {
	tests := []struct {
		name      string
		ours      []string // the plan's codecs
		peer      string   // the peer's audio_codecs, in its order
		dialIn    bool     // the peer calls the daemon (else make-call)
		loopback  string   // the daemon's channel
		wantCodec string
		wantRate  int     // the peer's decoded sample rate
		wantHz    float64 // what the peer must hear
		wantLevel float64 // its RMS, full scale 1; 0: any audible level
		minRatio  float64
	}{
		{name: "3 kHz tone to a caller over G722", ours: []string{"G722", "PCMU", "PCMA"}, peer: "g722/16000/1,pcmu",
			dialIn: true, loopback: "tone:3000", wantCodec: "G722", wantRate: 16000, wantHz: 3000, wantLevel: hw.ToneLevel / math.Sqrt2, minRatio: 0.8},
		{name: "3 kHz tone to a callee over G722", ours: []string{"G722", "PCMU"}, peer: "g722/16000/1,pcmu",
			loopback: "tone:3000", wantCodec: "G722", wantRate: 16000, wantHz: 3000, wantLevel: hw.ToneLevel / math.Sqrt2, minRatio: 0.8},
		{name: "6 kHz tone, beyond any G.711 band, over G722", ours: []string{"G722"}, peer: "g722/16000/1",
			dialIn: true, loopback: "tone:6000", wantCodec: "G722", wantRate: 16000, wantHz: 6000, wantLevel: hw.ToneLevel / math.Sqrt2, minRatio: 0.8},
		{name: "440 Hz echo from a caller over G722", ours: []string{"G722", "PCMU"}, peer: "g722/16000/1",
			dialIn: true, loopback: "echo", wantCodec: "G722", wantRate: 16000, wantHz: 440, minRatio: 0.7},
		{name: "440 Hz echo to a callee over G722", ours: []string{"G722"}, peer: "g722/16000/1,pcmu",
			loopback: "echo", wantCodec: "G722", wantRate: 16000, wantHz: 440, minRatio: 0.7},
		// A PBX-style offer with G.722 after PCMU: we answer in our order.
		{name: "offer lists G722 after PCMU: plan order wins", ours: []string{"G722", "PCMU", "PCMA"}, peer: "pcmu,pcma,g722/16000/1",
			dialIn: true, loopback: "echo", wantCodec: "G722", wantRate: 16000, wantHz: 440, minRatio: 0.7},
		{name: "plan prefers PCMU over an offered G722", ours: []string{"PCMU", "G722"}, peer: "g722/16000/1,pcmu",
			dialIn: true, loopback: "echo", wantCodec: "PCMU", wantRate: 8000, wantHz: 440, minRatio: 0.7},
		// G.711-only peers on a wideband plan (16 kHz channel, converted).
		{name: "G.711-only caller gets PCMA", ours: []string{"G722", "PCMU", "PCMA"}, peer: "pcma",
			dialIn: true, loopback: "echo", wantCodec: "PCMA", wantRate: 8000, wantHz: 440, minRatio: 0.7},
		{name: "G.711-only callee gets PCMU", ours: []string{"G722", "PCMU", "PCMA"}, peer: "pcmu",
			loopback: "echo", wantCodec: "PCMU", wantRate: 8000, wantHz: 440, minRatio: 0.7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			p := e.peer("3002", testpeers.BaresipOptions{Source: "ausine,440", Record: true, Codecs: tc.peer})
			e.start(&plan{Accounts: []account{e.user("acc1", "3001")}, Codecs: tc.ours,
				Channels: []channel{{Name: "ch1", Loopback: tc.loopback}}})
			waitRegistered(t, e.c, "acc1", 200)

			const talk = 3 * time.Second
			var id int
			if tc.dialIn {
				if err := p.Dial(e.uri("3001")); err != nil {
					t.Fatal(err)
				}
				in := wait(t, e.c, 10*time.Second, "call-incoming", event(api.EventCallIncoming, "acc1", -1))
				id = in.CallID
				if err := e.c.AnswerCall(e.ctx, "acc1", id); err != nil {
					t.Fatal(err)
				}
			} else {
				var err error
				if id, err = e.c.MakeCall(e.ctx, "acc1", "3002"); err != nil {
					t.Fatal(err)
				}
			}
			wait(t, e.c, 10*time.Second, "call-answered", event(api.EventCallAnswered, "acc1", id))
			if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_ESTABLISHED"); err != nil {
				t.Fatal(err)
			}
			if c := activeCodec(t, e, id); c != tc.wantCodec {
				t.Errorf("get-status codec %q, want %q", c, tc.wantCodec)
			}
			time.Sleep(talk)
			if err := p.Hangup(); err != nil {
				t.Fatal(err)
			}
			wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
			if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_CLOSED"); err != nil {
				t.Fatal(err)
			}
			heard := peerHeard(t, p, talk)
			if heard.Rate != tc.wantRate {
				t.Errorf("peer decoded at %d Hz, want %d (codec %s)", heard.Rate, tc.wantRate, tc.wantCodec)
			}
			expectTone(t, "peer heard", heard, tc.wantHz, tc.minRatio)
			if tc.wantLevel > 0 {
				rms := testpeers.RMS(heard.Samples)
				db := 20 * math.Log10(rms/tc.wantLevel)
				t.Logf("peer heard %.0f Hz at %.2f dB relative to the channel's tone", tc.wantHz, db)
				if math.Abs(db) > 1.5 {
					t.Errorf("level %.4f rms (%+.2f dB), want %.4f ± 1.5 dB", rms, db, tc.wantLevel)
				}
			}
		})
	}
}
