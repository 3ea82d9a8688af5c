package testpeers

import (
	"bufio"
	"bytes"
	"testing"
)

// FuzzParseWAV: any input is decoded or rejected, never a panic, and the
// samples stay in [-1, 1).
func FuzzParseWAV(f *testing.F) {
	var good bytes.Buffer
	_ = WriteWAV(&good, 8000, Sine(8000, 440, 0.5, 0.01))
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:44])
	f.Add([]byte("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x02\x00\x40\x1f\x00\x00\x00\x7d\x00\x00\x04\x00\x10\x00data\xff\xff\xff\xff\x01\x02\x03\x04"))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseWAV(b)
		if err != nil {
			return
		}
		for _, s := range a.Samples {
			if s < -1 || s >= 1 {
				t.Fatalf("sample %v out of range", s)
			}
		}
	})
}

// FuzzNetstring: the ctrl_tcp reader returns exactly the framed bytes or an
// error, never a panic or a huge allocation.
func FuzzNetstring(f *testing.F) {
	f.Add([]byte(`5:hello,`))
	f.Add([]byte(`0:,`))
	f.Add([]byte(`12:{"event":1},3:abc,`))
	f.Add([]byte(`99999999999999999999:x,`))
	f.Add([]byte(`-1:,`))
	f.Add([]byte(`3:abcd`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		for range 100 {
			msg, err := readNetstring(r)
			if err != nil {
				return
			}
			if len(msg) > len(b) {
				t.Fatalf("message of %d bytes from %d input bytes", len(msg), len(b))
			}
		}
	})
}
