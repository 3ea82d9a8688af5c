//go:build integration

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// account is one [accounts.NAME] of a generated plan.
type account struct {
	Name, User, Pass, Server, DisplayName, Channel string
	NoRegister                                     bool
	MaxCalls                                       int      // 0: the plan's default (4)
	AcceptFrom                                     string   // TOML value of accept-from ("\"any\"", "[...]"); empty: the default
	Servers                                        []string // server as a list (failover); overrides Server
}

// channel is one [audio.channels.NAME].
type channel struct {
	Name, Sink, Source, Loopback string
}

// plan is what a test needs in its SIP plan; render fills in free ports.
type plan struct {
	Accounts        []account
	Channels        []channel
	Backend         string // loopback (default), pulse, alsa
	PulseServer     string
	RTPTimeout      string   // default 30s
	RegisterExpires string   // default 60s
	RegisterRetry   string   // default 1s
	Linger          string   // ended-call-linger, default 10s
	LogLevel        string   // default debug
	RTPPorts        int      // size of the RTP range; default 40
	Transports      []string // [sip-settings] transports; default the daemon's (udp)
	SIPExtra        string   // more [sip-settings] lines, as TOML
	SRTP            string   // [rtp-settings] srtp; default the daemon's (off)
	RTPExtra        string   // more [rtp-settings] lines, as TOML
	Codecs          []string // [rtp-settings] codecs; default the daemon's (PCMU, PCMA)
	Address         string   // [tcp-settings] and [sip-settings] address; default 127.0.0.1
	Allow           []string // [tcp-settings] allow; default none (any client)
	EventHistory    int      // [tcp-settings] event-history; 0: the daemon's default
	Metrics         bool     // serve [metrics] on a free port (MetricsAddr)

	// Filled in by render.
	APIPort, SIPPort, RTPMin, RTPMax int
	MetricsAddr                      string
}

