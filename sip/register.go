package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// account is the runtime state of one plan account. Fields are guarded by
// UA.mu; the registration itself runs in the account's own goroutine
// (regLoop), which takes commands so that REGISTER, un-REGISTER, login and
// reload never overlap and no lock is held during a transaction.
type account struct {
	plan Account // as the plan gave it
	eff  Account // plan plus login overrides (in memory only)

	code     int    // final code of the latest REGISTER transaction; 0: none
	lastFail string // reason of the last reported failure, to report changes only
	report   bool   // report the next failure even if it repeats (after login)
	gen      uint64 // bumped by commands; stale REGISTER results are dropped
	reg      regRecord

	// Registration binding at the registrar (Call-ID and CSeq are reused by
	// refreshes and the un-REGISTER, as RFC 3261 asks of a refreshing UA).
	regCallID string
	regCSeq   uint32
	regTag    string
	boundTo   *Account // user/server the registrar holds a binding for; nil: none
	boundHost string   // the address in that binding's Contact

	cmds          chan regCmd
	retimed       chan struct{} // cap 1: a reload changed the loop's intervals (retime)
	done          chan struct{} // closed when regLoop exits
	attemptCancel context.CancelFunc
	running       bool
	removed       bool

	active *call // the call the account's audio follows

	// addrs are the known addresses of each server host (trust.go): IP
	// literals at once, names as resolveServers last found them.
	addrs   map[string][]netip.Addr
	refused uint64 // out-of-dialog requests refused by accept-from

	cur int // index in eff.servers() of the server in use (failover.go)

	// kaAnswered is the server that has answered a keepalive OPTIONS; only
	// that one is judged down when one goes unanswered (keepalive.go).
	kaAnswered string
}

type regCmdKind int

const (
	cmdRegister regCmdKind = iota + 1 // (re-)register now with eff
	cmdLogout                         // un-register, stay idle
	cmdStop                           // un-register and exit
)

type regCmd struct {
	kind regCmdKind
	ctx  context.Context // bounds the un-REGISTER of cmdStop
	done chan struct{}
}

func newAccount(a Account) *account {
	acc := &account{plan: a, eff: a, cmds: make(chan regCmd, 16), retimed: make(chan struct{}, 1), done: make(chan struct{})}
	acc.setServersLocked() // not shared yet
	return acc
}

func (a *account) wantsRegistration() bool {
	return a.eff.Register && a.eff.Server != ""
}

func (a *account) authUser() string {
	if a.eff.AuthUser != "" {
		return a.eff.AuthUser
	}
	return a.eff.User
}

// retime tells the registration loop that register-retry, the keepalive
// or the failback interval may have changed. It never blocks: one pending
// signal is enough.
func (a *account) retime() {
	select {
	case a.retimed <- struct{}{}:
	default:
	}
}

// startAccountLocked starts the account's registration goroutine.
func (u *UA) startAccountLocked(a *account) {
	if a.running || u.closed {
		return
	}
	a.running = true
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		defer close(a.done)
		u.regLoop(a)
	}()
	if a.wantsRegistration() {
		u.sendCmdLocked(a, regCmd{kind: cmdRegister})
	}
}

// sendCmdLocked queues a command and aborts a REGISTER in flight, so that
// a login or logout takes effect at once.
func (u *UA) sendCmdLocked(a *account, c regCmd) {
	a.gen++
	if a.attemptCancel != nil {
		a.attemptCancel()
	}
	select {
	case a.cmds <- c:
	default:
		// 16 queued commands: the operator is hammering; the newest wins
		// over nothing, drop it with a log line.
		u.log.Warn("registration command dropped: too many queued", "account", a.plan.Name)
		if c.done != nil {
			close(c.done)
		}
	}
}

// stopAccount un-registers the account and stops its goroutine, within ctx.
func (u *UA) stopAccount(ctx context.Context, a *account) {
	u.mu.Lock()
	if !a.running {
		u.mu.Unlock()
		return
	}
	done := make(chan struct{})
	u.sendCmdLocked(a, regCmd{kind: cmdStop, ctx: ctx, done: done})
	u.mu.Unlock()
	select {
	case <-a.done:
	case <-ctx.Done():
	}
}

