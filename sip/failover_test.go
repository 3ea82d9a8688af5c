package sip

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// TestFailoverAndFailback: the primary stops answering REGISTER, the
// account moves to the backup (a fail naming both), new calls go to the
// backup, and once the primary answers OPTIONS again the account returns
// to it and removes its backup binding.
func TestFailoverAndFailback(t *testing.T) {
	a, b := newPeer(t), newPeer(t)
	ra := &registrar{expires: 2, user: "3001", pass: "pw", nonce: "na"}
	rb := &registrar{expires: 60, user: "3001", pass: "pw", nonce: "nb"}
	rb.install(b)
	var down atomic.Bool
	var mu sync.Mutex
	var optionsA int
	a.handle(sip.OPTIONS, func(req *sip.Request, tx sip.ServerTransaction) {
		if down.Load() {
			return
		}
		mu.Lock()
		optionsA++
		mu.Unlock()
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	ra.install(a)
	inner := a.handlers[sip.REGISTER]
	a.handle(sip.REGISTER, func(req *sip.Request, tx sip.ServerTransaction) {
		if down.Load() {
			return // a stopped server: no answer at all
		}
		inner(req, tx)
	})
	s := &uas{final: 486}
	s.install(t, b)

	h := startUA(t, []Account{{Name: "a1", User: "3001", Pass: "pw", Server: a.addr(), Backups: []string{b.addr()}, Register: true}},
		func(c *Config, u *UA) {
			if c != nil {
				c.RegisterExpires = 2 * time.Second
				c.RegisterTimeout = 300 * time.Millisecond
				c.FailbackInterval = 300 * time.Millisecond
			}
		})
	eventually(t, "registered at the primary", 3*time.Second, func() bool {
		st := h.status(t, "a1")
		return st.Code == 200 && st.Registration.Server == a.addr()
	})

	down.Store(true)
	start := time.Now()
	ev := h.ev.wait(t, AccountFailed, 5*time.Second)
	if !strings.Contains(ev.Reason, a.addr()) || !strings.Contains(ev.Reason, b.addr()) || ev.Code != 408 {
		t.Errorf("fail %+v does not name both servers", ev)
	}
	eventually(t, "registered at the backup", 5*time.Second, func() bool {
		st := h.status(t, "a1")
		return st.Code == 200 && st.Registration.Server == b.addr()
	})
	t.Logf("failover took %v after the primary stopped (refresh due within 1.3 s, time-out 300 ms, retry 200 ms)", time.Since(start))

	// A new call goes to the backup.
	dialAccount(t, h, "a1", "3009")
	if end := h.ev.wait(t, CallEnded, 3*time.Second); end.Code != 486 {
		t.Errorf("call through the backup ended %+v", end)
	}
	s.mu.Lock()
	n := len(s.invites)
	s.mu.Unlock()
	if n != 1 {
		t.Errorf("backup got %d INVITEs, want 1", n)
	}
	// A transfer to an extension names the backup too: the primary is down.
	s.mu.Lock()
	s.final = 200
	s.mu.Unlock()
	id := dialAccount(t, h, "a1", "3009")
	h.ev.wait(t, CallAnswered, 3*time.Second)
	if err := h.ua.Transfer("a1", id, "3010"); err != nil {
		t.Fatal(err)
	}
	refer := b.expect(sip.REFER, 3*time.Second)
	if v := refer.GetHeader("Refer-To"); v == nil || !strings.Contains(v.Value(), "sip:3010@"+b.addr()) {
		t.Errorf("Refer-To %v, want the extension at the backup %s", v, b.addr())
	}
	if err := h.ua.Hangup("a1", id, false); err != nil {
		t.Fatal(err)
	}
	h.ev.wait(t, CallEnded, 3*time.Second)

	down.Store(false)
	eventually(t, "back at the primary", 5*time.Second, func() bool {
		st := h.status(t, "a1")
		return st.Code == 200 && st.Registration.Server == a.addr()
	})
	mu.Lock()
	probes := optionsA
	mu.Unlock()
	if probes == 0 {
		t.Errorf("the primary got no OPTIONS probe")
	}
	eventually(t, "backup binding removed", 3*time.Second, func() bool {
		rb.mu.Lock()
		defer rb.mu.Unlock()
		return rb.last != nil && rb.last.GetHeader("Expires") != nil && rb.last.GetHeader("Expires").Value() == "0"
	})
}

// A 403 is the same at every server: no failover.
func TestNoFailoverOnRejection(t *testing.T) {
	a, b := newPeer(t), newPeer(t)
	(&registrar{expires: 60, user: "3001", pass: "other", nonce: "na"}).install(a)
	rb := &registrar{expires: 60, user: "3001", pass: "pw", nonce: "nb"}
	rb.install(b)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Pass: "pw", Server: a.addr(), Backups: []string{b.addr()}, Register: true}}, nil)
	ev := h.ev.wait(t, AccountFailed, 3*time.Second)
	if ev.Code != 403 || strings.Contains(ev.Reason, "trying") {
		t.Errorf("fail %+v, want a plain 403", ev)
	}
	time.Sleep(500 * time.Millisecond) // two retries
	rb.mu.Lock()
	defer rb.mu.Unlock()
	if rb.count != 0 {
		t.Errorf("backup got %d REGISTERs after a 403 from the primary", rb.count)
	}
	if st := h.status(t, "a1"); st.Registration.Server != a.addr() {
		t.Errorf("status server %q", st.Registration.Server)
	}
}

