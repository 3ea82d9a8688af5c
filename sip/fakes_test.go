package sip

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icholy/digest"

	"github.com/telestra/telestra-sip/sip/media"
)

// fakeSession stands in for *media.Session in unit tests.
type fakeSession struct {
	addr      *net.UDPAddr
	onTimeout func()

	mu      sync.Mutex
	updates []media.Params
	port    media.AudioPort
	binds   int
	closed  bool
	dtmf    []fakeDigit
	onDTMF  func(media.DTMF)
}

func (s *fakeSession) LocalAddr() *net.UDPAddr { return s.addr }

func (s *fakeSession) Update(p media.Params) {
	s.mu.Lock()
	s.updates = append(s.updates, p)
	s.mu.Unlock()
}

func (s *fakeSession) Bind(p media.AudioPort) {
	s.mu.Lock()
	s.port = p
	s.binds++
	s.mu.Unlock()
}

func (s *fakeSession) Stats() media.Stats { return media.Stats{Codec: "PCMU"} }

func (s *fakeSession) QueueDTMF(d rune, dur time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.updates) == 0 || s.updates[len(s.updates)-1].EventPT == 0 {
		return media.ErrNoEvents
	}
	s.dtmf = append(s.dtmf, fakeDigit{d, dur})
	return nil
}

func (s *fakeSession) QueuePause(dur time.Duration) error { return s.QueueDTMF(',', dur) }

func (s *fakeSession) OnDTMF(f func(media.DTMF)) {
	s.mu.Lock()
	s.onDTMF = f
	s.mu.Unlock()
}

// fakeDigit is a digit queued on a fakeSession (',' a pause).
type fakeDigit struct {
	digit rune
	dur   time.Duration
}

func (s *fakeSession) digits() []fakeDigit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]fakeDigit(nil), s.dtmf...)
}

// receive plays a digit arriving by RFC 4733.
func (s *fakeSession) receive(d media.DTMF) {
	s.mu.Lock()
	f := s.onDTMF
	s.mu.Unlock()
	if f != nil {
		f(d)
	}
}

func (s *fakeSession) Close() error {
	s.mu.Lock()
	s.closed = true
	s.port = nil
	s.mu.Unlock()
	return nil
}

func (s *fakeSession) last() media.Params {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.updates) == 0 {
		return media.Params{}
	}
	return s.updates[len(s.updates)-1]
}

func (s *fakeSession) boundTo() media.AudioPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.port
}

func (s *fakeSession) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

type fakeAlloc struct {
	mu       sync.Mutex
	next     int
	sessions []*fakeSession
	media    []media.Config // what Reconfigure was given
}

func (a *fakeAlloc) Allocate(onTimeout func()) (mediaSession, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.next += 2
	s := &fakeSession{addr: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000 + a.next}, onTimeout: onTimeout}
	a.sessions = append(a.sessions, s)
	return s, nil
}

func (a *fakeAlloc) Reconfigure(c media.Config) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.media = append(a.media, c)
	return nil
}

func (a *fakeAlloc) Close() error { return nil }

func (a *fakeAlloc) session(i int) *fakeSession {
	a.mu.Lock()
	defer a.mu.Unlock()
	if i >= len(a.sessions) {
		return nil
	}
	return a.sessions[i]
}

// fakePort is an audio channel stand-in; identity is all the tests need.
type fakePort struct{ name string }

func (p *fakePort) ReadFrame([]int16) bool { return false }
func (p *fakePort) WriteFrame([]int16)     {}

// events collects the UA's events.
type events struct {
	ch chan Event
}

func newEvents() *events { return &events{ch: make(chan Event, 256)} }

func (e *events) handler(ev Event) {
	select {
	case e.ch <- ev:
	default:
		panic("event channel full")
	}
}

func (e *events) wait(t *testing.T, kind EventKind, timeout time.Duration) Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev := <-e.ch:
			if ev.Kind == kind {
				return ev
			}
			t.Logf("skipping event %+v", ev)
		case <-deadline:
			t.Fatalf("no %v event within %v", kind, timeout)
		}
	}
}

func (e *events) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case ev := <-e.ch:
		t.Fatalf("unexpected event %+v", ev)
	case <-time.After(d):
	}
}

// testConfig is what the daemon always sets (from plan.Default) and the
// UA needs: a transport, codecs and the ptime.
func testConfig(cfg Config) Config {
	if len(cfg.Transports) == 0 {
		cfg.Transports = []string{"udp"}
	}
	if cfg.Media.PTime == 0 {
		cfg.Media.PTime = 20 * time.Millisecond
	}
	if len(cfg.Codecs) == 0 && len(cfg.Media.Codecs) == 0 {
		cfg.Media.Codecs = []string{"PCMU", "PCMA"}
	}
	return cfg
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("SIP_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// md5hex and checkDigest verify credentials independently of the client
// library (RFC 2617 with qop=auth, or without qop).
func md5hex(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func checkDigest(header, method, user, pass, nonce string) error {
	cr, err := digest.ParseCredentials(header)
	if err != nil {
		return err
	}
	if cr.Username != user {
		return fmt.Errorf("username %q, want %q", cr.Username, user)
	}
	if cr.Nonce != nonce {
		return fmt.Errorf("nonce %q, want %q", cr.Nonce, nonce)
	}
	ha1 := md5hex(user + ":" + cr.Realm + ":" + pass)
	ha2 := md5hex(method + ":" + cr.URI)
	var want string
	if cr.QOP == "" {
		want = md5hex(ha1 + ":" + cr.Nonce + ":" + ha2)
	} else {
		want = md5hex(strings.Join([]string{ha1, cr.Nonce, fmt.Sprintf("%08x", cr.Nc), cr.Cnonce, cr.QOP, ha2}, ":"))
	}
	if cr.Response != want {
		return fmt.Errorf("wrong digest response")
	}
	return nil
}
