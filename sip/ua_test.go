package sip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

type harness struct {
	ua    *UA
	ev    *events
	alloc *fakeAlloc
}

func startUA(t *testing.T, accounts []Account, tweak func(*Config, *UA)) *harness {
	t.Helper()
	cfg := Config{Address: "127.0.0.1", Transports: []string{"udp"}, RegisterRetry: 200 * time.Millisecond, RegisterExpires: time.Hour,
		EndedCallLinger: time.Second}
	h := &harness{ev: newEvents(), alloc: &fakeAlloc{}}
	if tweak != nil {
		tweak(&cfg, nil)
	}
	ua, err := newUA(testConfig(cfg), accounts, h.ev.handler, testLogger(t), h.alloc)
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(nil, ua)
	}
	h.ua = ua
	if err := ua.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := ua.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return h
}

func (h *harness) status(t *testing.T, account string) AccountStatus {
	t.Helper()
	st, err := h.ua.Status(account)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (h *harness) call(t *testing.T, account string, id int) CallStatus {
	t.Helper()
	for _, c := range h.status(t, account).Calls {
		if c.ID == id {
			return c
		}
	}
	t.Fatalf("call %d of %s not in status", id, account)
	return CallStatus{}
}

func eventually(t *testing.T, what string, timeout time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if f() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// registrar makes the peer a digest registrar for user/pass that grants
// expires seconds; it counts REGISTERs and keeps the last one.
type registrar struct {
	mu       sync.Mutex
	count    int
	ok       int
	last     *sip.Request
	expires  int
	user     string
	pass     string
	nonce    string
	rejected int
}

func (r *registrar) install(p *peer) {
	p.handle(sip.REGISTER, func(req *sip.Request, tx sip.ServerTransaction) {
		r.mu.Lock()
		r.count++
		r.last = req
		expires, user, pass, nonce := r.expires, r.user, r.pass, r.nonce
		r.mu.Unlock()
		auth := req.GetHeader("Authorization")
		if auth == nil {
			res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
			res.AppendHeader(sip.NewHeader("WWW-Authenticate",
				`Digest realm="test", nonce="`+nonce+`", qop="auth", algorithm=MD5`))
			tx.Respond(res)
			return
		}
		if err := checkDigest(auth.Value(), "REGISTER", user, pass, nonce); err != nil {
			r.mu.Lock()
			r.rejected++
			r.mu.Unlock()
			tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
			return
		}
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		if ct := req.Contact(); ct != nil {
			e := expires
			if v := req.GetHeader("Expires"); v != nil && v.Value() == "0" {
				e = 0
			}
			res.AppendHeader(sip.NewHeader("Contact", "<"+ct.Address.String()+">;expires="+strconv.Itoa(e)))
		}
		r.mu.Lock()
		r.ok++
		r.mu.Unlock()
		tx.Respond(res)
	})
}

func TestRegisterDigestRefreshAndUnregister(t *testing.T) {
	p := newPeer(t)
	reg := &registrar{expires: 2, user: "3001", pass: "sip3001", nonce: "abc123"}
	reg.install(p)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Pass: "sip3001", Server: p.addr(), Register: true}}, nil)

	eventually(t, "registered", 3*time.Second, func() bool { return h.status(t, "a1").Code == 200 })
	if r := h.status(t, "a1").Registration; r.State != RegRegistered || r.Server != p.addr() || r.Transport != "udp" ||
		r.ExpiresIn <= 0 || r.ExpiresIn > 2*time.Second || r.LastError != "" || r.RetryIn != 0 {
		t.Errorf("registration = %+v, want registered at %s over udp, expiring within 2s", r, p.addr())
	}
	first := p.expect(sip.REGISTER, time.Second)
	if first.GetHeader("Authorization") != nil {
		t.Errorf("first REGISTER carries credentials before any challenge")
	}
	reg.mu.Lock()
	last := reg.last
	reg.mu.Unlock()
	ct := last.Contact()
	if ct == nil || ct.Address.User != "3001" || ct.Address.Host != "127.0.0.1" || ct.Address.Port != h.ua.udpPort {
		t.Errorf("Contact = %v, want sip:3001@127.0.0.1:%d", ct, h.ua.udpPort)
	}
	if v := last.Via(); v == nil || !v.Params.Has("rport") {
		t.Errorf("Via without rport: %v", last.Via())
	}
	// Granted 2 s: a refresh is due between 1 and 1.33 s.
	start := time.Now()
	reg.mu.Lock()
	okBefore := reg.ok
	reg.mu.Unlock()
	eventually(t, "refresh", 3*time.Second, func() bool {
		reg.mu.Lock()
		defer reg.mu.Unlock()
		return reg.ok > okBefore
	})
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("refresh after %v, want before expiry (2s)", el)
	}

	if err := h.ua.Logout("a1"); err != nil {
		t.Fatal(err)
	}
	if c := h.status(t, "a1").Code; c != 0 {
		t.Errorf("code after logout = %d, want 0", c)
	}
	if st := h.status(t, "a1").Registration.State; st != RegLoggedOut {
		t.Errorf("state after logout = %q, want %q", st, RegLoggedOut)
	}
	eventually(t, "un-REGISTER", 3*time.Second, func() bool {
		reg.mu.Lock()
		defer reg.mu.Unlock()
		return reg.last.GetHeader("Expires").Value() == "0" && reg.last.GetHeader("Authorization") != nil
	})
	// Login re-registers with new credentials (kept in memory only).
	reg.mu.Lock()
	reg.pass = "newpass"
	reg.mu.Unlock()
	np := "newpass"
	if err := h.ua.Login("a1", nil, &np, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "registered after login", 3*time.Second, func() bool { return h.status(t, "a1").Code == 200 })
}

func TestRegisterWrongPasswordFails(t *testing.T) {
	p := newPeer(t)
	reg := &registrar{expires: 60, user: "3001", pass: "right", nonce: "n1"}
	reg.install(p)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Pass: "wrong", Server: p.addr(), Register: true}}, nil)
	ev := h.ev.wait(t, AccountFailed, 3*time.Second)
	if ev.Account != "a1" || ev.Code != 403 || ev.Reason != "403 Forbidden" {
		t.Errorf("event = %+v, want a1 403 Forbidden", ev)
	}
	if c := h.status(t, "a1").Code; c != 403 {
		t.Errorf("code = %d, want 403", c)
	}
	eventually(t, "retry scheduled", time.Second, func() bool { return h.status(t, "a1").Registration.RetryIn > 0 })
	if r := h.status(t, "a1").Registration; r.State != RegRejected || r.LastError != "403 Forbidden" || r.RetryIn > time.Second {
		t.Errorf("registration = %+v, want rejected, 403 Forbidden, a retry within 1s", r)
	}
	// Retries back off but repeat the same failure silently.
	h.ev.none(t, 500*time.Millisecond)
	// The registrar comes to accept the password: a retry registers.
	reg.mu.Lock()
	reg.pass = "wrong"
	reg.mu.Unlock()
	eventually(t, "registered on retry", 3*time.Second, func() bool { return h.status(t, "a1").Code == 200 })
	if r := h.status(t, "a1").Registration; r.State != RegRegistered || r.LastError != "" {
		t.Errorf("registration after the retry = %+v", r)
	}
}

func TestRegisterFailureCodes(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		code   int
		reason string
	}{
		{"no answer", fmt.Errorf("REGISTER: %w", sip.ErrTransactionTimeout), 408, "408 Request Timeout (no answer from the registrar)"},
		{"transport", fmt.Errorf("send REGISTER: %w", sip.ErrTransactionTransport), 503, "503 Service Unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := regFailure(tc.err)
			if r.code != tc.code || !strings.HasPrefix(r.reason, tc.reason) {
				t.Errorf("got %d %q", r.code, r.reason)
			}
		})
	}
}

