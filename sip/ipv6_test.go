package sip

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func TestAddrHelpers(t *testing.T) {
	for _, tc := range []struct {
		name, in, bare, uri string
		family              int
	}{
		{"ipv4", "127.0.0.1", "127.0.0.1", "127.0.0.1", 4},
		{"ipv6 bare", "::1", "::1", "[::1]", 6},
		{"ipv6 bracketed", "[2001:db8::1]", "2001:db8::1", "[2001:db8::1]", 6},
		{"mapped", "::ffff:127.0.0.1", "::ffff:127.0.0.1", "[::ffff:127.0.0.1]", 4},
		{"name", "pbx.example.com", "pbx.example.com", "pbx.example.com", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := bareHost(tc.in); got != tc.bare {
				t.Errorf("bareHost(%q) = %q, want %q", tc.in, got, tc.bare)
			}
			if got := uriHost(tc.in); got != tc.uri {
				t.Errorf("uriHost(%q) = %q, want %q", tc.in, got, tc.uri)
			}
			if got := ipFamily(tc.in); got != tc.family {
				t.Errorf("ipFamily(%q) = %d, want %d", tc.in, got, tc.family)
			}
		})
	}
	for _, tc := range []struct{ name, addr, want string }{
		{"ipv4 wildcard is IPv4 only", "0.0.0.0", "udp4"},
		{"ipv4", "127.0.0.1", "udp4"},
		{"ipv6 wildcard is dual stack", "::", "udp"},
		{"empty is dual stack", "", "udp"},
		{"ipv6", "::1", "udp6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := listenNetwork("udp", tc.addr); got != tc.want {
				t.Errorf("listenNetwork(udp, %q) = %q, want %q", tc.addr, got, tc.want)
			}
		})
	}
	if got := hostPort("[::1]", 5060); got != "[::1]:5060" {
		t.Errorf("hostPort = %q", got)
	}
	if h, p, err := splitHostPort("[::1]:5088"); err != nil || h != "::1" || p != "5088" {
		t.Errorf("splitHostPort = %q %q %v", h, p, err)
	}
}

// rawRegistrar is a UDP socket that answers every REGISTER with 200 and
// hands the request text to the test: what the UA put on the wire.
type rawRegistrar struct {
	conn net.PacketConn
	got  chan string
}

func newRawRegistrar(t *testing.T, network, addr string) *rawRegistrar {
	t.Helper()
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Fatalf("listen %s %s: %v", network, addr, err)
	}
	r := &rawRegistrar{conn: c, got: make(chan string, 32)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, src, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
			req, ok := msg.(*sip.Request)
			if err != nil || !ok {
				continue
			}
			select {
			case r.got <- string(buf[:n]):
			default:
			}
			res := sip.NewResponseFromRequest(req, 200, "OK", nil)
			if ct := req.Contact(); ct != nil {
				res.AppendHeader(sip.NewHeader("Contact", "<"+ct.Address.String()+">;expires=60"))
			}
			_, _ = c.WriteTo([]byte(res.String()), src)
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return r
}

func (r *rawRegistrar) port() int { return r.conn.LocalAddr().(*net.UDPAddr).Port }

func (r *rawRegistrar) expect(t *testing.T) string {
	t.Helper()
	select {
	case s := <-r.got:
		return s
	case <-time.After(3 * time.Second):
		t.Fatal("no REGISTER arrived")
	}
	return ""
}

