package media

// G.711 µ-law and A-law (ITU-T G.711), after the classic Sun reference
// implementation. Decoding is a 256-entry table; encoding indexes a table by
// the sample's top 14 (µ-law) or 13 (A-law) bits, which is all G.711 keeps.

const (
	ulawBias = 0x84
	ulawClip = 8159
)

var (
	ulawSegEnd = [8]int{0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF}
	alawSegEnd = [8]int{0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF}
)

func segment(v int, ends *[8]int) int {
	for i, e := range ends {
		if v <= e {
			return i
		}
	}
	return 8
}

// linearToUlaw encodes one 16-bit sample.
func linearToUlaw(sample int16) byte {
	v := int(sample) >> 2
	mask := 0xFF
	if v < 0 {
		v = -v
		mask = 0x7F
	}
	if v > ulawClip {
		v = ulawClip
	}
	v += ulawBias >> 2
	seg := segment(v, &ulawSegEnd)
	if seg >= 8 {
		return byte(0x7F ^ mask)
	}
	return byte(((seg << 4) | ((v >> (seg + 1)) & 0xF)) ^ mask)
}

// ulawToLinear decodes one µ-law byte.
func ulawToLinear(u byte) int16 {
	u = ^u
	t := (int(u&0x0F) << 3) + ulawBias
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return int16(ulawBias - t)
	}
	return int16(t - ulawBias)
}

// linearToAlaw encodes one 16-bit sample.
func linearToAlaw(sample int16) byte {
	v := int(sample) >> 3
	mask := 0xD5
	if v < 0 {
		mask = 0x55
		v = -v - 1
	}
	seg := segment(v, &alawSegEnd)
	if seg >= 8 {
		return byte(0x7F ^ mask)
	}
	a := seg << 4
	if seg < 2 {
		a |= (v >> 1) & 0xF
	} else {
		a |= (v >> seg) & 0xF
	}
	return byte(a ^ mask)
}

// alawToLinear decodes one A-law byte.
func alawToLinear(a byte) int16 {
	a ^= 0x55
	t := int(a&0x0F) << 4
	seg := int(a&0x70) >> 4
	switch seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}

// Lookup tables, built once and never written again.
var (
	ulawDec = func() (t [256]int16) {
		for i := range t {
			t[i] = ulawToLinear(byte(i))
		}
		return t
	}()
	alawDec = func() (t [256]int16) {
		for i := range t {
			t[i] = alawToLinear(byte(i))
		}
		return t
	}()
	// ulawEnc is indexed by (sample>>2)+8192.
	ulawEnc = func() (t [16384]byte) {
		for i := range t {
			t[i] = linearToUlaw(int16((i - 8192) << 2))
		}
		return t
	}()
	// alawEnc is indexed by (sample>>3)+4096.
	alawEnc = func() (t [8192]byte) {
		for i := range t {
			t[i] = linearToAlaw(int16((i - 4096) << 3))
		}
		return t
	}()
)

func encodeUlaw(dst []byte, src []int16) int {
	n := min(len(dst), len(src))
	for i := 0; i < n; i++ {
		dst[i] = ulawEnc[(int(src[i])>>2)+8192]
	}
	return n
}

func decodeUlaw(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	for i := 0; i < n; i++ {
		dst[i] = ulawDec[src[i]]
	}
	return n
}

func encodeAlaw(dst []byte, src []int16) int {
	n := min(len(dst), len(src))
	for i := 0; i < n; i++ {
		dst[i] = alawEnc[(int(src[i])>>3)+4096]
	}
	return n
}

func decodeAlaw(dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	for i := 0; i < n; i++ {
		dst[i] = alawDec[src[i]]
	}
	return n
}
