package sip

import (
	"bytes"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// pcmuOnly is peerSDP offering PCMU alone.
func pcmuOnly(port int, version int) []byte {
	b := peerSDP(port, "sendrecv", "", version)
	b = bytes.Replace(b, []byte("RTP/AVP 8 0 101"), []byte("RTP/AVP 0 101"), 1)
	return bytes.Replace(b, []byte("a=rtpmap:8 PCMA/8000\r\n"), nil, 1)
}

// TestReconfigure: a reload's trusted sources screen the next request,
// its codecs apply to new calls while a call in progress keeps the ones
// it was set up with, its media settings reach the media engine, and a
// setting bound at start is refused with ErrNeedsRestart, changing
// nothing.
func TestReconfigure(t *testing.T) {
	srv := newPeer(t)
	stranger := newPeerAt(t, "127.0.0.2", false)
	var cfg Config
	h := startUA(t, []Account{{Name: "a1", User: "3001", Server: srv.addr(), Audio: &fakePort{"c"}}}, func(c *Config, u *UA) {
		if c != nil {
			cfg = testConfig(*c)
		}
	})
	// A call from the server, answered with PCMU or PCMA (both offered).
	pc := srv.call(t, h.ua.udpPort, "3001", pcmuOnly(30000, 1))
	ev := h.ev.wait(t, CallIncoming, 3*time.Second)
	if err := h.ua.Answer("a1", ev.CallID); err != nil {
		t.Fatal(err)
	}
	res := pc.final(t, 3*time.Second)
	pc.ack(t, res, nil)
	h.ev.wait(t, CallAnswered, 3*time.Second)
	pc.d.remoteTag, _ = res.To().Params.Get("tag")
	pc.d.target = res.Contact().Address

	// Refused before: the stranger is in no accept-from.
	if res := stranger.call(t, h.ua.udpPort, "3001", pcmuOnly(30100, 1)).final(t, 3*time.Second); res.StatusCode != 403 {
		t.Fatalf("stranger before the reload: %d, want 403", res.StatusCode)
	}

	next := cfg
	next.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	next.Codecs = []string{"PCMA"}
	next.Media.JitterBuffer = 80 * time.Millisecond
	next.UserAgent = "Desk 2"
	if err := h.ua.Reconfigure(next); err != nil {
		t.Fatal(err)
	}
	h.alloc.mu.Lock()
	got := h.alloc.media
	h.alloc.mu.Unlock()
	if len(got) != 1 || got[0].JitterBuffer != 80*time.Millisecond {
		t.Errorf("media engine got %+v, want one Reconfigure with jitter buffer 80ms", got)
	}

	// The stranger is trusted now; its PCMU-only call is a new call: PCMA
	// only, so 488.
	if res := stranger.call(t, h.ua.udpPort, "3001", pcmuOnly(30100, 1)).final(t, 3*time.Second); res.StatusCode != 488 {
		t.Fatalf("trusted stranger offering PCMU only after codecs = [PCMA]: %d, want 488", res.StatusCode)
	}
	// The call in progress keeps PCMU: its re-INVITE offering PCMU is
	// taken; the answer names the new user-agent.
	res = pc.d.reinvite(pcmuOnly(30000, 2), nil)
	if res.StatusCode != 200 {
		t.Fatalf("re-INVITE of the call set up before the reload: %d, want 200", res.StatusCode)
	}
	if s := res.GetHeader("Server"); s == nil || s.Value() != "Desk 2" {
		t.Errorf("Server header %v after user-agent = \"Desk 2\"", s)
	}

	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"port", func(c *Config) { c.Port = h.ua.udpPort + 1 }},
		{"transports", func(c *Config) { c.Transports = []string{"udp", "tcp"} }},
		{"ptime", func(c *Config) { c.Media.PTime = 30 * time.Millisecond }},
		{"audio rate", func(c *Config) { c.Media.AudioRate = 16000 }},
	} {
		bad := next
		tc.edit(&bad)
		bad.Trusted = nil
		if err := h.ua.Reconfigure(bad); !errors.Is(err, ErrNeedsRestart) {
			t.Errorf("%s: Reconfigure = %v, want ErrNeedsRestart", tc.name, err)
		}
	}
	if !h.ua.cur().trusts(netip.MustParseAddr("127.0.0.2")) {
		t.Errorf("a refused Reconfigure changed the settings in force")
	}
}

