package testpeers

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// BaresipOptions configures StartBaresip. The zero value is an
// auto-answering peer that registers nowhere and sends a 440 Hz sine.
type BaresipOptions struct {
	// Registrar is "host:port" of the registrar (Kamailio.Addr()); empty:
	// no REGISTER, the peer is reached directly at URI().
	Registrar string
	// Password is the digest password; default "sip"+ext.
	Password string
	// DisplayName goes in From; default "Peer EXT".
	DisplayName string
	// Answer is "auto" (default) or "manual" (CALL_INCOMING, then Answer or
	// Hangup).
	Answer string
	// Source is the audio source: "ausine,HZ" (default "ausine,440") or
	// "aufile,/path.wav" (16-bit PCM; the call is hung up at its end).
	Source string
	// Player is the audio player; default an aubridge device (timed, cheap).
	Player string
	// Transport is "udp" (default) or "tcp".
	Transport string
	// Record makes sndfile record each call's sent (*-enc.wav) and received
	// (*-dec.wav) audio into Dir()/snd.
	Record bool
	// RTPTimeout in seconds ends a call without RTP; 0: never.
	RTPTimeout int
	// MaxCalls is call_max_calls; default 4.
	MaxCalls int
	// Codecs is the audio_codecs account parameter; default "pcmu,pcma".
	Codecs string
	// NoWaitRegister returns without waiting for the first 200 to REGISTER
	// (for tests of a failing registration).
	NoWaitRegister bool
	// IPv6 puts SIP, RTP and ctrl_tcp on ::1 instead of 127.0.0.1.
	IPv6 bool
	// TLSCA is the CA file (sip_cafile) that verifies TLS servers, and
	// TLSCert the peer's own certificate and key in one PEM file
	// (sip_certificate); for Transport "tls".
	TLSCA, TLSCert string
	// MediaEnc is the account's mediaenc ("srtp", "srtp-mand"); loads the
	// srtp module.
	MediaEnc string
}

// Event is one ctrl_tcp event of baresip.
type Event struct {
	Type            string          `json:"type"`  // CALL_INCOMING, CALL_ESTABLISHED, CALL_CLOSED, ...
	Class           string          `json:"class"` // call, register, other
	AccountAOR      string          `json:"accountaor"`
	Direction       string          `json:"direction"` // incoming, outgoing
	PeerURI         string          `json:"peeruri"`
	PeerDisplayName string          `json:"peerdisplayname"`
	ID              string          `json:"id"`    // the SIP Call-ID
	Param           string          `json:"param"` // e.g. the CALL_CLOSED reason
	Time            time.Time       `json:"-"`
	Raw             json.RawMessage `json:"-"`
}

func (e Event) String() string { return string(e.Raw) }

// Baresip is a running baresip 1.0.0 driven over ctrl_tcp.
type Baresip struct {
	t        testing.TB
	ext      string
	host     string // 127.0.0.1 or ::1
	opts     BaresipOptions
	dir      string
	sipPort  int
	ctrlPort int
	rtpMin   int
	rtpMax   int
	proc     *proc
	ctrl     *ctrlConn

	mu       sync.Mutex
	events   []Event
	consumed []bool
	changed  chan struct{} // closed and replaced on every new event
	evlog    *os.File
}

type baresipTemplate struct {
	SIPPort, CtrlPort, RTPMin, RTPMax, RTPTimeout, MaxCalls int
	Player, Source, SndPath                                 string
	SrcRate, SrcChannels                                    int
	Host, SIPListen, CtrlListen                             string
	IPv6                                                    bool
	TLSCA, TLSCert, MediaEnc                                string

	Ext, Domain, DisplayName, Password, Transport, Answer, Codecs, Extra string
	RegInt                                                               int
}

