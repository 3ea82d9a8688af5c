package testpeers

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SippOptions configures StartSipp: one SIPp process that plays one call of
// a scenario file, on 127.0.0.1.
type SippOptions struct {
	// Scenario is the XML scenario, absolute or relative to the repository's
	// testdata/sipp folder.
	Scenario string
	// Remote is "host:port" the UAC scenario sends to; empty for a UAS
	// scenario (SIPp waits for the first request).
	Remote string
	// Service is the user part of the Request-URI ([service]); default
	// "service".
	Service string
	// Transport is "udp" (default) or "tcp".
	Transport string
	// Keys are [KEY] substitutions for the scenario (-key KEY VALUE).
	Keys map[string]string
	// Timeout ends SIPp with a failure after this long; default 60 s.
	Timeout time.Duration
	// RecvTimeout fails a <recv> that waits longer; default 20 s.
	RecvTimeout time.Duration
	// Bind is the loopback address SIPp sends from (SIP and RTP); default
	// 127.0.0.1. 127.0.0.2 makes it a stranger to accounts whose server
	// is on 127.0.0.1.
	Bind string
	// Calls is how many calls SIPp plays (-m, -l; default 1): a UAS takes
	// them all at once, a UAC places them at Rate calls per second (default
	// 10), each with a Call-ID of its own.
	Calls, Rate int
	// NoEcho leaves out -rtp_echo, so that only what the scenario plays
	// (play_pcap_audio, from the same media port) reaches the daemon.
	NoEcho bool
}

// Sipp is a running SIPp (sip-tester) playing Calls calls. Its SIP port is
// Port(); RTP arriving on its media port is echoed back (-rtp_echo).
type Sipp struct {
	t         testing.TB
	dir       string
	port      int
	mediaPort int
	transport string
	bind      string
	callID    string
	proc      *proc
}

