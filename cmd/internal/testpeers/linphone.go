package testpeers

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// LinphoneOptions configures StartLinphone. The zero value is an
// auto-answering peer that offers and accepts PCMU and PCMA only and sends
// a 440 Hz tone.
type LinphoneOptions struct {
	// User is the user part of the peer's address; default "linphone".
	User string
	// Codecs are the MIME names of the only audio codecs left enabled, as
	// linphonec's `codec list` names them ("G722", "PCMU", "PCMA", ...);
	// default PCMU and PCMA. linphonec keeps its own order among them.
	Codecs []string
	// Manual answer: incoming calls ring until Answer (else auto-answer).
	Manual bool
	// Play is the 16-bit PCM WAV file the peer sends; default 60 s of a
	// 440 Hz tone at 16 kHz and LinphoneToneLevel.
	Play string
}

// LinphoneToneLevel is the peak amplitude (full scale 1) of the default
// 440 Hz tone linphonec sends.
const LinphoneToneLevel = 0.3

// Linphone is a running linphonec (Debian linphone-cli) driven on its
// stdin, in file mode: it plays a WAV file instead of a microphone and
// records what it hears to a WAV file, so it needs no sound card.
type Linphone struct {
	t       testing.TB
	opts    LinphoneOptions
	dir     string
	user    string
	sipPort int
	rtpPort int
	record  string
	proc    *proc
	out     string // linphonec's stdout and stderr: its console messages

	mu    sync.Mutex
	stdin *os.File
	seen  int // how much of out WaitOutput callers consumed
}

// linphonecConfig is a private linphonerc: SIP on UDP only, bound to
// 127.0.0.1, no proxy, no NAT helpers (firewall_policy 0: no STUN, ICE or
// uPnP), no video, no echo canceller (its adaptation would reshape the
// test tones), and the RTP ports of the test.
const linphonecConfig = `[sip]
sip_port=%d
sip_tcp_port=0
sip_tls_port=0
bind_address=127.0.0.1
default_proxy=-1
guess_hostname=0
contact="%s" <sip:%s@127.0.0.1:%d>
register_only_when_network_is_up=0
inc_timeout=30
ipv6=0

[net]
firewall_policy=0

[rtp]
audio_rtp_port=%d
video_rtp_port=%d
text_rtp_port=%d
nortp_timeout=30
audio_adaptive_jitt_comp_enabled=1

[sound]
echocancellation=0
echolimiter=0
agc=0

[video]
capture=0
display=0
automatically_initiate=0
automatically_accept=0
`

var codecLineRe = regexp.MustCompile(`(?m)^\s*(\d+): (\S+) \((\d+)\) (enabled|disabled)\s*$`)