// StartBaresip starts a baresip peer for extension ext, connects to its
// ctrl_tcp and, when opts.Registrar is set, waits until it is registered.
// It is stopped in t.Cleanup (SIGTERM: baresip un-registers first).
func StartBaresip(t testing.TB, ext string, opts BaresipOptions) *Baresip {
	t.Helper()
	bin := RequireBinary(t, "baresip", "baresip")
	if _, err := os.Stat("/usr/lib/baresip/modules/ctrl_tcp.so"); err != nil {
		t.Fatalf("testpeers: baresip modules missing (/usr/lib/baresip/modules/ctrl_tcp.so): install the Debian package \"baresip-core\" (as root: .ci/deps)")
	}
	b := &Baresip{t: t, ext: ext, opts: opts, host: LoopbackHost(opts.IPv6), changed: make(chan struct{})}
	b.dir = LogDir(t, "baresip-"+ext)
	b.sipPort = FreePortPair(t)
	b.ctrlPort = FreePort(t)
	b.rtpMin, b.rtpMax = FreeRTPRange(t, 20)

	v := baresipTemplate{
		SIPPort: b.sipPort, CtrlPort: b.ctrlPort, RTPMin: b.rtpMin, RTPMax: b.rtpMax,
		RTPTimeout: opts.RTPTimeout, MaxCalls: opts.MaxCalls,
		Player: opts.Player, Source: opts.Source,
		Ext: ext, DisplayName: opts.DisplayName, Password: opts.Password,
		Transport: opts.Transport, Answer: opts.Answer, Codecs: opts.Codecs,
		SrcRate: 48000, SrcChannels: 2, // ausine only does 48 kHz stereo
		Host: b.host, IPv6: opts.IPv6,
		TLSCA: opts.TLSCA, TLSCert: opts.TLSCert, MediaEnc: opts.MediaEnc,
		SIPListen:  net.JoinHostPort(b.host, strconv.Itoa(b.sipPort)),
		CtrlListen: net.JoinHostPort(b.host, strconv.Itoa(b.ctrlPort)),
	}
	if v.MaxCalls == 0 {
		v.MaxCalls = 4
	}
	if v.Player == "" {
		v.Player = "aubridge,play-" + ext
	}
	if v.Source == "" {
		v.Source = "ausine,440"
	}
	if file, ok := strings.CutPrefix(v.Source, "aufile,"); ok {
		// aufile plays the file at the source rate: match it.
		a, err := ReadWAV(file)
		if err != nil {
			t.Fatalf("testpeers: baresip source: %v", err)
		}
		v.SrcRate, v.SrcChannels = a.Rate, 1
	}
	if v.DisplayName == "" {
		v.DisplayName = "Peer " + ext
	}
	if v.Password == "" {
		v.Password = "sip" + ext
	}
	if v.Transport == "" {
		v.Transport = "udp"
	}
	if v.Answer == "" {
		v.Answer = "auto"
	}
	if v.Codecs == "" {
		v.Codecs = "pcmu,pcma"
	}
	if opts.Registrar != "" {
		v.Domain, v.RegInt = opts.Registrar, 600
	} else {
		v.Domain, v.RegInt = v.SIPListen, 0
	}
	if opts.Record {
		v.SndPath = filepath.Join(b.dir, "snd")
		if err := os.MkdirAll(v.SndPath, 0o755); err != nil {
			t.Fatalf("testpeers: %v", err)
		}
	}
	tmplDir := filepath.Join(RepoRoot(t), "testdata", "baresip")
	cfgDir := filepath.Join(b.dir, "cfg")
	if err := os.MkdirAll(cfgDir, 0o755); err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	for _, name := range []string{"config", "accounts"} {
		if err := renderTemplate(filepath.Join(tmplDir, name+".tmpl"), filepath.Join(cfgDir, name), v); err != nil {
			t.Fatalf("testpeers: baresip %s: %v", name, err)
		}
	}
	// baresip creates an example contacts file when none exists.
	_ = os.WriteFile(filepath.Join(cfgDir, "contacts"), nil, 0o644)

	evlog, err := os.Create(filepath.Join(b.dir, "events.jsonl"))
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	b.evlog = evlog

	pr, err := startProc("baresip-"+ext, b.dir, filepath.Join(b.dir, "baresip.log"), nil, bin, "-f", cfgDir)
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	b.proc = pr
	t.Cleanup(b.Stop)

	ctrl, err := dialCtrl(v.CtrlListen, 10*time.Second, b.addEvent)
	if err != nil {
		t.Fatalf("testpeers: baresip %s: %v; log:\n%s", ext, err, tail(pr.logPath, 30))
	}
	b.ctrl = ctrl
	if opts.Registrar != "" && !opts.NoWaitRegister {
		if err := b.WaitRegistered(10 * time.Second); err != nil {
			t.Fatalf("testpeers: %v", err)
		}
	}
	return b
}