func (u *UA) regLoop(a *account) {
	var (
		want  bool
		retry = u.cur().RegisterRetry
		timer = u.clock.NewTimer(time.Hour)
		// expires is what REGISTER asks for: the plan's, or a 423's.
		expires = u.cur().RegisterExpires
		// registered: the last REGISTER succeeded and no keepalive has
		// failed since; the keepalive runs only then.
		registered bool
	)
	timer.Stop()
	defer timer.Stop()
	// probe asks the primary server, while we are on a backup, whether it
	// is back (failover.go).
	probe := u.clock.NewTimer(time.Hour)
	probe.Stop()
	defer probe.Stop()
	// keep is the keepalive to the server we are registered at
	// (keepalive.go).
	keep := u.clock.NewTimer(time.Hour)
	keep.Stop()
	defer keep.Stop()
	armKeepalive := func() {
		if iv := u.cur().KeepaliveInterval; registered && iv > 0 {
			keep.Reset(iv)
		} else {
			keep.Stop()
		}
	}
	var leaving *Account // the backup binding to remove once back on the primary
	// failed schedules what follows a REGISTER or keepalive that failed.
	failed := func(gen uint64, res regResult) {
		registered = false
		keep.Stop()
		probe.Stop()
		wait := retry
		if res.moved && !res.wrapped {
			// The next server gets its try within one retry interval.
			wait = u.cur().RegisterRetry
		} else {
			retry = min(retry*2, maxRetry)
		}
		timer.Reset(wait)
		u.mu.Lock()
		if gen == a.gen {
			a.reg.retryAt = u.clock.Now().Add(wait)
		}
		u.mu.Unlock()
	}
	u.resolveServers(u.ctx, a)
	for {
		select {
		case <-u.ctx.Done():
			return
		case c := <-a.cmds:
			registered = false
			keep.Stop()
			switch c.kind {
			case cmdRegister:
				u.mu.Lock()
				eff := a.effLocked()
				old := a.boundTo
				oldHost := a.boundHost
				u.mu.Unlock()
				probe.Stop()
				leaving = nil
				if old != nil && (old.User != eff.User || old.Server != eff.Server || oldHost != u.registerHost(eff)) {
					// The registrar holds a binding for other values
					// (user, server, or the Contact's address): remove it.
					u.unregister(u.ctx, a)
				}
				want = a.wantsRegistrationSnapshot(u)
				retry = u.cur().RegisterRetry
				expires = u.cur().RegisterExpires
				timer.Reset(0)
			case cmdLogout:
				want = false
				timer.Stop()
				probe.Stop()
				u.unregister(u.ctx, a)
				u.resolveServers(u.ctx, a) // calls through a server still need its address
			case cmdStop:
				timer.Stop()
				ctx := c.ctx
				if ctx == nil {
					ctx = u.ctx
				}
				u.unregister(ctx, a)
				if c.done != nil {
					close(c.done)
				}
				return
			}
			if c.done != nil {
				close(c.done)
			}
		case <-a.retimed:
			// A reload may have changed the intervals: the keepalive and
			// probe follow the new ones from now, and the next retry wait
			// (a back-off starts again from register-retry).
			retry = u.cur().RegisterRetry
			armKeepalive()
			u.mu.Lock()
			_, onBackup := a.primaryLocked()
			u.mu.Unlock()
			if registered && onBackup {
				probe.Reset(u.cur().FailbackInterval)
			}
		case <-timer.C():
			if !want {
				continue
			}
			u.mu.Lock()
			if len(a.cmds) > 0 {
				// A command is queued (commands are queued under u.mu): it
				// decides first, and could not cancel an attempt not yet begun.
				u.mu.Unlock()
				timer.Reset(0)
				continue
			}
			gen := a.gen
			ctx, cancel := context.WithCancel(u.ctx)
			a.attemptCancel = cancel
			a.reg.retryAt = time.Time{}
			u.mu.Unlock()
			u.resolveServers(ctx, a) // DNS on every attempt: a moved PBX is followed
			res := u.registerOnce(ctx, a, expires)
			cancel()
			u.mu.Lock()
			a.attemptCancel = nil
			stale := gen != a.gen
			u.mu.Unlock()
			if stale || u.ctx.Err() != nil {
				// A command arrived meanwhile; it decides what comes next.
				continue
			}
			switch {
			case res.code >= 200 && res.code < 300:
				retry = u.cur().RegisterRetry
				registered = true
				armKeepalive()
				// Refresh between 1/2 and 2/3 of the granted time.
				f := 0.5 + rand.Float64()/6
				timer.Reset(time.Duration(float64(res.granted) * f))
				if res.onBackup {
					probe.Reset(u.cur().FailbackInterval)
				} else if leaving != nil {
					u.unregisterAt(a, *leaving)
					leaving = nil
				}
			case res.minExpires > 0:
				expires = res.minExpires
				timer.Reset(0)
			default:
				failed(gen, res)
			}
		case <-keep.C():
			if !want || !registered {
				continue
			}
			u.mu.Lock()
			if len(a.cmds) > 0 {
				u.mu.Unlock()
				continue // the command re-registers or stops: no keepalive now
			}
			gen := a.gen
			ctx, cancel := context.WithCancel(u.ctx)
			a.attemptCancel = cancel
			u.mu.Unlock()
			res, down := u.keepalive(ctx, a, gen)
			cancel()
			u.mu.Lock()
			a.attemptCancel = nil
			stale := gen != a.gen
			u.mu.Unlock()
			switch {
			case stale || u.ctx.Err() != nil:
			case down:
				failed(gen, res)
			default:
				armKeepalive()
			}
		case <-probe.C():
			u.mu.Lock()
			gen := a.gen
			primary, onBackup := a.primaryLocked()
			u.mu.Unlock()
			if !want || !onBackup {
				continue
			}
			alive := u.probeServer(u.ctx, a, primary)
			u.mu.Lock()
			stale := gen != a.gen
			var from Account
			if alive && !stale {
				from = a.effLocked()
				a.cur = 0
			}
			u.mu.Unlock()
			switch {
			case stale:
			case alive:
				u.log.Info("primary server answers again: registering there", "account", a.plan.Name, "primary", primary, "backup", from.Server)
				leaving = &from
				retry = u.cur().RegisterRetry
				registered = false
				keep.Stop()
				timer.Reset(0)
			default:
				probe.Reset(u.cur().FailbackInterval)
			}
		}
	}
}

