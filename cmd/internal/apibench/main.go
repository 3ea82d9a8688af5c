// Command apibench measures command round trips against the telestra-sipd
// TCP API (NUL-terminated JSON) or, with -baresip, against baresip's ctrl_tcp
// module (netstrings), so both can be compared in the same run.
//
//	apibench -addr 127.0.0.1:3550 -clients 4 -n 20000 -cmd get-status -account account-1
//	apibench -baresip -addr 127.0.0.1:4404 -n 2000 -cmd reginfo
//
// It prints one JSON summary line, then one line for people.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("apibench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:3550", "address HOST:PORT of the API (or of baresip ctrl_tcp with -baresip)")
	fs.IntVar(&cfg.Clients, "clients", 1, "concurrent connections, each sending one command at a time")
	fs.IntVar(&cfg.N, "n", 10000, "timed requests in total, shared among the clients")
	fs.IntVar(&cfg.Warmup, "warmup", 100, "untimed requests per client before the timed ones")
	fs.StringVar(&cfg.Cmd, "cmd", "", "command: get-status or ping (API; default get-status), a ctrl_tcp command such as reginfo or listcalls (-baresip; default reginfo)")
	fs.StringVar(&cfg.Account, "account", "", "account for get-status; empty: every account (a ping marks the end of the answers)")
	fs.BoolVar(&cfg.Baresip, "baresip", false, "speak baresip ctrl_tcp netstrings instead of the telestra-sipd API")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "give up on one request after this long")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 64
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "apibench: unexpected argument %q\n", fs.Arg(0))
		return 64
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(stderr, "apibench:", err)
		return 64
	}
	res, err := bench(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "apibench:", err)
		return 1
	}
	line, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "%s\n%s\n", line, res.human())
	if res.Errors > 0 {
		fmt.Fprintf(stderr, "apibench: %d requests failed; first: %s\n", res.Errors, res.FirstError)
		return 1
	}
	return 0
}