// TestKeepalive: with keepalive-interval off, a registrar that stops
// answering goes unnoticed until the refresh (an hour here); a reload
// turns the keepalive on, it pings the server every interval, and the
// first ping without an answer moves the account to its backup at once,
// whose registration is then kept alive in turn.
func TestKeepalive(t *testing.T) {
	a, b := newPeer(t), newPeer(t)
	(&registrar{expires: 3600, user: "3001", pass: "pw", nonce: "na"}).install(a)
	(&registrar{expires: 3600, user: "3001", pass: "pw", nonce: "nb"}).install(b)
	var down sync.Map // peer address -> struct{}: that server answers nothing
	var mu sync.Mutex
	pings := map[string]int{}
	for _, p := range []*peer{a, b} {
		inner := p.handlers[sip.REGISTER]
		p.handle(sip.REGISTER, func(req *sip.Request, tx sip.ServerTransaction) {
			if _, ok := down.Load(p.addr()); !ok {
				inner(req, tx)
			}
		})
		p.handle(sip.OPTIONS, func(req *sip.Request, tx sip.ServerTransaction) {
			if _, ok := down.Load(p.addr()); ok {
				return
			}
			mu.Lock()
			pings[p.addr()]++
			mu.Unlock()
			// Any answer is a live server: Kamailio answers 404 to some.
			tx.Respond(sip.NewResponseFromRequest(req, 404, "Not Found", nil))
		})
	}
	count := func(p *peer) int {
		mu.Lock()
		defer mu.Unlock()
		return pings[p.addr()]
	}
	clk := newFakeClock()
	var cfg Config
	h := startUA(t, []Account{{Name: "a1", User: "3001", Pass: "pw", Server: a.addr(), Backups: []string{b.addr()}, Register: true}},
		func(c *Config, u *UA) {
			if c != nil {
				c.RegisterExpires = time.Hour
				c.RegisterTimeout = 300 * time.Millisecond
				c.FailbackInterval = time.Hour
				cfg = testConfig(*c)
			}
			if u != nil {
				u.clock = clk
			}
		})
	eventually(t, "registered at the primary", 3*time.Second, func() bool {
		st := h.status(t, "a1")
		return st.Code == 200 && st.Registration.Server == a.addr()
	})

	clk.Advance(time.Minute)
	h.ev.none(t, 300*time.Millisecond)
	if n := count(a); n != 0 {
		t.Fatalf("keepalive off: %d OPTIONS", n)
	}

	on := cfg
	on.KeepaliveInterval = 10 * time.Second
	if err := h.ua.Reconfigure(on); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		eventually(t, "a keepalive", 3*time.Second, func() bool {
			clk.Advance(10 * time.Second)
			return count(a) >= i
		})
	}
	if st := h.status(t, "a1"); st.Code != 200 || st.Registration.Server != a.addr() {
		t.Fatalf("answered keepalives changed the registration: %+v", st.Registration)
	}

	down.Store(a.addr(), struct{}{})
	clk.Advance(10 * time.Second)
	ev := h.ev.wait(t, AccountFailed, 3*time.Second)
	if ev.Code != 408 || !bytes.Contains([]byte(ev.Reason), []byte("keepalive OPTIONS")) ||
		!bytes.Contains([]byte(ev.Reason), []byte(b.addr())) {
		t.Errorf("fail %+v: want 408, the keepalive and the backup named", ev)
	}
	eventually(t, "registered at the backup", 3*time.Second, func() bool {
		clk.Advance(200 * time.Millisecond) // register-retry of the move
		st := h.status(t, "a1")
		return st.Code == 200 && st.Registration.Server == b.addr()
	})
	eventually(t, "a keepalive to the backup", 3*time.Second, func() bool {
		clk.Advance(10 * time.Second)
		return count(b) >= 1
	})
}