func (a *account) wantsRegistrationSnapshot(u *UA) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return a.wantsRegistration()
}

type regResult struct {
	code       int
	reason     string
	granted    time.Duration
	minExpires time.Duration // 423: retry with this
	onBackup   bool          // registered at a server other than the first
	moved      bool          // failed over to the next server
	wrapped    bool          // ... which is the first again: every server failed
	// unreachable: no answer or a transport error, not a response.
	unreachable bool
}

// registerOnce runs one REGISTER transaction (with its digest retry) and
// records the outcome on the account.
func (u *UA) registerOnce(ctx context.Context, a *account, expires time.Duration) regResult {
	u.mu.Lock()
	eff := a.effLocked()
	gen := a.gen
	u.mu.Unlock()

	timeout := u.cur().RegisterTimeout
	host := u.registerHost(eff)
	tctx, cancel := context.WithTimeout(ctx, timeout)
	res, err := u.sendRegister(tctx, a, eff, expires, host)
	timedOut := errors.Is(tctx.Err(), context.DeadlineExceeded)
	cancel()
	var out regResult
	switch {
	case err != nil && ctx.Err() != nil:
		return regResult{} // aborted by a command or shutdown
	case err != nil && timedOut:
		out = regResult{code: 408, reason: fmt.Sprintf("408 Request Timeout (no answer from the registrar within %v)", timeout), unreachable: true}
	case err != nil:
		out = regFailure(err)
	case res.StatusCode >= 200 && res.StatusCode < 300:
		out = regResult{code: res.StatusCode, granted: grantedExpires(res, expires)}
	case res.StatusCode == 423:
		out = regResult{code: 423, reason: statusText(res)}
		if h := res.GetHeader("Min-Expires"); h != nil {
			if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > 0 {
				out.minExpires = time.Duration(n) * time.Second
			}
		}
	default:
		out = regResult{code: res.StatusCode, reason: statusText(res)}
	}

	u.mu.Lock()
	defer u.mu.Unlock()
	if gen != a.gen {
		return regResult{}
	}
	a.code = out.code
	if out.code >= 200 && out.code < 300 {
		b := eff
		a.boundTo = &b
		a.boundHost = host
		a.lastFail = ""
		a.reg.outcome, a.reg.lastError = regOK, ""
		a.reg.expiresAt = u.clock.Now().Add(out.granted)
		_, out.onBackup = a.primaryLocked()
		u.log.Info("registered", "account", eff.Name, "server", eff.Server, "expires", out.granted)
		return out
	}
	if out.minExpires > 0 {
		return out
	}
	return u.failedLocked(a, eff, out)
}

