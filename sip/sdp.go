package sip

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"github.com/telestra/telestra-sip/sip/media"
)

// direction is an SDP stream direction, seen from the side that wrote it.
type direction int

const (
	dirSendRecv direction = iota
	dirSendOnly
	dirRecvOnly
	dirInactive
)

func (d direction) String() string {
	switch d {
	case dirSendOnly:
		return "sendonly"
	case dirRecvOnly:
		return "recvonly"
	case dirInactive:
		return "inactive"
	}
	return "sendrecv"
}

func (d direction) sends() bool { return d == dirSendRecv || d == dirSendOnly }
func (d direction) recvs() bool { return d == dirSendRecv || d == dirRecvOnly }

func dirFrom(send, recv bool) direction {
	switch {
	case send && recv:
		return dirSendRecv
	case send:
		return dirSendOnly
	case recv:
		return dirRecvOnly
	}
	return dirInactive
}

// mirror is the direction an answerer uses for an offered direction
// (RFC 3264 §6.1): sendonly is answered recvonly and vice versa.
func (d direction) mirror() direction { return dirFrom(d.recvs(), d.sends()) }

// and keeps only what both allow.
func (d direction) and(o direction) direction {
	return dirFrom(d.sends() && o.sends(), d.recvs() && o.recvs())
}

func parseDirection(s string) (direction, bool) {
	switch s {
	case "sendrecv":
		return dirSendRecv, true
	case "sendonly":
		return dirSendOnly, true
	case "recvonly":
		return dirRecvOnly, true
	case "inactive":
		return dirInactive, true
	}
	return dirSendRecv, false
}

// sdpCodec is one payload format of an m= line.
type sdpCodec struct {
	Name string // upper case encoding name; "" when unknown
	PT   uint8
	Rate int
	Fmtp string
}

// mline is an m= line of a remote description, kept so an answer can
// reject the streams we do not use in the same position.
type mline struct {
	Media string
	Proto string
	Fmts  []string
}

// remoteSDP is what we use of the peer's description.
type remoteSDP struct {
	IP       net.IP // nil when absent; unspecified (0.0.0.0) means "do not send"
	Port     int    // 0: stream rejected
	RTCPPort int    // from a=rtcp; 0: RTP port + 1
	Dir      direction
	Codecs   []sdpCodec // audio formats in the writer's order of preference
	EventPT  int        // telephone-event payload type; -1: none
	PTime    int        // ms; 0: not given
	Audio    int        // index of the audio m= line we use in Lines
	Lines    []mline
	Secure   bool         // the audio m= line is RTP/SAVP (SRTP required)
	Crypto   []cryptoAttr // its a=crypto lines we can use, in order (RFC 4568)
}

// cryptoAttr is one SDES a=crypto line (RFC 4568 §9.1) we can use: an
// AES_CM_128 suite with one inline key of 16+14 bytes, no MKI.
type cryptoAttr struct {
	Tag   int
	Suite string
	Key   []byte // master key followed by master salt
}

func (c cryptoAttr) String() string {
	return strconv.Itoa(c.Tag) + " " + c.Suite + " inline:" + base64.StdEncoding.EncodeToString(c.Key)
}

// parseCrypto reads the value of an a=crypto attribute. It reports false
// for a line we cannot use (another suite, a key of another size, several
// keys, an MKI, session parameters we do not implement); the offer may
// have another line we can.
func parseCrypto(v string) (cryptoAttr, bool) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return cryptoAttr{}, false
	}
	tag, err := strconv.Atoi(f[0])
	if err != nil || tag < 0 || tag > 999999999 || len(f[0]) > 10 {
		return cryptoAttr{}, false
	}
	suite := strings.ToUpper(f[1])
	if suite != media.SuiteAES128SHA1_80 && suite != media.SuiteAES128SHA1_32 {
		return cryptoAttr{}, false
	}
	for _, p := range f[3:] {
		// Session parameters change the transform (RFC 4568 §6.3); we
		// implement none of them.
		if p != "" {
			return cryptoAttr{}, false
		}
	}
	kp, ok := strings.CutPrefix(f[2], "inline:")
	if !ok || strings.Contains(kp, ";") {
		return cryptoAttr{}, false // one key only
	}
	b64, rest, _ := strings.Cut(kp, "|")
	if rest != "" {
		// A lifetime is fine; an MKI (n:len) is not.
		for _, p := range strings.Split(rest, "|") {
			if strings.Contains(p, ":") {
				return cryptoAttr{}, false
			}
		}
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(b64)
	}
	if err != nil || len(key) != media.SRTPKeyLen {
		return cryptoAttr{}, false
	}
	return cryptoAttr{Tag: tag, Suite: suite, Key: key}, true
}

