package testpeers

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// KamailioOptions configures StartKamailio. The zero value is the usual
// test registrar: users 3001..3009 with passwords sip3001..sip3009, every
// initial request challenged (401 for REGISTER, 407 for the rest).
type KamailioOptions struct {
	// Users adds subscribers (user → plaintext password) to 3001..3009.
	Users map[string]string
	// NoInviteAuth challenges REGISTER only.
	NoInviteAuth bool
	// Port is the UDP+TCP port; 0 picks a free one.
	Port int
	// MinExpires and MaxExpires bound registrations (defaults 10 and 3600 s).
	MinExpires, MaxExpires int
	// ShmMB is Kamailio's shared memory (-m) in MB; default 32. Its
	// transactions outlive each call by 32 s, so a soak at 100+ calls/s
	// needs more, or Kamailio answers 500 "server error occurred (1/SL)".
	ShmMB int
	// IPv6 listens on [::1] instead of 127.0.0.1.
	IPv6 bool
	// UDPOnly listens on UDP only: a TCP connect to Port is refused, as by
	// an RFC 2543 server without TCP.
	UDPOnly bool
	// TLS adds a TLS listener on a port of its own (TLSAddr) with this
	// certificate (Debian package kamailio-tls-modules). Kamailio does not
	// verify its clients.
	TLS *KamailioTLS
}

// KamailioTLS names the PEM files of Kamailio's TLS listener.
type KamailioTLS struct {
	Cert, Key, CA string
}

// Kamailio is a running Kamailio 5.6 on 127.0.0.1 (testdata/kamailio).
type Kamailio struct {
	t       testing.TB
	host    string // 127.0.0.1 or ::1
	port    int
	dir     string
	ctl     string
	args    []string
	proc    *proc
	kamcmd  string
	tlsPort int
	udpOnly bool
}

// StartKamailio starts a registrar/proxy on 127.0.0.1 (UDP and TCP, one
// port) and waits until it accepts connections and its control socket is
// up. It is stopped in t.Cleanup.
func StartKamailio(t testing.TB, opts KamailioOptions) *Kamailio {
	t.Helper()
	bin := RequireBinary(t, "kamailio", "kamailio")
	k := &Kamailio{t: t, host: LoopbackHost(opts.IPv6), kamcmd: RequireBinary(t, "kamcmd", "kamailio"), udpOnly: opts.UDPOnly}
	k.dir = LogDir(t, "kamailio")
	root := RepoRoot(t)
	cfg := filepath.Join(root, "testdata", "kamailio", "kamailio.cfg")

	db := filepath.Join(k.dir, "db")
	run := filepath.Join(k.dir, "run")
	for _, d := range []string{db, run} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatalf("testpeers: %v", err)
		}
	}
	if err := writeSubscribers(filepath.Join(root, "testdata", "kamailio", "db"), db, opts.Users); err != nil {
		t.Fatalf("testpeers: kamailio db: %v", err)
	}
	// Unix socket paths are limited to 108 bytes; t.TempDir() paths of long
	// test names are not.
	sockDir, err := os.MkdirTemp("", "kamctl")
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	k.ctl = filepath.Join(sockDir, "ctl")

	k.port = opts.Port
	if k.port == 0 {
		k.port = FreePort(t)
	}
	p := strconv.Itoa(k.port)
	shm := 32
	if opts.ShmMB > 0 {
		shm = opts.ShmMB
	}
	k.args = []string{
		"-f", cfg, "-DD", "-E", "-m", strconv.Itoa(shm), "-M", "4",
		"-Y", run, "-w", run,
		"-l", "udp:" + k.hostPort(),
		"--alias=localhost:" + p,
		"-A", fmt.Sprintf("DBURL=%q", "text://"+db),
		"-A", fmt.Sprintf("CTLSOCK=%q", "unix:"+k.ctl),
	}
	if !opts.UDPOnly {
		k.args = append(k.args, "-l", "tcp:"+k.hostPort())
	}
	if opts.TLS != nil {
		if _, err := os.Stat("/usr/lib/x86_64-linux-gnu/kamailio/modules/tls.so"); err != nil {
			t.Fatalf("testpeers: Kamailio's tls module is missing: install the Debian package kamailio-tls-modules (%v)", err)
		}
		k.tlsPort = FreePort(t)
		tlsCfg := filepath.Join(k.dir, "tls.cfg")
		conf := fmt.Sprintf("[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n"+
			"private_key = %s\ncertificate = %s\nca_list = %s\n\n"+
			"[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n",
			opts.TLS.Key, opts.TLS.Cert, opts.TLS.CA)
		if err := os.WriteFile(tlsCfg, []byte(conf), 0o644); err != nil {
			t.Fatalf("testpeers: %v", err)
		}
		k.args = append(k.args, "-l", "tls:127.0.0.1:"+strconv.Itoa(k.tlsPort), "--alias=localhost:"+strconv.Itoa(k.tlsPort),
			"-A", "WITH_TLS", "-A", fmt.Sprintf("TLSCFG=%q", tlsCfg))
	}
	if opts.NoInviteAuth {
		k.args = append(k.args, "-A", "NO_INVITE_AUTH")
	}
	if opts.MinExpires > 0 {
		k.args = append(k.args, "-A", "MIN_EXPIRES="+strconv.Itoa(opts.MinExpires))
	}
	if opts.MaxExpires > 0 {
		k.args = append(k.args, "-A", "MAX_EXPIRES="+strconv.Itoa(opts.MaxExpires))
	}
	k.args = append([]string{bin}, k.args...)
	k.start()
	t.Cleanup(k.Stop)
	return k
}

