package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/telestra/telestra-sip/api/client"
)

// cmdFlags are the commands' own flags.
type cmdFlags struct {
	json    bool // status, events
	decline bool // hangup
}

// command is one telestra-sipctl command.
type command struct {
	name     string
	args     string // the positional arguments, for the usage
	summary  string // one line for the command list
	help     string // more, for COMMAND -h
	min, max int    // positional arguments; max < 0: no limit
	countMsg string // what is wrong when the count is
	flags    func(*flag.FlagSet, *cmdFlags)
	// run checks its arguments (a *usageError) before it connects.
	run func(c *cli, ctx context.Context, args []string, f *cmdFlags) error
}

func (cmd *command) synopsis() string {
	if cmd.args == "" {
		return cmd.name
	}
	return cmd.name + " " + cmd.args
}

func (cmd *command) printHelp(w io.Writer) {
	fmt.Fprintf(w, "usage: telestra-sipctl [OPTIONS] %s\n\n%s\n", cmd.synopsis(), cmd.summary)
	if cmd.help != "" {
		fmt.Fprintf(w, "\n%s", cmd.help)
	}
	fmt.Fprint(w, "\n"+optionsText+"\n"+exitText)
}

func jsonFlag(fs *flag.FlagSet, f *cmdFlags) {
	fs.BoolVar(&f.json, "json", false, "")
}