func TestNoRegistrationWithoutServerOrRegisterFalse(t *testing.T) {
	p := newPeer(t)
	h := startUA(t, []Account{
		{Name: "local", User: "3001"},
		{Name: "noreg", User: "3002", Server: p.addr(), Register: false},
	}, nil)
	time.Sleep(200 * time.Millisecond)
	select {
	case r := <-p.got:
		t.Fatalf("unexpected %s", r.Method)
	default:
	}
	for n, want := range map[string]string{"local": RegNoServer, "noreg": RegDisabled} {
		st := h.status(t, n)
		if st.Code != 0 {
			t.Errorf("%s code = %d, want 0", n, st.Code)
		}
		if st.Registration.State != want {
			t.Errorf("%s state = %q, want %q", n, st.Registration.State, want)
		}
	}
	if _, err := h.ua.Status("nope"); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown account error = %v", err)
	}
}

// uasAnswer installs an INVITE handler on the peer that plays proxy+callee:
// 407 first (if auth), then 180 and the given final response.
type uas struct {
	mu        sync.Mutex
	invites   []*sip.Request
	dialog    *pdialog
	auth      bool
	final     int
	hold      chan struct{} // if set, wait for it (or CANCEL) before the final response
	reinvite  []*sip.Request
	updates   []*sip.Request
	early     bool
	cancelled bool
	tag       string
	se        string // Session-Expires for the 2xx
	allow     string
}

func (s *uas) install(t *testing.T, p *peer) {
	s.tag = newTag()
	p.handle(sip.INVITE, func(req *sip.Request, tx sip.ServerTransaction) {
		if tag, _ := req.To().Params.Get("tag"); tag != "" {
			// re-INVITE from the UA: answer mirroring its direction.
			s.mu.Lock()
			s.reinvite = append(s.reinvite, req)
			s.mu.Unlock()
			dir := sdpDir(req.Body())
			ans := map[string]string{"sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive", "sendrecv": "sendrecv"}[dir]
			var body []byte
			if len(req.Body()) > 0 {
				body = peerSDP(30000, ans, "", 2)
			}
			tx.Respond(p.answer(req, 200, "OK", s.tag, body))
			return
		}
		s.mu.Lock()
		s.invites = append(s.invites, req)
		auth, final, hold, early, se, allow := s.auth, s.final, s.hold, s.early, s.se, s.allow
		s.mu.Unlock()
		if auth {
			pa := req.GetHeader("Proxy-Authorization")
			if pa == nil {
				res := sip.NewResponseFromRequest(req, 407, "Proxy Authentication Required", nil)
				res.AppendHeader(sip.NewHeader("Proxy-Authenticate", `Digest realm="proxy", nonce="pn1", qop="auth"`))
				tx.Respond(res)
				return
			}
			if err := checkDigest(pa.Value(), "INVITE", "3001", "sip3001", "pn1"); err != nil {
				t.Errorf("INVITE credentials: %v", err)
				tx.Respond(sip.NewResponseFromRequest(req, 403, "Forbidden", nil))
				return
			}
		}
		rr := sip.NewHeader("Record-Route", "<sip:127.0.0.1:"+strconv.Itoa(p.port)+";lr>")
		if early {
			tx.Respond(p.answer(req, 183, "Session Progress", s.tag, peerSDP(30000, "sendrecv", "", 1), rr))
		} else {
			tx.Respond(p.answer(req, 180, "Ringing", s.tag, nil, rr))
		}
		if hold != nil {
			cancelled := make(chan struct{})
			tx.OnCancel(func(*sip.Request) { close(cancelled) })
			select {
			case <-hold:
			case <-cancelled:
				// sipgo answered 200 to the CANCEL and 487 to the INVITE.
				s.mu.Lock()
				s.cancelled = true
				s.mu.Unlock()
				return
			}
		}
		var hdrs []sip.Header
		hdrs = append(hdrs, rr)
		if se != "" {
			hdrs = append(hdrs, sip.NewHeader("Session-Expires", se), sip.NewHeader("Require", "timer"))
		}
		if allow != "" {
			hdrs = append(hdrs, sip.NewHeader("Allow", allow))
		}
		if final == 200 {
			d := p.dialogFromInvite(req, s.tag)
			s.mu.Lock()
			s.dialog = d
			s.mu.Unlock()
			tx.Respond(p.answer(req, 200, "OK", s.tag, peerSDP(30000, "sendrecv", "", 1), hdrs...))
			if req.Transport() == "TCP" {
				// Nothing is retransmitted over TCP, and the UA's ACK is a
				// transaction of its own: done (as the UA does, awaitAck).
				tx.Terminate()
				return
			}
			// Wait for the ACK before the handler returns.
			select {
			case <-tx.Acks():
			case <-time.After(200 * time.Millisecond):
			}
			return
		}
		tx.Respond(p.answer(req, final, sipReason(final), s.tag, nil))
	})
	p.handle(sip.UPDATE, func(req *sip.Request, tx sip.ServerTransaction) {
		s.mu.Lock()
		s.updates = append(s.updates, req)
		s.mu.Unlock()
		tx.Respond(p.answer(req, 200, "OK", s.tag, nil))
	})
}

func sipReason(code int) string {
	switch code {
	case 486:
		return "Busy Here"
	case 404:
		return "Not Found"
	case 603:
		return "Decline"
	}
	return "Error"
}

func (s *uas) dlg() *pdialog {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dialog
}