// StartSipp runs SIPp on a free port with opts. The process is stopped in
// t.Cleanup; a test should call Wait to learn whether the scenario passed.
// SIPp writes its message trace (messages.log), unexpected messages
// (errors.log), <log> actions (actions.log) and final screen (screen.log)
// to its log folder.
func StartSipp(t testing.TB, opts SippOptions) *Sipp {
	t.Helper()
	bin := RequireBinary(t, "sipp", "sip-tester")
	scen := opts.Scenario
	if !filepath.IsAbs(scen) {
		scen = filepath.Join(RepoRoot(t), "testdata", "sipp", scen)
	}
	if _, err := os.Stat(scen); err != nil {
		t.Fatalf("testpeers: sipp scenario: %v", err)
	}
	s := &Sipp{t: t, dir: LogDir(t, "sipp"), port: FreePort(t), transport: "u1", bind: opts.Bind}
	if s.bind == "" {
		s.bind = "127.0.0.1"
	}
	if ip := net.ParseIP(s.bind); ip == nil || !ip.IsLoopback() {
		t.Fatalf("testpeers: sipp bind %q: tests stay on loopback", s.bind)
	}
	// SIPp binds the media port and media port + 2 (video echo); take a
	// block of 4 from the RTP regions.
	s.mediaPort, _ = FreeRTPRange(t, 4)
	ctrlPort := FreePort(t)
	switch opts.Transport {
	case "", "udp":
	case "tcp":
		s.transport = "t1"
	default:
		t.Fatalf("testpeers: sipp transport %q: want udp or tcp", opts.Transport)
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	recvTimeout := opts.RecvTimeout
	if recvTimeout == 0 {
		recvTimeout = 20 * time.Second
	}
	// A fixed Call-ID lets Continue address the call of a UAC scenario.
	s.callID = fmt.Sprintf("sipp-%d-%d@%s", os.Getpid(), s.port, s.bind)
	n := strconv.Itoa(max(opts.Calls, 1))
	cidStr, calls := s.callID, []string{"-m", n, "-l", n}
	if opts.Calls > 1 && opts.Remote != "" { // a UAC places them at a rate
		rate := opts.Rate
		if rate <= 0 {
			rate = 10
		}
		cidStr = "%u-" + s.callID // %u: SIPp's call number
		calls = append(calls, "-r", strconv.Itoa(rate), "-rp", "1000")
	}
	args := []string{
		"-sf", scen,
		"-i", s.bind, "-p", strconv.Itoa(s.port),
		"-mi", s.bind, "-mp", strconv.Itoa(s.mediaPort),
		"-cp", strconv.Itoa(ctrlPort),
		"-t", s.transport,
		"-cid_str", cidStr,
		"-nostdin",
		"-timeout", fmt.Sprintf("%ds", int(timeout.Seconds())), "-timeout_error",
		"-recv_timeout", strconv.Itoa(int(recvTimeout.Milliseconds())),
		"-trace_msg", "-message_file", filepath.Join(s.dir, "messages.log"),
		"-trace_err", "-error_file", filepath.Join(s.dir, "errors.log"),
		"-trace_logs", "-log_file", filepath.Join(s.dir, "actions.log"),
		"-trace_screen", "-screen_file", filepath.Join(s.dir, "screen.log"),
	}
	args = append(args, calls...)
	if !opts.NoEcho {
		args = append(args, "-rtp_echo")
	}
	if opts.Service != "" {
		args = append(args, "-s", opts.Service)
	}
	for k, v := range opts.Keys {
		args = append(args, "-key", k, v)
	}
	if opts.Remote != "" {
		args = append(args, opts.Remote)
	}
	p, err := startProc("sipp", s.dir, filepath.Join(s.dir, "sipp.log"), nil, bin, args...)
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	s.proc = p
	t.Cleanup(func() {
		if err := p.stop(2 * time.Second); err != nil {
			t.Errorf("testpeers: %v", err)
		}
	})
	if opts.Remote == "" {
		s.waitListening()
	}
	return s
}

// waitListening waits until a UAS SIPp has bound its SIP port.
func (s *Sipp) waitListening() {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s.proc.exited() {
			s.t.Fatalf("testpeers: sipp exited during start-up (%v):\n%s", s.proc.waitErr, tail(s.proc.logPath, 40))
		}
		var busy bool
		if s.transport == "t1" {
			c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
			if busy = err == nil; busy {
				c.Close()
			}
		} else {
			c, err := net.ListenPacket("udp4", s.Addr())
			if busy = err != nil; !busy {
				c.Close()
			}
		}
		if busy {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.t.Fatalf("testpeers: sipp did not bind %s within 10 s:\n%s", s.Addr(), tail(s.proc.logPath, 40))
}

// Addr is SIPp's SIP address, BIND:port.
func (s *Sipp) Addr() string { return net.JoinHostPort(s.bind, strconv.Itoa(s.port)) }

// Port is SIPp's SIP port.
func (s *Sipp) Port() int { return s.port }

// MediaPort is SIPp's RTP (echo) port, [media_port] in scenarios.
func (s *Sipp) MediaPort() int { return s.mediaPort }

// Dir is SIPp's log folder.
func (s *Sipp) Dir() string { return s.dir }

// Messages returns SIPp's message trace so far.
func (s *Sipp) Messages() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "messages.log"))
	return string(b)
}

// Done is closed when SIPp has exited.
func (s *Sipp) Done() <-chan struct{} { return s.proc.done }

// Failed returns what Wait returns once SIPp has exited, and nil while it
// runs: a test waiting for the daemon can stop as soon as the scenario
// failed.
func (s *Sipp) Failed() error {
	if !s.proc.exited() {
		return nil
	}
	return s.Wait(0)
}

