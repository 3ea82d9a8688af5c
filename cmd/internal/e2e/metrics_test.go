//go:build integration

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// waitQuery polls a PromQL query until one series satisfies ok.
func waitQuery(t *testing.T, prom *testpeers.Prometheus, promql string, ok func(float64) bool) float64 {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last []testpeers.Sample
	var err error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last, err = prom.Query(ctx, promql)
		cancel()
		if err == nil && len(last) == 1 && ok(last[0].Value) {
			return last[0].Value
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("prometheus: %s never as wanted within 15 s; last %+v, %v", promql, last, err)
	return 0
}

// TestPrometheusScrape: a real Prometheus scrapes the daemon during a call
// to baresip through Kamailio; its query API shows the account registered,
// the call active and then counted with its set-up time and RTP, and
// promtool finds nothing to complain about in the scrape.
func TestPrometheusScrape(t *testing.T) {
	e := newEnv(t)
	e.peer("3002", testpeers.BaresipOptions{})
	p := &plan{Metrics: true, Accounts: []account{e.user("acc1", "3001")}}
	e.start(p)
	waitRegistered(t, e.c, "acc1", 200)
	prom := testpeers.StartPrometheus(t, p.MetricsAddr)

	// Prometheus' first scrape comes about 5 s after its start (its target
	// discovery sends updates every 5 s).
	waitQuery(t, prom, `telestra_sipd_account_registered{account="acc1"}`, func(v float64) bool { return v == 1 })
	waitQuery(t, prom, `telestra_sipd_build_info`, func(v float64) bool { return v == 1 })

	id := e.callOut(t, "acc1", "3002")
	waitQuery(t, prom, `telestra_sipd_calls_active{account="acc1",direction="out"}`, func(v float64) bool { return v == 1 })
	waitQuery(t, prom, `telestra_sipd_api_clients`, func(v float64) bool { return v >= 1 })
	waitCall(t, e.c, "acc1", id, "media flowing", func(c api.Call) bool { return c.PacketsReceived > 20 })

	scrape := get(t, "http://"+p.MetricsAddr+"/metrics")
	if err := testpeers.Promtool(t, scrape); err != nil {
		t.Error(err)
	}
	if !strings.Contains(string(scrape), `telestra_sipd_calls_active{account="acc1",direction="out"} 1`) {
		t.Errorf("scrape during the call lacks the active call:\n%s", grepLines(scrape, "telestra_sipd_calls_active"))
	}

	if err := e.c.HangupCall(e.ctx, "acc1", id, false); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 5*time.Second, "call-ended", event(api.EventCallEnded, "acc1", id))
	waitQuery(t, prom, `telestra_sipd_calls_finished_total{direction="out",result="answered"}`, func(v float64) bool { return v == 1 })
	waitQuery(t, prom, `telestra_sipd_calls_active{account="acc1",direction="out"}`, func(v float64) bool { return v == 0 })
	waitQuery(t, prom, `telestra_sipd_call_setup_seconds_count{direction="out"}`, func(v float64) bool { return v == 1 })
	setup := waitQuery(t, prom, `telestra_sipd_call_setup_seconds_sum{direction="out"}`, func(v float64) bool { return v > 0 && v < 10 })
	sent := waitQuery(t, prom, `telestra_sipd_rtp_packets_sent_total{account="acc1"}`, func(v float64) bool { return v > 20 })
	t.Logf("set-up %.3f s, %v RTP packets sent", setup, sent)

	if err := testpeers.Promtool(t, get(t, "http://"+p.MetricsAddr+"/metrics")); err != nil {
		t.Error(err)
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return b
}

func grepLines(b []byte, substr string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return fmt.Sprint(out)
}