func dialAccount(t *testing.T, h *harness, account, num string) int {
	t.Helper()
	id := -1
	var events int32
	if err := h.ua.Dial(account, num, func(cid int) {
		id = cid
		if len(h.ev.ch) > 0 {
			atomic.AddInt32(&events, 1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if id < 0 {
		t.Fatal("accepted not called")
	}
	return id
}

func TestOutgoingCallAnsweredWithProxyAuthAndRouteSet(t *testing.T) {
	p := newPeer(t)
	s := &uas{auth: true, final: 200}
	s.install(t, p)
	port := &fakePort{"ch1"}
	h := startUA(t, []Account{{Name: "a1", User: "3001", Pass: "sip3001", Server: p.addr(), Audio: port, AudioName: "ch1"}}, nil)

	id := dialAccount(t, h, "a1", "3009")
	if id != 0 {
		t.Errorf("first call id = %d, want 0", id)
	}
	ev := h.ev.wait(t, CallAnswered, 5*time.Second)
	if ev.CallID != id || ev.Account != "a1" {
		t.Errorf("answered event %+v", ev)
	}
	ack := p.expect(sip.ACK, 2*time.Second)
	if r := ack.Route(); r == nil || r.Address.Port != p.port {
		t.Errorf("ACK without the Record-Route route: %v", ack.GetHeader("Route"))
	}
	s.mu.Lock()
	invs := append([]*sip.Request(nil), s.invites...)
	s.mu.Unlock()
	if len(invs) != 2 {
		t.Fatalf("INVITEs = %d, want 2 (407 then authorised)", len(invs))
	}
	inv := invs[1]
	t.Logf("authorised INVITE is %d bytes", len(inv.String()))
	if inv.Recipient.User != "3009" || inv.Recipient.Port != p.port {
		t.Errorf("R-URI = %s", inv.Recipient.String())
	}
	if invs[0].CSeq().SeqNo >= inv.CSeq().SeqNo {
		t.Errorf("CSeq not incremented after 407")
	}
	body := string(inv.Body())
	for _, want := range []string{"m=audio 40002 RTP/AVP 0 8 101", "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-16", "a=ptime:20", "a=sendrecv", "c=IN IP4 127.0.0.1"} {
		if !strings.Contains(body, want) {
			t.Errorf("offer lacks %q:\n%s", want, body)
		}
	}
	if !hasOption(inv, "Supported", "timer") || !hasMethod(inv.GetHeader("Allow").Value(), "UPDATE") {
		t.Errorf("INVITE must advertise Supported: timer and Allow with UPDATE")
	}
	sess := h.alloc.session(0)
	pr := sess.last()
	if pr.Remote == nil || pr.Remote.Port != 30000 || !pr.Send || !pr.Recv || pr.Codec.Name != "PCMA" || pr.EventPT != 101 {
		t.Errorf("media params = %+v", pr)
	}
	if sess.boundTo() != port {
		t.Errorf("session not bound to the account's channel")
	}
	st := h.call(t, "a1", id)
	if st.State != StateActive || !st.Started || !st.Active || st.Direction != "out" || st.Callee != "3009" || st.Caller != "3001" {
		t.Errorf("status = %+v", st)
	}
	if sum, err := h.ua.Summary("a1"); err != nil || sum.LiveCalls != 1 {
		t.Errorf("summary during the call = %+v %v, want 1 live call", sum, err)
	}

	// The far end hangs up through the route set.
	d := s.dlg()
	if res := d.do(sip.BYE, nil); res.StatusCode != 200 {
		t.Errorf("BYE answered %d", res.StatusCode)
	}
	ev = h.ev.wait(t, CallEnded, 2*time.Second)
	if ev.Reason != "remote hangup" || ev.CallID != id {
		t.Errorf("ended event %+v", ev)
	}
	if !sess.isClosed() {
		t.Errorf("media session not closed")
	}
	st = h.call(t, "a1", id)
	if !st.Stopped || st.State != StateEnded {
		t.Errorf("status after end = %+v", st)
	}
	if sum, err := h.ua.Summary("a1"); err != nil || sum.LiveCalls != 0 {
		t.Errorf("summary of a lingering ended call = %+v %v, want no live call", sum, err)
	}
	if _, err := h.ua.Summary("nope"); !errors.Is(err, ErrUnknownAccount) {
		t.Errorf("summary of an unknown account: %v, want ErrUnknownAccount", err)
	}
	// Lingers for EndedCallLinger (1 s here), then disappears.
	eventually(t, "ended call to disappear", 3*time.Second, func() bool { return len(h.status(t, "a1").Calls) == 0 })
}

func TestOutgoingCallBusy(t *testing.T) {
	p := newPeer(t)
	s := &uas{final: 486}
	s.install(t, p)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Server: p.addr()}}, nil)
	id := dialAccount(t, h, "a1", "3009")
	ev := h.ev.wait(t, CallEnded, 5*time.Second)
	if ev.CallID != id || ev.Code != 486 || ev.Reason != "486 Busy Here" {
		t.Errorf("ended event %+v", ev)
	}
	// The reason stays while the call lingers.
	if c := h.call(t, "a1", id); !c.Stopped || c.EndReason != "486 Busy Here" || c.EndCode != 486 || c.Duration != 0 || c.Direction != "out" {
		t.Errorf("lingering call = %+v, want stopped with 486 Busy Here and no duration", c)
	}
	// Call IDs are never reused.
	if id2 := dialAccount(t, h, "a1", "3009"); id2 != id+1 {
		t.Errorf("second call id = %d, want %d", id2, id+1)
	}
}

func TestOutgoingCallCancel(t *testing.T) {
	p := newPeer(t)
	s := &uas{final: 200, hold: make(chan struct{})}
	s.install(t, p)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Server: p.addr()}}, nil)
	id := dialAccount(t, h, "a1", "3009")
	eventually(t, "ringing", 3*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.invites) > 0
	})
	time.Sleep(100 * time.Millisecond)
	if st := h.call(t, "a1", id); st.State != StateRinging {
		t.Errorf("state = %s, want ringing", st.State)
	}
	if err := h.ua.Hangup("a1", id, false); err != nil {
		t.Fatal(err)
	}
	ev := h.ev.wait(t, CallEnded, 3*time.Second)
	// sipgo may send the 487 before the peer's OnCancel callback has run.
	deadline := time.Now().Add(time.Second)
	cancelled := false
	for !cancelled && time.Now().Before(deadline) {
		s.mu.Lock()
		cancelled = s.cancelled
		s.mu.Unlock()
		if !cancelled {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if !cancelled {
		t.Errorf("the peer's INVITE transaction was not cancelled")
	}
	if ev.Reason != "cancelled" || ev.Code != 487 {
		t.Errorf("ended event %+v", ev)
	}
	h.ev.none(t, 300*time.Millisecond) // exactly one CallEnded
}

func TestEarlyMedia(t *testing.T) {
	p := newPeer(t)
	s := &uas{final: 200, early: true, hold: make(chan struct{})}
	s.install(t, p)
	port := &fakePort{"c"}
	h := startUA(t, []Account{{Name: "a1", User: "3001", Server: p.addr(), Audio: port}}, nil)
	id := dialAccount(t, h, "a1", "3009")
	eventually(t, "early state", 3*time.Second, func() bool { return h.call(t, "a1", id).State == StateEarly })
	sess := h.alloc.session(0)
	if pr := sess.last(); !pr.Recv || pr.Send || pr.Remote == nil {
		t.Errorf("early media params %+v, want receive only", pr)
	}
	if sess.boundTo() != port {
		t.Errorf("early media not played to the channel")
	}
	close(s.hold)
	h.ev.wait(t, CallAnswered, 3*time.Second)
	if pr := sess.last(); !pr.Send || !pr.Recv {
		t.Errorf("after answer params %+v", pr)
	}
}

// incoming sets up a UA with account 3001 and an established incoming
// call from the peer; it returns the peer's call.
func incoming(t *testing.T, hdrs ...sip.Header) (*harness, *peer, *pcall, int) {
	t.Helper()
	p := newPeer(t)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Audio: &fakePort{"c"}}}, func(c *Config, u *UA) {
		if u != nil {
			u.minSE = 1
		}
	})
	pc := p.call(t, h.ua.udpPort, "3001", peerSDP(30000, "sendrecv", "", 1), hdrs...)
	ev := h.ev.wait(t, CallIncoming, 3*time.Second)
	if err := h.ua.Answer("a1", ev.CallID); err != nil {
		t.Fatal(err)
	}
	res := pc.final(t, 3*time.Second)
	if res.StatusCode != 200 {
		t.Fatalf("INVITE answered %d", res.StatusCode)
	}
	pc.ack(t, res, nil)
	h.ev.wait(t, CallAnswered, 3*time.Second)
	return h, p, pc, ev.CallID
}

