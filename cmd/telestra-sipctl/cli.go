package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
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
	exitFail  = 1  // the daemon answered with a fail
	exitConn  = 2  // no connection, connection lost, or no answer in time
	exitUsage = 64 // EX_USAGE
)

const defaultPlan = "/etc/telestra/sipplan.toml"

const usageText = `usage: telestra-sipctl [-addr HOST:PORT | -plan FILE] [-timeout D] COMMAND [ARGS]

commands:
  status [ACCOUNT]                      registration and calls of one or every account
  events [-json]                        follow the broadcast events until interrupted
  call ACCOUNT NUM                      place a call; prints its call ID
  answer ACCOUNT CALL_ID                answer a ringing incoming call
  switch ACCOUNT CALL_ID                hold the active call and resume CALL_ID
  hangup [-decline] ACCOUNT CALL_ID     end, cancel or decline (486; 603 with -decline) a call
  dtmf ACCOUNT CALL_ID DIGITS           send DTMF digits (0-9 * # A-D, ',' a pause)
  transfer ACCOUNT CALL_ID NUM          blind-transfer a call to NUM (REFER)
  login ACCOUNT [USER [PASS [SERVER]]]  register again, optionally with other credentials
  logout ACCOUNT                        un-register
  send JSON                             send a raw command; print the replies for a moment

options:
`

// usageError is a command line mistake: exit 64 with the usage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// connError is a connection problem: exit 2.
type connError struct{ err error }

func (e *connError) Error() string { return e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// cli is one invocation.
type cli struct {
	stdout, stderr io.Writer
	addr           string
	timeout        time.Duration
	now            func() time.Time // event time stamps
	// sendQuiet is how long `send` waits for another reply.
	sendQuiet time.Duration
}

// run parses args, runs the command and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return runOpts(ctx, args, stdout, stderr)
}

// runOpts is run with test hooks applied to the cli.
func runOpts(ctx context.Context, args []string, stdout, stderr io.Writer, opts ...func(*cli)) int {
	c := &cli{stdout: stdout, stderr: stderr, now: time.Now, sendQuiet: 500 * time.Millisecond}
	for _, o := range opts {
		o(c)
	}
	fs := flag.NewFlagSet("telestra-sipctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	addr := fs.String("addr", "", "API address HOST:PORT (default: [tcp-settings] of the plan)")
	planPath := fs.String("plan", defaultPlan, "SIP plan to read the API address from when -addr is not given")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "how long to wait to connect and for each answer")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if *showVersion {
		fmt.Fprintln(stdout, "telestra-sipctl", version)
		return exitOK
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "telestra-sipctl: no command given")
		fs.Usage()
		return exitUsage
	}
	planSet := false
	fs.Visit(func(f *flag.Flag) { planSet = planSet || f.Name == "plan" })
	if *addr != "" && planSet {
		fmt.Fprintln(stderr, "telestra-sipctl: give -addr or -plan, not both")
		return exitUsage
	}
	err := c.resolveAddr(*addr, *planPath)
	if err == nil {
		err = c.dispatch(ctx, fs.Arg(0), fs.Args()[1:])
	}
	var ue *usageError
	var fe *client.FailError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "telestra-sipctl: %s\n\n", ue.msg)
		fs.Usage()
		return exitUsage
	case errors.As(err, &fe):
		fmt.Fprintf(stderr, "telestra-sipctl: %s failed: %s\n", fs.Arg(0), fe.Error())
		return exitFail
	case errors.Is(err, errFailReply):
		return exitFail
	default:
		fmt.Fprintf(stderr, "telestra-sipctl: %v\n", err)
		return exitConn
	}
}

// resolveAddr sets c.addr from -addr, or from the plan's [tcp-settings].
func (c *cli) resolveAddr(addr, planPath string) error {
	if addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return usagef("-addr %q: want HOST:PORT (%v)", addr, err)
		}
		c.addr = addr
		return nil
	}
	p, err := plan.Load(planPath)
	if err != nil {
		return &connError{fmt.Errorf("no API address: %w (or give -addr HOST:PORT)", err)}
	}
	host := p.TCP.Address
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // listening on every address: use loopback
	}
	c.addr = net.JoinHostPort(host, strconv.Itoa(p.TCP.Port))
	return nil
}

