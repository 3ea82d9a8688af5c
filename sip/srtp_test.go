package sip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/telestra/telestra-sip/sip/media"
)

var key30 = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA5}, 30))

func TestParseCrypto(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
		tag      int
		suite    string
	}{
		{"80", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30, true, 1, media.SuiteAES128SHA1_80},
		{"32 lower case", "2 aes_cm_128_hmac_sha1_32 inline:" + key30, true, 2, media.SuiteAES128SHA1_32},
		{"lifetime", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^20", true, 1, media.SuiteAES128SHA1_80},
		{"unpadded base64", "1 AES_CM_128_HMAC_SHA1_80 inline:" + strings.TrimRight(key30, "="), true, 1, media.SuiteAES128SHA1_80},
		{"mki", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "|2^20|1:4", false, 0, ""},
		{"two keys", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + ";inline:" + key30, false, 0, ""},
		{"session param", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + " UNENCRYPTED_SRTP", false, 0, ""},
		{"other suite", "1 AES_256_CM_HMAC_SHA1_80 inline:" + key30, false, 0, ""},
		{"short key", "1 AES_CM_128_HMAC_SHA1_80 inline:AAAA", false, 0, ""},
		{"not inline", "1 AES_CM_128_HMAC_SHA1_80 uri:x", false, 0, ""},
		{"bad tag", "x AES_CM_128_HMAC_SHA1_80 inline:" + key30, false, 0, ""},
		{"negative tag", "-1 AES_CM_128_HMAC_SHA1_80 inline:" + key30, false, 0, ""},
		{"too short", "1 AES_CM_128_HMAC_SHA1_80", false, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := parseCrypto(tc.in)
			if ok != tc.ok || ok && (c.Tag != tc.tag || c.Suite != tc.suite || len(c.Key) != 30) {
				t.Fatalf("parseCrypto(%q) = %+v, %v", tc.in, c, ok)
			}
			if ok {
				if back, ok := parseCrypto(c.String()); !ok || !bytes.Equal(back.Key, c.Key) || back.Tag != c.Tag {
					t.Fatalf("round trip of %q: %+v %v", c.String(), back, ok)
				}
			}
		})
	}
}

func sdpWith(proto string, lines ...string) []byte {
	return []byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 30000 " + proto +
		" 0\r\na=rtpmap:0 PCMU/8000\r\n" + strings.Join(lines, "") + "a=sendrecv\r\n")
}

// The negotiation rules of srtp.go, one row per case: our mode, whether
// the call is over TLS, the peer's offer, what we answer.
func TestSRTPAnswerRules(t *testing.T) {
	crypto80 := "a=crypto:7 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + "\r\n"
	for _, tc := range []struct {
		name    string
		mode    string
		tls     bool
		offer   []byte
		wantErr error
		want    string // "" plain; else the suite answered
		savp    bool
	}{
		{"off ignores crypto", SRTPOff, true, sdpWith("RTP/AVP", crypto80), nil, "", false},
		{"off refuses SAVP", SRTPOff, true, sdpWith("RTP/SAVP", crypto80), errSRTPNotHere, "", false},
		{"optional takes crypto over TLS", SRTPOptional, true, sdpWith("RTP/AVP", crypto80), nil, media.SuiteAES128SHA1_80, false},
		{"optional mirrors SAVP", SRTPOptional, true, sdpWith("RTP/SAVP", crypto80), nil, media.SuiteAES128SHA1_80, true},
		{"optional plain over TLS", SRTPOptional, true, sdpWith("RTP/AVP"), nil, "", false},
		{"optional not over UDP", SRTPOptional, false, sdpWith("RTP/AVP", crypto80), nil, "", false},
		{"optional SAVP over UDP", SRTPOptional, false, sdpWith("RTP/SAVP", crypto80), errSRTPNotHere, "", false},
		{"required plain offer", SRTPRequired, true, sdpWith("RTP/AVP"), errSRTPPlain, "", false},
		{"required over UDP", SRTPRequired, false, sdpWith("RTP/AVP", crypto80), errSRTPNeedsTLS, "", false},
		{"required SAVP", SRTPRequired, true, sdpWith("RTP/SAVP", crypto80), nil, media.SuiteAES128SHA1_80, true},
		{"required unusable crypto", SRTPRequired, true, sdpWith("RTP/SAVP", "a=crypto:1 F8_128_HMAC_SHA1_80 inline:"+key30+"\r\n"), errSRTPNotHere, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := &UA{outTransport: "UDP"}
			set := &settings{Config: Config{SRTP: tc.mode}, codecs: []string{"PCMU"}}
			c := &call{host: "127.0.0.1", set: set}
			if tc.tls {
				c.dlg.transport = "TLS"
			}
			r, err := parseSDP(tc.offer)
			if err != nil {
				t.Fatal(err)
			}
			body, err := u.answerOfferLocked(c, r)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("answer error %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			ans, err := parseSDP(body)
			if err != nil {
				t.Fatalf("our answer does not parse: %v\n%s", err, body)
			}
			keys := c.neg.SRTP
			switch {
			case tc.want == "" && (keys != nil || len(ans.Crypto) != 0):
				t.Fatalf("plain expected; keys %+v, answer:\n%s", keys, body)
			case tc.want != "" && (keys == nil || keys.Suite != tc.want || len(ans.Crypto) != 1 || ans.Crypto[0].Tag != 7 ||
				!bytes.Equal(ans.Crypto[0].Key, keys.Local) || !bytes.Equal(keys.Remote, r.Crypto[0].Key)):
				t.Fatalf("keys %+v, answer:\n%s", keys, body)
			}
			if ans.Secure != tc.savp {
				t.Errorf("answer profile SAVP=%v, want %v:\n%s", ans.Secure, tc.savp, body)
			}
		})
	}
}

