// Command telestra-sipd is the Telestra SIP service: it registers the SIP
// plan's accounts and gives host applications control of their calls over a
// TCP API.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/telestra/telestra-sip/cmd/internal/daemon"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const defaultPlan = "/etc/telestra/sipplan.toml"

const usageText = `usage: telestra-sipd [-plan FILE]
       telestra-sipd -check [-devices] [-plan FILE]
       telestra-sipd -version

The Telestra SIP service: registers the SIP plan's accounts and gives host
applications control of their calls over a TCP API (see telestra-sipctl(1)).

options:
  -plan FILE  the SIP plan, sipplan.toml(5) (default ` + defaultPlan + `)
  -check      validate the plan and load its TLS files, print every problem and
              exit: 0 valid (warnings about settings without effect or a
              certificate that expires soon go to stderr), 1 invalid
  -devices    with -check: also open every audio channel's devices and report
              the ones that do not open (exit 1)
  -version    print the version and exit
  -debug-addr IP:PORT
              serve process figures and Go profiles over HTTP on this
              loopback address (off by default; for diagnosis only)
  -h, -help   print this help and exit

SIGHUP (systemctl reload telestra-sipd, or telestra-sipctl reload) re-reads
the plan. See telestra-sipd(8).
`

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 64 // EX_USAGE
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	started := time.Now() // for the API's uptime
	fs := flag.NewFlagSet("telestra-sipd", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed below, help by -h
	planPath := fs.String("plan", defaultPlan, "")
	check := fs.Bool("check", false, "")
	devices := fs.Bool("devices", false, "")
	showVersion := fs.Bool("version", false, "")
	debugAddr := fs.String("debug-addr", "", "")
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "telestra-sipd: "+format+"\nRun 'telestra-sipd -h' for help.\n", a...)
		return exitUsage
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usageText)
			return exitOK
		}
		return usage("%v", err)
	}
	if fs.NArg() > 0 {
		if strings.HasSuffix(fs.Arg(0), ".toml") {
			return usage("unexpected argument %q: give the plan with -plan, e.g. telestra-sipd -check -plan %s", fs.Arg(0), fs.Arg(0))
		}
		return usage("unexpected argument %q", fs.Arg(0))
	}
	if *showVersion {
		fmt.Fprintln(stdout, "telestra-sipd", version)
		return exitOK
	}
	if *devices && !*check {
		return usage("-devices only goes with -check: telestra-sipd -check -devices -plan FILE")
	}

	if *check {
		// The TLS files too: the UA loads them at start.
		p, err := plan.Load(*planPath, daemon.CheckTLS)
		return checkPlan(stdout, stderr, *planPath, p, err, *devices)
	}
	p, err := plan.Load(*planPath, daemon.StartTLS)

	level := new(slog.LevelVar)
	h, journal := daemon.NewLogHandler(stderr, level)
	log := slog.New(h)
	// sipgo logs a few transport warnings through slog.Default: keep them
	// in the same format and at the plan's level.
	slog.SetDefault(log)
	if err != nil {
		// Every problem on its own line at priority err (the unit shows
		// them in systemctl status); the exit code keeps systemd from
		// retrying a plan that cannot start (RestartPreventExitStatus=78).
		for _, line := range plan.ProblemLines(*planPath, err) {
			logBeforeExit(log, stderr, journal, "SIP plan invalid: "+line, "plan", *planPath)
		}
		return exitConfig
	}
	for _, w := range p.Warnings {
		log.Warn("SIP plan warning", "problem", w.String())
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	log.Info("starting telestra-sipd", "version", version, "plan", *planPath)
	err = daemon.Run(ctx, daemon.Options{PlanPath: *planPath, Plan: p, Log: log, Level: level, Reload: hup,
		Version: version, Started: started, DebugAddr: *debugAddr,
		RuntimeDir: os.Getenv("RUNTIME_DIRECTORY")})
	if err != nil {
		logBeforeExit(log, stderr, journal, "telestra-sipd failed", "err", err)
		return exitFail
	}
	return exitOK
}

// logBeforeExit logs an error that ends the process. In the journal it
// goes over stderr with a syslog priority prefix (<3>, err) rather than as a
// native datagram: journald finds a datagram's unit through the sender's
// /proc entry, which a process exiting at once may no longer have, and the
// line would be missing from journalctl -u. The stream is the unit's.
func logBeforeExit(log *slog.Logger, stderr io.Writer, journal bool, msg string, args ...any) {
	if !journal {
		log.Error(msg, args...)
		return
	}
	line := msg
	for i := 0; i+1 < len(args); i += 2 {
		line += fmt.Sprintf(" %v=%q", args[i], fmt.Sprint(args[i+1]))
	}
	fmt.Fprintf(stderr, "<3>%s\n", strings.ReplaceAll(line, "\n", "; "))
}

// checkPlan is -check: every problem on its own line so that an operator
// (or ExecStartPre in systemctl status) sees all of them at once; warnings
// too, marked as such; with -devices, every channel that does not open.
func checkPlan(stdout, stderr io.Writer, path string, p *plan.Plan, err error, devices bool) int {
	if err != nil {
		printProblems(stderr, path, err)
		return exitFail
	}
	for _, w := range p.Warnings {
		fmt.Fprintln(stderr, warningLine(w))
	}
	if devices {
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
		if errs := daemon.CheckDevices(p, log); len(errs) > 0 {
			for _, e := range errs {
				fmt.Fprintf(stderr, "%s: %v\n", path, e)
			}
			return exitFail
		}
	}
	switch n := len(p.Warnings); n {
	case 0:
		fmt.Fprintln(stdout, "OK")
	case 1:
		fmt.Fprintln(stdout, "OK (1 warning)")
	default:
		fmt.Fprintf(stdout, "OK (%d warnings)\n", n)
	}
	return exitOK
}

// warningLine is a warning as -check prints it: FILE:LINE: KEY: warning: ...
func warningLine(w plan.Problem) string {
	w.Msg = "warning: " + w.Msg
	return w.String()
}

// exitConfig is sysexits' EX_CONFIG: the daemon was started on a plan
// that does not validate.
const exitConfig = 78

// printProblems prints one line per plan problem so that an operator sees
// all of them at once.
func printProblems(w io.Writer, path string, err error) {
	for _, line := range plan.ProblemLines(path, err) {
		fmt.Fprintln(w, line)
	}
}