func TestIncomingCallAnsweredAndRemoteBye(t *testing.T) {
	p := newPeer(t)
	port := &fakePort{"c"}
	h := startUA(t, []Account{{Name: "a1", User: "3001", Audio: port}}, nil)
	pc := p.call(t, h.ua.udpPort, "3001", peerSDP(30000, "sendrecv", "", 1))
	// sipgo hands responses up from separate goroutines: 100 and 180 may
	// arrive in either order.
	codes := map[int]bool{}
	for i := 0; i < 2; i++ {
		r := pc.next(t, 3*time.Second)
		codes[r.StatusCode] = true
		if r.StatusCode == 180 && (r.Contact() == nil || r.To().Params.GetOr("tag", "") == "") {
			t.Errorf("180 without Contact or To tag")
		}
	}
	if !codes[100] || !codes[180] {
		t.Errorf("responses %v, want 100 and 180", codes)
	}
	ev := h.ev.wait(t, CallIncoming, 2*time.Second)
	if ev.Caller != "5555" || ev.CallerName != "Peer Five" || ev.Account != "a1" {
		t.Errorf("incoming event %+v", ev)
	}
	if st := h.call(t, "a1", ev.CallID); st.State != StateRinging || st.Direction != "in" || st.Caller != "5555" || st.Callee != "3001" {
		t.Errorf("status %+v", st)
	}
	if err := h.ua.Answer("a1", ev.CallID); err != nil {
		t.Fatal(err)
	}
	res := pc.final(t, 3*time.Second)
	if res.StatusCode != 200 {
		t.Fatalf("final %d", res.StatusCode)
	}
	body := string(res.Body())
	if !strings.Contains(body, "m=audio 40002 RTP/AVP 0 101") || !strings.Contains(body, "a=rtpmap:101 telephone-event/8000") || sdpDir(res.Body()) != "sendrecv" {
		t.Errorf("answer SDP (the plan's first codec PCMU although the offer lists PCMA first, event PT 101):\n%s", body)
	}
	if !hasMethod(res.GetHeader("Allow").Value(), "UPDATE") {
		t.Errorf("200 Allow lacks UPDATE")
	}
	pc.ack(t, res, nil)
	h.ev.wait(t, CallAnswered, 2*time.Second)
	sess := h.alloc.session(0)
	if sess.boundTo() != port {
		t.Errorf("not bound")
	}
	if st := h.call(t, "a1", ev.CallID); st.LocalMedia != "127.0.0.1:40002" || st.RemoteMedia != "127.0.0.1:30000" || st.Hold != HoldNone {
		t.Errorf("media addresses %q -> %q, hold %q; want 127.0.0.1:40002 -> 127.0.0.1:30000, none", st.LocalMedia, st.RemoteMedia, st.Hold)
	}
	time.Sleep(20 * time.Millisecond)
	if res := pc.d.do(sip.BYE, nil); res.StatusCode != 200 {
		t.Errorf("BYE answered %d", res.StatusCode)
	}
	ev = h.ev.wait(t, CallEnded, 2*time.Second)
	if ev.Reason != "remote hangup" {
		t.Errorf("ended %+v", ev)
	}
	st := h.call(t, "a1", ev.CallID)
	if st.EndReason != "remote hangup" || st.EndCode != 0 || st.Duration < 20*time.Millisecond {
		t.Errorf("ended call %+v, want remote hangup after at least 20ms", st)
	}
	time.Sleep(20 * time.Millisecond)
	if d := h.call(t, "a1", ev.CallID).Duration; d != st.Duration {
		t.Errorf("duration moved after the end: %v then %v", st.Duration, d)
	}
	// BYE for the dialog that is gone: 481.
	if res := pc.d.do(sip.BYE, nil); res.StatusCode != 481 {
		t.Errorf("second BYE answered %d, want 481", res.StatusCode)
	}
}

func TestIncomingRemoteCancel(t *testing.T) {
	p := newPeer(t)
	h := startUA(t, []Account{{Name: "a1", User: "3001"}}, nil)
	pc := p.call(t, h.ua.udpPort, "3001", peerSDP(30000, "sendrecv", "", 1))
	ev := h.ev.wait(t, CallIncoming, 3*time.Second)
	if res := pc.cancel(t); res.StatusCode != 200 {
		t.Errorf("CANCEL answered %d", res.StatusCode)
	}
	if res := pc.final(t, 3*time.Second); res.StatusCode != 487 {
		t.Errorf("INVITE final %d, want 487", res.StatusCode)
	}
	end := h.ev.wait(t, CallEnded, 2*time.Second)
	if end.CallID != ev.CallID || end.Reason != "remote cancel" || end.Code != 487 {
		t.Errorf("ended %+v", end)
	}
}

func TestIncomingDeclineAndMaxCalls(t *testing.T) {
	p := newPeer(t)
	h := startUA(t, []Account{{Name: "a1", User: "3001", MaxCalls: 1}}, nil)
	pc := p.call(t, h.ua.udpPort, "3001", peerSDP(30000, "sendrecv", "", 1))
	ev := h.ev.wait(t, CallIncoming, 3*time.Second)
	// A second call while at max-calls: 486 without a CallIncoming.
	pc2 := p.call(t, h.ua.udpPort, "3001", peerSDP(30002, "sendrecv", "", 1))
	if res := pc2.final(t, 3*time.Second); res.StatusCode != 486 {
		t.Errorf("second call got %d, want 486", res.StatusCode)
	}
	if err := h.ua.Hangup("a1", ev.CallID, true); err != nil {
		t.Fatal(err)
	}
	if res := pc.final(t, 3*time.Second); res.StatusCode != 603 {
		t.Errorf("declined call got %d, want 603", res.StatusCode)
	}
	end := h.ev.wait(t, CallEnded, 2*time.Second)
	if end.Code != 603 {
		t.Errorf("ended %+v", end)
	}
	if err := h.ua.Answer("a1", ev.CallID); err == nil {
		t.Errorf("answering an ended call succeeded")
	}
}

func TestIncomingDelayedOffer(t *testing.T) {
	p := newPeer(t)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Audio: &fakePort{"c"}}}, nil)
	pc := p.call(t, h.ua.udpPort, "3001", nil)
	ev := h.ev.wait(t, CallIncoming, 3*time.Second)
	h.ua.Answer("a1", ev.CallID)
	res := pc.final(t, 3*time.Second)
	if !strings.Contains(string(res.Body()), "RTP/AVP 0 8 101") {
		t.Fatalf("200 to an offer-less INVITE must carry our offer:\n%s", res.Body())
	}
	pc.ack(t, res, peerSDP(30010, "sendrecv", "", 1))
	h.ev.wait(t, CallAnswered, 3*time.Second)
	if pr := h.alloc.session(0).last(); pr.Remote == nil || pr.Remote.Port != 30010 || pr.Codec.Name != "PCMA" {
		t.Errorf("answer from ACK not applied: %+v", pr)
	}
}

func TestIncomingNoAckEndsCall(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	h := startUA(t, []Account{{Name: "a1", User: "3001"}}, func(c *Config, u *UA) {
		if u != nil {
			u.ackTimeout = 500 * time.Millisecond
			u.clock = clk
		}
	})
	pc := p.call(t, h.ua.udpPort, "3001", peerSDP(30000, "sendrecv", "", 1))
	ev := h.ev.wait(t, CallIncoming, 3*time.Second)
	h.ua.Answer("a1", ev.CallID)
	res := pc.final(t, 3*time.Second)
	pc.d.remoteTag, _ = res.To().Params.Get("tag")
	h.ev.none(t, 100*time.Millisecond) // no ACK, but the time-out has not passed
	clk.Advance(500 * time.Millisecond)
	end := h.ev.wait(t, CallEnded, 3*time.Second)
	if end.Reason != "no ACK for 200 OK" {
		t.Errorf("ended %+v", end)
	}
	p.expect(sip.BYE, 2*time.Second)
}

func TestReinviteHoldStyles(t *testing.T) {
	h, _, pc, id := incoming(t)
	sess := h.alloc.session(0)
	cases := []struct {
		name    string
		offer   []byte
		wantDir string
		send    bool
		recv    bool
		remote  bool
		state   string
		bound   bool
		hold    string
	}{
		{"sendonly", peerSDP(30000, "sendonly", "", 2), "recvonly", false, true, true, StateHeld, false, HoldRemote},
		{"inactive", peerSDP(30000, "inactive", "", 3), "inactive", false, false, true, StateHeld, false, HoldRemote},
		{"c=0.0.0.0", peerSDP(30000, "sendrecv", "0.0.0.0", 4), "recvonly", false, true, false, StateHeld, false, HoldRemote},
		{"resume", peerSDP(30000, "sendrecv", "", 5), "sendrecv", true, true, true, StateActive, true, HoldNone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := pc.d.reinvite(tc.offer, nil)
			if res.StatusCode != 200 {
				t.Fatalf("re-INVITE answered %d", res.StatusCode)
			}
			if d := sdpDir(res.Body()); d != tc.wantDir {
				t.Errorf("answer direction %q, want %q", d, tc.wantDir)
			}
			pr := sess.last()
			if pr.Send != tc.send || pr.Recv != tc.recv || (pr.Remote != nil) != tc.remote {
				t.Errorf("params %+v", pr)
			}
			eventually(t, "state", time.Second, func() bool { return h.call(t, "a1", id).State == tc.state })
			if got := h.call(t, "a1", id).Hold; got != tc.hold {
				t.Errorf("hold = %q, want %q", got, tc.hold)
			}
			if (sess.boundTo() != nil) != tc.bound {
				t.Errorf("bound = %v, want %v", sess.boundTo() != nil, tc.bound)
			}
		})
	}
}