// StartLinphone starts linphonec with a private HOME and linphonerc,
// switches it to file mode, sets its codecs and starts recording, and
// returns once it listens for SIP. It is stopped in t.Cleanup.
func StartLinphone(t testing.TB, opts LinphoneOptions) *Linphone {
	t.Helper()
	bin := RequireBinary(t, "linphonec", "linphone-cli")
	l := &Linphone{t: t, opts: opts, user: opts.User}
	if l.user == "" {
		l.user = "linphone"
	}
	l.dir = LogDir(t, "linphone-"+l.user)
	l.sipPort = FreePort(t)
	rtpMin, _ := FreeRTPRange(t, 6) // audio, video and text, each RTP+RTCP
	l.rtpPort = rtpMin
	l.record = filepath.Join(l.dir, "heard.wav")
	l.out = filepath.Join(l.dir, "linphonec.log")

	// linphonec's core does not start (every INVITE gets 503) when it
	// cannot open its database under $HOME/.local/share/linphone.
	home := filepath.Join(l.dir, "home")
	for _, d := range []string{".local/share/linphone", ".config/linphone"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
			t.Fatalf("testpeers: %v", err)
		}
	}
	cfg := filepath.Join(l.dir, "linphonerc")
	rc := fmt.Sprintf(linphonecConfig, l.sipPort, l.user, l.user, l.sipPort, rtpMin, rtpMin+2, rtpMin+4)
	if err := os.WriteFile(cfg, []byte(rc), 0o644); err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	play := opts.Play
	if play == "" {
		play = filepath.Join(l.dir, "tone440.wav")
		if err := WriteToneWAV(play, 16000, 440, LinphoneToneLevel, 60); err != nil {
			t.Fatalf("testpeers: %v", err)
		}
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("testpeers: %v", err)
	}
	args := []string{"-c", cfg, "-d", "5", "-l", filepath.Join(l.dir, "debug.log")}
	if !opts.Manual {
		args = append(args, "-a")
	}
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"XDG_DATA_HOME=" + filepath.Join(home, ".local/share"), "PULSE_SERVER=unix:/nonexistent"}
	pr, err := startProcIn("linphonec-"+l.user, l.dir, l.out, env, r, bin, args...)
	r.Close()
	if err != nil {
		w.Close()
		t.Fatalf("testpeers: %v", err)
	}
	l.proc, l.stdin = pr, w
	t.Cleanup(l.Stop)

	// The console answers every command on stdout, in order: `ports`
	// after a command marks the end of its answer, and shows that the core
	// is up and bound to the port of the config.
	l.Command("soundcard use files")
	list := l.commandCodecs()
	want := opts.Codecs
	if len(want) == 0 {
		want = []string{"PCMU", "PCMA"}
	}
	wanted := func(mime string) bool {
		for _, c := range want {
			if strings.EqualFold(c, mime) {
				return true
			}
		}
		return false
	}
	for _, m := range list {
		switch on := wanted(m[2]); {
		case on && m[4] == "disabled":
			l.Command("codec enable " + m[1])
		case !on && m[4] == "enabled":
			l.Command("codec disable " + m[1])
		}
	}
	var enabled []string
	for _, m := range l.commandCodecs() {
		if m[4] == "enabled" {
			enabled = append(enabled, m[2]+"/"+m[3])
		}
		if wanted(m[2]) != (m[4] == "enabled") {
			t.Fatalf("testpeers: linphonec codec %s/%s is %s, want only %v enabled", m[2], m[3], m[4], want)
		}
	}
	if len(enabled) == 0 {
		t.Fatalf("testpeers: linphonec has none of the codecs %v", want)
	}
	l.Command("play " + play)
	l.Command("record " + l.record)
	t.Logf("linphonec %s at %s, codecs %v, RTP %d", l.user, l.URI(), enabled, l.rtpPort)
	return l
}

// commandCodecs runs `codec list` and returns its lines as submatches of
// codecLineRe: index, MIME name, clock rate, enabled/disabled.
func (l *Linphone) commandCodecs() [][]string {
	l.t.Helper()
	since := l.Offset()
	l.Command("codec list")
	l.Command("ports")
	port := regexp.MustCompile(`sip port = ` + strconv.Itoa(l.sipPort) + `\b`)
	_, end, err := l.waitOutput(10*time.Second, since, port)
	if err != nil {
		l.t.Fatalf("testpeers: linphonec does not listen on SIP port %d: %v", l.sipPort, err)
	}
	list := codecLineRe.FindAllStringSubmatch(l.Output()[since:end], -1)
	if len(list) == 0 {
		l.t.Fatalf("testpeers: linphonec printed no codec list:\n%s", l.Output()[since:end])
	}
	return list
}

// URI reaches the peer directly.
func (l *Linphone) URI() string {
	return "sip:" + l.user + "@" + net.JoinHostPort("127.0.0.1", strconv.Itoa(l.sipPort))
}

// Dir holds linphonerc, linphonec.log (the console), debug.log and heard.wav.
func (l *Linphone) Dir() string { return l.dir }

// RTPPort is the peer's audio RTP port.
func (l *Linphone) RTPPort() int { return l.rtpPort }

// Recording is the WAV file of what the peer heard: 16-bit mono at the
// rate of the call's codec (16 kHz for G.722).
func (l *Linphone) Recording() string { return l.record }

// Command writes one console command to linphonec's stdin.
func (l *Linphone) Command(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stdin == nil {
		l.t.Errorf("testpeers: linphonec %s: command %q after stop", l.user, line)
		return
	}
	if _, err := l.stdin.WriteString(line + "\n"); err != nil {
		l.t.Errorf("testpeers: linphonec %s: command %q: %v", l.user, line, err)
	}
}

