package testpeers

import (
	"math"
	"math/cmplx"
)

// Sine returns seconds of a sine of hz at amplitude amp (0..1) as int16.
func Sine(rate int, hz, amp, seconds float64) []int16 {
	n := int(seconds * float64(rate))
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(math.Round(amp * 32767 * math.Sin(2*math.Pi*hz*float64(i)/float64(rate))))
	}
	return out
}

// RMS of the samples (a full-scale sine is 0.707).
func RMS(samples []float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	var s float64
	for _, x := range samples {
		s += x * x
	}
	return math.Sqrt(s / float64(len(samples)))
}

// goertzel returns |X(hz)|² of the block.
func goertzel(block []float64, rate int, hz float64) float64 {
	w := 2 * math.Pi * hz / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range block {
		s0 := x + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - coeff*s1*s2
}

// toneBlock is the analysis block of ToneRatio: 100 ms gives 10 Hz wide
// bins, so a tone a few Hz off (resampling, clock drift) still counts.
const toneBlock = 0.1

// ToneRatio is the share of the signal's energy that lies at hz, from 0 (none)
// to about 1 (a pure tone at hz). It is computed on 100 ms blocks and
// weighted by their energy, so silent stretches do not dilute it.
func ToneRatio(samples []float64, rate int, hz float64) float64 {
	n := int(toneBlock * float64(rate))
	if n < 8 {
		n = len(samples)
	}
	var tone, total float64
	for i := 0; i+n <= len(samples); i += n {
		b := samples[i : i+n]
		var e float64
		for _, x := range b {
			e += x * x
		}
		if e == 0 {
			continue
		}
		// For a pure sine of amplitude A over n samples, |X|² = (A n / 2)²
		// and e = A² n / 2, so |X|² / (n/2) equals e.
		tone += goertzel(b, rate, hz) / (float64(n) / 2)
		total += e
	}
	if total == 0 {
		return 0
	}
	return min(tone/total, 1)
}

// DominantFrequency returns the frequency (Hz) with the most energy, from an
// averaged (Welch) spectrum of Hann-windowed blocks refined by parabolic
// interpolation. 0 for silence or less than one block of audio.
func DominantFrequency(samples []float64, rate int) float64 {
	n := 1
	for n < rate/2 { // ~0.5 s blocks: ~2 Hz resolution
		n <<= 1
	}
	for n > len(samples) && n > 256 {
		n >>= 1
	}
	if len(samples) < n || n < 256 {
		return 0
	}
	win := make([]float64, n)
	for i := range win {
		win[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n-1))
	}
	spec := make([]float64, n/2+1)
	buf := make([]complex128, n)
	blocks := 0
	for start := 0; start+n <= len(samples); start += n / 2 {
		for i := range n {
			buf[i] = complex(samples[start+i]*win[i], 0)
		}
		fft(buf)
		for k := range spec {
			spec[k] += real(buf[k])*real(buf[k]) + imag(buf[k])*imag(buf[k])
		}
		blocks++
		if blocks >= 64 { // enough for an average; keeps long files fast
			break
		}
	}
	best := 1
	for k := 2; k < len(spec)-1; k++ {
		if spec[k] > spec[best] {
			best = k
		}
	}
	if spec[best] == 0 {
		return 0
	}
	// Parabolic interpolation on log magnitudes.
	a, b, c := math.Log(spec[best-1]+1e-30), math.Log(spec[best]+1e-30), math.Log(spec[best+1]+1e-30)
	off := 0.0
	if d := a - 2*b + c; d != 0 {
		off = 0.5 * (a - c) / d
	}
	return (float64(best) + off) * float64(rate) / float64(n)
}

// fft is an in-place iterative radix-2 FFT; len(x) must be a power of two.
func fft(x []complex128) {
	n := len(x)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j |= bit
		if i < j {
			x[i], x[j] = x[j], x[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		step := cmplx.Exp(complex(0, -2*math.Pi/float64(size)))
		for start := 0; start < n; start += size {
			w := complex(1, 0)
			for k := range size / 2 {
				u := x[start+k]
				v := x[start+k+size/2] * w
				x[start+k] = u + v
				x[start+k+size/2] = u - v
				w *= step
			}
		}
	}
}
