package sip

import (
	"net"
	"strings"
	"testing"
)

const ciscoOffer = "v=0\r\n" +
	"o=CiscoSystemsCCM-SIP 2000 1 IN IP4 127.0.0.5\r\n" +
	"s=SIP Call\r\n" +
	"c=IN IP4 127.0.0.6\r\n" +
	"t=0 0\r\n" +
	"m=audio 24580 RTP/AVP 18 0 8 102\r\n" +
	"a=rtpmap:18 G729/8000\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:102 telephone-event/8000\r\n" +
	"a=fmtp:102 0-15\r\n" +
	"a=ptime:20\r\n" +
	"a=sendonly\r\n"

func TestParseSDP(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr bool
		ip      string
		port    int
		dir     direction
		codecs  []string
		eventPT int
		held    bool
	}{
		{name: "cisco sendonly, G729 first, event PT 102", body: ciscoOffer, ip: "127.0.0.6", port: 24580,
			dir: dirSendOnly, codecs: []string{"G729", "PCMU", "PCMA"}, eventPT: 102, held: true},
		{name: "media-level c= wins, static types without rtpmap, LF only",
			body: "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.9\nt=0 0\nm=audio 4000 RTP/AVP 0 8\nc=IN IP4 127.0.0.2\n",
			ip:   "127.0.0.2", port: 4000, dir: dirSendRecv, codecs: []string{"PCMU", "PCMA"}, eventPT: -1},
		{name: "rfc2543 hold c=0.0.0.0", body: strings.Replace(ciscoOffer, "c=IN IP4 127.0.0.6", "c=IN IP4 0.0.0.0", 1) + "a=sendrecv\r\n",
			ip: "0.0.0.0", port: 24580, dir: dirSendOnly, codecs: []string{"G729", "PCMU", "PCMA"}, eventPT: 102, held: true},
		{name: "session-level inactive",
			body: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=inactive\r\nm=audio 4000 RTP/AVP 0\r\n",
			ip:   "127.0.0.1", port: 4000, dir: dirInactive, codecs: []string{"PCMU"}, eventPT: -1, held: true},
		{name: "rejected stream port 0, video first",
			body: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\nm=audio 0 RTP/AVP 0\r\n",
			ip:   "127.0.0.1", port: 0, dir: dirSendRecv, codecs: []string{"PCMU"}, eventPT: -1},
		{name: "no audio", body: "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 5000 RTP/AVP 96\r\n", wantErr: true},
		{name: "garbage", body: "hello world", wantErr: true},
		{name: "empty", body: "", wantErr: true},
		{name: "hostname in c=", body: "v=0\r\no=- 1 1 IN IP4 x\r\ns=-\r\nc=IN IP4 example.invalid\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := parseSDP([]byte(tc.body))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("want error, got %+v", r)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.IP.String() != tc.ip || r.Port != tc.port || r.Dir != tc.dir || r.EventPT != tc.eventPT || r.held() != tc.held {
				t.Errorf("got ip=%v port=%d dir=%v event=%d held=%v", r.IP, r.Port, r.Dir, r.EventPT, r.held())
			}
			var names []string
			for _, c := range r.Codecs {
				names = append(names, c.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.codecs, ",") {
				t.Errorf("codecs %v, want %v", names, tc.codecs)
			}
		})
	}
}

// An offer is answered in the plan's codec order; an answer to our offer
// is followed in the answerer's order.
func TestPickCodecOrder(t *testing.T) {
	cisco, err := parseSDP([]byte(ciscoOffer)) // PCMU PCMA G729 (no G722)
	if err != nil {
		t.Fatal(err)
	}
	pbx, err := parseSDP([]byte(pbxWidebandOffer)) // PCMU PCMA G722
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		r          *remoteSDP
		ours       []string
		want       string // answering the offer
		wantAnswer string // following an answer with these codecs
		ok         bool
	}{
		{"G729 skipped, plan prefers PCMA", cisco, []string{"PCMA", "PCMU"}, "PCMA", "PCMU", true},
		{"only PCMA", cisco, []string{"PCMA"}, "PCMA", "PCMA", true},
		{"nothing common", cisco, []string{"G722"}, "", "", false},
		{"G722 listed after PCMU: plan order picks G722", pbx, []string{"G722", "PCMU", "PCMA"}, "G722", "PCMU", true},
		{"plan prefers G.711", pbx, []string{"PCMA", "G722"}, "PCMA", "PCMA", true},
		{"G722 only", pbx, []string{"G722"}, "G722", "G722", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := pickCodec(tc.r.Codecs, tc.ours)
			if ok != tc.ok || c.Name != tc.want {
				t.Errorf("pickCodec: got %v %v, want %v %v", c.Name, ok, tc.want, tc.ok)
			}
			if ok && (c.Rate != 8000 || (c.Name == "G722") != (c.PT == 9)) {
				t.Errorf("pickCodec: %+v: want rate 8000 and PT 9 for G722", c)
			}
			a, ok := answerCodec(tc.r.Codecs, tc.ours)
			if ok != tc.ok || a.Name != tc.wantAnswer {
				t.Errorf("answerCodec: got %v %v, want %v %v", a.Name, ok, tc.wantAnswer, tc.ok)
			}
		})
	}
}