// held reports whether the peer asked us not to send (RFC 3264 hold or
// the RFC 2543 c=0.0.0.0 hold).
func (r *remoteSDP) held() bool {
	return !r.Dir.recvs() || r.IP == nil || r.IP.IsUnspecified()
}

// rtpAddr is where to send RTP; nil when we must not send.
func (r *remoteSDP) rtpAddr() *net.UDPAddr {
	if r.IP == nil || r.IP.IsUnspecified() || r.Port == 0 {
		return nil
	}
	return &net.UDPAddr{IP: r.IP, Port: r.Port}
}

func (r *remoteSDP) rtcpAddr() *net.UDPAddr {
	if r.RTCPPort == 0 || r.rtpAddr() == nil {
		return nil
	}
	return &net.UDPAddr{IP: r.IP, Port: r.RTCPPort}
}

var errNoAudio = errors.New("sdp: no audio stream")

// parseSDP parses a remote session description. It never panics; any
// input it cannot use is an error.
func parseSDP(body []byte) (r *remoteSDP, err error) {
	defer func() {
		// pion/sdp is a third-party parser fed with network input: a panic
		// there must not take the UA down.
		if p := recover(); p != nil {
			r, err = nil, fmt.Errorf("sdp: parser panic: %v", p)
		}
	}()
	// Tolerate bare LF line ends and trailing blank lines.
	norm := bytes.ReplaceAll(body, []byte("\r\n"), []byte("\n"))
	norm = bytes.TrimSpace(norm)
	lines := bytes.Split(norm, []byte("\n"))
	for i, l := range lines {
		lines[i] = bytes.TrimRight(l, " \t\r")
	}
	norm = append(bytes.Join(lines, []byte("\r\n")), '\r', '\n')

	var sd sdp.SessionDescription
	if err := sd.Unmarshal(norm); err != nil {
		return nil, fmt.Errorf("sdp: %w", err)
	}
	r = &remoteSDP{EventPT: -1, Audio: -1}
	for _, md := range sd.MediaDescriptions {
		r.Lines = append(r.Lines, mline{Media: md.MediaName.Media, Proto: strings.Join(md.MediaName.Protos, "/"), Fmts: md.MediaName.Formats})
	}
	sessDir, _ := sessionDirection(sd.Attributes)
	for i, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" || r.Audio >= 0 {
			continue
		}
		r.Audio = i
		r.Port = md.MediaName.Port.Value
		r.Secure = slices.Contains(md.MediaName.Protos, "SAVP") || slices.Contains(md.MediaName.Protos, "SAVPF")
		if r.Port < 0 || r.Port > 65535 {
			return nil, fmt.Errorf("sdp: invalid port %d", r.Port)
		}
		ci := md.ConnectionInformation
		if ci == nil {
			ci = sd.ConnectionInformation
		}
		if ci != nil && ci.Address != nil {
			addr := ci.Address.Address
			if ip := net.ParseIP(addr); ip != nil {
				r.IP = ip
			} else if addr != "" {
				return nil, fmt.Errorf("sdp: connection address %q is not an IP address", addr)
			}
		}
		r.Dir = sessDir
		if d, ok := sessionDirection(md.Attributes); ok {
			r.Dir = d
		}
		names := map[uint8]sdpCodec{}
		for _, a := range md.Attributes {
			switch a.Key {
			case "rtpmap":
				c, ok := parseRtpmap(a.Value)
				if ok {
					prev := names[c.PT]
					c.Fmtp = prev.Fmtp
					names[c.PT] = c
				}
			case "fmtp":
				pt, rest, ok := strings.Cut(a.Value, " ")
				if n, err := strconv.ParseUint(pt, 10, 8); ok && err == nil {
					c := names[uint8(n)]
					c.PT = uint8(n)
					c.Fmtp = strings.TrimSpace(rest)
					names[uint8(n)] = c
				}
			case "ptime":
				if n, err := strconv.Atoi(strings.TrimSpace(a.Value)); err == nil && n > 0 && n <= 1000 {
					r.PTime = n
				}
			case "crypto":
				if c, ok := parseCrypto(a.Value); ok && len(r.Crypto) < 16 {
					r.Crypto = append(r.Crypto, c)
				}
			case "rtcp":
				p, _, _ := strings.Cut(strings.TrimSpace(a.Value), " ")
				if n, err := strconv.Atoi(p); err == nil && n > 0 && n <= 65535 {
					r.RTCPPort = n
				}
			}
		}
		for _, f := range md.MediaName.Formats {
			n, err := strconv.ParseUint(f, 10, 8)
			if err != nil || n > 127 {
				continue
			}
			pt := uint8(n)
			c, ok := names[pt]
			if !ok || c.Name == "" {
				// Static payload types may come without rtpmap (RFC 3551).
				switch pt {
				case 0:
					c.Name, c.Rate = "PCMU", 8000
				case 8:
					c.Name, c.Rate = "PCMA", 8000
				case 9:
					c.Name, c.Rate = "G722", 8000
				case 18:
					c.Name, c.Rate = "G729", 8000
				}
			}
			c.PT = pt
			if c.Name == "TELEPHONE-EVENT" {
				if r.EventPT < 0 && c.Rate == 8000 {
					r.EventPT = int(pt)
				}
				continue
			}
			r.Codecs = append(r.Codecs, c)
		}
	}
	if r.Audio < 0 {
		return nil, errNoAudio
	}
	return r, nil
}