// Wait waits up to timeout for SIPp to exit and returns nil when the
// scenario passed (exit status 0). Otherwise the error carries SIPp's
// errors and the tail of its screen.
func (s *Sipp) Wait(timeout time.Duration) error {
	select {
	case <-s.proc.done:
	case <-time.After(timeout):
		if !s.proc.exited() {
			return fmt.Errorf("sipp still running after %v (scenario stuck; see %s)", timeout, s.dir)
		}
	}
	if s.proc.waitErr == nil {
		return nil
	}
	errs, _ := os.ReadFile(filepath.Join(s.dir, "errors.log"))
	return fmt.Errorf("sipp scenario failed (%v; 1 = a call failed, 97/99/255 = SIPp error):\nerrors.log:\n%s\nscreen:\n%s",
		s.proc.waitErr, lastLines(string(errs), 60), tail(filepath.Join(s.dir, "screen.log"), 30))
}

func lastLines(s string, n int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return strings.Join(all, "\n")
}

var callIDLine = regexp.MustCompile(`(?mi)^(?:Call-ID|i)[ \t]*:[ \t]*(\S+)`)

// CallID is the Call-ID of SIPp's call: the one SIPp chose for a UAC
// scenario, else the first one in its message trace.
func (s *Sipp) CallID() string {
	if m := callIDLine.FindStringSubmatch(s.Messages()); m != nil {
		return m[1]
	}
	return s.callID
}

// Scenarios stop where the test must look at the daemon with
//
//	<nop><action><log message="reached STEP"/></action></nop>
//	<recv request="INFO"/>
//
// and the test calls Reached("STEP"), checks, then Continue("STEP").

// Reached waits until the scenario has logged "reached STEP" (its <log>
// actions go to actions.log), failing the test when SIPp exits or 10 s
// pass first.
func (s *Sipp) Reached(step string) {
	s.t.Helper()
	want := "reached " + step + "\n"
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(s.dir, "actions.log"))
		if strings.Contains(string(b), want) {
			return
		}
		if s.proc.exited() {
			s.t.Fatalf("testpeers: sipp exited before step %q: %v", step, s.Wait(0))
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("testpeers: sipp did not reach step %q within 10 s (log: %q)", step, lastLines(string(b), 5))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Continue lets a scenario that waits in <recv request="INFO"> go on: it
// sends SIPp an INFO with the call's Call-ID (the test is the sender, not
// the daemon), so the test can check the daemon between two steps of a
// scenario without timing guesses. SIPp would send its answer to the call's
// peer (the daemon), so the scenario must not answer; Continue instead
// waits until SIPp's message trace shows the INFO received.
func (s *Sipp) Continue(step string) {
	s.t.Helper()
	if err := s.sendInfo(step); err != nil {
		s.t.Fatalf("testpeers: sipp continue %q: %v", step, err)
	}
}

func (s *Sipp) sendInfo(step string) error {
	network := "udp"
	if s.transport == "t1" {
		network = "tcp"
	}
	conn, err := net.DialTimeout(network, s.Addr(), 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	marker := fmt.Sprintf("continue=%s;%d", step, time.Now().UnixNano())
	body := marker + "\r\n"
	msg := fmt.Sprintf("INFO sip:sipp@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/%s %s;branch=z9hG4bK-continue-%d\r\n"+
		"From: <sip:test@127.0.0.1>;tag=continue\r\n"+
		"To: <sip:sipp@127.0.0.1>\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: 1 INFO\r\n"+
		"Max-Forwards: 70\r\n"+
		"Content-Type: text/plain\r\n"+
		"Content-Length: %d\r\n\r\n%s",
		s.Addr(), strings.ToUpper(network), conn.LocalAddr(), time.Now().UnixNano(), s.CallID(), len(body), body)
	// Sent once: a second copy would reach the scenario after it moved on.
	// Loopback UDP does not lose datagrams unless SIPp's buffer is full.
	if _, err := conn.Write([]byte(msg)); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(s.Messages(), marker) {
			return nil
		}
		if s.proc.exited() {
			return fmt.Errorf("sipp exited (%v)", s.proc.waitErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return errors.New("the INFO is not in sipp's message trace after 10 s")
}
