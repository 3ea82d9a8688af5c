package sip

import (
	"testing"
)

// FuzzParseSDP feeds arbitrary bodies to the SDP parser: it must never
// panic, and whatever it accepts must be safe to negotiate and answer.
func FuzzParseSDP(f *testing.F) {
	f.Add([]byte(ciscoOffer))
	f.Add([]byte("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 0 RTP/AVP 0\n"))
	f.Add(sdpWith("RTP/SAVP", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"+key30+"|2^20\r\n",
		"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"+key30+"\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseSDP(body)
		if err != nil {
			return
		}
		if r.Audio < 0 || r.Audio >= len(r.Lines) {
			t.Fatalf("audio index %d of %d lines", r.Audio, len(r.Lines))
		}
		codec, _ := pickCodec(r.Codecs, []string{"PCMU", "PCMA"})
		n := negotiated{Codec: codec, EventPT: r.EventPT, Dir: dirSendRecv.and(r.Dir.mirror()), Remote: r}
		_ = n.params()
		l := localSDP{sessID: 1, version: 1}
		out := l.build(sdpSpec{Addr: "127.0.0.1", Port: 31000, Codecs: []sdpCodec{codec}, EventPT: r.EventPT,
			PTime: 20, Dir: dirSendRecv, Lines: r.Lines, Audio: r.Audio, Crypto: r.Crypto, Secure: r.Secure})
		if len(out) == 0 {
			t.Fatalf("empty answer for %q", body)
		}
		back, err := parseSDP(out)
		if err != nil || len(back.Crypto) != len(r.Crypto) || back.Secure != r.Secure {
			t.Fatalf("our answer to %q does not read back (%v):\n%s", body, err, out)
		}
	})
}