func renderTemplate(src, dst string, v any) error {
	tmpl, err := template.ParseFiles(src)
	if err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if err := tmpl.Execute(f, v); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (b *Baresip) addEvent(ev Event) {
	b.mu.Lock()
	b.events = append(b.events, ev)
	b.consumed = append(b.consumed, false)
	close(b.changed)
	b.changed = make(chan struct{})
	if b.evlog != nil {
		fmt.Fprintf(b.evlog, "%s %s\n", ev.Time.Format("15:04:05.000"), ev.Raw)
	}
	b.mu.Unlock()
}

// Ext is the peer's extension (user part).
func (b *Baresip) Ext() string { return b.ext }

// SIPPort is the peer's SIP port (UDP and TCP; TCP port+1 is used too).
func (b *Baresip) SIPPort() int { return b.sipPort }

// URI reaches the peer directly, without a registrar.
func (b *Baresip) URI() string {
	return "sip:" + b.ext + "@" + net.JoinHostPort(b.host, strconv.Itoa(b.sipPort))
}

// RTPRange is the peer's RTP port range.
func (b *Baresip) RTPRange() (min, max int) { return b.rtpMin, b.rtpMax }

// Dir holds cfg/, baresip.log, events.jsonl and snd/.
func (b *Baresip) Dir() string { return b.dir }

// PID of the baresip process.
func (b *Baresip) PID() int { return b.proc.pid() }

// Log is baresip's stdout and stderr so far.
func (b *Baresip) Log() string { return b.proc.log() }

// Command runs a baresip command (see `help`) and returns its text.
func (b *Baresip) Command(name, params string) (string, error) {
	if b.ctrl == nil {
		return "", fmt.Errorf("baresip %s: not connected", b.ext)
	}
	return b.ctrl.command(name, params, 5*time.Second)
}

// Dial calls uri (or an extension at the registrar).
func (b *Baresip) Dial(uri string) error { _, err := b.Command("dial", uri); return err }

// Answer accepts the ringing incoming call (manual answer mode).
func (b *Baresip) Answer() error { _, err := b.Command("accept", ""); return err }

// Hangup ends the current call; on a ringing incoming call baresip answers
// 486 Busy Here.
func (b *Baresip) Hangup() error { _, err := b.Command("hangup", ""); return err }

// Hold puts the current call on hold (re-INVITE a=sendonly).
func (b *Baresip) Hold() error { _, err := b.Command("hold", ""); return err }

// Resume resumes the current call (re-INVITE a=sendrecv).
func (b *Baresip) Resume() error { _, err := b.Command("resume", ""); return err }

// SetAnswerMode switches between "auto" and "manual" at run time.
func (b *Baresip) SetAnswerMode(mode string) error {
	_, err := b.Command("answermode", mode)
	return err
}

var audioDirRe = regexp.MustCompile(`audio dir=(\w+)`)

// AudioDir is the media direction of the current call as baresip sees it
// after the last offer/answer: "sendrecv", "recvonly" (the far end holds
// us with sendonly), "sendonly" or "inactive".
func (b *Baresip) AudioDir() (string, error) {
	out, err := b.Command("audio_debug", "")
	if err != nil {
		return "", err
	}
	m := audioDirRe.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("baresip %s: no audio dir in audio_debug: %q", b.ext, out)
	}
	return m[1], nil
}

// CallCount is the number of calls listed by listcalls.
func (b *Baresip) CallCount() (int, error) {
	out, err := b.Command("listcalls", "")
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`Active calls \((\d+)\)`).FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("baresip %s: unexpected listcalls output %q", b.ext, out)
	}
	return strconv.Atoi(m[1])
}