// failedLocked records a failed registration at eff.Server (a REGISTER's,
// or a keepalive's): the account's state, the move to its next server when
// the code says the server is down, and the fail event.
func (u *UA) failedLocked(a *account, eff Account, out regResult) regResult {
	a.code = out.code
	a.reg.outcome, a.reg.lastError = regRejected, out.reason
	if out.unreachable {
		a.reg.outcome = regUnreachable
	}
	if to, wrapped, ok := a.failoverLocked(out.code); ok {
		out.moved, out.wrapped = true, wrapped
		out.reason = fmt.Sprintf("%s from %s; trying %s", out.reason, eff.Server, to)
		a.reg.lastError = out.reason
		u.log.Warn("registrar failed: moving to the next server", "account", eff.Name, "from", eff.Server, "to", to, "reason", out.reason)
		a.lastFail = out.reason
		a.report = false
		u.emitLocked(Event{Kind: AccountFailed, Account: eff.Name, Reason: out.reason, Code: out.code})
		return out
	}
	u.log.Warn("registration failed", "account", eff.Name, "server", eff.Server, "reason", out.reason)
	if out.reason != a.lastFail || a.report {
		a.lastFail = out.reason
		a.report = false
		u.emitLocked(Event{Kind: AccountFailed, Account: eff.Name, Reason: out.reason, Code: out.code})
	}
	return out
}

func regFailure(err error) regResult {
	if errors.Is(err, sip.ErrTransactionTimeout) {
		return regResult{code: 408, reason: "408 Request Timeout (no answer from the registrar)", unreachable: true}
	}
	return regResult{code: 503, reason: "503 Service Unavailable (" + err.Error() + ")", unreachable: true}
}

// unregister removes the binding the registrar holds, if any.
func (u *UA) unregister(ctx context.Context, a *account) {
	u.mu.Lock()
	old, host := a.boundTo, a.boundHost
	a.boundTo, a.boundHost = nil, ""
	a.code = 0
	a.gen++
	a.reg = regRecord{loggedOut: a.reg.loggedOut}
	u.mu.Unlock()
	if old == nil {
		return
	}
	u.sendUnregister(ctx, a, *old, host, slog.LevelWarn, "")
}

// sendUnregister sends the un-REGISTER (Expires: 0) of the binding at
// old.Server whose Contact names host, and logs the outcome, a failure at
// failLevel; where names the server in the messages.
func (u *UA) sendUnregister(ctx context.Context, a *account, old Account, host string, failLevel slog.Level, where string) {
	attrs := []any{"account", old.Name, "server", old.Server}
	res, err := u.sendRegister(ctx, a, old, 0, host)
	switch {
	case err != nil:
		u.log.Log(ctx, failLevel, "un-REGISTER"+where+" failed", append(attrs, "error", err)...)
	case res.StatusCode >= 300:
		u.log.Log(ctx, failLevel, "un-REGISTER"+where+" rejected", append(attrs, "status", statusText(res))...)
	default:
		u.log.Info("un-registered"+where, attrs...)
	}
}

// registerHost is the address a REGISTER for eff puts in its Contact
// (public-address, or ours toward the server). It may resolve: never call
// it with u.mu held.
func (u *UA) registerHost(eff Account) string {
	srvURI, err := serverURI(eff.Server)
	if err != nil {
		return ""
	}
	return u.localHost(srvURI.Host)
}

