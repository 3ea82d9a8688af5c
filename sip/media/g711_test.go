package media

import "testing"

func TestG711KnownValues(t *testing.T) {
	tests := []struct {
		name string
		got  int
		want int
	}{
		{name: "ulaw encode 0", got: int(linearToUlaw(0)), want: 0xFF},
		{name: "ulaw encode max", got: int(linearToUlaw(32767)), want: 0x80},
		{name: "ulaw encode min", got: int(linearToUlaw(-32768)), want: 0x00},
		{name: "ulaw encode -4", got: int(linearToUlaw(-4)), want: 0x7E},
		{name: "ulaw encode 1000", got: int(linearToUlaw(1000)), want: 0xCE},
		{name: "ulaw decode 0x00", got: int(ulawToLinear(0x00)), want: -32124},
		{name: "ulaw decode 0x80", got: int(ulawToLinear(0x80)), want: 32124},
		{name: "ulaw decode 0xFF", got: int(ulawToLinear(0xFF)), want: 0},
		{name: "ulaw decode 0xCE", got: int(ulawToLinear(0xCE)), want: 988},
		{name: "alaw encode 0", got: int(linearToAlaw(0)), want: 0xD5},
		{name: "alaw encode -1", got: int(linearToAlaw(-1)), want: 0x55},
		{name: "alaw encode max", got: int(linearToAlaw(32767)), want: 0xAA},
		{name: "alaw encode min", got: int(linearToAlaw(-32768)), want: 0x2A},
		{name: "alaw encode 1000", got: int(linearToAlaw(1000)), want: 0xFA},
		{name: "alaw decode 0xD5", got: int(alawToLinear(0xD5)), want: 8},
		{name: "alaw decode 0x55", got: int(alawToLinear(0x55)), want: -8},
		{name: "alaw decode 0xAA", got: int(alawToLinear(0xAA)), want: 32256},
		{name: "alaw decode 0x2A", got: int(alawToLinear(0x2A)), want: -32256},
		{name: "alaw decode 0xFA", got: int(alawToLinear(0xFA)), want: 1008},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %#x (%d), want %#x (%d)", tc.got, tc.got, tc.want, tc.want)
			}
		})
	}
}

func TestG711RoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		enc    func([]byte, []int16) int
		dec    func([]int16, []byte) int
		skip   map[byte]bool // codes that alias another code's value
		maxErr func(v int) int
	}{
		{name: "PCMU", enc: encodeUlaw, dec: decodeUlaw, skip: map[byte]bool{0x7F: true},
			maxErr: func(v int) int { return max(2, abs(v)/16+16) }},
		{name: "PCMA", enc: encodeAlaw, dec: decodeAlaw,
			maxErr: func(v int) int { return max(8, abs(v)/16+16) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Every code decodes and re-encodes to itself.
			for c := range 256 {
				if tc.skip[byte(c)] {
					continue
				}
				var pcm [1]int16
				var out [1]byte
				tc.dec(pcm[:], []byte{byte(c)})
				tc.enc(out[:], pcm[:])
				if out[0] != byte(c) {
					t.Fatalf("code %#x -> %d -> %#x", c, pcm[0], out[0])
				}
			}
			// Every sample comes back within the quantisation step, and the
			// table encoder matches the reference function.
			for v := -32768; v <= 32767; v++ {
				var out [1]byte
				var pcm [1]int16
				tc.enc(out[:], []int16{int16(v)})
				tc.dec(pcm[:], out[:])
				if d := abs(int(pcm[0]) - v); d > tc.maxErr(v) {
					t.Fatalf("%d -> %#x -> %d: error %d", v, out[0], pcm[0], d)
				}
			}
		})
	}
	for v := -32768; v <= 32767; v++ {
		var u, a [1]byte
		encodeUlaw(u[:], []int16{int16(v)})
		encodeAlaw(a[:], []int16{int16(v)})
		if u[0] != linearToUlaw(int16(v)) || a[0] != linearToAlaw(int16(v)) {
			t.Fatalf("table encoder differs from reference at %d", v)
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