func q(s string) string { return fmt.Sprintf("%q", s) }

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// render writes the plan as TOML, choosing free ports for the API, SIP and
// an RTP range of its own.
func (p *plan) render(t *testing.T) string {
	t.Helper()
	p.APIPort = testpeers.FreePort(t)
	p.SIPPort = testpeers.FreePort(t)
	p.RTPMin, p.RTPMax = testpeers.FreeRTPRange(t, max(p.RTPPorts, 40))
	var b strings.Builder
	addr := or(p.Address, "127.0.0.1")
	fmt.Fprintf(&b, "[tcp-settings]\naddress = %s\nport = %d\n", q(addr), p.APIPort)
	if len(p.Allow) > 0 {
		quoted := make([]string, len(p.Allow))
		for i, a := range p.Allow {
			quoted[i] = q(a)
		}
		fmt.Fprintf(&b, "allow = [%s]\n", strings.Join(quoted, ", "))
	}
	if p.EventHistory > 0 {
		fmt.Fprintf(&b, "event-history = %d\n", p.EventHistory)
	}
	b.WriteString("\n")
	if p.Metrics {
		p.MetricsAddr = fmt.Sprintf("127.0.0.1:%d", testpeers.FreePort(t))
		fmt.Fprintf(&b, "[metrics]\naddress = %q\n\n", p.MetricsAddr)
	}
	fmt.Fprintf(&b, "[sip-settings]\naddress = %s\nport = %d\nuser-agent = \"telestra-e2e\"\n", q(addr), p.SIPPort)
	if len(p.Transports) > 0 {
		quoted := make([]string, len(p.Transports))
		for i, tr := range p.Transports {
			quoted[i] = q(tr)
		}
		fmt.Fprintf(&b, "transports = [%s]\n", strings.Join(quoted, ", "))
	}
	fmt.Fprintf(&b, "register-expires = %s\nregister-retry = %s\nended-call-linger = %s\n%s\n",
		q(or(p.RegisterExpires, "60s")), q(or(p.RegisterRetry, "1s")), q(or(p.Linger, "10s")), p.SIPExtra)
	fmt.Fprintf(&b, "[rtp-settings]\nport-min = %d\nport-max = %d\ntimeout = %s\n", p.RTPMin, p.RTPMax, q(or(p.RTPTimeout, "30s")))
	if p.SRTP != "" {
		fmt.Fprintf(&b, "srtp = %s\n", q(p.SRTP))
	}
	if len(p.Codecs) > 0 {
		quoted := make([]string, len(p.Codecs))
		for i, c := range p.Codecs {
			quoted[i] = q(c)
		}
		fmt.Fprintf(&b, "codecs = [%s]\n", strings.Join(quoted, ", "))
	}
	b.WriteString(p.RTPExtra + "\n")
	fmt.Fprintf(&b, "[log]\nlevel = %s\n\n", q(or(p.LogLevel, "debug")))
	fmt.Fprintf(&b, "[audio]\nbackend = %s\n", q(or(p.Backend, "loopback")))
	if p.PulseServer != "" {
		fmt.Fprintf(&b, "pulse-server = %s\n", q(p.PulseServer))
	}
	b.WriteString("\n")
	chans := p.Channels
	if len(chans) == 0 {
		// Each account needs a channel of its own: one echo channel each.
		for i := range p.Accounts {
			name := fmt.Sprintf("ch%d", i+1)
			chans = append(chans, channel{Name: name, Loopback: "echo"})
			if p.Accounts[i].Channel == "" {
				p.Accounts[i].Channel = name
			}
		}
	}
	for _, c := range chans {
		fmt.Fprintf(&b, "[audio.channels.%s]\n", c.Name)
		if c.Sink != "" {
			fmt.Fprintf(&b, "sink = %s\n", q(c.Sink))
		}
		if c.Source != "" {
			fmt.Fprintf(&b, "source = %s\n", q(c.Source))
		}
		if c.Loopback != "" {
			fmt.Fprintf(&b, "loopback = %s\n", q(c.Loopback))
		}
		b.WriteString("\n")
	}
	for _, a := range p.Accounts {
		fmt.Fprintf(&b, "[accounts.%s]\nuser = %s\npass = %s\n", a.Name, q(a.User), q(a.Pass))
		switch {
		case len(a.Servers) > 0:
			quoted := make([]string, len(a.Servers))
			for i, s := range a.Servers {
				quoted[i] = q(s)
			}
			fmt.Fprintf(&b, "server = [%s]\n", strings.Join(quoted, ", "))
		case a.Server != "":
			fmt.Fprintf(&b, "server = %s\n", q(a.Server))
		}
		if a.AcceptFrom != "" {
			fmt.Fprintf(&b, "accept-from = %s\n", a.AcceptFrom)
		}
		if a.DisplayName != "" {
			fmt.Fprintf(&b, "display-name = %s\n", q(a.DisplayName))
		}
		if a.NoRegister {
			b.WriteString("register = false\n")
		}
		if a.MaxCalls > 0 {
			fmt.Fprintf(&b, "max-calls = %d\n", a.MaxCalls)
		}
		fmt.Fprintf(&b, "channel = %s\n\n", q(or(a.Channel, chans[0].Name)))
	}
	return b.String()
}

// env is a test's world: a registrar and a daemon with its first client.
type env struct {
	t   *testing.T
	k   *testpeers.Kamailio
	d   *testpeers.Daemon
	c   *client.Client
	ctx context.Context
	// ipv6 runs the daemon, Kamailio and baresip on ::1.
	ipv6 bool
}

// user returns the usual account of extension ext at the registrar.
func (e *env) user(name, ext string) account {
	return account{Name: name, User: ext, Pass: "sip" + ext, Server: e.k.Addr()}
}

// newEnv starts Kamailio; start() then starts the daemon on p.
func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return &env{t: t, k: testpeers.StartKamailio(t, testpeers.KamailioOptions{}), ctx: ctx}
}

func (e *env) start(p *plan) {
	e.t.Helper()
	e.startWith(p, testpeers.DaemonOptions{})
}

// newEnv6 is newEnv on ::1: Kamailio listens on [::1], and the daemon and
// the peers of the env do too.
func newEnv6(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return &env{t: t, k: testpeers.StartKamailio(t, testpeers.KamailioOptions{IPv6: true}), ctx: ctx, ipv6: true}
}

func (e *env) startWith(p *plan, opts testpeers.DaemonOptions) {
	e.t.Helper()
	if e.ipv6 && p.Address == "" {
		p.Address = "::1"
	}
	e.d = testpeers.StartDaemonWith(e.t, p.render(e.t), opts)
	e.c = e.d.Client(e.t)
}

// peer starts a baresip registered at the env's registrar.
func (e *env) peer(ext string, opts testpeers.BaresipOptions) *testpeers.Baresip {
	e.t.Helper()
	opts.Registrar = e.k.Addr()
	opts.IPv6 = opts.IPv6 || e.ipv6
	return testpeers.StartBaresip(e.t, ext, opts)
}