// mutableResolver is a fakeResolver a test can change while the UA runs.
type mutableResolver struct {
	mu sync.Mutex
	m  map[string][]netip.Addr
}

func (r *mutableResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if a, ok := r.m[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func (r *mutableResolver) set(host string, a ...netip.Addr) {
	r.mu.Lock()
	r.m[host] = a
	r.mu.Unlock()
}

// A server given by name is looked up again at every registration
// attempt: who may call the account follows the DNS.
func TestServerNameResolvedPerAttempt(t *testing.T) {
	srv := newPeer(t)
	(&registrar{expires: 1, user: "3001", pass: "pw", nonce: "n"}).install(srv)
	caller := newPeerAt(t, "127.0.0.2", false)
	res := &mutableResolver{m: map[string][]netip.Addr{"pbx.test": {netip.MustParseAddr("127.0.0.1")}}}
	h := startUA(t, []Account{{Name: "a1", User: "3001", Pass: "pw", Register: true,
		Server: "pbx.test:" + strconv.Itoa(srv.port)}}, func(c *Config, u *UA) {
		if c != nil {
			c.Resolver = res
			c.RegisterExpires = time.Second
		}
	})
	eventually(t, "registered at pbx.test", 3*time.Second, func() bool { return h.status(t, "a1").Code == 200 })
	if res := caller.call(t, h.ua.udpPort, "3001", peerSDP(30000, "sendrecv", "", 1)).final(t, 3*time.Second); res.StatusCode != 403 {
		t.Fatalf("127.0.0.2 answered %d before the DNS names it, want 403", res.StatusCode)
	}
	// The PBX "moves" to 127.0.0.2 (and keeps 127.0.0.1): after the next
	// refresh (within a second) the caller there is trusted.
	res.set("pbx.test", netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"))
	eventually(t, "127.0.0.2 trusted after a refresh", 5*time.Second, func() bool {
		u := h.ua
		u.mu.Lock()
		defer u.mu.Unlock()
		return u.byName["a1"].isServerLocked(netip.MustParseAddr("127.0.0.2"))
	})
	caller.call(t, h.ua.udpPort, "3001", peerSDP(30000, "sendrecv", "", 1))
	h.ev.wait(t, CallIncoming, 3*time.Second)
}

// A TCP server that refuses the connection moves the account to the
// backup at once (no 32 s wait).
func TestFailoverOnConnectionRefused(t *testing.T) {
	b := newPeerOn(t, true)
	(&registrar{expires: 60, user: "3001", pass: "pw", nonce: "nb"}).install(b)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close() // nothing listens there now: connection refused
	h := startUA(t, []Account{{Name: "a1", User: "3001", Pass: "pw", Register: true,
		Server: dead + ";transport=tcp", Backups: []string{b.addr() + ";transport=tcp"}}}, func(c *Config, u *UA) {
		if c != nil {
			c.Transports = []string{"tcp"}
		}
	})
	ev := h.ev.wait(t, AccountFailed, 3*time.Second)
	if ev.Code != 503 || !strings.Contains(ev.Reason, dead) {
		t.Errorf("fail %+v, want 503 naming %s", ev, dead)
	}
	eventually(t, "registered at the backup over TCP", 3*time.Second, func() bool {
		st := h.status(t, "a1")
		return st.Code == 200 && strings.HasPrefix(st.Registration.Server, b.addr())
	})
}
