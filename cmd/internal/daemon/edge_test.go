package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/api/client"
	"github.com/telestra/telestra-sip/cmd/internal/debugserver"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
)

// Malformed and refused SIP traffic, counted by the SIP front layer, reaches
// the operator three ways: get-status's sip_edge, the Prometheus metrics
// (always collected; served when [metrics] address is set) and
// -debug-addr's /debug/stats.
func TestSIPEdgeCountersExposed(t *testing.T) {
	// Ports the test does not need to know are the kernel's to choose:
	// every one picked in advance may be taken meanwhile on a busy machine.
	planPath := filepath.Join(t.TempDir(), "sipplan.toml")
	apiPort, sipPort := freePort(t), freePort(t)
	writePlan(t, planPath, apiPort, sipPort)
	p, err := plan.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	n := &recNotifier{}
	d := newDaemon(Options{PlanPath: planPath, Plan: p, Log: discardLogger(), Notifier: n,
		DebugAddr: "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	waitUntil(t, "READY=1", func() bool { return n.count("READY=1") == 1 })

	// A request in SIP/7.0 (RFC 4475 badvers: 505) and a datagram that is
	// not SIP at all (dropped: no Via to answer).
	peer, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	sipAddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sipPort}
	badvers := "OPTIONS sip:3001@127.0.0.1 SIP/7.0\r\nVia: SIP/7.0/UDP 127.0.0.1;branch=z9hG4bKv7;rport\r\n" +
		"From: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:3001@127.0.0.1>\r\nCall-ID: v7\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
	for _, m := range []string{badvers, "\x16\x03\x01 not SIP\r\n\r\n"} {
		if _, err := peer.WriteTo([]byte(m), sipAddr); err != nil {
			t.Fatal(err)
		}
	}
	peer.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	if nr, _, err := peer.ReadFrom(buf); err != nil || !strings.HasPrefix(string(buf[:nr]), "SIP/2.0 505 ") {
		t.Fatalf("answer to SIP/7.0: %q, %v; want a 505", buf[:nr], err)
	}
	// The edge counts a datagram before it logs it, on the reader's
	// goroutine: wait for every counter, not the first one.
	want := api.SIPEdge{Malformed: 1, Rejected: 1, Dropped: 1, Answers: 1, LogLines: 2}
	deadline := time.Now().Add(3 * time.Second)
	for got := api.SIPEdge(d.sipEdge()); got != want; got = api.SIPEdge(d.sipEdge()) {
		if time.Now().After(deadline) {
			t.Fatalf("edge counters %+v, want %+v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}

	t.Run("get-status", func(t *testing.T) {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		c, err := client.Dial(cctx, fmt.Sprintf("127.0.0.1:%d", apiPort))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sts, err := c.GetStatus(cctx, "account-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(sts) != 1 || sts[0].SIPEdge == nil || *sts[0].SIPEdge != want {
			t.Fatalf("status %+v, want sip_edge %+v", sts, want)
		}
	})
	get := func(t *testing.T, url string) string {
		t.Helper()
		res, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	// The HTTP side of the metrics is TestLogLevelResetByReloadAndMetrics's.
	t.Run("metrics", func(t *testing.T) {
		want := `
# HELP telestra_sipd_sip_messages_malformed_total SIP messages that could not be parsed (answered 400, 416 or 513, or dropped).
# TYPE telestra_sipd_sip_messages_malformed_total counter
telestra_sipd_sip_messages_malformed_total 1
# HELP telestra_sipd_sip_requests_rejected_total Well-formed SIP requests refused statelessly (505, 400, 416, 420, 415, 406).
# TYPE telestra_sipd_sip_requests_rejected_total counter
telestra_sipd_sip_requests_rejected_total 1
# HELP telestra_sipd_sip_messages_dropped_total SIP messages dropped without an answer (stray responses and ACKs, no Via, answer rate limit).
# TYPE telestra_sipd_sip_messages_dropped_total counter
telestra_sipd_sip_messages_dropped_total 1
# HELP telestra_sipd_sip_stateless_responses_total Responses sent statelessly to malformed or refused SIP requests.
# TYPE telestra_sipd_sip_stateless_responses_total counter
telestra_sipd_sip_stateless_responses_total 1
`
		if err := testutil.GatherAndCompare(d.metrics.Registry(), strings.NewReader(want),
			"telestra_sipd_sip_messages_malformed_total", "telestra_sipd_sip_requests_rejected_total",
			"telestra_sipd_sip_messages_dropped_total", "telestra_sipd_sip_stateless_responses_total"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("debug stats", func(t *testing.T) {
		var st debugserver.Stats
		body := get(t, "http://"+d.debugAddr.String()+"/debug/stats")
		if err := json.Unmarshal([]byte(body), &st); err != nil || st.SIPEdge == nil || api.SIPEdge(*st.SIPEdge) != want {
			t.Fatalf("/debug/stats %s (%v), want sip_edge %+v", body, err, want)
		}
	})
}