// sendRegister sends REGISTER (Expires: expires) for eff with host in its
// Contact and answers one digest challenge (two if the nonce was stale).
func (u *UA) sendRegister(ctx context.Context, a *account, eff Account, expires time.Duration, host string) (*sip.Response, error) {
	srvURI, err := serverURI(eff.Server)
	if err != nil {
		return nil, err
	}
	if host == "" {
		host = u.localHost(srvURI.Host)
	}

	u.mu.Lock()
	if a.regCallID == "" {
		a.regCallID = newCallID()
		a.regTag = newTag()
		a.regCSeq = uint32(rand.IntN(10000)) + 1
	}
	callID, tag := a.regCallID, a.regTag
	u.mu.Unlock()

	aor := sip.Uri{Scheme: "sip", User: eff.User, Host: srvURI.Host}
	tp := u.transportTo(*srvURI, "") // tls:host → TLS
	build := func() *sip.Request {
		u.mu.Lock()
		a.regCSeq++
		seq := a.regCSeq
		u.mu.Unlock()
		req := sip.NewRequest(sip.REGISTER, *srvURI.Clone())
		req.AppendHeader(u.newViaOver(host, tp))
		mf := sip.MaxForwardsHeader(70)
		req.AppendHeader(&mf)
		from := &sip.FromHeader{DisplayName: displayOf(eff), Address: aor, Params: sip.NewParams()}
		from.Params.Add("tag", tag)
		req.AppendHeader(from)
		req.AppendHeader(&sip.ToHeader{DisplayName: displayOf(eff), Address: aor, Params: sip.NewParams()})
		cid := sip.CallIDHeader(callID)
		req.AppendHeader(&cid)
		req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.REGISTER})
		req.AppendHeader(u.contactHeaderOver(eff.User, host, tp))
		req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
		req.AppendHeader(sip.NewHeader("Allow", allowHeader))
		req.AppendHeader(sip.NewHeader("Supported", "timer"))
		u.addUserAgent(req)
		req.SetBody(nil)
		u.prepareOver(req, tp)
		return req
	}
	req := build()
	u.mu.Lock()
	creds := a.credsLocked()
	u.mu.Unlock()
	creds.user, creds.pass = authUserOf(eff), eff.Pass // eff may be an old binding's
	return u.doWithAuth(ctx, req, creds, func(old *sip.Request) *sip.Request {
		n := build()
		copyAuth(old, n)
		return n
	})
}

// grantedExpires reads the lifetime the registrar granted: our Contact's
// expires parameter, else Expires, else what we asked for.
func grantedExpires(res *sip.Response, asked time.Duration) time.Duration {
	best := time.Duration(0)
	for _, h := range res.GetHeaders("Contact") {
		ch, ok := h.(*sip.ContactHeader)
		if !ok {
			continue
		}
		if v, ok := ch.Params.Get("expires"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				d := time.Duration(n) * time.Second
				if best == 0 || d < best {
					best = d
				}
			}
		}
	}
	if best == 0 {
		if h := res.GetHeader("Expires"); h != nil {
			if n, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil && n > 0 {
				best = time.Duration(n) * time.Second
			}
		}
	}
	if best == 0 {
		best = asked
	}
	if best < time.Second {
		best = time.Second
	}
	return best
}

// Login re-registers account with the given values (nil: keep).
func (u *UA) Login(account string, user, pass, server *string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	a, err := u.accountLocked(account)
	if err != nil {
		return err
	}
	if user != nil {
		a.eff.User = *user
	}
	if pass != nil {
		a.eff.Pass = *pass
	}
	if server != nil {
		a.eff.Server = *server
		a.eff.Backups = nil
		a.setServersLocked()
	}
	a.cur = 0
	if a.eff.Server == "" {
		return fmt.Errorf("account %q: cannot log in without a server: give \"server\" or set it in the plan", account)
	}
	if _, err := serverURI(a.eff.Server); err != nil {
		return fmt.Errorf("account %q: %w", account, err)
	}
	a.eff.Register = true
	a.report = true
	a.lastFail = ""
	a.reg = regRecord{}
	u.sendCmdLocked(a, regCmd{kind: cmdRegister})
	return nil
}

// Logout un-registers account (Expires: 0); calls are left alone.
func (u *UA) Logout(account string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	a, err := u.accountLocked(account)
	if err != nil {
		return err
	}
	a.code = 0
	a.reg = regRecord{loggedOut: true}
	u.sendCmdLocked(a, regCmd{kind: cmdLogout})
	return nil
}

func (u *UA) accountLocked(name string) (*account, error) {
	if !u.started {
		return nil, ErrNotStarted
	}
	if u.closing {
		return nil, ErrClosed
	}
	a, ok := u.byName[name]
	if !ok {
		return nil, fmt.Errorf("account %q: %w", name, ErrUnknownAccount)
	}
	return a, nil
}

