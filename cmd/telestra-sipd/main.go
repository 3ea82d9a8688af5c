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

	"github.com/telestra/telestra-sip/cmd/internal/daemon"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("telestra-sipd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	planPath := fs.String("plan", "/etc/telestra/sipplan.toml", "SIP plan `file`")
	check := fs.Bool("check", false, "validate the plan, print every problem and exit (0: valid)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 64
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "telestra-sipd: unexpected argument %q\n", fs.Arg(0))
		return 64
	}
	if *showVersion {
		fmt.Fprintln(stdout, "telestra-sipd", version)
		return 0
	}

	p, err := plan.Load(*planPath)
	if *check {
		if err != nil {
			printProblems(stderr, *planPath, err)
			return 1
		}
		fmt.Fprintln(stdout, "OK")
		return 0
	}

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
		for _, line := range problemLines(*planPath, err) {
			logBeforeExit(log, stderr, journal, "SIP plan invalid: "+line, "plan", *planPath)
		}
		return exitConfig
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	log.Info("starting telestra-sipd", "version", version, "plan", *planPath)
	err = daemon.Run(ctx, daemon.Options{PlanPath: *planPath, Plan: p, Log: log, Level: level, Reload: hup,
		RuntimeDir: os.Getenv("RUNTIME_DIRECTORY")})
	if err != nil {
		logBeforeExit(log, stderr, journal, "telestra-sipd failed", "err", err)
		return 1
	}
	return 0
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

// exitConfig is sysexits' EX_CONFIG: the daemon was started on a plan
// that does not validate.
const exitConfig = 78

// printProblems prints one line per plan problem so that an operator sees
// all of them at once.
func printProblems(w io.Writer, path string, err error) {
	for _, line := range problemLines(path, err) {
		fmt.Fprintln(w, line)
	}
}

func problemLines(path string, err error) []string {
	var probs plan.Problems
	if !errors.As(err, &probs) {
		return []string{fmt.Sprintf("%s: %v", path, err)}
	}
	out := make([]string, 0, len(probs))
	for _, p := range probs {
		if p.Source == "" {
			p.Source = path
		}
		out = append(out, p.String())
	}
	return out
}
