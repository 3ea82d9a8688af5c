// Package g722 is the ITU-T G.722 wideband codec in its 64 kbit/s mode:
// 16 kHz PCM split by a 24-tap QMF into two 8 kHz sub-bands, the lower one
// coded with 6-bit and the upper with 2-bit adaptive differential PCM, one
// octet per pair of input samples (RFC 3551: payload type 9, RTP clock 8000).
//
// The arithmetic follows the recommendation's fixed-point block description
// (blocks 1L-6L, 1H-6H and 4) operation for operation, so the sub-band
// coder is bit-exact with the ITU digital test sequences; the tests run them.
// The recommendation's coder takes 15-bit samples: 16-bit PCM enters shifted
// right by one after the QMF, and leaves shifted left.
//
// An Encoder or Decoder holds one direction of one call and is not safe for
// concurrent use. Neither allocates after construction.
package g722

// Fixed-point tables of the recommendation (64 kbit/s mode unless noted).
var (
	// QMF coefficients h0..h11; h23..h12 mirror them.
	qmfCoef = [12]int32{3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11}

	// Lower sub-band quantiser decision levels (block 1L), times det >> 12.
	q6 = [31]int32{0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714,
		786, 858, 940, 1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0}
	// Codes for interval i of the magnitude, negative and positive.
	iln = [31]uint8{0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4}
	ilp = [31]uint8{0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32}

	// Inverse quantiser outputs: 6-bit (64 kbit/s), 5-bit (56), 4-bit (48
	// and the predictor feedback of every mode), 2-bit upper band.
	qm6 = [64]int32{-136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232, -9360, -8576, -7856,
		-7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776, -2400, -2032, -1688, -1360, -1040, -728,
		24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456,
		4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136}
	qm5 = [32]int32{-280, -280, -23352, -17560, -14120, -11664, -9752, -8184, -6864, -5712, -4696, -3784, -2960, -2208, -1520, -880,
		23352, 17560, 14120, 11664, 9752, 8184, 6864, 5712, 4696, 3784, 2960, 2208, 1520, 880, 280, -280}
	qm4 = [16]int32{0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0}
	qm2 = [4]int32{-7408, -1616, 7408, 1616}

	// Scale factor adaptation (blocks 3L, 3H): log-domain multipliers by
	// magnitude code, and the antilog table.
	rl42 = [16]uint8{0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0}
	wl   = [8]int32{-60, -30, 58, 172, 334, 538, 1198, 3042}
	rh2  = [4]uint8{2, 1, 2, 1}
	wh   = [3]int32{0, -214, 798}
	ilb  = [32]int32{2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834,
		2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008}
)

// sat16 and sat15 are the recommendation's LIMIT operations.
func sat16(v int32) int32 { return min(max(v, -32768), 32767) }
func sat15(v int32) int32 { return min(max(v, -16384), 16383) }

// band is the adaptive predictor and scale factor of one sub-band.
type band struct {
	s   int32    // signal estimate (SL, SH)
	sz  int32    // zero part of the estimate (SZL)
	r1  int32    // previous reconstructed signal (RLT1)
	a   [2]int32 // pole coefficients (AL1, AL2)
	p   [2]int32 // previous partially reconstructed signals (PLT1, PLT2)
	b   [6]int32 // zero coefficients (BL1..BL6)
	d   [7]int32 // quantised differences, d[0] the current (DLT..DLT6)
	d2  [7]int32 // sat16(2*d[i]), the zero filter's input, kept so each is limited once
	r2  int32    // sat16(2*r1)
	nb  int32    // log scale factor (NBL, NBH)
	det int32    // scale factor (DETL, DETH)
}

func (b *band) reset(det int32) { *b = band{det: det} }

// scale is blocks 3L/3H (LOGSCL/LOGSCH + SCALEL/SCALEH): adapt the log
// scale factor by w, limit it to maxNB, and convert it to det. shift is 8
// for the lower band and 10 for the upper.
func (b *band) scale(w, maxNB, shift int32) {
	nb := (b.nb*127)>>7 + w
	b.nb = min(max(nb, 0), maxNB)
	m := ilb[(b.nb>>6)&31]
	if e := shift - b.nb>>11; e < 0 {
		m <<= -e
	} else {
		m >>= e
	}
	b.det = m << 2
}