func writeSubscribers(tmpl, db string, extra map[string]string) error {
	version, err := os.ReadFile(filepath.Join(tmpl, "version"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(db, "version"), version, 0o644); err != nil {
		return err
	}
	sub, err := os.ReadFile(filepath.Join(tmpl, "subscriber"))
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimRight(string(sub), "\n"), "\n")
	users := make([]string, 0, len(extra))
	for u := range extra {
		users = append(users, u)
	}
	sort.Strings(users)
	id := len(lines)
	for _, u := range users {
		if strings.ContainsAny(u+extra[u], ":\n\\") {
			return fmt.Errorf("user %q: ':' '\\' and newlines are not allowed", u)
		}
		lines = append(lines, fmt.Sprintf("%d:%s:localhost:%s::", id, u, extra[u]))
		id++
	}
	return os.WriteFile(filepath.Join(db, "subscriber"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
}

func (k *Kamailio) start() {
	k.t.Helper()
	_ = os.Remove(k.ctl)
	pr, err := startProc("kamailio", k.dir, filepath.Join(k.dir, "kamailio.log"), nil, k.args[0], k.args[1:]...)
	if err != nil {
		k.t.Fatalf("testpeers: %v", err)
	}
	k.proc = pr
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pr.exited() {
			k.t.Fatalf("testpeers: kamailio exited during start-up (%v); log:\n%s", pr.waitErr, tail(pr.logPath, 30))
		}
		if _, err := os.Stat(k.ctl); err == nil {
			if k.udpOnly {
				// The UDP socket is bound before the control socket
				// answers: an answer means it is listening.
				if _, err := k.Kamcmd("core.uptime"); err == nil {
					return
				}
			} else if c, err := net.DialTimeout("tcp", k.Addr(), 200*time.Millisecond); err == nil {
				c.Close()
				return
			}
		}
		if time.Now().After(deadline) {
			_ = pr.stop(time.Second)
			k.t.Fatalf("testpeers: kamailio not listening on %s after 10 s; log:\n%s", k.Addr(), tail(pr.logPath, 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Addr is "127.0.0.1:PORT" or "[::1]:PORT" (UDP and, unless UDPOnly, TCP).
func (k *Kamailio) Addr() string { return k.hostPort() }

func (k *Kamailio) hostPort() string { return net.JoinHostPort(k.host, strconv.Itoa(k.port)) }

// Host is the listen address: 127.0.0.1 or ::1.
func (k *Kamailio) Host() string { return k.host }

// TLSAddr is "127.0.0.1:PORT" of the TLS listener (KamailioOptions.TLS).
func (k *Kamailio) TLSAddr() string { return "127.0.0.1:" + strconv.Itoa(k.tlsPort) }

// Port is the SIP port.
func (k *Kamailio) Port() int { return k.port }

// Dir is the folder with kamailio.log, db/ and run/.
func (k *Kamailio) Dir() string { return k.dir }

// PID is the main process of the current run.
func (k *Kamailio) PID() int { return k.proc.pid() }

// Stop stops Kamailio (SIGTERM, then SIGKILL of its process group). The
// location table is lost. Safe to call twice.
func (k *Kamailio) Stop() {
	if k.proc == nil {
		return
	}
	if err := k.proc.stop(3 * time.Second); err != nil {
		k.t.Errorf("testpeers: %v", err)
	}
}

// Restart stops Kamailio and starts it again on the same port, with an
// empty location table.
func (k *Kamailio) Restart() {
	k.t.Helper()
	k.Stop()
	k.start()
}

// Log is the whole log so far (stderr: one "REQ" line per request,
// "REGISTER saved", "LOOKUP", "AUTH challenge" and "REINVITE ... dir=" lines).
func (k *Kamailio) Log() string { return k.proc.log() }

// LogLines returns the log lines that contain substr.
func (k *Kamailio) LogLines(substr string) []string {
	var out []string
	for _, l := range strings.Split(k.Log(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// Kamcmd runs kamcmd against this Kamailio's control socket.
func (k *Kamailio) Kamcmd(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, k.kamcmd, append([]string{"-s", "unix:" + k.ctl}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kamcmd %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

var (
	aorRe     = regexp.MustCompile(`(?m)^\s*AoR:\s*(\S+)`)
	addressRe = regexp.MustCompile(`(?m)^\s*Address:\s*(\S+)`)
)

// Locations lists the AoRs (user parts) in the location table (ul.dump).
func (k *Kamailio) Locations() ([]string, error) {
	out, err := k.Kamcmd("ul.dump")
	if err != nil {
		return nil, err
	}
	var aors []string
	for _, m := range aorRe.FindAllStringSubmatch(out, -1) {
		aors = append(aors, m[1])
	}
	sort.Strings(aors)
	return aors, nil
}

// Contacts returns the contact addresses registered for each AoR.
func (k *Kamailio) Contacts() (map[string][]string, error) {
	out, err := k.Kamcmd("ul.dump")
	if err != nil {
		return nil, err
	}
	res := map[string][]string{}
	// ul.dump prints each AoR followed by its contacts.
	parts := aorRe.FindAllStringSubmatchIndex(out, -1)
	for i, m := range parts {
		end := len(out)
		if i+1 < len(parts) {
			end = parts[i+1][0]
		}
		aor := out[m[2]:m[3]]
		for _, a := range addressRe.FindAllStringSubmatch(out[m[1]:end], -1) {
			res[aor] = append(res[aor], a[1])
		}
	}
	return res, nil
}

// Registered reports whether aor is in the location table.
func (k *Kamailio) Registered(aor string) (bool, error) {
	l, err := k.Locations()
	if err != nil {
		return false, err
	}
	return slices.Contains(l, aor), nil
}

// WaitLocation polls the location table until aor is present (or absent,
// when present is false).
func (k *Kamailio) WaitLocation(ctx context.Context, aor string, present bool) error {
	for {
		ok, err := k.Registered(aor)
		if err == nil && ok == present {
			return nil
		}
		select {
		case <-ctx.Done():
			l, _ := k.Locations()
			return fmt.Errorf("kamailio location of %q: want present=%t, table has %v (%v): %w", aor, present, l, err, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
