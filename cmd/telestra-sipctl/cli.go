package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1  // the daemon answered with a fail (or rejected a reload)
	exitConn  = 2  // no connection, connection lost, or no answer in time
	exitUsage = 64 // EX_USAGE: the command line is wrong
)

const (
	defaultPlan = "/etc/telestra/sipplan.toml"
	// runtimeAddrFile is written by telestra-sipd under systemd
	// (RuntimeDirectory=telestra-sip): the API address, readable by every
	// user, so that an operator needs neither root nor the plan, which
	// holds the SIP passwords.
	runtimeAddrFile = "/run/telestra-sip/api-address"
	defaultTimeout  = 5 * time.Second
	// reloadTimeout: a reload may open audio devices and a PulseAudio
	// connection before it answers.
	reloadTimeout = 30 * time.Second
)

// usageError is a command line mistake: exit 64. cmd is the command whose
// usage line is printed with it (nil: the whole program's hint).
type usageError struct {
	msg string
	cmd *command
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{msg: fmt.Sprintf(format, args...)} }

// connError is a connection problem: exit 2.
type connError struct{ err error }

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// cli is one invocation.
type cli struct {
	stdout, stderr io.Writer
	now            func() time.Time // event time stamps
	// sendQuiet is how long `send` waits for another reply.
	sendQuiet time.Duration

	// From the flags; the address is looked up only when a command
	// connects, so usage errors never depend on it.
	addrFlag, planFlag string
	planSet            bool
	timeout            time.Duration
	timeoutSet         bool

	// Where the address comes from when neither -addr nor -plan is given
	// (tests point them elsewhere).
	runtimeFile, defaultPlan string

	cmdName  string // the command run, for messages
	addr     string // resolved by resolveAddr
	addrFrom string // how it was found, for connection errors
}

// globals are the flags accepted before and after the command.
type globals struct {
	addr, plan string
	timeout    time.Duration
}

func defineGlobals(fs *flag.FlagSet) *globals {
	g := &globals{}
	fs.StringVar(&g.addr, "addr", "", "")
	fs.StringVar(&g.plan, "plan", "", "")
	fs.DurationVar(&g.timeout, "timeout", defaultTimeout, "")
	return g
}

// setGlobals takes the global flags set on fs, the later ones winning.
func (c *cli) setGlobals(fs *flag.FlagSet, g *globals) {
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "addr":
			c.addrFlag = g.addr
		case "plan":
			c.planFlag, c.planSet = g.plan, true
		case "timeout":
			c.timeout, c.timeoutSet = g.timeout, true
		}
	})
}

const optionsText = `options (before or after the command):
  -addr HOST:PORT  the daemon's API address (default: the one telestra-sipd
                   wrote to ` + runtimeAddrFile + `, else that of
                   ` + defaultPlan + ` if readable, else 127.0.0.1:3550)
  -plan FILE       read the API address from this SIP plan
  -timeout D       how long to wait to connect and for each answer (default 5s;
                   for reload 30s)
  -h, -help        print help on stdout and exit
  -version         print telestra-sipctl's version and exit
`

const exitText = `exit status: 0 done; 1 the daemon refused the command (a fail) or rejected the
reload; 2 no connection or no answer in time; 64 a usage error.
`

// printUsage writes the whole program's help.
func printUsage(w io.Writer) {
	fmt.Fprint(w, "usage: telestra-sipctl [OPTIONS] COMMAND [ARGS]\n\n")
	fmt.Fprint(w, "Control telestra-sipd, the Telestra SIP service, through its TCP API.\n\ncommands:\n")
	for _, cmd := range commandTable() {
		fmt.Fprintf(w, "  %-38s %s\n", cmd.synopsis(), cmd.summary)
	}
	fmt.Fprint(w, "\n"+optionsText+"\n"+exitText)
	fmt.Fprint(w, "Run 'telestra-sipctl COMMAND -h' for a command's help; see telestra-sipctl(1).\n")
}

// run parses args, runs the command and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runOpts(ctx, args, stdout, stderr)
}

// runOpts is run with test hooks applied to the cli.
func runOpts(ctx context.Context, args []string, stdout, stderr io.Writer, opts ...func(*cli)) int {
	c := &cli{stdout: stdout, stderr: stderr, now: time.Now, sendQuiet: 500 * time.Millisecond,
		timeout: defaultTimeout, runtimeFile: runtimeAddrFile, defaultPlan: defaultPlan}
	for _, o := range opts {
		o(c)
	}
	err := c.main(ctx, args)
	var ue *usageError
	var fe *client.FailError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "telestra-sipctl: %s\n", ue.msg)
		if ue.cmd != nil {
			fmt.Fprintf(stderr, "usage: telestra-sipctl %s\nRun 'telestra-sipctl %s -h' for help.\n", ue.cmd.synopsis(), ue.cmd.name)
		} else {
			fmt.Fprint(stderr, "Run 'telestra-sipctl -h' for help.\n")
		}
		return exitUsage
	case errors.As(err, &fe):
		msg := fe.Error() // "ACCOUNT: error"
		if strings.Contains(fe.Message.Error, strconv.Quote(fe.Account)) {
			msg = fe.Message.Error // it names the account already
		}
		fmt.Fprintf(stderr, "telestra-sipctl: %s failed: %s\n", c.cmdName, msg)
		return exitFail
	case errors.Is(err, errFailReply):
		return exitFail
	default:
		fmt.Fprintf(stderr, "telestra-sipctl: %v\n", err)
		return exitConn
	}
}