// adapt is block 4: reconstruct with the quantised difference d, update the
// pole (UPPOL1/2) and zero (UPZERO) predictors, and form the next estimate.
func (b *band) adapt(d int32) {
	r := sat16(b.s + d)  // RECONS
	p := sat16(b.sz + d) // PARREC

	// UPPOL2
	sg0 := (p ^ b.p[0]) < 0
	sg1 := (p ^ b.p[1]) < 0
	wd1 := sat16(b.a[0] << 2)
	wd2 := -wd1
	if sg0 {
		wd2 = wd1
	}
	wd2 = min(wd2, 32767)
	wd3 := int32(128)
	if sg1 {
		wd3 = -128
	}
	a2 := wd3 + wd2>>7 + (b.a[1]*32512)>>15
	a2 = min(max(a2, -12288), 12288)

	// UPPOL1
	wd1 = 192
	if sg0 {
		wd1 = -192
	}
	a1 := sat16(wd1 + (b.a[0]*32640)>>15)
	lim := sat16(15360 - a2)
	a1 = min(max(a1, -lim), lim)

	// FILTEP, with the new coefficients and r, r1 delayed (DELAYA).
	r2 := sat16(r + r)
	sp := sat16((a1*r2)>>15 + (a2*b.r2)>>15)
	b.r1, b.r2 = r, r2
	b.a[0], b.a[1] = a1, a2
	b.p[1], b.p[0] = b.p[0], p

	// UPZERO, DELAYA and FILTEZ in one pass from the oldest tap.
	var step int32
	if d != 0 {
		step = 128
	}
	b.d[0], b.d2[0] = d, sat16(d+d)
	var sz int32
	for i := 5; i >= 0; i-- {
		g := step
		if (b.d[i+1] ^ d) < 0 {
			g = -step
		}
		b.b[i] = sat16(g + (b.b[i]*32640)>>15)
		sz += (b.b[i] * b.d2[i]) >> 15
		b.d[i+1], b.d2[i+1] = b.d[i], b.d2[i]
	}
	b.sz = sat16(sz)
	b.s = sat16(sp + b.sz) // PREDIC
}

// Initial scale factors (DETL, DETH) after reset.
const (
	detLow  = 32
	detHigh = 8
	maxNBL  = 18432
	maxNBH  = 22528
)

// coder is the sub-band ADPCM shared by Encoder and Decoder.
type coder struct{ lo, hi band }

func (c *coder) reset() {
	c.lo.reset(detLow)
	c.hi.reset(detHigh)
}

// encodePair codes one pair of 15-bit sub-band samples into an octet.
func (c *coder) encodePair(xl, xh int32) byte {
	// Block 1L: SUBTRA, QUANTL.
	el := sat16(xl - c.lo.s)
	m := el
	if el < 0 {
		m = ^el
	}
	// The first interval i in 1..29 whose decision level exceeds m, else
	// 30: the levels rise with i, so a binary search finds it.
	i, hi := 1, 30
	for i < hi {
		mid := (i + hi) >> 1
		if m < (q6[mid]*c.lo.det)>>12 {
			hi = mid
		} else {
			i = mid + 1
		}
	}
	il := ilp[i]
	if el < 0 {
		il = iln[i]
	}
	// Block 2L (INVQAL), feedback at 4 bits; 3L; 4L.
	ril := il >> 2
	dl := (c.lo.det * qm4[ril]) >> 15
	c.lo.scale(wl[rl42[ril]], maxNBL, 8)
	c.lo.adapt(dl)

	// Block 1H: SUBTRA, QUANTH.
	eh := sat16(xh - c.hi.s)
	m = eh
	if eh < 0 {
		m = ^eh
	}
	var ih uint8
	switch big := m >= (564*c.hi.det)>>12; {
	case eh < 0 && big:
		ih = 0
	case eh < 0:
		ih = 1
	case big:
		ih = 2
	default:
		ih = 3
	}
	dh := (c.hi.det * qm2[ih]) >> 15
	c.hi.scale(wh[rh2[ih]], maxNBH, 10)
	c.hi.adapt(dh)
	return ih<<6 | il
}

// decodeCode decodes one code of a mode (bits per octet: 8 for 64 kbit/s,
// 7 for 56, 6 for 48; the code's upper band bits are its top two) into
// 15-bit sub-band samples.
func (c *coder) decodeCode(code byte, bits int) (rl, rh int32) {
	var wd int32
	var il4 byte
	ih := code >> (bits - 2) & 3
	switch bits {
	case 7:
		wd, il4 = qm5[code&0x1F], (code&0x1F)>>1
	case 6:
		wd, il4 = qm4[code&0x0F], code&0x0F
	default:
		wd, il4 = qm6[code&0x3F], (code&0x3F)>>2
	}
	// Block 5L, 6L: output with the full-resolution inverse quantiser.
	rl = sat15(c.lo.s + (c.lo.det*wd)>>15)
	// Block 2L, 3L, 4L: the predictor follows the 4-bit code, as the encoder's.
	dl := (c.lo.det * qm4[il4]) >> 15
	c.lo.scale(wl[rl42[il4]], maxNBL, 8)
	c.lo.adapt(dl)

	dh := (c.hi.det * qm2[ih]) >> 15
	rh = sat15(c.hi.s + dh)
	c.hi.scale(wh[rh2[ih]], maxNBH, 10)
	c.hi.adapt(dh)
	return rl, rh
}