// commandTable lists the commands in the order the help shows them. It is
// built on each call rather than kept in a package variable: the help
// command refers back to it.
func commandTable() []*command {
	return []*command{
		{name: "status", args: "[--json] [ACCOUNT]", summary: "registration and calls of one or every account",
			help: `Prints a table of the accounts (the final code of the latest REGISTER and what
it means), then one line per call. --json prints each status event as the
daemon sends it, one JSON object a line.
`,
			max: 1, countMsg: "takes at most one ACCOUNT", flags: jsonFlag,
			run: func(c *cli, ctx context.Context, args []string, f *cmdFlags) error {
				return c.status(ctx, optional(args), f.json)
			}},
		{name: "events", args: "[--json]", summary: "follow the broadcast events until interrupted",
			help: `Prints every event with a time stamp (or, with --json, as the daemon sends
it, with its seq) until Ctrl-C (exit 0). When the connection is lost (a
network blip, a daemon restart) it says so on stderr, reconnects and resumes
after the last event printed, so that none is missed or printed twice; a
daemon that restarted says so and its events are printed from the first it
keeps. Exit 2 only when the first connection fails.
`,
			max: 0, countMsg: "takes no arguments besides --json", flags: jsonFlag,
			run: func(c *cli, ctx context.Context, _ []string, f *cmdFlags) error { return c.events(ctx, f.json) }},
		{name: "trace", args: "[--json] [ACCOUNT]", summary: "follow the SIP messages of one or every account",
			help: `Subscribes to the daemon's SIP message trace and prints each message as a
ladder line (time, local address, arrow, remote address, transport, start
line, Call-ID) until Ctrl-C; --json prints each sip-message event as sent.
Other clients are not affected.
`,
			max: 1, countMsg: "takes at most one ACCOUNT", flags: jsonFlag,
			run: func(c *cli, ctx context.Context, args []string, f *cmdFlags) error {
				return c.trace(ctx, optional(args), f.json)
			}},
		{name: "call", args: "ACCOUNT NUM", summary: "place a call; prints its call ID",
			help: `NUM is an extension (dialled as sip:NUM@SERVER of the account), the user of
another account of this daemon, or a full sip: URI. The call ID is printed
as soon as the INVITE is sent; follow the call with 'events'.
`,
			min: 2, max: 2, countMsg: "needs ACCOUNT NUM",
			run: func(c *cli, ctx context.Context, args []string, _ *cmdFlags) error {
				return c.withClient(ctx, func(ctx context.Context, cl *client.Client) error {
					id, err := cl.MakeCall(ctx, args[0], args[1])
					if err == nil {
						fmt.Fprintln(c.stdout, id)
					}
					return err
				})
			}},
		{name: "answer", args: "ACCOUNT CALL_ID", summary: "answer a ringing incoming call",
			min: 2, max: 2, countMsg: "needs ACCOUNT CALL_ID",
			run: callCommand(func(ctx context.Context, cl *client.Client, a string, id int, _ *cmdFlags) error {
				return cl.AnswerCall(ctx, a, id)
			})},
		{name: "switch", args: "ACCOUNT CALL_ID", summary: "hold the active call and resume CALL_ID",
			min: 2, max: 2, countMsg: "needs ACCOUNT CALL_ID",
			run: callCommand(func(ctx context.Context, cl *client.Client, a string, id int, _ *cmdFlags) error {
				return cl.SwitchCall(ctx, a, id)
			})},
		{name: "hangup", args: "[--decline] ACCOUNT CALL_ID", summary: "end, cancel or decline (486; 603 with --decline) a call",
			min: 2, max: 2, countMsg: "needs ACCOUNT CALL_ID",
			flags: func(fs *flag.FlagSet, f *cmdFlags) { fs.BoolVar(&f.decline, "decline", false, "") },
			run: callCommand(func(ctx context.Context, cl *client.Client, a string, id int, f *cmdFlags) error {
				return cl.HangupCall(ctx, a, id, f.decline)
			})},
		{name: "dtmf", args: "ACCOUNT CALL_ID DIGITS", summary: "send DTMF digits (0-9 * # A-D, ',' a pause) on a call",
			help: `Sends the digits as RFC 4733 telephone-event, or as SIP INFO when the peer
negotiated no telephone-event; digits of a second dtmf queue behind those
still being sent. Digits the peer sends show in 'events' as dtmf lines.
`,
			min: 3, max: 3, countMsg: "needs ACCOUNT CALL_ID DIGITS",
			run: func(c *cli, ctx context.Context, args []string, f *cmdFlags) error {
				return callCommand(func(ctx context.Context, cl *client.Client, a string, id int, _ *cmdFlags) error {
					return cl.SendDTMF(ctx, a, id, args[2], 0)
				})(c, ctx, args, f)
			}},
		{name: "transfer", args: "ACCOUNT CALL_ID NUM", summary: "blind-transfer a call to NUM (SIP REFER)",
			help: `NUM is formed as for 'call'. The call is put on hold and the peer asked to
call NUM; 'events' then shows call-ended with reason "transferred", or a
fail with the status the target gave (the call goes on).
`,
			min: 3, max: 3, countMsg: "needs ACCOUNT CALL_ID NUM",
			run: func(c *cli, ctx context.Context, args []string, f *cmdFlags) error {
				return callCommand(func(ctx context.Context, cl *client.Client, a string, id int, _ *cmdFlags) error {
					return cl.TransferCall(ctx, a, id, args[2])
				})(c, ctx, args, f)
			}},
		{name: "login", args: "ACCOUNT [USER [PASS [SERVER]]]", summary: "register again, optionally with other credentials",
			help: `Credentials given here are used until the daemon restarts or reloads its plan.
A PASS on the command line is visible to other users in ps(1): prefer the
plan. Put -- before a PASS that starts with '-'.
`,
			min: 1, max: 4, countMsg: "needs ACCOUNT [USER [PASS [SERVER]]]",
			run: func(c *cli, ctx context.Context, args []string, _ *cmdFlags) error {
				var creds [3]*string
				for i, a := range args[1:] {
					creds[i] = &a
				}
				return c.withClient(ctx, func(ctx context.Context, cl *client.Client) error {
					return cl.Login(ctx, args[0], creds[0], creds[1], creds[2])
				})
			}},
		{name: "logout", args: "ACCOUNT", summary: "un-register", min: 1, max: 1, countMsg: "needs ACCOUNT",
			run: func(c *cli, ctx context.Context, args []string, _ *cmdFlags) error {
				return c.withClient(ctx, func(ctx context.Context, cl *client.Client) error { return cl.Logout(ctx, args[0]) })
			}},
		{name: "reload", summary: "re-read the SIP plan; print what changed, or every problem",
			help: `Waits until telestra-sipd has applied the plan, then prints every change
(settings that need a restart are marked) and exits 0; when the plan is
rejected it prints every problem on stderr and exits 1, and the daemon keeps
the running plan. The unit's ExecReload can use it.
`,
			max: 0, countMsg: "takes no arguments",
			run: func(c *cli, ctx context.Context, _ []string, _ *cmdFlags) error { return c.reload(ctx) }},
		{name: "log-level", args: "[LEVEL]", summary: "show or set the daemon's log level until the next reload",
			help: `LEVEL is debug, info, warn or error. The level in force is printed. A reload
(systemctl reload, or 'reload') goes back to the plan's [log] level.
`,
			max: 1, countMsg: "takes at most one LEVEL",
			run: func(c *cli, ctx context.Context, args []string, _ *cmdFlags) error {
				level := optional(args)
				return c.withClient(ctx, func(ctx context.Context, cl *client.Client) error {
					got, err := cl.LogLevel(ctx, level)
					if err == nil {
						fmt.Fprintln(c.stdout, got)
					}
					return err
				})
			}},
		{name: "version", summary: "print the versions of telestra-sipctl and of the running telestra-sipd",
			max: 0, countMsg: "takes no arguments",
			run: func(c *cli, ctx context.Context, _ []string, _ *cmdFlags) error {
				fmt.Fprintln(c.stdout, "telestra-sipctl", version)
				return c.withClient(ctx, func(ctx context.Context, cl *client.Client) error {
					m, err := cl.Pong(ctx)
					if err == nil {
						if m.Version == "" {
							m.Version = "(version not reported)"
						}
						fmt.Fprintf(c.stdout, "telestra-sipd %s (up %s)\n", m.Version, time.Duration(m.UptimeS)*time.Second)
					}
					return err
				})
			}},
		{name: "send", args: "JSON", summary: "send a raw command; print the replies for a moment",
			help: `Sends JSON as one message and prints each reply as the daemon sends it, one
a line, until none came for half a second; a fail goes to stderr (exit 1).
Example: telestra-sipctl send '{"cmd":"get-status"}'
`,
			min: 1, max: 1, countMsg: "needs one JSON argument (quote it)",
			run: func(c *cli, ctx context.Context, args []string, _ *cmdFlags) error { return c.send(ctx, args[0]) }},
		{name: "help", args: "[COMMAND]", summary: "print this help, or a command's", max: 1, countMsg: "takes at most one COMMAND",
			run: func(c *cli, _ context.Context, args []string, _ *cmdFlags) error {
				if len(args) == 0 {
					printUsage(c.stdout)
					return nil
				}
				cmd, err := lookup(args[0])
				if err != nil {
					return err
				}
				cmd.printHelp(c.stdout)
				return nil
			}},
	}
}