// errHelp: help was printed on stdout; exit 0.
var errHelp = errors.New("help printed")

func (c *cli) main(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("telestra-sipctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by run, help by printUsage
	g := defineGlobals(fs)
	showVersion := fs.Bool("version", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(c.stdout)
			return nil
		}
		return usagef("%v", err)
	}
	if *showVersion {
		fmt.Fprintln(c.stdout, "telestra-sipctl", version)
		return nil
	}
	if fs.NArg() == 0 {
		return usagef("no command given; the commands are %s", commandNames())
	}
	cmd, err := lookup(fs.Arg(0))
	if err != nil {
		return err
	}
	c.cmdName = cmd.name
	cfs := flag.NewFlagSet("telestra-sipctl "+cmd.name, flag.ContinueOnError)
	cfs.SetOutput(io.Discard)
	cg := defineGlobals(cfs)
	var f cmdFlags
	if cmd.flags != nil {
		cmd.flags(cfs, &f)
	}
	pos, err := parseInterleaved(cfs, fs.Args()[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			cmd.printHelp(c.stdout)
			return nil
		}
		return &usageError{msg: fmt.Sprintf("%s: %v", cmd.name, err), cmd: cmd}
	}
	c.setGlobals(fs, g)
	c.setGlobals(cfs, cg)
	if err := c.checkFlags(); err != nil {
		return err
	}
	if len(pos) < cmd.min || cmd.max >= 0 && len(pos) > cmd.max {
		return &usageError{msg: cmd.name + ": " + cmd.countMsg, cmd: cmd}
	}
	err = cmd.run(c, ctx, pos, &f)
	var ue *usageError
	if errors.As(err, &ue) && ue.cmd == nil {
		ue.cmd = cmd
	}
	return err
}

// checkFlags checks the global flags without looking anything up.
func (c *cli) checkFlags() error {
	if c.addrFlag != "" && c.planSet {
		return usagef("give -addr or -plan, not both")
	}
	if c.addrFlag != "" {
		if _, _, err := net.SplitHostPort(c.addrFlag); err != nil {
			return usagef("-addr %q: want HOST:PORT, an IPv6 address in brackets such as [::1]:3550 (%v)", c.addrFlag, err)
		}
	}
	if c.timeout <= 0 {
		return usagef("-timeout %v: must be positive, e.g. 5s", c.timeout)
	}
	return nil
}

// parseInterleaved parses flags anywhere among the positional arguments,
// as GNU tools do; "--" ends the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// resolveAddr finds the API address: -addr; else -plan; else the runtime
// file the daemon writes; else the default plan if this user may read it;
// else 127.0.0.1:3550.
func (c *cli) resolveAddr() error {
	if c.addr != "" {
		return nil
	}
	switch {
	case c.addrFlag != "":
		c.addr, c.addrFrom = c.addrFlag, "check -addr"
		return nil
	case c.planSet:
		addr, err := planAddr(c.planFlag)
		if err != nil {
			return &connError{fmt.Errorf("no API address: %w", err)}
		}
		c.addr, c.addrFrom = addr, "the address is the [tcp-settings] of "+c.planFlag
		return nil
	}
	if b, err := os.ReadFile(c.runtimeFile); err == nil {
		addr := strings.TrimSpace(string(b))
		if _, _, err := net.SplitHostPort(addr); err == nil {
			c.addr, c.addrFrom = addr, "the address was read from "+c.runtimeFile
			return nil
		}
	}
	if addr, err := planAddr(c.defaultPlan); err == nil {
		c.addr, c.addrFrom = addr, "the address is the [tcp-settings] of "+c.defaultPlan
		return nil
	}
	c.addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(plan.Default().TCP.Port))
	c.addrFrom = c.addr + " is the default, as " + c.runtimeFile + " (written by telestra-sipd under systemd) is missing; give -addr HOST:PORT for another"
	return nil
}