func TestReinviteWithoutSDPAndUpdate(t *testing.T) {
	h, _, pc, _ := incoming(t)
	sess := h.alloc.session(0)
	res := pc.d.reinvite(nil, func(r *sip.Response) []byte {
		if !strings.Contains(string(r.Body()), "m=audio") {
			t.Errorf("200 to offer-less re-INVITE has no offer")
		}
		return peerSDP(30020, "sendrecv", "", 9)
	})
	if res.StatusCode != 200 {
		t.Fatalf("re-INVITE %d", res.StatusCode)
	}
	eventually(t, "answer from ACK applied", 2*time.Second, func() bool {
		pr := sess.last()
		return pr.Remote != nil && pr.Remote.Port == 30020
	})
	// UPDATE without SDP: 200 without body.
	if r := pc.d.do(sip.UPDATE, nil); r.StatusCode != 200 || len(r.Body()) != 0 {
		t.Errorf("UPDATE without SDP: %d body %q", r.StatusCode, r.Body())
	}
	// UPDATE with SDP: answered in the 200.
	r := pc.d.do(sip.UPDATE, peerSDP(30030, "sendonly", "", 10))
	if r.StatusCode != 200 || sdpDir(r.Body()) != "recvonly" {
		t.Errorf("UPDATE with SDP: %d %q", r.StatusCode, sdpDir(r.Body()))
	}
	// INFO in the dialog, OPTIONS in and out of the dialog.
	if r := pc.d.do(sip.INFO, nil); r.StatusCode != 200 {
		t.Errorf("INFO %d", r.StatusCode)
	}
}

func TestSessionRefreshSameVersion(t *testing.T) {
	h, _, pc, _ := incoming(t, sip.NewHeader("Session-Expires", "1800;refresher=uac"), sip.NewHeader("Supported", "timer"))
	_ = h
	// The peer refreshes with the unchanged offer: our answer keeps its version.
	r1 := pc.d.reinvite(peerSDP(30000, "sendrecv", "", 1), nil, sip.NewHeader("Session-Expires", "1800;refresher=uac"))
	r2 := pc.d.reinvite(peerSDP(30000, "sendrecv", "", 1), nil, sip.NewHeader("Session-Expires", "1800;refresher=uac"))
	if r1.StatusCode != 200 || r2.StatusCode != 200 {
		t.Fatalf("refreshes answered %d %d", r1.StatusCode, r2.StatusCode)
	}
	if sdpOrigin(r1.Body()) != sdpOrigin(r2.Body()) {
		t.Errorf("o= changed on an unchanged refresh: %q vs %q", sdpOrigin(r1.Body()), sdpOrigin(r2.Body()))
	}
	if v := r2.GetHeader("Session-Expires"); v == nil || v.Value() != "1800;refresher=uac" {
		t.Errorf("Session-Expires in 200 = %v", v)
	}
	// A change does bump the version.
	r3 := pc.d.reinvite(peerSDP(30000, "sendonly", "", 2), nil)
	if sdpOrigin(r3.Body()) == sdpOrigin(r2.Body()) {
		t.Errorf("o= unchanged after a change")
	}
	// Too small an interval: 422 with Min-SE.
	r4 := pc.d.do(sip.UPDATE, nil, sip.NewHeader("Session-Expires", "0"))
	_ = r4
}

func TestSessionTimerWeRefresh(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	h := startUA(t, []Account{{Name: "a1", User: "3001"}}, func(c *Config, u *UA) {
		if u != nil {
			u.minSE = 1
			u.clock = clk
		}
	})
	pc := p.call(t, h.ua.udpPort, "3001", peerSDP(30000, "sendrecv", "", 1),
		sip.NewHeader("Session-Expires", "2;refresher=uas"), sip.NewHeader("Supported", "timer"),
		sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, UPDATE"))
	ev := h.ev.wait(t, CallIncoming, 3*time.Second)
	h.ua.Answer("a1", ev.CallID)
	res := pc.final(t, 3*time.Second)
	if v := res.GetHeader("Session-Expires"); v == nil || v.Value() != "2;refresher=uas" {
		t.Errorf("200 Session-Expires = %v", v)
	}
	if !hasOption(res, "Require", "timer") {
		t.Errorf("200 lacks Require: timer")
	}
	pc.ack(t, res, nil)
	h.ev.wait(t, CallAnswered, 2*time.Second)
	// We are the refresher: UPDATE (the peer allows it) after 1 s.
	clk.Advance(999 * time.Millisecond)
	for early := time.After(100 * time.Millisecond); ; {
		select {
		case r := <-p.got:
			if r.Method == sip.UPDATE {
				t.Errorf("refresh after %v, want 1s", 999*time.Millisecond)
			}
			continue
		case <-early:
		}
		break
	}
	clk.Advance(time.Millisecond)
	up := p.expect(sip.UPDATE, 3*time.Second)
	if len(up.Body()) != 0 || up.GetHeader("Session-Expires") == nil {
		t.Errorf("refresh UPDATE: body %q, Session-Expires %v", up.Body(), up.GetHeader("Session-Expires"))
	}
	// Without UPDATE in Allow we would re-INVITE; covered by the peer's
	// answer: the call stays up.
	h.ev.none(t, 300*time.Millisecond)
}

func TestSessionTimerPeerRefreshMissingEndsCall(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	h := startUA(t, []Account{{Name: "a1", User: "3001"}}, func(c *Config, u *UA) {
		if u != nil {
			u.minSE = 1
			u.clock = clk
		}
	})
	pc := p.call(t, h.ua.udpPort, "3001", peerSDP(30000, "sendrecv", "", 1),
		sip.NewHeader("Session-Expires", "2;refresher=uac"), sip.NewHeader("Supported", "timer"))
	ev := h.ev.wait(t, CallIncoming, 3*time.Second)
	h.ua.Answer("a1", ev.CallID)
	res := pc.final(t, 3*time.Second)
	pc.ack(t, res, nil)
	h.ev.wait(t, CallAnswered, 2*time.Second)
	// RFC 4028 §10: BYE at expiry minus min(32 s, interval/3) = 1.333 s.
	clk.Advance(1333*time.Millisecond - time.Microsecond)
	h.ev.none(t, 100*time.Millisecond)
	clk.Advance(time.Millisecond)
	end := h.ev.wait(t, CallEnded, 4*time.Second)
	if end.Reason != "session expired" {
		t.Errorf("ended %+v", end)
	}
	p.expect(sip.BYE, 2*time.Second)
}

func TestOutgoingSessionTimerRefreshByReinvite(t *testing.T) {
	p := newPeer(t)
	s := &uas{final: 200, se: "2;refresher=uac", allow: "INVITE, ACK, BYE, CANCEL"}
	s.install(t, p)
	clk := newFakeClock()
	h := startUA(t, []Account{{Name: "a1", User: "3001", Server: p.addr()}}, func(c *Config, u *UA) {
		if u != nil {
			u.clock = clk
		}
	})
	dialAccount(t, h, "a1", "3009")
	h.ev.wait(t, CallAnswered, 3*time.Second)
	s.mu.Lock()
	first := s.invites[0]
	s.mu.Unlock()
	if first.GetHeader("Session-Expires") == nil {
		t.Errorf("INVITE without Session-Expires")
	}
	clk.Advance(time.Second) // half the interval: we refresh
	eventually(t, "refresh re-INVITE", 3*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.reinvite) > 0
	})
	s.mu.Lock()
	re := s.reinvite[0]
	s.mu.Unlock()
	if sdpOrigin(re.Body()) != sdpOrigin(first.Body()) {
		t.Errorf("refresh re-INVITE changed the SDP version: %q vs %q", sdpOrigin(re.Body()), sdpOrigin(first.Body()))
	}
	if r := re.Route(); r == nil {
		t.Errorf("re-INVITE does not follow the route set")
	}
}