// header returns the value of the first header name in a raw message.
func header(msg, name string) string {
	for _, l := range strings.Split(msg, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// fakeResolver maps names to addresses.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host " + host)
}

// TestRegisterIPv6Wire: every address the UA writes for an IPv6 server is
// a bracketed literal (Request-URI, Via with rport, Contact, From/To), for
// a literal server, a bracketed one, and a name resolving to ::1 only.
func TestRegisterIPv6Wire(t *testing.T) {
	for _, tc := range []struct{ name, bind, server, ruri string }{
		{"literal server, bound to ::1", "::1", "[::1]:PORT", "sip:[::1]:PORT"},
		{"literal server, dual stack", "::", "[::1]:PORT", "sip:[::1]:PORT"},
		{"AAAA name, dual stack", "::", "pbx6.test:PORT", "sip:pbx6.test:PORT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := newRawRegistrar(t, "udp6", "[::1]:0")
			p := strconv.Itoa(reg.port())
			tc.server = strings.ReplaceAll(tc.server, "PORT", p)
			tc.ruri = strings.ReplaceAll(tc.ruri, "PORT", p)
			h := startUA(t, []Account{{Name: "a1", User: "3001", Server: tc.server, Register: true}}, func(c *Config, _ *UA) {
				if c != nil {
					c.Address = tc.bind
					c.Resolver = fakeResolver{"pbx6.test": {netip.MustParseAddr("::1")}}
				}
			})
			msg := reg.expect(t)
			eventually(t, "registered", 3*time.Second, func() bool { return h.status(t, "a1").Code == 200 })
			up := strconv.Itoa(h.ua.udpPort)
			if line, _, _ := strings.Cut(msg, "\r\n"); line != "REGISTER "+tc.ruri+" SIP/2.0" {
				t.Errorf("request line %q, want REGISTER %s", line, tc.ruri)
			}
			if v := header(msg, "Via"); !strings.HasPrefix(v, "SIP/2.0/UDP [::1]:"+up+";") || !strings.Contains(v, ";rport") {
				t.Errorf("Via %q, want SIP/2.0/UDP [::1]:%s with rport", v, up)
			}
			if c := header(msg, "Contact"); !strings.Contains(c, "<sip:3001@[::1]:"+up+">") {
				t.Errorf("Contact %q, want <sip:3001@[::1]:%s>", c, up)
			}
			host := strings.TrimPrefix(strings.TrimSuffix(tc.ruri, ":"+p), "sip:")
			if f := header(msg, "From"); !strings.Contains(f, "sip:3001@"+host) {
				t.Errorf("From %q, want sip:3001@%s", f, host)
			}
		})
	}
}

// TestDualStackAccountsKeepTheirFamily: a UA bound to "::" registers one
// account at an IPv4 server and one at an IPv6 server; each REGISTER
// arrives over its server's family with that family's addresses, and a
// name with both A and AAAA is reached over IPv4 when bound to 127.0.0.1.
func TestDualStackAccountsKeepTheirFamily(t *testing.T) {
	reg4 := newRawRegistrar(t, "udp4", "127.0.0.1:0")
	reg6 := newRawRegistrar(t, "udp6", "[::1]:0")
	h := startUA(t, []Account{
		{Name: "v4", User: "3001", Server: "127.0.0.1:" + strconv.Itoa(reg4.port()), Register: true},
		{Name: "v6", User: "3002", Server: "[::1]:" + strconv.Itoa(reg6.port()), Register: true},
	}, func(c *Config, _ *UA) {
		if c != nil {
			c.Address = "::"
		}
	})
	m4, m6 := reg4.expect(t), reg6.expect(t)
	eventually(t, "both registered", 3*time.Second, func() bool {
		return h.status(t, "v4").Code == 200 && h.status(t, "v6").Code == 200
	})
	up := strconv.Itoa(h.ua.udpPort)
	if c := header(m4, "Contact"); !strings.Contains(c, "sip:3001@127.0.0.1:"+up) {
		t.Errorf("IPv4 account Contact %q, want sip:3001@127.0.0.1:%s", c, up)
	}
	if v := header(m4, "Via"); !strings.HasPrefix(v, "SIP/2.0/UDP 127.0.0.1:"+up) {
		t.Errorf("IPv4 account Via %q", v)
	}
	if c := header(m6, "Contact"); !strings.Contains(c, "sip:3002@[::1]:"+up) {
		t.Errorf("IPv6 account Contact %q, want sip:3002@[::1]:%s", c, up)
	}

	// Bound to IPv4: a name resolving AAAA first is reached over its A record.
	h4 := startUA(t, []Account{{Name: "a", User: "3003", Server: "both.test:" + strconv.Itoa(reg4.port()), Register: true}},
		func(c *Config, _ *UA) {
			if c != nil {
				c.Address = "127.0.0.1"
				c.Resolver = fakeResolver{"both.test": {netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")}}
			}
		})
	msg := reg4.expect(t)
	eventually(t, "registered over IPv4", 3*time.Second, func() bool { return h4.status(t, "a").Code == 200 })
	if c := header(msg, "Contact"); !strings.Contains(c, "sip:3003@127.0.0.1:") {
		t.Errorf("Contact %q, want an IPv4 contact", c)
	}
}

// TestLocalCallIPv6: the reproduction: two local accounts of a UA
// bound to ::1 call each other (the Request-URI was joined as ::1:PORT).
func TestLocalCallIPv6(t *testing.T) {
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			h := startUA(t, []Account{
				{Name: "a", User: "3001", Audio: &fakePort{"a"}},
				{Name: "b", User: "3002", Audio: &fakePort{"b"}},
			}, func(c *Config, _ *UA) {
				if c != nil {
					c.Address = "::1"
					c.Transports = []string{transport}
				}
			})
			id := dialAccount(t, h, "a", "3002")
			in := h.ev.wait(t, CallIncoming, 3*time.Second)
			if in.Account != "b" || in.Caller != "3001" {
				t.Fatalf("incoming %+v", in)
			}
			if err := h.ua.Answer("b", in.CallID); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				h.ev.wait(t, CallAnswered, 3*time.Second)
			}
			if err := h.ua.Hangup("a", id, false); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if ev := h.ev.wait(t, CallEnded, 3*time.Second); ev.Code >= 400 {
					t.Errorf("call ended with %d %s", ev.Code, ev.Reason)
				}
			}
		})
	}
}