// qmfHist is a 12-sample history kept twice over, so the 12 newest
// samples are always contiguous (h[pos:pos+12]) without a modulo per tap.
type qmfHist struct {
	h   [24]int32
	pos int
}

func (q *qmfHist) push(v int32) {
	q.h[q.pos] = v
	q.h[q.pos+12] = v
	q.pos++
	if q.pos == 12 {
		q.pos = 0
	}
}

// fwd is the dot product of the history (oldest first) with h0..h11, rev
// with h11..h0.
func (q *qmfHist) fwd() int32 {
	w := (*[12]int32)(q.h[q.pos:])
	return w[0]*qmfCoef[0] + w[1]*qmfCoef[1] + w[2]*qmfCoef[2] + w[3]*qmfCoef[3] +
		w[4]*qmfCoef[4] + w[5]*qmfCoef[5] + w[6]*qmfCoef[6] + w[7]*qmfCoef[7] +
		w[8]*qmfCoef[8] + w[9]*qmfCoef[9] + w[10]*qmfCoef[10] + w[11]*qmfCoef[11]
}

func (q *qmfHist) rev() int32 {
	w := (*[12]int32)(q.h[q.pos:])
	return w[11]*qmfCoef[0] + w[10]*qmfCoef[1] + w[9]*qmfCoef[2] + w[8]*qmfCoef[3] +
		w[7]*qmfCoef[4] + w[6]*qmfCoef[5] + w[5]*qmfCoef[6] + w[4]*qmfCoef[7] +
		w[3]*qmfCoef[8] + w[2]*qmfCoef[9] + w[1]*qmfCoef[10] + w[0]*qmfCoef[11]
}

// Encoder codes 16 kHz 16-bit PCM into G.722 at 64 kbit/s.
type Encoder struct {
	c         coder
	even, odd qmfHist // input samples x(2n) and x(2n+1)
}

// NewEncoder returns an encoder in the reset state.
func NewEncoder() *Encoder {
	e := &Encoder{}
	e.Reset()
	return e
}

// Reset returns the encoder to its initial state (a new stream).
func (e *Encoder) Reset() {
	e.c.reset()
	e.even, e.odd = qmfHist{}, qmfHist{}
}

// Encode codes pairs of samples from src into dst, one octet per pair, and
// returns the octets written: min(len(dst), len(src)/2). An odd last
// sample is ignored.
func (e *Encoder) Encode(dst []byte, src []int16) int {
	n := min(len(dst), len(src)/2)
	for i := range n {
		e.even.push(int32(src[2*i]))
		e.odd.push(int32(src[2*i+1]))
		// Transmit QMF: the DC gain of each half is 4096, the two halves
		// are summed, and the coder takes 15-bit input: hence >> 14.
		so, se := e.even.fwd(), e.odd.rev()
		dst[i] = e.c.encodePair((se+so)>>14, (se-so)>>14)
	}
	return n
}

// Decoder decodes G.722 at 64 kbit/s into 16 kHz 16-bit PCM.
type Decoder struct {
	c        coder
	sum, dif qmfHist // rl+rh and rl-rh
}

// NewDecoder returns a decoder in the reset state.
func NewDecoder() *Decoder {
	d := &Decoder{}
	d.Reset()
	return d
}

// Reset returns the decoder to its initial state (a new stream).
func (d *Decoder) Reset() {
	d.c.reset()
	d.sum, d.dif = qmfHist{}, qmfHist{}
}

// Decode decodes octets from src into dst, two samples per octet, and
// returns the samples written: 2*min(len(src), len(dst)/2).
func (d *Decoder) Decode(dst []int16, src []byte) int {
	n := min(len(src), len(dst)/2)
	for i := range n {
		rl, rh := d.c.decodeCode(src[i], 8)
		d.sum.push(rl + rh)
		d.dif.push(rl - rh)
		// Receive QMF: DC gain 4096 per half, back from 15 to 16 bits.
		dst[2*i] = int16(sat16(d.dif.rev() >> 11))
		dst[2*i+1] = int16(sat16(d.sum.fwd() >> 11))
	}
	return 2 * n
}
