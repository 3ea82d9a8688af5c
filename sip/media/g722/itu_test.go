package g722

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
)

// readVector reads an ITU-T G.722 Appendix II digital test sequence in its
// ASCII form: 16 hex words a line plus a line checksum, /* */ comment lines.
func readVector(t *testing.T, name string) []uint16 {
	t.Helper()
	f, err := os.Open("testdata/itu/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []uint16
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "/*") {
			continue
		}
		if len(l) != 66 {
			t.Fatalf("%s: line %q: want 16 words and a checksum", name, l)
		}
		for i := 0; i < 64; i += 4 {
			v, err := strconv.ParseUint(l[i:i+4], 16, 16)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out = append(out, uint16(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// payload strips the reset words (LSB set) around a sequence; it returns
// the offset of the first data word and the words.
func payload(w []uint16) (int, []uint16) {
	i := 0
	for i < len(w) && w[i]&1 == 1 {
		i++
	}
	j := i
	for j < len(w) && w[j]&1 == 0 {
		j++
	}
	return i, w[i:j]
}

// The ITU sequences exercise the sub-band coder with the QMF bypassed: the
// encoder's two sub-band inputs both get the input word >> 1, and the
// decoder's sub-band outputs << 1 are compared with the lower (RC1, the
// 64 kbit/s mode) and upper (RC0) band references.
func TestITUEncoder(t *testing.T) {
	for _, tc := range []struct{ name, in, ref string }{
		{name: "T1C2 to T2R2", in: "T1C2.XMT", ref: "T2R2.COD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off, in := payload(readVector(t, tc.in))
			ref := readVector(t, tc.ref)
			if len(in) < 100 {
				t.Fatalf("only %d input words", len(in))
			}
			var c coder
			c.reset()
			bad := 0
			for k, w := range in {
				x := int32(int16(w)) >> 1
				got := c.encodePair(x, x)
				if want := byte(ref[off+k] >> 8); got != want {
					if bad < 5 {
						t.Errorf("sample %d: code %#02x, want %#02x", k, got, want)
					}
					bad++
				}
			}
			if bad > 0 {
				t.Fatalf("%d of %d codes differ", bad, len(in))
			}
		})
	}
}

func TestITUDecoder(t *testing.T) {
	for _, tc := range []struct{ name, in, lo, hi string }{
		{name: "T2R2 to T3L2 and T3H2", in: "T2R2.COD", lo: "T3L2.RC1", hi: "T3H2.RC0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off, in := payload(readVector(t, tc.in))
			lo, hi := readVector(t, tc.lo), readVector(t, tc.hi)
			var c coder
			c.reset()
			bad := 0
			for k, w := range in {
				rl, rh := c.decodeCode(byte(w>>8), 8)
				gl, gh := uint16(rl<<1), uint16(rh<<1)
				if gl != lo[off+k] || gh != hi[off+k] {
					if bad < 5 {
						t.Errorf("sample %d: low %#04x high %#04x, want %#04x %#04x", k, gl, gh, lo[off+k], hi[off+k])
					}
					bad++
				}
			}
			if bad > 0 {
				t.Fatalf("%d of %d samples differ", bad, len(in))
			}
		})
	}
}