// Registered asks baresip whether its account is registered (reginfo).
func (b *Baresip) Registered() (bool, error) {
	out, err := b.Command("reginfo", "")
	if err != nil {
		return false, err
	}
	return strings.Contains(out, "OK "), nil
}

// WaitRegistered waits until reginfo reports the account registered.
func (b *Baresip) WaitRegistered(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := b.Registered()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("baresip %s not registered at %s after %v (%v); log:\n%s", b.ext, b.opts.Registrar, timeout, err, tail(b.proc.logPath, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Events returns every event received so far.
func (b *Baresip) Events() []Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.events)
}

// EventCount is the number of events received so far; pass it to
// WaitEventSince to ignore older ones.
func (b *Baresip) EventCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.events)
}

// WaitEvent returns the oldest event of one of types (any type when none
// given) that no earlier WaitEvent returned, waiting until ctx is done.
func (b *Baresip) WaitEvent(ctx context.Context, types ...string) (Event, error) {
	return b.WaitEventSince(ctx, 0, types...)
}

// WaitEventSince is WaitEvent restricted to events numbered since or later
// (see EventCount).
func (b *Baresip) WaitEventSince(ctx context.Context, since int, types ...string) (Event, error) {
	for {
		b.mu.Lock()
		for i := since; i < len(b.events); i++ {
			if b.consumed[i] || (len(types) > 0 && !slices.Contains(types, b.events[i].Type)) {
				continue
			}
			b.consumed[i] = true
			ev := b.events[i]
			b.mu.Unlock()
			return ev, nil
		}
		changed := b.changed
		b.mu.Unlock()
		select {
		case <-changed:
		case <-b.proc.done:
			return Event{}, fmt.Errorf("baresip %s exited while waiting for %v", b.ext, types)
		case <-ctx.Done():
			return Event{}, fmt.Errorf("baresip %s: no %v event: %w (events: %s)", b.ext, types, ctx.Err(), b.eventTypes())
		}
	}
}

func (b *Baresip) eventTypes() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var s []string
	for _, e := range b.events {
		if e.Type != "CALL_RTCP" {
			s = append(s, e.Type)
		}
	}
	return strings.Join(s, " ")
}

// RecordedWAVs lists the files sndfile wrote (Record option), oldest first:
// dump-TIME-enc.wav is what the peer sent, dump-TIME-dec.wav what it heard.
func (b *Baresip) RecordedWAVs() []string {
	files, _ := filepath.Glob(filepath.Join(b.dir, "snd", "*.wav"))
	slices.Sort(files)
	return files
}

// ReceivedWAVs lists only the *-dec.wav recordings (what the peer heard).
func (b *Baresip) ReceivedWAVs() []string {
	var out []string
	for _, f := range b.RecordedWAVs() {
		if strings.HasSuffix(f, "-dec.wav") {
			out = append(out, f)
		}
	}
	return out
}

// Pause stops the process (SIGSTOP): it sends nothing, answers nothing.
func (b *Baresip) Pause() error { return b.proc.signal(syscall.SIGSTOP) }

// Continue resumes a paused process (SIGCONT).
func (b *Baresip) Continue() error { return b.proc.signal(syscall.SIGCONT) }

// Kill ends baresip with SIGKILL: no BYE, no un-REGISTER, as if it
// crashed.
func (b *Baresip) Kill() error { return b.proc.signal(syscall.SIGKILL) }

// Stop ends baresip (SIGTERM: it hangs up and un-registers). Idempotent.
func (b *Baresip) Stop() {
	if b.proc == nil {
		return
	}
	if !b.proc.exited() {
		_ = b.proc.signal(syscall.SIGCONT)
	}
	if err := b.proc.stop(3 * time.Second); err != nil {
		b.t.Errorf("testpeers: %v", err)
	}
	if b.ctrl != nil {
		b.ctrl.close()
	}
	b.mu.Lock()
	if b.evlog != nil {
		b.evlog.Close()
		b.evlog = nil
	}
	b.mu.Unlock()
}
