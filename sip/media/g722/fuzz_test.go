package g722

import "testing"

// FuzzDecode: any payload decodes without panic to exactly two samples per
// octet, and a decoder fed the same octets after Reset repeats itself.
func FuzzDecode(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0xff, 0x00, 0x7f, 0x80})
	f.Add(make([]byte, 160))
	f.Fuzz(func(t *testing.T, code []byte) {
		d := NewDecoder()
		out := make([]int16, 2*len(code)+3)
		if n := d.Decode(out, code); n != 2*len(code) {
			t.Fatalf("Decode(%d octets) = %d samples", len(code), n)
		}
		if out[2*len(code)] != 0 {
			t.Fatal("Decode wrote past its output")
		}
		first := append([]int16(nil), out[:2*len(code)]...)
		d.Reset()
		d.Decode(out, code)
		for i := range first {
			if out[i] != first[i] {
				t.Fatalf("sample %d differs after Reset", i)
			}
		}
	})
}