func sessionDirection(attrs []sdp.Attribute) (direction, bool) {
	for _, a := range attrs {
		if d, ok := parseDirection(a.Key); ok {
			return d, true
		}
	}
	return dirSendRecv, false
}

func parseRtpmap(v string) (sdpCodec, bool) {
	pt, rest, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return sdpCodec{}, false
	}
	n, err := strconv.ParseUint(pt, 10, 8)
	if err != nil {
		return sdpCodec{}, false
	}
	parts := strings.Split(strings.TrimSpace(rest), "/")
	c := sdpCodec{PT: uint8(n), Name: strings.ToUpper(parts[0])}
	if len(parts) > 1 {
		c.Rate, _ = strconv.Atoi(parts[1])
	}
	return c, c.Name != ""
}

// pickCodec chooses the codec to answer an offer with: the first of the
// plan's codecs (rtp-settings.codecs) that the offer lists. The plan's
// order wins over the offerer's, which RFC 3264 §6.1 allows ("should"):
// an appliance told ["G722", "PCMU"] answers a PBX offering PCMU before
// G722 with G722, as the operator asked. docs/media.md says so.
func pickCodec(remote []sdpCodec, ours []string) (sdpCodec, bool) {
	for _, name := range ours {
		for _, c := range remote {
			if ok := usable(c, name); ok {
				c.Rate = 8000
				return c, true
			}
		}
	}
	return sdpCodec{}, false
}

// answerCodec chooses the codec from the peer's answer to our offer: the
// first it lists that we offered, so both sides send what the answerer
// put first (RFC 3264 §7).
func answerCodec(remote []sdpCodec, ours []string) (sdpCodec, bool) {
	for _, c := range remote {
		for _, name := range ours {
			if usable(c, name) {
				c.Rate = 8000
				return c, true
			}
		}
	}
	return sdpCodec{}, false
}

// usable: remote format c is the plan codec name and we carry it. Every
// codec we carry has an 8000 Hz RTP clock (G722 too, RFC 3551 §4.5.2).
func usable(c sdpCodec, name string) bool {
	if c.Rate != 0 && c.Rate != 8000 || !strings.EqualFold(c.Name, name) {
		return false
	}
	_, ok := media.Supported[strings.ToUpper(name)]
	return ok
}

// offerCodecs lists the plan codecs we can actually carry, in plan order,
// with their static payload types.
func offerCodecs(names []string) []sdpCodec {
	var out []sdpCodec
	for _, n := range names {
		mc, ok := media.Supported[strings.ToUpper(n)]
		if !ok {
			continue
		}
		out = append(out, sdpCodec{Name: mc.Name, PT: mc.PayloadType, Rate: mc.ClockRate})
	}
	return out
}

// localSDP owns the o= line of our side of one call: the session version
// only changes when the description does (RFC 3264 §8).
type localSDP struct {
	sessID  uint64
	version uint64
	last    string // previous body with the o= version blanked
}

// sdpSpec is what goes into one of our descriptions.
type sdpSpec struct {
	Addr    string // c= and o= address
	Port    int    // m= port; 0 rejects the stream
	Codecs  []sdpCodec
	EventPT int // -1: no telephone-event
	PTime   int // ms
	Dir     direction
	// For an answer: the offer's m= lines, so other streams are rejected in
	// place (RFC 3264 §6). Nil for an offer.
	Lines []mline
	Audio int
	// SRTP: Secure makes the profile RTP/SAVP; Crypto are our a=crypto
	// lines (several in an offer, the chosen one in an answer).
	Secure bool
	Crypto []cryptoAttr
}

