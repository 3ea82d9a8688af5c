package testpeers

import (
	"bytes"
	"math"
	"path/filepath"
	"testing"
)

func floats(s []int16) []float64 {
	out := make([]float64, len(s))
	for i, x := range s {
		out[i] = float64(x) / 32768
	}
	return out
}

func TestToneAnalysis(t *testing.T) {
	tests := []struct {
		name   string
		rate   int
		hz     float64
		amp    float64
		second float64 // a second tone mixed in at the same amplitude; 0: none
	}{
		{name: "440 Hz at 8 kHz", rate: 8000, hz: 440, amp: 0.5},
		{name: "1000 Hz at 8 kHz", rate: 8000, hz: 1000, amp: 0.3},
		{name: "880 Hz at 48 kHz", rate: 48000, hz: 880, amp: 0.5},
		{name: "quiet 440 Hz", rate: 8000, hz: 440, amp: 0.01},
		{name: "440 and 880", rate: 8000, hz: 440, amp: 0.4, second: 880},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := floats(Sine(tc.rate, tc.hz, tc.amp, 2))
			if tc.second != 0 {
				o := floats(Sine(tc.rate, tc.second, tc.amp*0.5, 2))
				for i := range s {
					s[i] += o[i]
				}
			}
			if f := DominantFrequency(s, tc.rate); math.Abs(f-tc.hz) > 2 {
				t.Errorf("DominantFrequency = %.1f, want %.0f±2", f, tc.hz)
			}
			r := ToneRatio(s, tc.rate, tc.hz)
			if tc.second == 0 && r < 0.95 {
				t.Errorf("ToneRatio(%v) = %.3f, want > 0.95", tc.hz, r)
			}
			if tc.second != 0 && (r < 0.7 || r > 0.9) {
				t.Errorf("ToneRatio(%v) with a second tone at 1/4 power = %.3f, want ~0.8", tc.hz, r)
			}
			if other := ToneRatio(s, tc.rate, tc.hz*1.5+7); other > 0.05 {
				t.Errorf("ToneRatio at %v = %.3f, want < 0.05", tc.hz*1.5+7, other)
			}
			if rms := RMS(floats(Sine(tc.rate, tc.hz, tc.amp, 1))); math.Abs(rms-tc.amp/math.Sqrt2) > 0.01 {
				t.Errorf("RMS = %.3f, want %.3f", rms, tc.amp/math.Sqrt2)
			}
		})
	}
	if f := DominantFrequency(make([]float64, 8000), 8000); f != 0 {
		t.Errorf("DominantFrequency(silence) = %v, want 0", f)
	}
	if r := ToneRatio(make([]float64, 8000), 8000, 440); r != 0 {
		t.Errorf("ToneRatio(silence) = %v, want 0", r)
	}
}

func TestWAVRoundTrip(t *testing.T) {
	in := Sine(8000, 1000, 0.5, 0.5)
	var buf bytes.Buffer
	if err := WriteWAV(&buf, 8000, in); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		image []byte
	}{
		{name: "complete", image: buf.Bytes()},
		// sndfile's files during a call: data size still 0.
		{name: "data size 0", image: func() []byte {
			b := bytes.Clone(buf.Bytes())
			copy(b[40:44], []byte{0, 0, 0, 0})
			return b
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := ParseWAV(tc.image)
			if err != nil {
				t.Fatal(err)
			}
			if a.Rate != 8000 || len(a.Samples) != len(in) {
				t.Fatalf("rate %d, %d samples; want 8000, %d", a.Rate, len(a.Samples), len(in))
			}
			for i := range in {
				if a.Samples[i] != float64(in[i])/32768 {
					t.Fatalf("sample %d = %v, want %v", i, a.Samples[i], float64(in[i])/32768)
				}
			}
			if s := a.Slice(0.1, 0.2); len(s.Samples) != 800 {
				t.Errorf("Slice(0.1,0.2) has %d samples, want 800", len(s.Samples))
			}
		})
	}
	if _, err := ParseWAV([]byte("RIFF\x00\x00\x00\x00WAVE")); err == nil {
		t.Error("ParseWAV without chunks: want an error")
	}
	path := filepath.Join(t.TempDir(), "t.wav")
	if err := WriteToneWAV(path, 8000, 440, 0.5, 1); err != nil {
		t.Fatal(err)
	}
	a, err := ReadWAV(path)
	if err != nil {
		t.Fatal(err)
	}
	if f := DominantFrequency(a.Samples, a.Rate); math.Abs(f-440) > 2 {
		t.Errorf("tone file: %.1f Hz, want 440", f)
	}
}

func TestPorts(t *testing.T) {
	tests := []struct {
		name string
		port int
		want bool
	}{
		{name: "sip", port: 5060, want: false},
		{name: "peer range", port: 5150, want: false},
		{name: "ctrl range", port: 4444, want: false},
		{name: "baresip rtp", port: 25000, want: false},
		{name: "other helper", port: 40500, want: false},
		{name: "privileged", port: 80, want: false},
		{name: "ephemeral", port: 45000, want: true},
		{name: "rtp region", port: 16500, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Allowed(tc.port); got != tc.want {
				t.Errorf("Allowed(%d) = %t, want %t", tc.port, got, tc.want)
			}
		})
	}
	seen := map[int]bool{}
	for range 20 {
		p := FreePortPair(t)
		if !Allowed(p) || !Allowed(p+1) || seen[p] || seen[p+1] {
			t.Fatalf("FreePortPair gave %d (seen before or forbidden)", p)
		}
		seen[p], seen[p+1] = true, true
	}
	lo, hi := FreeRTPRange(t, 20)
	if lo%2 != 0 || hi-lo != 19 {
		t.Fatalf("FreeRTPRange(20) = %d-%d, want an even start and 20 ports", lo, hi)
	}
	for p := lo; p <= hi; p++ {
		if !Allowed(p) || p >= 32768 && p < 61000 {
			t.Fatalf("RTP port %d is forbidden or ephemeral", p)
		}
	}
}