func TestOptionsAndUnknownMethods(t *testing.T) {
	p := newPeer(t)
	h := startUA(t, []Account{{Name: "a1", User: "3001"}}, nil)
	d := &pdialog{p: p, callID: newCallID(), localTag: newTag(), cseq: 1,
		local:  sip.Uri{Scheme: "sip", User: "5555", Host: "127.0.0.1"},
		remote: sip.Uri{Scheme: "sip", User: "3001", Host: "127.0.0.1"},
		target: sip.Uri{Scheme: "sip", User: "3001", Host: "127.0.0.1", Port: h.ua.udpPort}}
	r := d.do(sip.OPTIONS, nil)
	if r.StatusCode != 200 || r.GetHeader("Allow") == nil || r.GetHeader("Accept") == nil {
		t.Errorf("OPTIONS: %d Allow=%v Accept=%v", r.StatusCode, r.GetHeader("Allow"), r.GetHeader("Accept"))
	}
	if r := d.do(sip.MESSAGE, nil); r.StatusCode != 405 || r.GetHeader("Allow") == nil {
		t.Errorf("MESSAGE: %d, want 405 with Allow", r.StatusCode)
	}
	if r := d.do(sip.RequestMethod("FROBNICATE"), nil); r.StatusCode != 501 {
		t.Errorf("FROBNICATE: %d, want 501", r.StatusCode)
	}
	d.remoteTag = "nosuchtag"
	for _, m := range []sip.RequestMethod{sip.BYE, sip.INVITE, sip.UPDATE, sip.INFO} {
		if r := d.do(m, nil); r.StatusCode != 481 {
			t.Errorf("%s in unknown dialog: %d, want 481", m, r.StatusCode)
		}
	}
}

func TestLocalCallBetweenAccounts(t *testing.T) {
	pa, pb := &fakePort{"a"}, &fakePort{"b"}
	h := startUA(t, []Account{
		{Name: "a", User: "3001", Audio: pa},
		{Name: "b", User: "3002", Audio: pb},
	}, nil)
	id := dialAccount(t, h, "a", "3002")
	in := h.ev.wait(t, CallIncoming, 3*time.Second)
	if in.Account != "b" || in.Caller != "3001" || in.CallID != id+1 {
		t.Errorf("incoming %+v", in)
	}
	if err := h.ua.Answer("b", in.CallID); err != nil {
		t.Fatal(err)
	}
	got := map[int]bool{}
	for len(got) < 2 {
		ev := h.ev.wait(t, CallAnswered, 3*time.Second)
		got[ev.CallID] = true
	}
	if !got[id] || !got[in.CallID] {
		t.Errorf("answered events for %v", got)
	}
	if err := h.ua.Hangup("a", id, false); err != nil {
		t.Fatal(err)
	}
	ends := map[int]string{}
	for len(ends) < 2 {
		ev := h.ev.wait(t, CallEnded, 3*time.Second)
		ends[ev.CallID] = ev.Reason
	}
	if ends[id] != "local hangup" || ends[in.CallID] != "remote hangup" {
		t.Errorf("end reasons %v", ends)
	}
	if err := h.ua.Dial("a", "9999", func(int) { t.Error("accepted called for a failing dial") }); err == nil {
		t.Errorf("dialing an unknown local user succeeded")
	}
}

func TestSwitchAndAnswerHold(t *testing.T) {
	p := newPeer(t)
	port := &fakePort{"c"}
	h := startUA(t, []Account{{Name: "a1", User: "3001", Audio: port}}, nil)
	// Two incoming calls, each answered; the peer answers our re-INVITEs.
	reinv := make(chan *sip.Request, 10)
	p.handle(sip.INVITE, func(req *sip.Request, tx sip.ServerTransaction) {
		reinv <- req
		ans := map[string]string{"sendonly": "recvonly", "sendrecv": "sendrecv"}[sdpDir(req.Body())]
		tx.Respond(p.answer(req, 200, "OK", toTag(req), peerSDP(30000, ans, "", 3)))
	})
	var calls []*pcall
	var ids []int
	for i := 0; i < 2; i++ {
		pc := p.call(t, h.ua.udpPort, "3001", peerSDP(30000+10*i, "sendrecv", "", 1))
		ev := h.ev.wait(t, CallIncoming, 3*time.Second)
		if err := h.ua.Answer("a1", ev.CallID); err != nil {
			t.Fatal(err)
		}
		res := pc.final(t, 3*time.Second)
		pc.ack(t, res, nil)
		h.ev.wait(t, CallAnswered, 3*time.Second)
		calls = append(calls, pc)
		ids = append(ids, ev.CallID)
	}
	s0, s1 := h.alloc.session(0), h.alloc.session(1)
	// Answering the second held the first (re-INVITE sendonly).
	r := <-reinv
	if r.CallID().Value() != calls[0].d.callID || sdpDir(r.Body()) != "sendonly" {
		t.Errorf("hold re-INVITE for wrong call or direction %q", sdpDir(r.Body()))
	}
	eventually(t, "first held", 2*time.Second, func() bool { return h.call(t, "a1", ids[0]).State == StateHeld })
	if c0, c1 := h.call(t, "a1", ids[0]), h.call(t, "a1", ids[1]); c0.Hold != HoldLocal || c1.Hold != HoldNone {
		t.Errorf("hold after answering the second: %q, %q; want local, none", c0.Hold, c1.Hold)
	}
	if s0.boundTo() != nil || s1.boundTo() != port {
		t.Errorf("binding after answer: s0=%v s1=%v", s0.boundTo(), s1.boundTo())
	}
	// Switch back to the first.
	if err := h.ua.Switch("a1", ids[0]); err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{}
	for len(dirs) < 2 {
		select {
		case r := <-reinv:
			dirs[r.CallID().Value()] = sdpDir(r.Body())
		case <-time.After(3 * time.Second):
			t.Fatalf("re-INVITEs after switch: %v", dirs)
		}
	}
	if dirs[calls[1].d.callID] != "sendonly" || dirs[calls[0].d.callID] != "sendrecv" {
		t.Errorf("switch re-INVITEs %v", dirs)
	}
	eventually(t, "switched", 2*time.Second, func() bool {
		return h.call(t, "a1", ids[0]).State == StateActive && h.call(t, "a1", ids[1]).State == StateHeld
	})
	if s0.boundTo() != port || s1.boundTo() != nil {
		t.Errorf("binding after switch: s0=%v s1=%v", s0.boundTo(), s1.boundTo())
	}
	if !h.call(t, "a1", ids[0]).Active || h.call(t, "a1", ids[1]).Active {
		t.Errorf("Active flags wrong")
	}
	// Switching to the active call is a no-op.
	if err := h.ua.Switch("a1", ids[0]); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-reinv:
		t.Errorf("no-op switch sent %s", sdpDir(r.Body()))
	case <-time.After(300 * time.Millisecond):
	}
}

