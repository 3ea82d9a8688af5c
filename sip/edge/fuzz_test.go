package edge

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// FuzzEdge feeds arbitrary bytes to vet (as a datagram) and to the stream
// framer (in 13-byte reads): neither may panic, an answer is a SIP/2.0
// response that never answers an ACK, and what passes to sipgo parses.
func FuzzEdge(f *testing.F) {
	f.Add(opts())
	f.Add(bytes.Replace(opts(), []byte("OPTIONS sip"), []byte("OPTIONS  sip"), 1))
	f.Add(bytes.Replace(opts(), []byte("Content-Length: 0"), []byte("Content-Length: -1"), 1))
	f.Add([]byte("INVITE sip:u@h SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@b>\r\nTo: sip:u@h ; tag = x\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\r\n"))
	f.Add([]byte("SIP/2.0 200 OK\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		e := newTestEdge()
		// Refuse every other screened request, so both paths are fuzzed.
		var n int
		e.cfg.Admit = func(*sip.Request, netip.Addr) Admission { n++; return Admission(n % 3) }
		check := func(v verdict) {
			if v.reply != nil {
				if !bytes.HasPrefix(v.reply, []byte("SIP/2.0 ")) || !bytes.HasSuffix(v.reply, []byte("\r\n\r\n")) {
					t.Fatalf("answer %q", v.reply)
				}
				if methodOf(splitRaw(b).start) == "ACK" {
					t.Fatalf("answered an ACK: %q", v.reply)
				}
			}
			if v.pass != nil && !keepAlive(v.pass) {
				if _, err := e.parser.ParseSIP(v.pass); err != nil {
					t.Fatalf("passed %q which does not parse: %v", v.pass, err)
				}
			}
		}
		if got, want := startLine(b), splitRaw(b).start; got != want {
			t.Fatalf("startLine(%q) = %q, splitRaw's start %q", b, got, want)
		}
		check(e.vet(b, src))
		cc := &chunkConn{chunks: split(append([]byte(nil), b...), 13)}
		readAll(t, &streamConn{Conn: cc, e: e})
	})
}