// Our offer and the peer's answer: the keys come from the tag the peer
// chose; a plain answer is fine when optional and ends the call when
// required; a re-offer keeps our keys.
func TestSRTPOfferAndAnswer(t *testing.T) {
	for _, mode := range []string{SRTPOptional, SRTPRequired} {
		t.Run(mode, func(t *testing.T) {
			u := &UA{outTransport: "TLS"}
			set := &settings{Config: Config{SRTP: mode}, codecs: []string{"PCMU"}}
			c := &call{host: "127.0.0.1", set: set}
			offer, err := parseSDP(u.offerLocked(c))
			if err != nil {
				t.Fatal(err)
			}
			if len(offer.Crypto) != 2 || offer.Crypto[0].Suite != media.SuiteAES128SHA1_80 || offer.Secure != (mode == SRTPRequired) {
				t.Fatalf("offer crypto %+v secure %v", offer.Crypto, offer.Secure)
			}
			peerKey := bytes.Repeat([]byte{9}, 30)
			ans, _ := parseSDP(sdpWith("RTP/SAVP", "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:"+base64.StdEncoding.EncodeToString(peerKey)+"\r\n"))
			if err := u.applyAnswerLocked(c, ans); err != nil {
				t.Fatal(err)
			}
			if k := c.neg.SRTP; k == nil || k.Suite != media.SuiteAES128SHA1_32 || !bytes.Equal(k.Local, offer.Crypto[1].Key) || !bytes.Equal(k.Remote, peerKey) {
				t.Fatalf("keys %+v", c.neg.SRTP)
			}
			again, _ := parseSDP(u.offerLocked(c))
			if !bytes.Equal(again.Crypto[0].Key, offer.Crypto[0].Key) {
				t.Errorf("a re-offer changed our key")
			}
			plain, _ := parseSDP(sdpWith("RTP/AVP"))
			err = u.applyAnswerLocked(c, plain)
			if mode == SRTPRequired && !errors.Is(err, errSRTPPlain) || mode == SRTPOptional && (err != nil || c.neg.SRTP != nil) {
				t.Errorf("plain answer: err %v, keys %+v", err, c.neg.SRTP)
			}
			wrongTag, _ := parseSDP(sdpWith("RTP/SAVP", "a=crypto:5 AES_CM_128_HMAC_SHA1_80 inline:"+key30+"\r\n"))
			if err := u.applyAnswerLocked(c, wrongTag); !errors.Is(err, errSRTPNoOffered) {
				t.Errorf("answer with a tag we did not offer: %v", err)
			}
		})
	}
	// Over UDP nothing is offered, even when required (Dial refuses that).
	u := &UA{outTransport: "UDP"}
	set := &settings{Config: Config{SRTP: SRTPOptional}, codecs: []string{"PCMU"}}
	if r, _ := parseSDP(u.offerLocked(&call{host: "127.0.0.1", set: set})); len(r.Crypto) != 0 || r.Secure {
		t.Errorf("offer over UDP carries keys: %+v", r.Crypto)
	}
}

// FuzzParseCrypto: no a=crypto value panics, and one that parses prints
// back as itself.
func FuzzParseCrypto(f *testing.F) {
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:" + key30)
	f.Add("2 AES_CM_128_HMAC_SHA1_32 inline:" + key30 + "|2^31|1:1")
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:" + key30 + ";inline:" + key30 + " KDR=1")
	f.Fuzz(func(t *testing.T, v string) {
		c, ok := parseCrypto(v)
		if !ok {
			return
		}
		back, ok := parseCrypto(c.String())
		if !ok || back.Tag != c.Tag || back.Suite != c.Suite || !bytes.Equal(back.Key, c.Key) {
			t.Fatalf("%q parsed as %+v, which prints as %q and reads back %+v %v", v, c, c.String(), back, ok)
		}
	})
}

// FuzzServerURI: no server entry ("[tls:]host[:port]", from the plan or a
// login) panics; a TLS one gets transport=tls and a port; the trust code
// finds a host in every entry that parses.
func FuzzServerURI(f *testing.F) {
	for _, s := range []string{"pbx.example.com", "127.0.0.1:5060", "[::1]:5060", "2001:db8::1", "tls:pbx:5061", "TLS:[::1]", "sip:x@y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := serverURI(s)
		if err != nil {
			return
		}
		if u.Host == "" || serverHost(s) == "" {
			t.Fatalf("%q: empty host in %v", s, u)
		}
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(s)), "tls:") {
			if v, _ := u.UriParams.Get("transport"); v != "tls" || u.Port == 0 {
				t.Fatalf("%q: TLS server became %v", s, u)
			}
		}
	})
}
