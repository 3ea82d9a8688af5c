package media

import (
	"math"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/telestra/telestra-sip/sip/media/g722"
)

// TestG722OnTheWire: PT 9, 160 octets per 20 ms, and the RTP clock at
// 8000 Hz (RFC 3551 §4.5.2) although the audio is 16 kHz; the payload
// decodes with an independent decoder to the tone the port captured.
func TestG722OnTheWire(t *testing.T) {
	cfg := testConfig(40300, 40309)
	cfg.AudioRate = 16000
	e := newTestEngine(t, cfg)
	s := mustAllocate(t, e, nil)
	tone := newTonePort(3000, 8000)
	tone.rate = 16000
	s.Bind(tone)
	peer := listenTest(t)
	p := sendrecv(peer.LocalAddr().(*net.UDPAddr))
	p.Codec = Supported["G722"]
	s.Update(p)
	dec := g722.NewDecoder()
	var pcm []int16
	var first, last *rtp.Packet
	n := 0
	readRTP(t, peer, 3*time.Second, func(pk *rtp.Packet, _ netip.AddrPort) bool {
		if pk.PayloadType != 9 || len(pk.Payload) != 160 {
			t.Fatalf("packet PT %d, %d octets: want PT 9, 160", pk.PayloadType, len(pk.Payload))
		}
		if first == nil {
			first = pk
		} else if d := pk.Timestamp - last.Timestamp; d != uint32(160*(pk.SequenceNumber-last.SequenceNumber)) {
			t.Fatalf("timestamp step %d over %d packets: want 160 a packet", d, pk.SequenceNumber-last.SequenceNumber)
		}
		last = pk
		out := make([]int16, 320)
		pcm = append(pcm, out[:dec.Decode(out, pk.Payload)]...)
		n++
		return n < 50
	})
	toneCheckAt(t, pcm[len(pcm)/2:], 3000, 8000, 16000)
}

// resample runs x through a converter in 20 ms frames.
func resample(x []int16, up bool) []int16 {
	var out []int16
	if up {
		var u upsampler
		buf := make([]int16, 320)
		for off := 0; off+160 <= len(x); off += 160 {
			u.process(buf, x[off:off+160])
			out = append(out, buf...)
		}
		return out
	}
	var d downsampler
	buf := make([]int16, 160)
	for off := 0; off+320 <= len(x); off += 320 {
		d.process(buf, x[off:off+320])
		out = append(out, buf...)
	}
	return out
}

func sine(n int, hz, amp, rate float64) []int16 {
	x := make([]int16, n)
	for i := range x {
		x[i] = int16(amp * math.Sin(2*math.Pi*hz*float64(i)/rate))
	}
	return x
}

func TestResamplerResponse(t *testing.T) {
	const amp = 10000
	tests := []struct {
		name   string
		up     bool
		hz     float64
		minDB  float64 // output level relative to the input's, at hz
		maxDB  float64
		outHz  float64 // where the output is measured (an alias for stop band)
		outRat float64
	}{
		{name: "up 300 Hz", up: true, hz: 300, minDB: -0.5, maxDB: 0.5, outHz: 300, outRat: 16000},
		{name: "up 3.3 kHz", up: true, hz: 3300, minDB: -1, maxDB: 0.5, outHz: 3300, outRat: 16000},
		{name: "up image of 1 kHz", up: true, hz: 1000, minDB: -200, maxDB: -50, outHz: 7000, outRat: 16000},
		{name: "down 1 kHz", up: false, hz: 1000, minDB: -0.5, maxDB: 0.5, outHz: 1000, outRat: 8000},
		{name: "down 3.3 kHz", up: false, hz: 3300, minDB: -1, maxDB: 0.5, outHz: 3300, outRat: 8000},
		{name: "down 5 kHz aliases to 3 kHz", up: false, hz: 5000, minDB: -200, maxDB: -50, outHz: 3000, outRat: 8000},
		{name: "down 7 kHz aliases to 1 kHz", up: false, hz: 7000, minDB: -200, maxDB: -50, outHz: 1000, outRat: 8000},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inRate := 16000.0
			if tc.up {
				inRate = 8000
			}
			out := resample(sine(int(inRate), tc.hz, amp, inRate), tc.up)
			out = out[len(out)/4:] // past the filter's start-up
			// goertzel is power per sample²: a sine of amplitude A gives A²/4.
			db := 10 * math.Log10(goertzel(out, tc.outHz, tc.outRat)/(amp*amp/4))
			t.Logf("%.2f dB at %.0f Hz", db, tc.outHz)
			if db < tc.minDB || db > tc.maxDB {
				t.Errorf("%.1f dB at %.0f Hz, want %.1f..%.1f", db, tc.outHz, tc.minDB, tc.maxDB)
			}
		})
	}
}

func TestResamplerNoAllocs(t *testing.T) {
	var u upsampler
	var d downsampler
	in8, in16 := make([]int16, 160), make([]int16, 320)
	out8, out16 := make([]int16, 160), make([]int16, 320)
	if n := testing.AllocsPerRun(100, func() {
		u.process(out16, in8)
		d.process(out8, in16)
	}); n != 0 {
		t.Errorf("%v allocations a frame", n)
	}
}

func BenchmarkResample20ms(b *testing.B) {
	var u upsampler
	var d downsampler
	in8, in16 := sine(160, 440, 8000, 8000), sine(320, 440, 8000, 16000)
	out8, out16 := make([]int16, 160), make([]int16, 320)
	b.ReportAllocs()
	for b.Loop() {
		u.process(out16, in8)
		d.process(out8, in16)
	}
}