// Call dials uri.
func (l *Linphone) Call(uri string) { l.Command("call " + uri) }

// Answer accepts the ringing incoming call (Manual option).
func (l *Linphone) Answer() { l.Command("answer") }

// Terminate ends the current call.
func (l *Linphone) Terminate() { l.Command("terminate") }

// Output is everything linphonec printed so far.
func (l *Linphone) Output() string { return l.proc.log() }

// Offset is the length of the output so far; pass it to WaitOutputSince to
// ignore older lines.
func (l *Linphone) Offset() int { return len(l.Output()) }

// WaitOutput waits for re in the output after what earlier WaitOutput
// calls matched and returns its submatches.
func (l *Linphone) WaitOutput(timeout time.Duration, re *regexp.Regexp) ([]string, error) {
	l.mu.Lock()
	since := l.seen
	l.mu.Unlock()
	m, end, err := l.waitOutput(timeout, since, re)
	if err == nil {
		l.mu.Lock()
		l.seen = max(l.seen, end)
		l.mu.Unlock()
	}
	return m, err
}

// WaitOutputSince waits for re in the output after offset since.
func (l *Linphone) WaitOutputSince(timeout time.Duration, since int, re *regexp.Regexp) ([]string, error) {
	m, _, err := l.waitOutput(timeout, since, re)
	return m, err
}

func (l *Linphone) waitOutput(timeout time.Duration, since int, re *regexp.Regexp) ([]string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		out := l.Output()
		if since <= len(out) {
			if loc := re.FindStringSubmatchIndex(out[since:]); loc != nil {
				var m []string
				for i := 0; i+1 < len(loc); i += 2 {
					if loc[i] < 0 {
						m = append(m, "")
						continue
					}
					m = append(m, out[since+loc[i]:since+loc[i+1]])
				}
				return m, since + loc[1], nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("linphonec %s: no %q within %v; output:\n%s", l.user, re, timeout, lastLines(out[min(since, len(out)):], 15))
		case <-l.proc.done:
			return nil, 0, fmt.Errorf("linphonec %s exited (%v) while waiting for %q; output:\n%s", l.user, l.proc.waitErr, re, lastLines(out, 15))
		case <-tick.C:
		}
	}
}

// Connected waits until a call is connected and its media streams run
// ("Media streams established"), and returns linphonec's call id.
func (l *Linphone) Connected(timeout time.Duration) (string, error) {
	m, err := l.WaitOutput(timeout, regexp.MustCompile(`Media streams established with .* for call (\d+)`))
	if err != nil {
		return "", err
	}
	return m[1], nil
}

// Ended waits until a call has ended ("Call N with ... ended (REASON)")
// and returns the reason.
func (l *Linphone) Ended(timeout time.Duration) (string, error) {
	m, err := l.WaitOutput(timeout, regexp.MustCompile(`Call \d+ with .* ended \(([^)]*)\)`))
	if err != nil {
		return "", err
	}
	return m[1], nil
}

var toneRe = regexp.MustCompile(`(?m)^Receiving tone (\S) from `)

// Tones is every DTMF digit linphonec reported ("Receiving tone X"), in
// order, since output offset since.
func (l *Linphone) Tones(since int) string {
	out := l.Output()
	var b strings.Builder
	for _, m := range toneRe.FindAllStringSubmatch(out[min(since, len(out)):], -1) {
		b.WriteString(m[1])
	}
	return b.String()
}

// Stop quits linphonec (it hangs up its call first), then SIGTERM, then
// SIGKILL. Idempotent.
func (l *Linphone) Stop() {
	if l.proc == nil {
		return
	}
	l.mu.Lock()
	if l.stdin != nil {
		if !l.proc.exited() {
			_, _ = l.stdin.WriteString("quit\n")
		}
		l.stdin.Close()
		l.stdin = nil
	}
	l.mu.Unlock()
	select {
	case <-l.proc.done:
	case <-time.After(3 * time.Second):
		_ = l.proc.signal(syscall.SIGTERM)
	}
	if err := l.proc.stop(3 * time.Second); err != nil {
		l.t.Errorf("testpeers: %v", err)
	}
}
