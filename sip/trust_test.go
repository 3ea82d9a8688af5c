package sip

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// A stranger is a peer on 127.0.0.2; the accounts' server is on 127.0.0.1.
func TestOutOfDialogRequestsFromStrangers(t *testing.T) {
	tests := []struct {
		name      string
		noServer  bool
		accept    Accept
		trusted   []netip.Prefix
		silent    bool
		fromSrv   bool // the INVITE comes from the server's address
		wantRing  bool
		wantFinal int // when refused: 403, or 0 for no answer
	}{
		{name: "stranger refused 403", wantFinal: 403},
		{name: "stranger dropped silently", silent: true},
		{name: "server rings", fromSrv: true, wantRing: true},
		{name: "accept-from any", accept: Accept{Any: true}, wantRing: true},
		{name: "accept-from list", accept: Accept{Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}, wantRing: true},
		{name: "accept-from other list", accept: Accept{Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")}}, wantFinal: 403},
		{name: "trusted network", trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/24")}, wantRing: true},
		{name: "no server accepts anyone", noServer: true, wantRing: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := newPeer(t)
			caller := newPeerAt(t, "127.0.0.2", false)
			if tc.fromSrv {
				caller = srv
			}
			acct := Account{Name: "a1", User: "3001", Server: srv.addr(), AcceptFrom: tc.accept}
			if tc.noServer {
				acct.Server = ""
			}
			h := startUA(t, []Account{acct}, func(c *Config, u *UA) {
				if c != nil {
					c.Trusted = tc.trusted
					c.RejectSilently = tc.silent
				}
			})
			pc := caller.call(t, h.ua.udpPort, "3001", peerSDP(30000, "sendrecv", "", 1))
			if tc.wantRing {
				h.ev.wait(t, CallIncoming, 3*time.Second)
				return
			}
			if tc.wantFinal != 0 {
				if res := pc.final(t, 3*time.Second); res.StatusCode != tc.wantFinal {
					t.Fatalf("INVITE answered %d, want %d", res.StatusCode, tc.wantFinal)
				}
			} else {
				select {
				case res := <-pc.tx.Responses():
					t.Fatalf("silent refusal answered %d", res.StatusCode)
				case <-time.After(time.Second):
				}
			}
			h.ev.none(t, 200*time.Millisecond)
			// Each datagram counts: a silently dropped INVITE is retransmitted.
			st := h.status(t, "a1")
			if st.Refused < 1 || len(st.Calls) != 0 {
				t.Errorf("status: refused %d, %d calls; want refused, no call", st.Refused, len(st.Calls))
			}
			if n := h.ua.EdgeStats().Untrusted; n != st.Refused {
				t.Errorf("edge counted %d untrusted requests, the account %d", n, st.Refused)
			}
			// OPTIONS from the stranger gets the same treatment; an in-dialog
			// request (To tag) is not screened and gets its 481.
			if tc.wantFinal == 403 {
				d := &pdialog{p: caller, callID: newCallID(), localTag: newTag(), cseq: 1,
					local:  sip.Uri{Scheme: "sip", User: "5555", Host: caller.host},
					remote: sip.Uri{Scheme: "sip", User: "3001", Host: "127.0.0.1"},
					target: sip.Uri{Scheme: "sip", User: "3001", Host: "127.0.0.1", Port: h.ua.udpPort}}
				if res := d.do(sip.OPTIONS, nil); res.StatusCode != 403 {
					t.Errorf("stranger's OPTIONS answered %d, want 403", res.StatusCode)
				}
				d.remoteTag = "nosuchdialog"
				if res := d.do(sip.BYE, nil); res.StatusCode != 481 {
					t.Errorf("stranger's in-dialog BYE answered %d, want 481", res.StatusCode)
				}
			}
		})
	}
}

// A local call (an account without a server dialling one with a server)
// comes from our own address: it is ours, so it is admitted.
func TestLocalCallToAccountWithServer(t *testing.T) {
	srv := newPeer(t)
	(&registrar{expires: 60, user: "3001", pass: "pw", nonce: "n"}).install(srv)
	h := startUA(t, []Account{
		{Name: "a1", User: "3001", Pass: "pw", Server: srv.addr(), AcceptFrom: Accept{Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}},
		{Name: "a2", User: "3002"},
	}, nil)
	dialAccount(t, h, "a2", "3001")
	if ev := h.ev.wait(t, CallIncoming, 3*time.Second); ev.Account != "a1" {
		t.Fatalf("incoming call for %q", ev.Account)
	}
}

// SIPDigestLeak: a 401/407 from anyone but the account's server is never
// answered with credentials, for an INVITE or a BYE.
func TestNoDigestForStrangers(t *testing.T) {
	srv := newPeer(t)
	stranger := newPeerAt(t, "127.0.0.2", false)
	var mu sync.Mutex
	var invites, byes []*sip.Request
	challenge := func(req *sip.Request, tx sip.ServerTransaction, code int) {
		res := sip.NewResponseFromRequest(req, code, "Auth", nil)
		name := "WWW-Authenticate"
		if code == 407 {
			name = "Proxy-Authenticate"
		}
		res.AppendHeader(sip.NewHeader(name, `Digest realm="evil", nonce="harvest", qop="auth", algorithm=MD5`))
		tx.Respond(res)
	}
	tag := newTag()
	answer := false
	stranger.handle(sip.INVITE, func(req *sip.Request, tx sip.ServerTransaction) {
		mu.Lock()
		invites = append(invites, req)
		ok := answer
		mu.Unlock()
		if !ok {
			challenge(req, tx, 407)
			return
		}
		tx.Respond(stranger.answer(req, 200, "OK", tag, peerSDP(30000, "sendrecv", "", 1)))
		select {
		case <-tx.Acks():
		case <-time.After(200 * time.Millisecond):
		}
	})
	stranger.handle(sip.BYE, func(req *sip.Request, tx sip.ServerTransaction) {
		mu.Lock()
		byes = append(byes, req)
		mu.Unlock()
		challenge(req, tx, 401)
	})
	h := startUA(t, []Account{{Name: "a1", User: "3001", Pass: "sip3001", Server: srv.addr()}}, nil)
	target := "sip:9@" + stranger.addr()

	// INVITE challenged by the stranger: the call fails with the 407.
	dialAccount(t, h, "a1", target)
	if end := h.ev.wait(t, CallEnded, 3*time.Second); end.Code != 407 {
		t.Errorf("call ended %+v, want code 407", end)
	}
	// BYE challenged by the stranger: not resent with credentials.
	mu.Lock()
	answer = true
	mu.Unlock()
	id := dialAccount(t, h, "a1", target)
	h.ev.wait(t, CallAnswered, 3*time.Second)
	if err := h.ua.Hangup("a1", id, false); err != nil {
		t.Fatal(err)
	}
	h.ev.wait(t, CallEnded, 3*time.Second)
	eventually(t, "the BYE", 3*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(byes) == 1
	})
	time.Sleep(300 * time.Millisecond) // a resent BYE would come at once
	mu.Lock()
	defer mu.Unlock()
	if len(invites) != 2 || len(byes) != 1 {
		t.Errorf("stranger got %d INVITEs and %d BYEs, want 2 and 1 (nothing resent)", len(invites), len(byes))
	}
	for _, r := range append(invites, byes...) {
		for _, name := range []string{"Authorization", "Proxy-Authorization"} {
			if r.GetHeader(name) != nil {
				t.Errorf("%s %s carries %s: digest leaked to a stranger", r.Method, r.CSeq().Value(), name)
			}
		}
	}
}

// The server's own challenges are still answered (the registrar case is
// TestRegisterDigestRefreshAndUnregister); the check is by IP address.
func TestAuthorizeChecksSourceAddress(t *testing.T) {
	u := &UA{log: testLogger(t)}
	cr := credentials{user: "u", pass: "p", servers: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}}
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{"127.0.0.1:5060", true},
		{"127.0.0.1:40000", true}, // another port of the server
		{"[::1]:5060", true},
		{"127.0.0.2:5060", false},
		{"", false},
	} {
		t.Run(tc.src, func(t *testing.T) {
			req := sip.NewRequest(sip.BYE, sip.Uri{Scheme: "sip", Host: "127.0.0.1"})
			res := sip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
			res.AppendHeader(sip.NewHeader("WWW-Authenticate", `Digest realm="r", nonce="n"`))
			res.SetSource(tc.src)
			err := u.authorize(req, res, cr)
			if got := err == nil; got != tc.want {
				t.Errorf("authorize from %q: err %v, want answered=%v", tc.src, err, tc.want)
			}
			if got := req.GetHeader("Authorization") != nil; got != tc.want {
				t.Errorf("Authorization present=%v, want %v", got, tc.want)
			}
		})
	}
}