// TestKeepaliveSilentServer: a registrar that never answers OPTIONS (UCM's
// line side keeps phones alive by the REGISTER refresh) is not judged down
// by unanswered keepalives: the account stays registered there instead of
// failing over at every ping.
func TestKeepaliveSilentServer(t *testing.T) {
	a, b := newPeer(t), newPeer(t)
	(&registrar{expires: 3600, user: "3001", pass: "pw", nonce: "na"}).install(a)
	(&registrar{expires: 3600, user: "3001", pass: "pw", nonce: "nb"}).install(b)
	var mu sync.Mutex
	pings := 0
	a.handle(sip.OPTIONS, func(*sip.Request, sip.ServerTransaction) {
		mu.Lock()
		pings++
		mu.Unlock()
	})
	clk := newFakeClock()
	h := startUA(t, []Account{{Name: "a1", User: "3001", Pass: "pw", Server: a.addr(), Backups: []string{b.addr()}, Register: true}},
		func(c *Config, u *UA) {
			if c != nil {
				c.RegisterExpires = time.Hour
				c.RegisterTimeout = 300 * time.Millisecond
				c.FailbackInterval = time.Hour
				c.KeepaliveInterval = 10 * time.Second
			}
			if u != nil {
				u.clock = clk
			}
		})
	eventually(t, "registered at the primary", 3*time.Second, func() bool {
		st := h.status(t, "a1")
		return st.Code == 200 && st.Registration.Server == a.addr()
	})
	eventually(t, "three unanswered keepalives", 5*time.Second, func() bool {
		clk.Advance(10 * time.Second)
		mu.Lock()
		defer mu.Unlock()
		return pings >= 3
	})
	h.ev.none(t, 500*time.Millisecond)
	if st := h.status(t, "a1"); st.Code != 200 || st.Registration.Server != a.addr() {
		t.Fatalf("a server silent to OPTIONS moved the account: %+v", st.Registration)
	}
}

// A reload's public-address re-registers at once: the binding with the old
// Contact is removed first (Expires: 0), then the new one registered; a
// reload's register-expires re-registers asking for the new lifetime.
func TestReconfigureReregisters(t *testing.T) {
	p := newPeer(t)
	r := &registrar{expires: 3600, user: "3001", pass: "pw", nonce: "n"}
	r.install(p)
	type reg struct{ contact, expires string }
	var mu sync.Mutex
	var regs []reg
	inner := p.handlers[sip.REGISTER]
	p.handle(sip.REGISTER, func(req *sip.Request, tx sip.ServerTransaction) {
		if req.GetHeader("Authorization") != nil {
			mu.Lock()
			regs = append(regs, reg{req.Contact().Address.Host, req.GetHeader("Expires").Value()})
			mu.Unlock()
		}
		inner(req, tx)
	})
	var cfg Config
	h := startUA(t, []Account{{Name: "a1", User: "3001", Pass: "pw", Server: p.addr(), Register: true}}, func(c *Config, u *UA) {
		if c != nil {
			c.RegisterExpires = time.Hour
			cfg = testConfig(*c)
		}
	})
	eventually(t, "registered", 3*time.Second, func() bool { return h.status(t, "a1").Code == 200 })

	next := cfg
	next.PublicAddress = "127.0.0.9"
	if err := h.ua.Reconfigure(next); err != nil {
		t.Fatal(err)
	}
	eventually(t, "registered with the new Contact", 3*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(regs) == 3
	})
	mu.Lock()
	got := append([]reg(nil), regs...)
	mu.Unlock()
	want := []reg{{"127.0.0.1", "3600"}, {"127.0.0.1", "0"}, {"127.0.0.9", "3600"}}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("REGISTERs %v, want %v", got, want)
		}
	}

	next.RegisterExpires = 20 * time.Minute
	if err := h.ua.Reconfigure(next); err != nil {
		t.Fatal(err)
	}
	eventually(t, "registered for 1200 s", 3*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(regs) == 4 && regs[3] == reg{"127.0.0.9", "1200"}
	})
	// Nothing else a reload changes re-registers.
	next.RegisterRetry = 2 * time.Second
	next.Trusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}
	if err := h.ua.Reconfigure(next); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	mu.Lock()
	n := len(regs)
	mu.Unlock()
	if n != 4 {
		t.Errorf("%d REGISTERs after a reload of retry and trusted, want still 4", n)
	}
}