// TestSDPIPv6: our SDP for an IPv6 host says IN IP6 in o= and c=, and an
// IPv6 offer (also the IPv6 hold address ::) parses.
func TestSDPIPv6(t *testing.T) {
	body := renderSDP(sdpSpec{Addr: "2001:db8::5", Port: 16384, Codecs: offerCodecs([]string{"PCMU"}), EventPT: -1, Dir: dirSendRecv}, 42, 1)
	for _, want := range []string{"o=- 42 1 IN IP6 2001:db8::5\r\n", "c=IN IP6 2001:db8::5\r\n"} {
		if !strings.Contains(body, want) {
			t.Errorf("SDP lacks %q:\n%s", want, body)
		}
	}
	r, err := parseSDP([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if a := r.rtpAddr(); a == nil || a.String() != "[2001:db8::5]:16384" {
		t.Errorf("rtpAddr = %v, want [2001:db8::5]:16384", a)
	}
	hold := strings.Replace(body, "c=IN IP6 2001:db8::5", "c=IN IP6 ::", 1)
	if r, err := parseSDP([]byte(hold)); err != nil || !r.held() || r.rtpAddr() != nil {
		t.Errorf("c=IN IP6 :: parsed as %+v, %v; want held, no RTP address", r, err)
	}
}

// countingResolver answers from a map it can be changed in, counting
// lookups.
type countingResolver struct {
	mu    sync.Mutex
	addrs map[string][]netip.Addr
	calls int
}

func (r *countingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if a, ok := r.addrs[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host " + host)
}

func (r *countingResolver) set(host string, a ...netip.Addr) {
	r.mu.Lock()
	r.addrs[host] = a
	r.mu.Unlock()
}

func (r *countingResolver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

// TestHostMemo: a server name is resolved once per hostTTL, a registrar
// that moves is followed after it, and pinning a request's destination
// never resolves (it may run under the UA lock).
func TestHostMemo(t *testing.T) {
	res := &countingResolver{addrs: map[string][]netip.Addr{}}
	res.set("pbx.test", netip.MustParseAddr("::1"))
	u, err := newUA(testConfig(Config{Address: "::", Resolver: res}), nil, nil, nil, &fakeAlloc{})
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	u.clock = clk // the memo's TTL runs on the UA's clock

	pinned := func(uri string) string {
		var ruri sip.Uri
		if err := sip.ParseUri(uri, &ruri); err != nil {
			t.Fatal(err)
		}
		req := sip.NewRequest(sip.OPTIONS, ruri)
		u.pinDestination(req)
		return req.Destination()
	}
	if got := pinned("sip:pbx.test:5070"); got != "pbx.test:5070" || res.count() != 0 {
		t.Errorf("before any lookup: destination %q after %d lookups, want pbx.test:5070 untouched and none", got, res.count())
	}
	if h := u.localHost("pbx.test"); h != "::1" {
		t.Errorf("localHost = %q, want ::1", h)
	}
	if got := pinned("sip:pbx.test:5070"); got != "[::1]:5070" {
		t.Errorf("destination %q, want [::1]:5070", got)
	}
	res.set("pbx.test", netip.MustParseAddr("127.0.0.1"))
	clk.Advance(hostTTL - time.Second)
	u.localHost("pbx.test")
	if got := pinned("sip:pbx.test:5070"); got != "[::1]:5070" || res.count() != 1 {
		t.Errorf("within the TTL: destination %q after %d lookups, want [::1]:5070 after 1", got, res.count())
	}
	clk.Advance(2 * time.Second)
	if h := u.localHost("pbx.test"); h != "127.0.0.1" {
		t.Errorf("after the TTL localHost = %q, want 127.0.0.1 (the new address's family)", h)
	}
	if got := pinned("sip:pbx.test:5070"); got != "127.0.0.1:5070" || res.count() != 2 {
		t.Errorf("after the TTL: destination %q after %d lookups, want 127.0.0.1:5070 after 2", got, res.count())
	}
	if got := pinned("sip:[::1]:5070;lr"); got != "[::1]:5070" {
		t.Errorf("IPv6 literal destination %q, want [::1]:5070", got)
	}
}
