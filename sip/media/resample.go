package media

import "math"

// A G.711 call on a 16 kHz channel, or a G.722 call on an 8 kHz one, needs
// a 2:1 rate change between the codec and the AudioPort. Both directions
// use one half-band low-pass FIR: 47 taps, Kaiser window (beta 6, about
// 60 dB stop band), cut-off 4 kHz at 16 kHz, so G.711's band (to 3.4 kHz)
// passes flat and nothing above 4.7 kHz aliases into it. Every other tap of
// a half-band filter is zero except the centre (1/2), so each 8 kHz sample
// costs 24 multiplies. Fixed point (Q15) and allocation-free.

const hbSide = 12 // non-zero off-centre taps on each side

// hbCoef are the odd taps h[±1], h[±3] … h[±23] laid out over a window of
// the 24 newest odd-phase samples, oldest first (symmetric), in Q15.
var hbCoef = func() (c [2 * hbSide]int32) {
	const beta = 6.0
	i0 := func(x float64) float64 { // modified Bessel function of order 0
		s, t := 1.0, 1.0
		for k := 1; k < 30; k++ {
			t *= (x / 2) / float64(k)
			s += t * t
		}
		return s
	}
	L := float64(2 * hbSide) // half the window span (taps at -23..23)
	for p := range c {
		k := float64(2*(hbSide-1-p) + 1)
		if k < 0 {
			k = -k
		}
		sinc := math.Sin(math.Pi*k/2) / (math.Pi * k)
		w := i0(beta*math.Sqrt(1-(k/L)*(k/L))) / i0(beta)
		c[p] = int32(math.Round(sinc * w * 32768))
	}
	return c
}()

// hbHist keeps the 24 newest samples twice over, so they are always
// contiguous as h[pos:pos+24].
type hbHist struct {
	h   [4 * hbSide]int32
	pos int
}

func (q *hbHist) push(v int32) {
	q.h[q.pos] = v
	q.h[q.pos+2*hbSide] = v
	q.pos++
	if q.pos == 2*hbSide {
		q.pos = 0
	}
}

// window is the 24 newest samples, oldest first.
func (q *hbHist) window() *[2 * hbSide]int32 { return (*[2 * hbSide]int32)(q.h[q.pos:]) }

// at is the sample back samples before the newest (0: the newest).
func (q *hbHist) at(back int) int32 { return q.window()[2*hbSide-1-back] }

func (q *hbHist) dot() int32 {
	w := q.window()
	var s int32
	for i := range hbSide {
		s += (w[i] + w[2*hbSide-1-i]) * hbCoef[i] // symmetric taps
	}
	return s
}

func sat16(v int32) int16 { return int16(min(max(v, -32768), 32767)) }

// upsampler doubles the rate of a stream (8 to 16 kHz), with a delay of
// 11.5 input samples.
type upsampler struct{ x hbHist }

// process writes 2*len(src) samples to dst (which must hold them).
func (u *upsampler) process(dst, src []int16) {
	dst = dst[:2*len(src)]
	for i, v := range src {
		u.x.push(int32(v))
		// The zero-stuffed stream's even phase meets only the centre tap
		// (1/2, times the interpolation gain 2); the odd phase meets the
		// side taps, doubled for the gain.
		dst[2*i] = int16(u.x.at(hbSide))
		dst[2*i+1] = sat16((u.x.dot() + 1<<13) >> 14)
	}
}

// downsampler halves the rate of a stream (16 to 8 kHz) after the
// anti-alias filter, with a delay of 23 input samples.
type downsampler struct {
	// even is the centre tap's delay line: the even-phase samples of the
	// last hbSide-1 pairs, so the centre sits between the odd window's
	// halves.
	even [hbSide - 1]int32
	ei   int
	odd  hbHist
}

// process reads pairs from src (len(src) even) and writes len(src)/2
// samples to dst.
func (d *downsampler) process(dst, src []int16) {
	n := len(src) / 2
	dst = dst[:n]
	for i := range n {
		centre := d.even[d.ei] // pushed hbSide-1 pairs ago
		d.even[d.ei] = int32(src[2*i])
		if d.ei++; d.ei == len(d.even) {
			d.ei = 0
		}
		d.odd.push(int32(src[2*i+1]))
		dst[i] = sat16((centre<<14 + d.odd.dot() + 1<<14) >> 15)
	}
}

// rateConv converts one session's audio between the codec rate and the
// port rate in both directions.
type rateConv struct {
	up   bool // port rate is twice the codec rate (else half)
	play struct {
		u upsampler
		d downsampler
	}
	capture struct {
		u upsampler
		d downsampler
	}
}

// toPort converts a decoded frame (codec rate) into a port frame.
func (r *rateConv) toPort(dst, src []int16) {
	if r.up {
		r.play.u.process(dst, src)
	} else {
		r.play.d.process(dst, src)
	}
}

// fromPort converts a captured port frame into a codec frame.
func (r *rateConv) fromPort(dst, src []int16) {
	if r.up {
		r.capture.d.process(dst, src)
	} else {
		r.capture.u.process(dst, src)
	}
}
