package testpeers

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Prometheus is a running Prometheus server (Debian package prometheus)
// scraping one target every ScrapeInterval, with its query API on
// 127.0.0.1.
type Prometheus struct {
	t    testing.TB
	addr string
	proc *proc
}

// ScrapeInterval is how often StartPrometheus's server scrapes.
const ScrapeInterval = 250 * time.Millisecond

// StartPrometheus starts a server that scrapes http://target/metrics and
// waits until it is ready. It is stopped in t.Cleanup.
func StartPrometheus(t testing.TB, target string) *Prometheus {
	t.Helper()
	bin := RequireBinary(t, "prometheus", "prometheus")
	dir := LogDir(t, "prometheus")
	cfg := filepath.Join(dir, "prometheus.yml")
	conf := fmt.Sprintf(`global:
  scrape_interval: %s
  scrape_timeout: 200ms
scrape_configs:
  - job_name: telestra-sipd
    static_configs:
      - targets: [%q]
`, ScrapeInterval, target)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	p := &Prometheus{t: t, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(t)))}
	pr, err := startProc("prometheus", dir, filepath.Join(dir, "prometheus.log"), nil, bin,
		"--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr,
		"--web.console.templates="+dir, "--web.console.libraries="+dir)
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	p.proc = pr
	t.Cleanup(func() {
		if err := pr.stop(5 * time.Second); err != nil {
			t.Errorf("testpeers: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if pr.exited() {
			t.Fatalf("testpeers: prometheus exited during start-up (%v); log:\n%s", pr.waitErr, tail(pr.logPath, 30))
		}
		if resp, err := http.Get("http://" + p.addr + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("testpeers: prometheus not ready on %s after 30 s; log:\n%s", p.addr, tail(pr.logPath, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Sample is one series of an instant query's result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant PromQL query through the HTTP API.
func (p *Prometheus) Query(ctx context.Context, promql string) ([]Sample, error) {
	u := "http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(promql)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("prometheus query %q: %w", promql, err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("prometheus query %q: %w", promql, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("prometheus query %q: %s", promql, body.Error)
	}
	out := make([]Sample, 0, len(body.Data.Result))
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("prometheus query %q: value %v", promql, r.Value[1])
		}
		out = append(out, Sample{Labels: r.Metric, Value: v})
	}
	return out, nil
}

// TargetUp reports whether the last scrape of the target succeeded.
func (p *Prometheus) TargetUp(ctx context.Context) (bool, error) {
	s, err := p.Query(ctx, `up{job="telestra-sipd"}`)
	return err == nil && len(s) == 1 && s[0].Value == 1, err
}

// Promtool runs `promtool check metrics` on an exposition and returns its
// complaints (nil: clean).
func Promtool(t testing.TB, exposition []byte) error {
	t.Helper()
	bin := RequireBinary(t, "promtool", "prometheus")
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(exposition))
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		return fmt.Errorf("promtool check metrics: %v: %s", err, out)
	}
	return nil
}
