package g722

import (
	"math"
	"testing"
)

// tone returns n samples of a sine at hz, amplitude a, 16 kHz.
func tone(n int, hz, a float64) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(a * math.Sin(2*math.Pi*hz*float64(i)/16000))
	}
	return out
}

// goertzel is the power of x at hz relative to x's total power.
func goertzel(x []int16, hz float64) (rms, share float64) {
	w := 2 * math.Pi * hz / 16000
	c := 2 * math.Cos(w)
	var s1, s2, tot float64
	for _, v := range x {
		s := float64(v) + c*s1 - s2
		s2, s1 = s1, s
		tot += float64(v) * float64(v)
	}
	p := s1*s1 + s2*s2 - c*s1*s2 // |X(hz)|^2
	n := float64(len(x))
	// A sine of amplitude A gives p = (A*n/2)^2 and total power n*A^2/2.
	return math.Sqrt(tot / n), p / (n * n / 4) / (2 * tot / n)
}

// TestRoundTripTones: tones across the wideband range come back at their
// level, with the QMF's 22-sample (1.375 ms) delay and little distortion.
func TestRoundTripTones(t *testing.T) {
	for _, hz := range []float64{300, 440, 1000, 3000, 5000, 7000} {
		in := tone(16000, hz, 10000)
		enc, dec := NewEncoder(), NewDecoder()
		code := make([]byte, 160)
		out := make([]int16, 0, len(in))
		frame := make([]int16, 320)
		for off := 0; off < len(in); off += 320 {
			n := enc.Encode(code, in[off:off+320])
			if n != 160 {
				t.Fatalf("Encode wrote %d octets, want 160", n)
			}
			if m := dec.Decode(frame, code); m != 320 {
				t.Fatalf("Decode wrote %d samples, want 320", m)
			}
			out = append(out, frame...)
		}
		rms, share := goertzel(out[4000:], hz) // skip the adaptation
		wantRMS := 10000 / math.Sqrt2
		if math.Abs(20*math.Log10(rms/wantRMS)) > 1 {
			t.Errorf("%v Hz: level %.0f rms, want %.0f ±1 dB", hz, rms, wantRMS)
		}
		if share < 0.97 {
			t.Errorf("%v Hz: %.1f%% of the power at the tone, want ≥ 97%%", hz, 100*share)
		}
	}
}

// TestReset: a reset coder repeats its output exactly.
func TestReset(t *testing.T) {
	in := tone(3200, 1000, 8000)
	e := NewEncoder()
	a := make([]byte, 1600)
	e.Encode(a, in)
	e.Reset()
	b := make([]byte, 1600)
	e.Encode(b, in)
	if string(a) != string(b) {
		t.Fatal("encoder output differs after Reset")
	}
	d := NewDecoder()
	x := make([]int16, 3200)
	d.Decode(x, a)
	d.Reset()
	y := make([]int16, 3200)
	d.Decode(y, a)
	for i := range x {
		if x[i] != y[i] {
			t.Fatalf("decoder sample %d differs after Reset", i)
		}
	}
}

func TestLengths(t *testing.T) {
	e, d := NewEncoder(), NewDecoder()
	for _, tc := range []struct {
		name          string
		dst, src, out int
	}{
		{name: "frame", dst: 160, src: 320, out: 160},
		{name: "odd sample ignored", dst: 160, src: 321, out: 160},
		{name: "short dst", dst: 10, src: 320, out: 10},
		{name: "empty", dst: 0, src: 0, out: 0},
	} {
		if n := e.Encode(make([]byte, tc.dst), make([]int16, tc.src)); n != tc.out {
			t.Errorf("%s: Encode = %d, want %d", tc.name, n, tc.out)
		}
	}
	if n := d.Decode(make([]int16, 9), make([]byte, 160)); n != 8 {
		t.Errorf("Decode into 9 samples = %d, want 8", n)
	}
}

func BenchmarkEncode20ms(b *testing.B) {
	in := tone(320, 1000, 8000)
	e := NewEncoder()
	out := make([]byte, 160)
	b.ReportAllocs()
	for b.Loop() {
		e.Encode(out, in)
	}
}

func BenchmarkDecode20ms(b *testing.B) {
	code := make([]byte, 160)
	NewEncoder().Encode(code, tone(320, 1000, 8000))
	d := NewDecoder()
	out := make([]int16, 320)
	b.ReportAllocs()
	for b.Loop() {
		d.Decode(out, code)
	}
}