// planAddr reads a plan's API address; a wildcard listen address becomes
// loopback.
func planAddr(path string) (string, error) {
	p, err := plan.Load(path)
	if err != nil {
		return "", explainPlanErr(err)
	}
	host := p.TCP.Address
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = loopbackFor(host, p.TCP.Allow) // listening on every address: use loopback
	}
	return net.JoinHostPort(host, strconv.Itoa(p.TCP.Port)), nil
}

func explainPlanErr(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w: the plan holds the SIP passwords and only root and the telestra-sip group may read it; "+
			"leave -plan out to use %s, or give -addr HOST:PORT", err, runtimeAddrFile)
	}
	return fmt.Errorf("%w (or give -addr HOST:PORT)", err)
}

// dial connects within the timeout.
func (c *cli) dial(ctx context.Context) (*client.Client, error) {
	if err := c.resolveAddr(); err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cl, err := client.Dial(dctx, c.addr)
	if err != nil {
		return nil, &connError{fmt.Errorf("%w (is telestra-sipd running? %s)", err, c.addrFrom)}
	}
	return cl, nil
}

// withClient connects and runs fn with a ctx bounded by the timeout.
func (c *cli) withClient(ctx context.Context, fn func(context.Context, *client.Client) error) error {
	return c.withClientTimeout(ctx, c.timeout, fn)
}

func (c *cli) withClientTimeout(ctx context.Context, timeout time.Duration, fn func(context.Context, *client.Client) error) error {
	cl, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return c.explain(fn(rctx, cl), timeout)
}

// explain turns a timeout or a lost connection into a clear message.
func (c *cli) explain(err error, timeout time.Duration) error {
	var fe *client.FailError
	switch {
	case err == nil || errors.As(err, &fe) || errors.Is(err, errFailReply):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return &connError{fmt.Errorf("no answer from telestra-sipd at %s within %v", c.addr, timeout)}
	case errors.Is(err, context.Canceled):
		return &connError{errors.New("interrupted")}
	default:
		return &connError{fmt.Errorf("connection to telestra-sipd at %s: %w", c.addr, err)}
	}
}

func (c *cli) status(ctx context.Context, account string, asJSON bool) error {
	return c.withClient(ctx, func(ctx context.Context, cl *client.Client) error {
		sts, err := cl.GetStatus(ctx, account)
		if err != nil {
			return err
		}
		if !asJSON {
			writeStatus(c.stdout, sts)
			return nil
		}
		// One status event a line, as the daemon sends them (jq reads
		// the stream as is).
		for _, st := range sts {
			if st.Calls == nil {
				st.Calls = []api.Call{}
			}
			b, err := json.Marshal(struct {
				Event string `json:"event"`
				api.Status
			}{api.EventStatus, st})
			if err != nil {
				return fmt.Errorf("encode status: %w", err)
			}
			fmt.Fprintf(c.stdout, "%s\n", b)
		}
		return nil
	})
}

// reload asks the daemon to re-read its plan and prints what changed; a
// rejected plan prints every problem on stderr (exit 1).
func (c *cli) reload(ctx context.Context) error {
	timeout := reloadTimeout
	if c.timeoutSet {
		timeout = c.timeout
	}
	return c.withClientTimeout(ctx, timeout, func(ctx context.Context, cl *client.Client) error {
		r, err := cl.Reload(ctx)
		var fe *client.FailError
		if errors.As(err, &fe) && len(fe.Problems) > 0 {
			fmt.Fprintln(c.stderr, "telestra-sipctl: reload rejected, telestra-sipd keeps the running plan:")
			for _, p := range fe.Problems {
				fmt.Fprintln(c.stderr, "  "+p)
			}
			return errFailReply
		}
		if err != nil {
			return err
		}
		restart := 0
		for _, ch := range r.Changes {
			if ch.Restart {
				restart++
			}
		}
		switch len(r.Changes) {
		case 0:
			fmt.Fprintf(c.stdout, "reloaded %s: nothing changed\n", r.Plan)
		case 1:
			fmt.Fprintf(c.stdout, "reloaded %s: 1 change\n", r.Plan)
		default:
			fmt.Fprintf(c.stdout, "reloaded %s: %d changes\n", r.Plan, len(r.Changes))
		}
		for _, ch := range r.Changes {
			fmt.Fprintln(c.stdout, "  "+ch.Text)
		}
		if restart > 0 {
			fmt.Fprintf(c.stdout, "%d of them take effect only after a restart: systemctl restart telestra-sipd\n", restart)
		}
		for _, w := range r.Warnings {
			fmt.Fprintln(c.stderr, "telestra-sipctl: warning: "+w)
		}
		return nil
	})
}

// errFailReply: the daemon's fail was printed already.
var errFailReply = errors.New("the daemon answered with a fail")