// uri is ext at the registrar, as peers dial it.
func (e *env) uri(ext string) string { return "sip:" + ext + "@" + e.k.Addr() }

// callOut has acct call num and waits until the call is answered; it
// returns the call ID.
func (e *env) callOut(t *testing.T, acct, num string) int {
	t.Helper()
	id, err := e.c.MakeCall(e.ctx, acct, num)
	if err != nil {
		t.Fatalf("make-call %s %s: %v", acct, num, err)
	}
	wait(t, e.c, 10*time.Second, fmt.Sprintf("call-answered of %s's call %d to %s", acct, id, num), event(api.EventCallAnswered, acct, id))
	return id
}

// callPeer is callOut to baresip p, and waits until p has the call
// established too.
func (e *env) callPeer(t *testing.T, acct, num string, p *testpeers.Baresip) int {
	t.Helper()
	id := e.callOut(t, acct, num)
	if _, err := p.WaitEvent(peerCtx(t, 5*time.Second), "CALL_ESTABLISHED"); err != nil {
		t.Fatalf("baresip %s: %s's call %d not established: %v", p.Ext(), acct, id, err)
	}
	return id
}

// callAcross has account from call num, the user of account to of the
// same daemon, and to answer it. It returns the caller's call ID once the
// caller's leg is answered, and to's call-incoming; the callee's
// call-answered is left to the caller.
func callAcross(t *testing.T, c *client.Client, ctx context.Context, from, num, to string) (int, client.Message) {
	t.Helper()
	id, err := c.MakeCall(ctx, from, num)
	if err != nil {
		t.Fatalf("make-call %s %s: %v", from, num, err)
	}
	in := wait(t, c, 10*time.Second, "call-incoming on "+to, event(api.EventCallIncoming, to, -1))
	if err := c.AnswerCall(ctx, to, in.CallID); err != nil {
		t.Fatalf("answer-call %s %d: %v", to, in.CallID, err)
	}
	wait(t, c, 10*time.Second, fmt.Sprintf("call-answered of %s's call %d", from, id), event(api.EventCallAnswered, from, id))
	return id, in
}

// wait returns the next message matching match within timeout.
func wait(t *testing.T, c *client.Client, timeout time.Duration, what string, match func(client.Message) bool) client.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m, err := c.WaitFor(ctx, match)
	if err != nil {
		t.Fatalf("waiting %v for %s: %v", timeout, what, err)
	}
	return m
}

func event(name, acct string, callID int) func(client.Message) bool {
	return client.Match(name, acct, callID)
}

// status returns the status of one account.
func status(t *testing.T, c *client.Client, acct string) api.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.GetStatus(ctx, acct)
	if err != nil {
		t.Fatalf("get-status %s: %v", acct, err)
	}
	if len(st) != 1 || st[0].Account != acct {
		t.Fatalf("get-status %s: got %+v, want one status of %s", acct, st, acct)
	}
	return st[0]
}

// waitStatus polls get-status until ok holds.
func waitStatus(t *testing.T, c *client.Client, acct string, timeout time.Duration, what string, ok func(api.Status) bool) api.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := status(t, c, acct)
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not reached within %v; last status %+v", acct, what, timeout, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitRegistered(t *testing.T, c *client.Client, acct string, code int) api.Status {
	t.Helper()
	return waitStatus(t, c, acct, 15*time.Second, fmt.Sprintf("account_status %d", code),
		func(s api.Status) bool { return s.AccountStatus == code })
}

func findCall(st api.Status, id int) (api.Call, bool) {
	for _, c := range st.Calls {
		if c.CallID == id {
			return c, true
		}
	}
	return api.Call{}, false
}

// waitCall polls until call id of acct satisfies ok.
func waitCall(t *testing.T, c *client.Client, acct string, id int, what string, ok func(api.Call) bool) api.Call {
	t.Helper()
	st := waitStatus(t, c, acct, 10*time.Second, fmt.Sprintf("call %d %s", id, what), func(s api.Status) bool {
		call, found := findCall(s, id)
		return found && ok(call)
	})
	call, _ := findCall(st, id)
	return call
}

func peerCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitPeerDir waits until a peer's media direction is want (baresip's view
// after the last offer/answer): "recvonly" means the daemon holds it.
func waitPeerDir(t *testing.T, p *testpeers.Baresip, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := p.AudioDir()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer %s media direction %q (%v), want %q", p.Ext(), got, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