func (l *localSDP) build(s sdpSpec) []byte {
	body := renderSDP(s, l.sessID, 0)
	if body != l.last {
		if l.last != "" {
			l.version++
		}
		l.last = body
	}
	return []byte(renderSDP(s, l.sessID, l.version))
}

func renderSDP(s sdpSpec, sessID, version uint64) string {
	addrType := "IP4"
	if ip := net.ParseIP(s.Addr); ip != nil && ip.To4() == nil {
		addrType = "IP6"
	}
	sd := &sdp.SessionDescription{
		Version: 0,
		Origin: sdp.Origin{
			Username: "-", SessionID: sessID, SessionVersion: version,
			NetworkType: "IN", AddressType: addrType, UnicastAddress: s.Addr,
		},
		SessionName: "telestra",
		ConnectionInformation: &sdp.ConnectionInformation{
			NetworkType: "IN", AddressType: addrType, Address: &sdp.Address{Address: s.Addr},
		},
		TimeDescriptions: []sdp.TimeDescription{{Timing: sdp.Timing{}}},
	}
	profile := "AVP"
	if s.Secure {
		profile = "SAVP"
	}
	audio := &sdp.MediaDescription{
		MediaName: sdp.MediaName{Media: "audio", Port: sdp.RangedPort{Value: s.Port}, Protos: []string{"RTP", profile}},
	}
	for _, c := range s.Codecs {
		audio.MediaName.Formats = append(audio.MediaName.Formats, strconv.Itoa(int(c.PT)))
	}
	if s.EventPT >= 0 {
		audio.MediaName.Formats = append(audio.MediaName.Formats, strconv.Itoa(s.EventPT))
	}
	if len(audio.MediaName.Formats) == 0 {
		// An m= line needs a format even when rejected.
		audio.MediaName.Formats = []string{"0"}
	}
	for _, c := range s.Codecs {
		audio.Attributes = append(audio.Attributes, sdp.NewAttribute("rtpmap", fmt.Sprintf("%d %s/%d", c.PT, c.Name, c.Rate)))
	}
	if s.EventPT >= 0 {
		audio.Attributes = append(audio.Attributes,
			sdp.NewAttribute("rtpmap", fmt.Sprintf("%d telephone-event/8000", s.EventPT)),
			sdp.NewAttribute("fmtp", fmt.Sprintf("%d 0-16", s.EventPT)))
	}
	if s.PTime > 0 {
		audio.Attributes = append(audio.Attributes, sdp.NewAttribute("ptime", strconv.Itoa(s.PTime)))
	}
	for _, c := range s.Crypto {
		audio.Attributes = append(audio.Attributes, sdp.NewAttribute("crypto", c.String()))
	}
	audio.Attributes = append(audio.Attributes, sdp.NewPropertyAttribute(s.Dir.String()))

	if s.Lines == nil {
		sd.MediaDescriptions = []*sdp.MediaDescription{audio}
	} else {
		for i, ml := range s.Lines {
			if i == s.Audio {
				sd.MediaDescriptions = append(sd.MediaDescriptions, audio)
				continue
			}
			fm := ml.Fmts
			if len(fm) == 0 {
				fm = []string{"0"}
			}
			protos := strings.Split(ml.Proto, "/")
			sd.MediaDescriptions = append(sd.MediaDescriptions, &sdp.MediaDescription{
				MediaName: sdp.MediaName{Media: ml.Media, Port: sdp.RangedPort{Value: 0}, Protos: protos, Formats: fm},
			})
		}
	}
	out, err := sd.Marshal()
	if err != nil {
		// Marshal only fails on values we never produce.
		return ""
	}
	return string(out)
}

// negotiated is the outcome of one offer/answer exchange.
type negotiated struct {
	Codec   sdpCodec
	EventPT int
	Dir     direction // our direction
	Remote  *remoteSDP
	SRTP    *media.SRTPKeys // nil: plain RTP
}

func (n negotiated) params() media.Params {
	p := media.Params{
		Codec: media.Codec{Name: n.Codec.Name, PayloadType: n.Codec.PT, ClockRate: 8000},
		Recv:  n.Dir.recvs(),
		SRTP:  n.SRTP,
	}
	if n.Remote != nil {
		p.Remote = n.Remote.rtpAddr()
		p.RemoteRTCP = n.Remote.rtcpAddr()
	}
	p.Send = n.Dir.sends() && p.Remote != nil
	if n.EventPT >= 0 && n.EventPT <= 127 {
		p.EventPT = uint8(n.EventPT)
		// The peer may send on the number we offered although it
		// answered another (Cisco endpoints do).
		p.RecvEventPT = media.TelephoneEventPT
	}
	return p
}
