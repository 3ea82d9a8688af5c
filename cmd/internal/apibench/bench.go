package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"sync"
	"time"
)

// config is the command line.
type config struct {
	Addr    string
	Clients int
	N       int
	Warmup  int
	Cmd     string
	Account string
	Baresip bool
	Timeout time.Duration
}

func (c *config) validate() error {
	switch {
	case c.Clients < 1:
		return errors.New("-clients must be at least 1")
	case c.N < c.Clients:
		return fmt.Errorf("-n (%d) must be at least -clients (%d)", c.N, c.Clients)
	case c.Warmup < 0:
		return errors.New("-warmup must not be negative")
	case c.Baresip && c.Clients != 1:
		// ctrl_tcp serves one client: a second connection silently
		// replaces the first.
		return errors.New("-baresip needs -clients 1: baresip ctrl_tcp serves one connection at a time")
	}
	if c.Cmd == "" {
		c.Cmd = "get-status"
		if c.Baresip {
			c.Cmd = "reginfo"
		}
	}
	if !c.Baresip && c.Cmd != "get-status" && c.Cmd != "ping" {
		return fmt.Errorf("-cmd %q: the API benchmark sends get-status or ping", c.Cmd)
	}
	return nil
}

// requester sends one request and waits for its complete answer.
type requester interface {
	do(ctx context.Context) error
	Close() error
}

// result is the summary; its JSON form is the machine-readable line.
type result struct {
	Mode       string  `json:"mode"` // api or baresip
	Addr       string  `json:"addr"`
	Cmd        string  `json:"cmd"`
	Account    string  `json:"account,omitempty"`
	Clients    int     `json:"clients"`
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	Seconds    float64 `json:"seconds"`
	CmdsPerSec float64 `json:"cmds_per_sec"`
	P50us      float64 `json:"p50_us"`
	P90us      float64 `json:"p90_us"`
	P99us      float64 `json:"p99_us"`
	MaxUs      float64 `json:"max_us"`
	FirstError string  `json:"first_error,omitempty"`
}

func (r result) human() string {
	return fmt.Sprintf("%s %s: %d requests, %d clients, %.2fs: %.0f cmd/s, round trip p50 %.0fµs p90 %.0fµs p99 %.0fµs max %.0fµs, %d errors",
		r.Mode, r.Cmd, r.Requests, r.Clients, r.Seconds, r.CmdsPerSec, r.P50us, r.P90us, r.P99us, r.MaxUs, r.Errors)
}

// bench connects every client, warms up, then runs the timed requests of all
// clients together.
func bench(ctx context.Context, cfg config) (result, error) {
	reqs := make([]requester, 0, cfg.Clients)
	defer func() {
		for _, r := range reqs {
			r.Close()
		}
	}()
	for range cfg.Clients {
		r, err := connect(ctx, cfg)
		if err != nil {
			return result{}, err
		}
		reqs = append(reqs, r)
	}
	for _, r := range reqs {
		for range cfg.Warmup {
			if err := timed(ctx, cfg.Timeout, r); err != nil {
				return result{}, fmt.Errorf("warm-up request to %s: %w", cfg.Addr, err)
			}
		}
	}

	type share struct {
		rtts     []time.Duration
		errs     int
		firstErr error
	}
	shares := make([]share, cfg.Clients)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, r := range reqs {
		n := cfg.N / cfg.Clients
		if i < cfg.N%cfg.Clients {
			n++
		}
		sh := &shares[i]
		sh.rtts = make([]time.Duration, 0, n)
		wg.Go(func() {
			<-start
			for range n {
				t0 := time.Now()
				err := timed(ctx, cfg.Timeout, r)
				if err != nil {
					sh.errs++
					if sh.firstErr == nil {
						sh.firstErr = err
					}
					if ctx.Err() != nil || isConnErr(err) {
						return
					}
					continue
				}
				sh.rtts = append(sh.rtts, time.Since(t0))
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)

	res := result{Mode: "api", Addr: cfg.Addr, Cmd: cfg.Cmd, Account: cfg.Account, Clients: cfg.Clients, Seconds: elapsed.Seconds()}
	if cfg.Baresip {
		res.Mode, res.Account = "baresip", ""
	}
	var all []time.Duration
	for _, sh := range shares {
		all = append(all, sh.rtts...)
		res.Errors += sh.errs
		if sh.firstErr != nil && res.FirstError == "" {
			res.FirstError = sh.firstErr.Error()
		}
	}
	if err := ctx.Err(); err != nil {
		return result{}, err
	}
	res.Requests = len(all)
	if len(all) == 0 {
		return res, nil
	}
	slices.Sort(all)
	us := func(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)*10) / 10 }
	res.P50us, res.P90us, res.P99us = us(percentile(all, 50)), us(percentile(all, 90)), us(percentile(all, 99))
	res.MaxUs = us(all[len(all)-1])
	res.CmdsPerSec = math.Round(float64(len(all)) / elapsed.Seconds())
	return res, nil
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func timed(ctx context.Context, timeout time.Duration, r requester) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return r.do(ctx)
}

func connect(ctx context.Context, cfg config) (requester, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Addr, err)
	}
	if cfg.Baresip {
		return newBaresipRequester(conn, cfg.Cmd), nil
	}
	return newAPIRequester(conn, cfg.Cmd, cfg.Account), nil
}

// errConn marks errors after which the connection is unusable.
var errConn = errors.New("connection lost")

func isConnErr(err error) bool { return errors.Is(err, errConn) }

// deadline applies ctx's deadline to conn for one request.
func deadline(ctx context.Context, conn net.Conn) {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
	}
}