func (c *cli) dispatch(ctx context.Context, cmd string, args []string) error {
	switch cmd {
	case "status":
		if len(args) > 1 {
			return usagef("status takes at most one ACCOUNT")
		}
		account := ""
		if len(args) == 1 {
			account = args[0]
		}
		return c.status(ctx, account)
	case "events":
		asJSON := false
		for _, a := range args {
			if a != "-json" && a != "--json" {
				return usagef("events: unknown argument %q", a)
			}
			asJSON = true
		}
		return c.events(ctx, asJSON)
	case "call":
		if len(args) != 2 {
			return usagef("call needs ACCOUNT NUM")
		}
		return c.withClient(ctx, func(ctx context.Context, cl *client.Client) error {
			id, err := cl.MakeCall(ctx, args[0], args[1])
			if err == nil {
				fmt.Fprintln(c.stdout, id)
			}
			return err
		})
	case "answer", "switch", "hangup":
		decline := false
		var pos []string
		for _, a := range args {
			if cmd == "hangup" && (a == "-decline" || a == "--decline") {
				decline = true
				continue
			}
			pos = append(pos, a)
		}
		if len(pos) != 2 {
			return usagef("%s needs ACCOUNT CALL_ID", cmd)
		}
		id, err := strconv.Atoi(pos[1])
		if err != nil {
			return usagef("%s: CALL_ID %q is not an integer", cmd, pos[1])
		}
		return c.withClient(ctx, func(ctx context.Context, cl *client.Client) error {
			switch cmd {
			case "answer":
				return cl.AnswerCall(ctx, pos[0], id)
			case "switch":
				return cl.SwitchCall(ctx, pos[0], id)
			default:
				return cl.HangupCall(ctx, pos[0], id, decline)
			}
		})
	case "dtmf", "transfer":
		if len(args) != 3 {
			if cmd == "dtmf" {
				return usagef("dtmf needs ACCOUNT CALL_ID DIGITS")
			}
			return usagef("transfer needs ACCOUNT CALL_ID NUM")
		}
		id, err := strconv.Atoi(args[1])
		if err != nil {
			return usagef("%s: CALL_ID %q is not an integer", cmd, args[1])
		}
		return c.withClient(ctx, func(ctx context.Context, cl *client.Client) error {
			if cmd == "dtmf" {
				return cl.SendDTMF(ctx, args[0], id, args[2], 0)
			}
			return cl.TransferCall(ctx, args[0], id, args[2])
		})
	case "login":
		if len(args) < 1 || len(args) > 4 {
			return usagef("login needs ACCOUNT [USER [PASS [SERVER]]]")
		}
		var creds [3]*string
		for i, a := range args[1:] {
			creds[i] = &a
		}
		return c.withClient(ctx, func(ctx context.Context, cl *client.Client) error {
			return cl.Login(ctx, args[0], creds[0], creds[1], creds[2])
		})
	case "logout":
		if len(args) != 1 {
			return usagef("logout needs ACCOUNT")
		}
		return c.withClient(ctx, func(ctx context.Context, cl *client.Client) error {
			return cl.Logout(ctx, args[0])
		})
	case "send":
		if len(args) != 1 {
			return usagef("send needs one JSON argument (quote it)")
		}
		return c.send(ctx, args[0])
	default:
		return usagef("unknown command %q", cmd)
	}
}

// dial connects within the timeout.
func (c *cli) dial(ctx context.Context) (*client.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cl, err := client.Dial(dctx, c.addr)
	if err != nil {
		return nil, &connError{fmt.Errorf("%w (is telestra-sipd running? see -addr and -plan)", err)}
	}
	return cl, nil
}

// withClient connects and runs fn with a ctx bounded by the timeout.
func (c *cli) withClient(ctx context.Context, fn func(context.Context, *client.Client) error) error {
	cl, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.explain(fn(rctx, cl))
}

// explain turns a timeout or a lost connection into a clear message.
func (c *cli) explain(err error) error {
	var fe *client.FailError
	switch {
	case err == nil || errors.As(err, &fe):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return &connError{fmt.Errorf("no answer from telestra-sipd at %s within %v", c.addr, c.timeout)}
	case errors.Is(err, context.Canceled):
		return &connError{errors.New("interrupted")}
	default:
		return &connError{fmt.Errorf("connection to telestra-sipd at %s: %w", c.addr, err)}
	}
}

func (c *cli) status(ctx context.Context, account string) error {
	return c.withClient(ctx, func(ctx context.Context, cl *client.Client) error {
		sts, err := cl.GetStatus(ctx, account)
		if err != nil {
			return err
		}
		writeStatus(c.stdout, sts)
		return nil
	})
}

// events prints every event until ctx ends (exit 0) or the daemon closes
// the connection (exit 2).
func (c *cli) events(ctx context.Context, asJSON bool) error {
	cl, err := c.dial(ctx)
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		m, err := cl.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return c.explain(err)
		}
		if asJSON {
			fmt.Fprintf(c.stdout, "%s\n", m.Raw)
		} else {
			fmt.Fprintf(c.stdout, "%s %s\n", c.now().Format("15:04:05.000"), eventLine(m))
		}
	}
}

// errFailReply: `send` got a fail and printed it already.
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
		return c.explain(err)
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
			return c.explain(err)
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