// send writes raw JSON and prints the replies (one JSON object a line) until
// none came for sendQuiet, or the timeout. A fail goes to stderr and makes
// the exit code 1.
func (c *cli) send(ctx context.Context, raw string) error {
	cl, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.SendRaw([]byte(raw)); err != nil {
		return c.explain(err, c.timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	failed := false
	for {
		qctx, qcancel := context.WithTimeout(ctx, c.sendQuiet)
		m, err := cl.Next(qctx)
		qcancel()
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				break // quiet: done
			}
			return c.explain(err, c.timeout)
		}
		if m.Event == api.EventFail {
			failed = true
			fmt.Fprintf(c.stderr, "%s\n", m.Raw)
			continue
		}
		fmt.Fprintf(c.stdout, "%s\n", m.Raw)
	}
	if failed {
		return errFailReply
	}
	return nil
}

// eventLine is the one-line human form of an event.
func eventLine(m client.Message) string {
	var b strings.Builder
	b.WriteString(m.Event)
	kv := func(k, v string) { fmt.Fprintf(&b, " %s=%s", k, v) }
	q := strconv.Quote
	switch m.Event {
	case api.EventCallIncoming:
		kv("account", m.Account)
		kv("call_id", strconv.Itoa(m.CallID))
		kv("caller", q(m.Caller))
		kv("caller_name", q(m.CallerName))
	case api.EventCallAnswered, api.EventCallReturn:
		kv("account", m.Account)
		kv("call_id", strconv.Itoa(m.CallID))
		if m.Replaces != nil {
			kv("replaces", strconv.Itoa(*m.Replaces))
		}
	case api.EventCallEnded:
		kv("account", m.Account)
		kv("call_id", strconv.Itoa(m.CallID))
		kv("reason", q(m.Reason))
		kv("code", strconv.Itoa(m.Code))
	case api.EventDTMF:
		kv("account", m.Account)
		kv("call_id", strconv.Itoa(m.CallID))
		kv("digit", m.Digit)
		kv("duration_ms", strconv.Itoa(m.DurationMs))
	case api.EventCallTransferred:
		kv("account", m.Account)
		kv("call_id", strconv.Itoa(m.CallID))
		kv("new_call_id", strconv.Itoa(m.NewCallID))
		kv("target", q(m.Target))
	case api.EventFail:
		kv("account", m.Account)
		if m.Cmd != "" {
			kv("cmd", m.Cmd)
		}
		kv("error", q(m.Error))
	default:
		b.WriteString(" ")
		b.Write(m.Raw)
	}
	return b.String()
}

// loopbackFor is the loopback address to reach an API listening on the
// wildcard bind: 127.0.0.1, or ::1 when the daemon listens on "::" and its
// allow-list admits ::1 but not 127.0.0.1.
func loopbackFor(bind string, allow []netip.Prefix) string {
	v4, v6 := netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()
	if bind != "::" || len(allow) == 0 {
		return v4.String()
	}
	ok4, ok6 := false, false
	for _, p := range allow {
		ok4 = ok4 || p.Contains(v4)
		ok6 = ok6 || p.Contains(v6)
	}
	if ok6 && !ok4 {
		return v6.String()
	}
	return v4.String()
}

// trace subscribes to sip-message events and prints them as a ladder.
func (c *cli) trace(ctx context.Context, account string, asJSON bool) error {
	cl, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.Send(map[string]any{"cmd": "trace", "account": account}); err != nil {
		return c.explain(err, c.timeout)
	}
	for {
		m, err := cl.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return c.explain(err, c.timeout)
		}
		switch {
		case m.Event == api.EventFail:
			fmt.Fprintf(c.stderr, "telestra-sipctl: trace failed: %s\n", m.Error)
			return errFailReply
		case m.Event != api.EventSIPMessage:
			continue
		case asJSON:
			fmt.Fprintf(c.stdout, "%s\n", m.Raw)
		default:
			fmt.Fprintln(c.stdout, ladderLine(m, c.now().Location()))
		}
	}
}

// ladderLine: "15:04:05.000 acc1 127.0.0.1:5070 --> 127.0.0.1:5060 udp INVITE sip:... [call-id]".
func ladderLine(m client.Message, loc *time.Location) string {
	var w struct {
		Time      string `json:"time"`
		Direction string `json:"direction"`
		Transport string `json:"transport"`
		Local     string `json:"local"`
		Remote    string `json:"remote"`
		CallID    string `json:"sip_call_id"`
		FirstLine string `json:"first_line"`
	}
	_ = m.Decode(&w)
	t := w.Time
	if ts, err := time.Parse(time.RFC3339Nano, w.Time); err == nil {
		t = ts.In(loc).Format("15:04:05.000")
	}
	arrow := "<--"
	if w.Direction == "sent" {
		arrow = "-->"
	}
	return fmt.Sprintf("%s %s %s %s %s %s %s [%s]", t, orDash(m.Account), w.Local, arrow, w.Remote, w.Transport, w.FirstLine, w.CallID)
}
