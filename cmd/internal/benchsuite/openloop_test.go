//go:build integration

package benchsuite

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/telestra/telestra-sip/api"
)

// openLoopResult is the round-trip distribution of paced clients.
type openLoopResult struct {
	Requests      int
	P50, P99, Max time.Duration
}

// openLoop connects clients to the API at addr and has each send one
// get-status for account every period (random phase, so they do not all
// fire at once) for dur, measuring send → status. Unlike apibench's closed
// loop, the daemon is not saturated, so this is the latency a client sees
// while 64 clients are connected and active, not a queueing figure.
func openLoop(addr, account string, clients int, period, dur time.Duration) (openLoopResult, error) {
	req := api.AppendFrame(nil, []byte(fmt.Sprintf(`{"cmd":"get-status","account":%q}`, account)))
	conns := make([]net.Conn, 0, clients)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range clients {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			return openLoopResult{}, fmt.Errorf("connect to %s: %w", addr, err)
		}
		conns = append(conns, c)
	}
	rtts := make([][]time.Duration, clients)
	errs := make([]error, clients)
	start := time.Now().Add(50 * time.Millisecond)
	end := start.Add(dur)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			fr := api.NewFrameReader(c, 16<<20)
			next := start.Add(time.Duration(rand.Int64N(int64(period))))
			for next.Before(end) {
				time.Sleep(time.Until(next))
				next = next.Add(period)
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				t0 := time.Now()
				if _, err := c.Write(req); err != nil {
					errs[i] = err
					return
				}
				for {
					raw, err := fr.Next()
					if err != nil {
						errs[i] = err
						return
					}
					var m struct {
						Event, Account, Error string
					}
					if err := json.Unmarshal(raw, &m); err != nil {
						errs[i] = fmt.Errorf("invalid message %q: %w", raw, err)
						return
					}
					if m.Event == api.EventFail {
						errs[i] = fmt.Errorf("fail: %s", m.Error)
						return
					}
					if m.Event == api.EventStatus && m.Account == account {
						break
					}
				}
				rtts[i] = append(rtts[i], time.Since(t0))
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return openLoopResult{}, err
	}
	all := slices.Concat(rtts...)
	if len(all) == 0 {
		return openLoopResult{}, errors.New("no requests completed")
	}
	slices.Sort(all)
	return openLoopResult{Requests: len(all), P50: percentile(all, 50), P99: percentile(all, 99), Max: all[len(all)-1]}, nil
}