// Reload replaces the account list: changed or new accounts re-register,
// removed ones un-register and end their calls; calls of unchanged accounts
// are not touched. Login overrides are dropped (the plan wins again).
func (u *UA) Reload(accounts []Account) error {
	seen := map[string]bool{}
	for _, a := range accounts {
		if a.Name == "" {
			return errors.New("sip: reload: an account has no name")
		}
		if seen[a.Name] {
			return fmt.Errorf("sip: reload: account %q is defined twice", a.Name)
		}
		seen[a.Name] = true
	}
	u.mu.Lock()
	if u.closing {
		u.mu.Unlock()
		return ErrClosed
	}
	var removed []*account
	var list []*account
	byName := map[string]*account{}
	for _, na := range accounts {
		a, ok := u.byName[na.Name]
		if !ok {
			a = newAccount(na)
			if u.started {
				u.startAccountLocked(a)
			}
		} else {
			changed := !sameAccount(a.plan, na) || !sameAccount(a.eff, na)
			a.plan = na
			a.eff = na
			if changed {
				a.cur = 0
			}
			a.setServersLocked()
			if changed {
				a.lastFail = ""
				a.reg = regRecord{}
				if a.wantsRegistration() {
					u.sendCmdLocked(a, regCmd{kind: cmdRegister})
				} else {
					a.code = 0
					u.sendCmdLocked(a, regCmd{kind: cmdLogout})
				}
			}
			// The channel object may have been replaced: move the binding.
			if a.active != nil && a.active.tab.bound {
				u.rebindLocked(a)
			}
		}
		list = append(list, a)
		byName[na.Name] = a
	}
	for _, a := range u.accounts {
		if _, ok := byName[a.plan.Name]; !ok {
			a.removed = true
			removed = append(removed, a)
		}
	}
	u.accounts = list
	u.byName = byName
	var ending []*call
	for _, c := range u.calls {
		if c.acct.removed && !c.tab.gone {
			ending = append(ending, c)
		}
	}
	u.mu.Unlock()

	for _, c := range ending {
		u.goTracked(func() {
			ctx, cancel := context.WithTimeout(u.ctx, 5*time.Second)
			defer cancel()
			u.terminate(ctx, c, "account removed", false)
		})
	}
	for _, a := range removed {
		u.goTracked(func() {
			ctx, cancel := context.WithTimeout(u.ctx, 10*time.Second)
			defer cancel()
			u.stopAccount(ctx, a)
		})
	}
	return nil
}

// sameAccount compares the settings that matter to SIP (not the channel
// object, which a reload may replace).
func sameAccount(a, b Account) bool {
	return a.Name == b.Name && a.User == b.User && a.Pass == b.Pass && a.AuthUser == b.AuthUser &&
		a.Server == b.Server && slices.Equal(a.Backups, b.Backups) && a.DisplayName == b.DisplayName && a.Register == b.Register &&
		a.MaxCalls == b.MaxCalls && a.AudioName == b.AudioName &&
		a.AcceptFrom.Any == b.AcceptFrom.Any && slices.Equal(a.AcceptFrom.Prefixes, b.AcceptFrom.Prefixes)
}

func displayOf(a Account) string {
	if a.DisplayName != "" {
		return quotable(a.DisplayName)
	}
	return quotable(a.Name)
}

// quotable drops what sipgo would not escape inside a quoted display name.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

func authUserOf(a Account) string {
	if a.AuthUser != "" {
		return a.AuthUser
	}
	return a.User
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// serverURI turns "host[:port]" (or a sip: URI) into the registrar URI.
func serverURI(server string) (*sip.Uri, error) {
	s := strings.TrimSpace(server)
	if s == "" {
		return nil, ErrNoServer
	}
	tlsServer := false
	if rest, ok := cutPrefixFold(s, "tls:"); ok {
		s, tlsServer = rest, true
	}
	if !strings.HasPrefix(strings.ToLower(s), "sip:") {
		if ipFamily(s) == 6 {
			s = uriHost(s) // a bare IPv6 literal: its last group is no port
		}
		s = "sip:" + s
	}
	var uri sip.Uri
	if err := sip.ParseUri(s, &uri); err != nil || uri.Host == "" {
		return nil, fmt.Errorf("server %q is not a valid [tls:]host[:port]", server)
	}
	uri.User = ""
	if tlsServer {
		setTLS(&uri)
	}
	return &uri, nil
}