// callCommand runs a command on ACCOUNT CALL_ID.
func callCommand(fn func(context.Context, *client.Client, string, int, *cmdFlags) error) func(*cli, context.Context, []string, *cmdFlags) error {
	return func(c *cli, ctx context.Context, args []string, f *cmdFlags) error {
		id, err := strconv.Atoi(args[1])
		if err != nil || id < 0 {
			return usagef("CALL_ID %q is not a call ID (a whole number from 'status' or 'events')", args[1])
		}
		return c.withClient(ctx, func(ctx context.Context, cl *client.Client) error { return fn(ctx, cl, args[0], id, f) })
	}
}

// apiNames are names people type by habit: the API's command names.
var apiNames = map[string]string{
	"get-status": "status", "make-call": "call", "answer-call": "answer", "switch-call": "switch",
	"hangup-call": "hangup", "dial": "call",
}

func lookup(name string) (*command, error) {
	commands := commandTable()
	for _, cmd := range commands {
		if cmd.name == name {
			return cmd, nil
		}
	}
	if alt, ok := apiNames[name]; ok {
		return nil, usagef("unknown command %q: did you mean %q? The commands are %s", name, alt, commandNames())
	}
	best, bestD := "", 3
	for _, cmd := range commands {
		if d := editDistance(name, cmd.name); d < bestD {
			best, bestD = cmd.name, d
		}
	}
	if best != "" {
		return nil, usagef("unknown command %q: did you mean %q? The commands are %s", name, best, commandNames())
	}
	return nil, usagef("unknown command %q; the commands are %s", name, commandNames())
}

func commandNames() string {
	commands := commandTable()
	names := make([]string, len(commands))
	for i, cmd := range commands {
		names[i] = cmd.name
	}
	return strings.Join(names, ", ")
}

// editDistance is the Levenshtein distance, for "did you mean".
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// optional returns the one optional argument of a command, or "".
func optional(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	return ""
}
