package api

import (
	"bytes"
	"cmp"
	"errors"
	"io"
	"strings"
	"testing"
)

// chunkReader returns its input in the given chunk sizes (the last one
// repeated), to exercise messages split across and merged within reads.
type chunkReader struct {
	data  []byte
	sizes []int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := r.sizes[0]
	if len(r.sizes) > 1 {
		r.sizes = r.sizes[1:]
	}
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// readAll returns every message as a string, "ERR:too long" for
// ErrMessageTooLong, and the final error.
func readAll(fr *FrameReader) ([]string, error) {
	var out []string
	for {
		msg, err := fr.Next()
		switch {
		case err == nil:
			out = append(out, string(msg))
		case errors.Is(err, ErrMessageTooLong):
			out = append(out, "ERR:too long")
		default:
			return out, err
		}
	}
}

func TestFrameReader(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		max     int
		want    []string
		wantErr error
	}{
		{name: "one", in: `{"cmd":"get-status"}` + "\x00", want: []string{`{"cmd":"get-status"}`}, wantErr: io.EOF},
		{name: "merged", in: "{\"a\":1}\x00{\"b\":2}\x00{\"c\":3}\x00", want: []string{`{"a":1}`, `{"b":2}`, `{"c":3}`}, wantErr: io.EOF},
		{name: "crlf between", in: "{\"a\":1}\x00\r\n{\"b\":2}\x00\n", want: []string{`{"a":1}`, `{"b":2}`}, wantErr: io.EOF},
		{name: "whitespace inside and around", in: " \t\n{ \"a\" : 1 }\r\n\x00", want: []string{`{ "a" : 1 }`}, wantErr: io.EOF},
		{name: "lone NULs ignored", in: "\x00\x00 \x00{}\x00", want: []string{`{}`}, wantErr: io.EOF},
		{name: "partial at end", in: "{}\x00{\"a\"", want: []string{`{}`}, wantErr: io.ErrUnexpectedEOF},
		{name: "only whitespace at end", in: "{}\x00 \r\n", want: []string{`{}`}, wantErr: io.EOF},
		{name: "empty", in: "", wantErr: io.EOF},
		{name: "exactly max", in: "1234567890\x00", max: 10, want: []string{"1234567890"}, wantErr: io.EOF},
		{name: "max plus one then good", in: "12345678901\x00{}\x00", max: 10, want: []string{"ERR:too long", "{}"}, wantErr: io.EOF},
		{name: "far too long then good", in: strings.Repeat("x", 5000) + "\x00{\"ok\":1}\x00", max: 100, want: []string{"ERR:too long", `{"ok":1}`}, wantErr: io.EOF},
		{name: "leading whitespace not counted", in: strings.Repeat(" ", 50) + "1234567890\x00", max: 10, want: []string{"1234567890"}, wantErr: io.EOF},
		{name: "too long never terminated", in: strings.Repeat("x", 500), max: 100, want: []string{"ERR:too long"}, wantErr: io.ErrUnexpectedEOF},
		{name: "garbage passes through", in: "\xff\xfe garbage\x00", want: []string{"\xff\xfe garbage"}, wantErr: io.EOF},
	}
	for _, tt := range tests {
		for _, sizes := range [][]int{{1 << 20}, {1}, {2}, {3, 7}, {4096}} {
			t.Run(tt.name, func(t *testing.T) {
				fr := NewFrameReader(&chunkReader{data: []byte(tt.in), sizes: sizes}, cmp.Or(tt.max, 1<<16)) // 0: a limit no case reaches
				got, err := readAll(fr)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("chunks %v: err = %v, want %v", sizes, err, tt.wantErr)
				}
				if strings.Join(got, "|") != strings.Join(tt.want, "|") {
					t.Fatalf("chunks %v: got %q, want %q", sizes, got, tt.want)
				}
			})
		}
	}
}

func TestFrameReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	fr := NewFrameReader(io.MultiReader(strings.NewReader("{}\x00{"), errReader{boom}), 1<<16)
	if msg, err := fr.Next(); err != nil || string(msg) != "{}" {
		t.Fatalf("first = %q, %v", msg, err)
	}
	if _, err := fr.Next(); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func BenchmarkFrameReader(b *testing.B) {
	msg := []byte(`{"cmd":"get-status","account":"account-1"}` + "\x00")
	data := bytes.Repeat(msg, 1000)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		fr := NewFrameReader(bytes.NewReader(data), 1<<16)
		for {
			if _, err := fr.Next(); err != nil {
				break
			}
		}
	}
}

func BenchmarkEncodeStatus(b *testing.B) {
	st := Status{Account: "account-1", AccountStatus: 200, Calls: []Call{
		{CallID: 5, Caller: "3003", Callee: "3001", Started: true, State: "active", Direction: "in", Active: true, Codec: "PCMU", PacketsSent: 1000, PacketsReceived: 999, JitterMs: 1.5},
	}}
	for b.Loop() {
		encodeStatus(st, "")
	}
}

func BenchmarkParseCommand(b *testing.B) {
	msg := []byte(`{"cmd":"hangup-call","account":"account-1","call_id":12,"decline":true}`)
	for b.Loop() {
		if _, err := ParseCommand(msg); err != nil {
			b.Fatal(err)
		}
	}
}