// pbxWidebandOffer lists G.722 after G.711, as Asterisk and UCM do when
// G.711 is first in their preference list.
const pbxWidebandOffer = "v=0\r\n" +
	"o=- 1 1 IN IP4 127.0.0.1\r\n" +
	"s=-\r\n" +
	"c=IN IP4 127.0.0.1\r\n" +
	"t=0 0\r\n" +
	"m=audio 31000 RTP/AVP 0 8 9 101\r\n" +
	"a=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:8 PCMA/8000\r\n" +
	"a=rtpmap:9 G722/8000\r\n" +
	"a=rtpmap:101 telephone-event/8000\r\n" +
	"a=fmtp:101 0-16\r\n" +
	"a=ptime:20\r\n" +
	"a=sendrecv\r\n"

func TestDirectionMirror(t *testing.T) {
	tests := []struct {
		name   string
		offer  direction
		intent direction
		want   direction
	}{
		{"sendonly answered recvonly", dirSendOnly, dirSendRecv, dirRecvOnly},
		{"recvonly answered sendonly", dirRecvOnly, dirSendRecv, dirSendOnly},
		{"inactive answered inactive", dirInactive, dirSendRecv, dirInactive},
		{"sendrecv answered sendrecv", dirSendRecv, dirSendRecv, dirSendRecv},
		{"we hold: sendrecv answered sendonly", dirSendRecv, dirSendOnly, dirSendOnly},
		{"both hold: inactive", dirSendOnly, dirSendOnly, dirInactive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.intent.and(tc.offer.mirror()); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestBuildOfferAndVersion(t *testing.T) {
	l := localSDP{sessID: 77, version: 1}
	spec := sdpSpec{Addr: "127.0.0.1", Port: 31000, Codecs: offerCodecs([]string{"PCMA", "PCMU", "G729"}), EventPT: 101, PTime: 20, Dir: dirSendRecv}
	b1 := l.build(spec)
	want := []string{
		"o=- 77 1 IN IP4 127.0.0.1", "c=IN IP4 127.0.0.1", "m=audio 31000 RTP/AVP 8 0 101",
		"a=rtpmap:8 PCMA/8000", "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000",
		"a=fmtp:101 0-16", "a=ptime:20", "a=sendrecv",
	}
	for _, w := range want {
		if !strings.Contains(string(b1), w+"\r\n") {
			t.Errorf("offer lacks %q:\n%s", w, b1)
		}
	}
	if b2 := l.build(spec); sdpOrigin(b2) != sdpOrigin(b1) {
		t.Errorf("unchanged SDP changed version: %s vs %s", sdpOrigin(b1), sdpOrigin(b2))
	}
	spec.Dir = dirSendOnly
	b3 := l.build(spec)
	if sdpOrigin(b3) != "o=- 77 2 IN IP4 127.0.0.1" {
		t.Errorf("changed SDP origin = %q, want version 2", sdpOrigin(b3))
	}
	// What we build parses back.
	r, err := parseSDP(b3)
	if err != nil {
		t.Fatal(err)
	}
	if r.Port != 31000 || r.Dir != dirSendOnly || r.EventPT != 101 || len(r.Codecs) != 2 {
		t.Errorf("round trip %+v", r)
	}
}

func TestAnswerRejectsOtherStreams(t *testing.T) {
	offer := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
	r, err := parseSDP([]byte(offer))
	if err != nil {
		t.Fatal(err)
	}
	l := localSDP{sessID: 1, version: 1}
	codec, _ := pickCodec(r.Codecs, []string{"PCMU"})
	b := l.build(sdpSpec{Addr: "127.0.0.1", Port: 31002, Codecs: []sdpCodec{codec}, EventPT: r.EventPT,
		PTime: 20, Dir: dirSendRecv, Lines: r.Lines, Audio: r.Audio})
	s := string(b)
	vi, ai := strings.Index(s, "m=video 0 RTP/AVP 96"), strings.Index(s, "m=audio 31002 RTP/AVP 0 101")
	if vi < 0 || ai < 0 || vi > ai {
		t.Errorf("answer must keep m= order and reject video:\n%s", s)
	}
	n := negotiated{Codec: codec, EventPT: r.EventPT, Dir: dirSendRecv, Remote: r}
	p := n.params()
	if p.Remote == nil || !p.Remote.IP.Equal(net.ParseIP("127.0.0.1")) || p.Remote.Port != 4000 || p.EventPT != 101 || !p.Send || !p.Recv {
		t.Errorf("params %+v", p)
	}
}

func TestLocalHost(t *testing.T) {
	tests := []struct {
		name   string
		addr   string
		public string
		dest   string
		want   string
	}{
		{"public address wins", "127.0.0.1", "192.0.2.10", "127.0.0.1", "192.0.2.10"},
		{"bind address", "127.0.0.2", "", "127.0.0.1", "127.0.0.2"},
		{"wildcard: route to the server", "0.0.0.0", "", "127.0.0.1", "127.0.0.1"},
		{"wildcard, no destination", "0.0.0.0", "", "", "127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := newUA(testConfig(Config{Address: tc.addr, PublicAddress: tc.public}), nil, nil, nil, &fakeAlloc{})
			if err != nil {
				t.Fatal(err)
			}
			if got := u.localHost(tc.dest); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
