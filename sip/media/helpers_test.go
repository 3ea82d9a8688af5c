package media

import (
	"log/slog"
	"math"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// testPort is a hand-written AudioPort: it captures a sine (or silence)
// and records what it is given to play.
type testPort struct {
	mu     sync.Mutex
	freq   float64 // 0: silence, ReadFrame still reports a frame
	amp    float64
	rate   float64
	phase  float64
	played []int16
	frames int
}

func newTonePort(freq, amp float64) *testPort {
	return &testPort{freq: freq, amp: amp, rate: 8000}
}

func (p *testPort) ReadFrame(f []int16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range f {
		f[i] = int16(p.amp * math.Sin(p.phase))
		p.phase += 2 * math.Pi * p.freq / p.rate
	}
	p.phase = math.Mod(p.phase, 2*math.Pi)
	return true
}

func (p *testPort) WriteFrame(f []int16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.played = append(p.played, f...)
	p.frames++
}

func (p *testPort) snapshot() []int16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int16(nil), p.played...)
}

// goertzel returns the power of freq in x, normalised by length.
func goertzel(x []int16, freq, rate float64) float64 {
	w := 2 * math.Pi * freq / rate
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s0 := float64(v) + c*s1 - s2
		s2, s1 = s1, s0
	}
	p := s1*s1 + s2*s2 - c*s1*s2
	return p / float64(len(x)*len(x))
}

func rms(x []int16) float64 {
	if len(x) == 0 {
		return 0
	}
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(x)))
}

func testLogger(_ testing.TB) *slog.Logger {
	if os.Getenv("MEDIA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testConfig uses this package's test port range 40000-41999; each test
// takes its own sub-range so parallel packages don't collide.
func testConfig(portMin, portMax int) Config {
	return Config{
		BindIP:       net.IPv4(127, 0, 0, 1),
		PortMin:      portMin,
		PortMax:      portMax,
		PTime:        20 * time.Millisecond,
		JitterBuffer: 40 * time.Millisecond,
		Timeout:      2 * time.Second,
		RTCPInterval: 200 * time.Millisecond,
	}
}

func newTestEngine(t *testing.T, cfg Config) *Engine {
	t.Helper()
	e, err := NewEngine(cfg, testLogger(t))
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("engine close: %v", err)
		}
	})
	return e
}

func mustAllocate(t *testing.T, e *Engine, onTimeout func()) *Session {
	t.Helper()
	s, err := e.Allocate(onTimeout)
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	return s
}

var pcmu = Supported["PCMU"]

func sendrecv(remote *net.UDPAddr) Params {
	return Params{Remote: remote, Codec: pcmu, EventPT: TelephoneEventPT, Send: true, Recv: true}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s", d, what)
}

// toneCheck asserts x (8 kHz) is dominated by freq at roughly the
// amplitude sent.
func toneCheck(t *testing.T, x []int16, freq, amp float64) {
	t.Helper()
	toneCheckAt(t, x, freq, amp, 8000)
}

// toneCheckAt is toneCheck for x sampled at rate.
func toneCheckAt(t *testing.T, x []int16, freq, amp, rate float64) {
	t.Helper()
	r := rms(x)
	want := amp / math.Sqrt2
	if r < 0.8*want || r > 1.2*want {
		t.Errorf("RMS %.0f, want about %.0f", r, want)
	}
	on := goertzel(x, freq, rate)
	for _, off := range []float64{freq / 2, freq * 1.5, freq * 0.77, 1000, 2000} {
		if off == freq {
			continue
		}
		if p := goertzel(x, off, rate); p*100 > on {
			t.Errorf("power at %.0f Hz is %.3g, at %.0f Hz %.3g: want the tone 100x stronger", off, p, freq, on)
		}
	}
}
