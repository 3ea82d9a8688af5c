package hw

import "math"

// ToneLevel is the loopback tone's amplitude: −12 dBFS of full scale.
var ToneLevel = math.Pow(10, -12.0/20) // 0.2512

// toneGen produces a sine with continuous phase across calls.
type toneGen struct {
	step  float64 // phase increment per sample, radians
	amp   float64 // peak, in int16 units
	phase float64
}

func newToneGen(hz float64, rate int, level float64) *toneGen {
	return &toneGen{step: 2 * math.Pi * hz / float64(rate), amp: level * 32767}
}

// fill writes interleaved frames of channels samples, the same value in each.
func (g *toneGen) fill(dst []int16, channels int) {
	if channels < 1 {
		channels = 1
	}
	for i := 0; i+channels <= len(dst); i += channels {
		v := int16(math.Round(g.amp * math.Sin(g.phase)))
		for c := 0; c < channels; c++ {
			dst[i+c] = v
		}
		g.phase += g.step
		if g.phase >= 2*math.Pi {
			g.phase -= 2 * math.Pi
		}
	}
}

// Goertzel returns the share (0..1) of the power of mono samples that lies
// at hz: 1 for a pure sine at hz spanning whole cycles, near 0 for silence or
// other frequencies. Use windows of a few hundred milliseconds for a clean
// estimate; leakage lowers the ratio when the window cuts a cycle.
func Goertzel(samples []int16, rate int, hz float64) float64 {
	n := len(samples)
	if n == 0 || rate <= 0 {
		return 0
	}
	w := 2 * math.Pi * hz / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2, energy float64
	for _, v := range samples {
		x := float64(v)
		s0 := x + coeff*s1 - s2
		s2, s1 = s1, s0
		energy += x * x
	}
	if energy == 0 {
		return 0
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2 // |X(hz)|²
	return power * 2 / (float64(n) * energy)
}

// RMS returns the root mean square of samples as a fraction of full scale:
// 0.177 for a sine at −12 dBFS peak (0.2512/√2).
func RMS(samples []int16) float64 {
	if len(samples) == 0 {
		return 0
	}
	var sum float64
	for _, v := range samples {
		x := float64(v) / 32768
		sum += x * x
	}
	return math.Sqrt(sum / float64(len(samples)))
}