func TestSharedChannelBindsOneCall(t *testing.T) {
	p := newPeer(t)
	port := &fakePort{"shared"}
	h := startUA(t, []Account{
		{Name: "a", User: "3001", Audio: port, AudioName: "ch"},
		{Name: "b", User: "3002", Audio: port, AudioName: "ch"},
	}, nil)
	for _, user := range []string{"3001", "3002"} {
		pc := p.call(t, h.ua.udpPort, user, peerSDP(30000, "sendrecv", "", 1))
		ev := h.ev.wait(t, CallIncoming, 3*time.Second)
		h.ua.Answer(ev.Account, ev.CallID)
		res := pc.final(t, 3*time.Second)
		pc.ack(t, res, nil)
		h.ev.wait(t, CallAnswered, 3*time.Second)
	}
	s0, s1 := h.alloc.session(0), h.alloc.session(1)
	if s0.boundTo() != nil || s1.boundTo() != port {
		t.Errorf("a channel must be bound to one call: s0=%v s1=%v", s0.boundTo(), s1.boundTo())
	}
}

func TestShutdownEndsCallsAndUnregisters(t *testing.T) {
	p := newPeer(t)
	reg := &registrar{expires: 60, user: "3001", pass: "pw", nonce: "n"}
	reg.install(p)
	s := &uas{final: 200}
	s.install(t, p)
	ev := newEvents()
	ua, err := newUA(testConfig(Config{Address: "127.0.0.1", Transports: []string{"udp"}}),
		[]Account{{Name: "a1", User: "3001", Pass: "pw", Server: p.addr(), Register: true}}, ev.handler, testLogger(t), &fakeAlloc{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ua.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "registered", 3*time.Second, func() bool { st, _ := ua.Status("a1"); return st.Code == 200 })
	ua.Dial("a1", "3009", nil)
	ev.wait(t, CallAnswered, 3*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := ua.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if el := time.Since(start); el > 1500*time.Millisecond {
		t.Errorf("shutdown took %v", el)
	}
	end := ev.wait(t, CallEnded, time.Second)
	if end.Reason != "shutdown" {
		t.Errorf("ended %+v", end)
	}
	p.expect(sip.BYE, time.Second)
	reg.mu.Lock()
	last := reg.last
	reg.mu.Unlock()
	if last.GetHeader("Expires").Value() != "0" {
		t.Errorf("no un-REGISTER on shutdown")
	}
	if err := ua.Healthy(); err == nil {
		t.Errorf("healthy after shutdown")
	}
}

func TestReloadAndLoginNewUser(t *testing.T) {
	p := newPeer(t)
	var mu sync.Mutex
	var regs []*sip.Request
	p.handle(sip.REGISTER, func(req *sip.Request, tx sip.ServerTransaction) {
		mu.Lock()
		regs = append(regs, req)
		mu.Unlock()
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("Expires", req.GetHeader("Expires").Value()))
		tx.Respond(res)
	})
	regsOf := func(user, expires string) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range regs {
			if r.From().Address.User == user && r.GetHeader("Expires").Value() == expires {
				n++
			}
		}
		return n
	}
	s := &uas{final: 200}
	s.install(t, p)
	keep := Account{Name: "keep", User: "3001", Server: p.addr(), Register: true}
	gone := Account{Name: "gone", User: "3002", Server: p.addr(), Register: true}
	h := startUA(t, []Account{keep, gone}, nil)
	eventually(t, "both registered", 3*time.Second, func() bool {
		return h.status(t, "keep").Code == 200 && h.status(t, "gone").Code == 200
	})
	keepID := dialAccount(t, h, "keep", "3009")
	h.ev.wait(t, CallAnswered, 3*time.Second)
	goneID := dialAccount(t, h, "gone", "3009")
	h.ev.wait(t, CallAnswered, 3*time.Second)

	// Login with another user: the old binding is removed, the new one made.
	nu := "3005"
	if err := h.ua.Login("keep", &nu, nil, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, "old binding removed and new one made", 3*time.Second, func() bool {
		return regsOf("3001", "0") == 1 && regsOf("3005", "3600") >= 1 && h.status(t, "keep").Code == 200
	})
	if st := h.call(t, "keep", keepID); st.Stopped {
		t.Errorf("login ended a call")
	}

	// Reload: "gone" removed, "keep" unchanged in the plan (the login
	// override is dropped: back to 3001), a new account added.
	added := Account{Name: "new", User: "3007", Server: p.addr(), Register: true}
	if err := h.ua.Reload([]Account{keep, added}); err != nil {
		t.Fatal(err)
	}
	end := h.ev.wait(t, CallEnded, 3*time.Second)
	if end.CallID != goneID || end.Account != "gone" {
		t.Errorf("ended %+v, want the removed account's call", end)
	}
	eventually(t, "reload registrations", 3*time.Second, func() bool {
		return regsOf("3002", "0") == 1 && regsOf("3007", "3600") >= 1 && regsOf("3005", "0") == 1 &&
			h.status(t, "new").Code == 200
	})
	if _, err := h.ua.Status("gone"); err == nil {
		t.Errorf("removed account still known")
	}
	if st := h.call(t, "keep", keepID); st.Stopped {
		t.Errorf("reload ended a call of a kept account")
	}
}

func TestRTPTimeoutEndsCall(t *testing.T) {
	p := newPeer(t)
	s := &uas{final: 200}
	s.install(t, p)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Server: p.addr()}}, nil)
	id := dialAccount(t, h, "a1", "3009")
	h.ev.wait(t, CallAnswered, 3*time.Second)
	h.alloc.session(0).onTimeout()
	end := h.ev.wait(t, CallEnded, 3*time.Second)
	if end.CallID != id || end.Reason != "rtp timeout" {
		t.Errorf("ended %+v", end)
	}
	p.expect(sip.BYE, 2*time.Second)
}

