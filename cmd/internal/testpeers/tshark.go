package testpeers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Capture is tshark recording the loopback interface into a pcap file,
// restricted to the ports of one test's components (other tests on the
// machine use loopback too).
type Capture struct {
	t      testing.TB
	bin    string
	path   string
	proc   *proc
	filter string
}

// PortRange is an inclusive port range for a capture filter.
type PortRange struct{ Min, Max int }

// StartCapture starts tshark on lo for UDP/TCP packets to or from any of
// ports and returns once it is capturing. Stop it (and read the packets)
// with Stop; t.Cleanup stops it too.
func StartCapture(t testing.TB, ports ...PortRange) *Capture {
	t.Helper()
	bin := RequireBinary(t, "tshark", "tshark")
	dir := LogDir(t, "tshark")
	c := &Capture{t: t, bin: bin, path: filepath.Join(dir, "capture.pcap")}
	var terms []string
	for _, r := range ports {
		if r.Max <= r.Min {
			terms = append(terms, "port "+strconv.Itoa(r.Min))
		} else {
			terms = append(terms, fmt.Sprintf("portrange %d-%d", r.Min, r.Max))
		}
	}
	if len(terms) == 0 {
		t.Fatal("testpeers: StartCapture needs at least one port")
	}
	c.filter = strings.Join(terms, " or ")
	// dumpcap writes the file; -q keeps packet lines out of the log.
	pr, err := startProc("tshark", dir, filepath.Join(dir, "tshark.log"), nil, bin,
		"-i", "lo", "-q", "-f", c.filter, "-w", c.path)
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	c.proc = pr
	t.Cleanup(func() { _ = c.proc.stop(3 * time.Second) })
	deadline := time.Now().Add(15 * time.Second)
	// "Capturing on" comes first; dumpcap is capturing once tshark logs
	// "Capture started" (up to a second or two later on a loaded machine).
	for !strings.Contains(pr.log(), "Capture started") {
		if pr.exited() || time.Now().After(deadline) {
			_ = pr.stop(time.Second)
			t.Fatalf("testpeers: tshark did not start capturing (needs root or the wireshark group); log:\n%s", tail(pr.logPath, 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	return c
}

// Path is the pcap file.
func (c *Capture) Path() string { return c.path }

// Stop ends the capture (tshark flushes the file on SIGTERM).
func (c *Capture) Stop() {
	c.t.Helper()
	// Packets already sent may still sit in the capture buffer.
	time.Sleep(300 * time.Millisecond)
	if err := c.proc.stop(5 * time.Second); err != nil {
		c.t.Errorf("testpeers: %v", err)
	}
}

// Packet is one captured packet: its IP family, the protocols tshark
// found in it ("sip", "sdp", "rtp", ...) and the fields asked for (several
// occurrences of a field joined by commas).
type Packet struct {
	Family int // 4 or 6
	protos map[string]bool
	fields map[string]string
}

// Is reports whether tshark found protocol proto ("sip", "rtp", "sdp") in p.
func (p Packet) Is(proto string) bool { return p.protos[proto] }

// Field is the value of a field asked for in Packets; "" when absent.
func (p Packet) Field(name string) string { return p.fields[name] }

// Packets reads every captured packet once, with the given fields (such
// as "sip.Method", "sdp.connection_info"). One tshark run, however many
// questions the test then asks.
func (c *Capture) Packets(fields ...string) []Packet {
	c.t.Helper()
	all := append([]string{"ip.src", "ipv6.src", "frame.protocols"}, fields...)
	var out []Packet
	for _, line := range c.Fields("frame", all...) {
		v := strings.Split(line, "\t")
		for len(v) < len(all) {
			v = append(v, "")
		}
		p := Packet{protos: map[string]bool{}, fields: map[string]string{}}
		switch {
		case v[0] != "":
			p.Family = 4
		case v[1] != "":
			p.Family = 6
		}
		for _, proto := range strings.Split(v[2], ":") {
			p.protos[proto] = true
		}
		for i, f := range fields {
			p.fields[f] = v[3+i]
		}
		out = append(out, p)
	}
	return out
}

// Count is the number of captured packets matching a Wireshark display
// filter (e.g. "ipv6 && sip", "ip", "rtp"). RTP is recognised by tshark's
// heuristic dissector.
func (c *Capture) Count(displayFilter string) int {
	c.t.Helper()
	return len(c.Fields(displayFilter, "frame.number"))
}

// Fields returns one line per packet matching displayFilter, with the
// given fields separated by tabs.
func (c *Capture) Fields(displayFilter string, fields ...string) []string {
	c.t.Helper()
	args := []string{"-r", c.path, "-n", "--enable-heuristic", "rtp_udp", "-Y", displayFilter, "-T", "fields"}
	for _, f := range fields {
		args = append(args, "-e", f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+filepath.Dir(c.path)) // no user profile
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		c.t.Fatalf("testpeers: tshark -r %s -Y %q: %v: %s", c.path, displayFilter, err, stderr)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