func TestByeChallengedIsRetriedWithCredentials(t *testing.T) {
	p := newPeer(t)
	s := &uas{final: 200}
	s.install(t, p)
	var mu sync.Mutex
	var byes []*sip.Request
	p.handle(sip.BYE, func(req *sip.Request, tx sip.ServerTransaction) {
		mu.Lock()
		byes = append(byes, req)
		mu.Unlock()
		if req.GetHeader("Authorization") == nil {
			res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
			res.AppendHeader(sip.NewHeader("WWW-Authenticate", `Digest realm="ccmsipline", nonce="bye1", algorithm=MD5`))
			tx.Respond(res)
			return
		}
		if err := checkDigest(req.GetHeader("Authorization").Value(), "BYE", "auth3001", "pw", "bye1"); err != nil {
			t.Errorf("BYE credentials: %v", err)
		}
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	h := startUA(t, []Account{{Name: "a1", User: "3001", AuthUser: "auth3001", Pass: "pw", Server: p.addr()}}, nil)
	id := dialAccount(t, h, "a1", "3009")
	h.ev.wait(t, CallAnswered, 3*time.Second)
	if err := h.ua.Hangup("a1", id, false); err != nil {
		t.Fatal(err)
	}
	end := h.ev.wait(t, CallEnded, 3*time.Second)
	if end.Reason != "local hangup" {
		t.Errorf("ended %+v", end)
	}
	eventually(t, "authorised BYE", 3*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(byes) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	if byes[0].CSeq().SeqNo >= byes[1].CSeq().SeqNo {
		t.Errorf("challenged BYE not resent with a higher CSeq")
	}
	if byes[1].Route() == nil {
		t.Errorf("BYE does not follow the route set")
	}
}

func TestCommandsOnWrongCallsFail(t *testing.T) {
	p := newPeer(t)
	s := &uas{final: 200}
	s.install(t, p)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Server: p.addr()}, {Name: "a2", User: "3002"}}, nil)
	id := dialAccount(t, h, "a1", "3009")
	h.ev.wait(t, CallAnswered, 3*time.Second)
	tests := []struct {
		name string
		err  error
	}{
		{"answer an outgoing call", h.ua.Answer("a1", id)},
		{"switch a call of another account", h.ua.Switch("a2", id)},
		{"hangup unknown call", h.ua.Hangup("a1", 99, false)},
		{"unknown account", h.ua.Logout("zz")},
	}
	for _, tc := range tests {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if err := h.ua.Switch("a1", id); err != nil {
		t.Errorf("switch to the active call: %v", err)
	}
}

func TestTCPTransport(t *testing.T) {
	p := newPeerOn(t, true)
	reg := &registrar{expires: 60, user: "3001", pass: "pw", nonce: "tcp1"}
	reg.install(p)
	s := &uas{final: 200, auth: false}
	s.install(t, p)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Pass: "pw", Server: p.addr(), Register: true}}, func(c *Config, u *UA) {
		if c != nil {
			c.Transports = []string{"tcp", "udp"}
		}
	})
	eventually(t, "registered over TCP", 3*time.Second, func() bool { return h.status(t, "a1").Code == 200 })
	reg.mu.Lock()
	last := reg.last
	reg.mu.Unlock()
	if last.Via().Transport != "TCP" || !strings.Contains(last.Contact().Address.String(), "transport=tcp") {
		t.Errorf("REGISTER Via %v Contact %v", last.Via(), last.Contact())
	}
	id := dialAccount(t, h, "a1", "3009")
	h.ev.wait(t, CallAnswered, 3*time.Second)
	// The peer's BYE reaches our TCP listener through our Contact.
	if res := s.dlg().do(sip.BYE, nil); res.StatusCode != 200 {
		t.Errorf("BYE over TCP answered %d", res.StatusCode)
	}
	end := h.ev.wait(t, CallEnded, 2*time.Second)
	if end.CallID != id || end.Reason != "remote hangup" {
		t.Errorf("ended %+v", end)
	}
}

func TestHoldRequestedWhileRingingIsSentOnAnswer(t *testing.T) {
	p := newPeer(t)
	s := &uas{final: 200, hold: make(chan struct{})}
	s.install(t, p)
	h := startUA(t, []Account{{Name: "a1", User: "3001", Server: p.addr(), Audio: &fakePort{"c"}}}, nil)
	out := dialAccount(t, h, "a1", "3009")
	eventually(t, "ringing", 3*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.invites) > 0
	})
	// An incoming call is answered while the outgoing one rings.
	pc := p.call(t, h.ua.udpPort, "3001", peerSDP(30000, "sendrecv", "", 1))
	in := h.ev.wait(t, CallIncoming, 3*time.Second)
	if err := h.ua.Answer("a1", in.CallID); err != nil {
		t.Fatal(err)
	}
	res := pc.final(t, 3*time.Second)
	pc.ack(t, res, nil)
	h.ev.wait(t, CallAnswered, 3*time.Second)
	close(s.hold) // the outgoing call is answered now
	h.ev.wait(t, CallAnswered, 3*time.Second)
	eventually(t, "hold re-INVITE for the outgoing call", 3*time.Second, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.reinvite) == 1 && sdpDir(s.reinvite[0].Body()) == "sendonly"
	})
	eventually(t, "states", 2*time.Second, func() bool {
		return h.call(t, "a1", out).State == StateHeld && h.call(t, "a1", in.CallID).State == StateActive
	})
}

func TestSessionRefreshFallsBackToReinviteAfter501(t *testing.T) {
	p := newPeer(t)
	clk := newFakeClock()
	h := startUA(t, []Account{{Name: "a1", User: "3001"}}, func(c *Config, u *UA) {
		if u != nil {
			u.minSE = 1
			u.clock = clk
		}
	})
	p.handle(sip.UPDATE, func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 501, "Not Implemented", nil))
	})
	reinv := make(chan *sip.Request, 4)
	p.handle(sip.INVITE, func(req *sip.Request, tx sip.ServerTransaction) {
		reinv <- req
		tx.Respond(p.answer(req, 200, "OK", toTag(req), peerSDP(30000, "sendrecv", "", 1)))
	})
	pc := p.call(t, h.ua.udpPort, "3001", peerSDP(30000, "sendrecv", "", 1),
		sip.NewHeader("Session-Expires", "2;refresher=uas"), sip.NewHeader("Allow", "INVITE, ACK, BYE, UPDATE"))
	ev := h.ev.wait(t, CallIncoming, 3*time.Second)
	h.ua.Answer("a1", ev.CallID)
	res := pc.final(t, 3*time.Second)
	pc.ack(t, res, nil)
	h.ev.wait(t, CallAnswered, 2*time.Second)
	clk.Advance(time.Second)
	p.expect(sip.UPDATE, 3*time.Second)
	select {
	case r := <-reinv:
		if sdpOrigin(r.Body()) != sdpOrigin(res.Body()) {
			t.Errorf("refresh re-INVITE changed the SDP: %q vs %q", sdpOrigin(r.Body()), sdpOrigin(res.Body()))
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no re-INVITE refresh after UPDATE got 501")
	}
	h.ev.none(t, 200*time.Millisecond)
}

func TestOutgoing422AndReinviteGlare(t *testing.T) {
	p := newPeer(t)
	var mu sync.Mutex
	var invites, reinvites []*sip.Request
	tag := newTag()
	p.handle(sip.INVITE, func(req *sip.Request, tx sip.ServerTransaction) {
		mu.Lock()
		defer mu.Unlock()
		if toTag(req) != "" {
			reinvites = append(reinvites, req)
			if len(reinvites) == 1 {
				tx.Respond(sip.NewResponseFromRequest(req, 491, "Request Pending", nil))
				return
			}
			tx.Respond(p.answer(req, 200, "OK", tag, peerSDP(30000, "recvonly", "", 2)))
			return
		}
		invites = append(invites, req)
		if len(invites) == 1 {
			res := sip.NewResponseFromRequest(req, 422, "Session Interval Too Small", nil)
			res.AppendHeader(sip.NewHeader("Min-SE", "3600"))
			tx.Respond(res)
			return
		}
		tx.Respond(p.answer(req, 200, "OK", tag, peerSDP(30000, "sendrecv", "", 1),
			sip.NewHeader("Session-Expires", "3600;refresher=uas")))
	})
	clk := newFakeClock()
	h := startUA(t, []Account{{Name: "a1", User: "3001", Server: p.addr()}}, func(c *Config, u *UA) {
		if u != nil {
			u.clock = clk
		}
	})
	id := dialAccount(t, h, "a1", "3009")
	h.ev.wait(t, CallAnswered, 3*time.Second)
	mu.Lock()
	se := invites[1].GetHeader("Session-Expires")
	mu.Unlock()
	if se == nil || se.Value() != "3600" {
		t.Errorf("INVITE after 422 has Session-Expires %v, want 3600", se)
	}
	// The call is put on hold; the peer answers the first re-INVITE 491.
	h.ua.mu.Lock()
	c := h.ua.calls[id]
	h.ua.mu.Unlock()
	c.mu.Lock()
	c.hold.want = true
	h.ua.kickLocked(c)
	c.mu.Unlock()
	eventually(t, "the first hold re-INVITE", 3*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reinvites) == 1
	})
	// RFC 3261 14.1: the retry waits 2.1 s to 4 s.
	advanceUntil(t, clk, 100*time.Millisecond, "hold retried after 491", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reinvites) == 2
	})
	eventually(t, "held", 2*time.Second, func() bool { return h.call(t, "a1", id).State == StateHeld })
}
