// Command rtpload measures the media engine against a bare UDP floor in one
// process run: CPU per call-second, send pacing against the 20 ms grid,
// loss, RSS, and the added latency of an echo path.
//
//	go run ./cmd/internal/rtpload -n 200 -dur 20s -mode both
//	go run ./cmd/internal/rtpload -mode latency -dur 10s [-n 50]
//
// A "call" is one full-duplex stream moved on loopback: two media sessions
// A<->B (A captures a 440 Hz tone, B silence), or in the floor two plain
// sockets each sending a 172-byte packet to the other every 20 ms (the
// same packets as G.711/20 ms RTP, without any media work).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/telestra/telestra-sip/sip/media"
)

type options struct {
	n      int
	dur    time.Duration
	warm   time.Duration
	mode   string
	ports  string
	jitter time.Duration
}

func main() {
	var o options
	flag.IntVar(&o.n, "n", 50, "concurrent calls (streams)")
	flag.DurationVar(&o.dur, "dur", 20*time.Second, "measured duration per mode")
	flag.DurationVar(&o.warm, "warm", 2*time.Second, "warm-up before measuring")
	flag.StringVar(&o.mode, "mode", "both", "floor, media, both (floor then media), or latency")
	flag.StringVar(&o.ports, "ports", "42000-43999", "RTP port range for the media engine")
	flag.DurationVar(&o.jitter, "jitter-buffer", 40*time.Millisecond, "initial jitter buffer depth")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "rtpload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	fmt.Printf("rtpload: n=%d dur=%v GOMAXPROCS=%d loadavg=%s\n", o.n, o.dur, runtime.GOMAXPROCS(0), loadavg())
	switch o.mode {
	case "floor":
		_, err := floor(ctx, o)
		return err
	case "media":
		_, err := mediaLoad(ctx, o)
		return err
	case "both":
		f, err := floor(ctx, o)
		if err != nil {
			return err
		}
		m, err := mediaLoad(ctx, o)
		if err != nil {
			return err
		}
		fmt.Printf("ratio media/floor CPU per call-second: %.2fx (media %.3f ms/s, floor %.3f ms/s)\n", m/f, m*1000, f*1000)
		return nil
	case "latency":
		return latency(ctx, o)
	}
	return fmt.Errorf("unknown -mode %q: use floor, media, both or latency", o.mode)
}

// cpuSeconds is user+system CPU of this process.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func rssKB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				v, _ := strconv.Atoi(f[1])
				return v
			}
		}
	}
	return 0
}

// goMem is the Go heap and goroutine stacks in use, in bytes.
func goMem() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// measure runs the load for o.dur after o.warm and returns CPU seconds per
// call-second.
func measure(ctx context.Context, o options, reset func()) (float64, error) {
	if err := sleepCtx(ctx, o.warm); err != nil {
		return 0, err
	}
	reset()
	c0, t0 := cpuSeconds(), time.Now()
	if err := sleepCtx(ctx, o.dur); err != nil {
		return 0, err
	}
	c1, el := cpuSeconds(), time.Since(t0)
	return (c1 - c0) / (float64(o.n) * el.Seconds()), nil
}

// ---- floor: bare UDP, one sender and one receiver goroutine per socket.

type lateHist struct {
	mu sync.Mutex
	d  []time.Duration
}

func (h *lateHist) add(d time.Duration) {
	h.mu.Lock()
	h.d = append(h.d, d)
	h.mu.Unlock()
}

func (h *lateHist) reset() {
	h.mu.Lock()
	h.d = h.d[:0]
	h.mu.Unlock()
}

func (h *lateHist) quantiles() (p50, p99, p999, max time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.d) == 0 {
		return
	}
	sort.Slice(h.d, func(i, j int) bool { return h.d[i] < h.d[j] })
	q := func(f float64) time.Duration { return h.d[int(f*float64(len(h.d)-1))] }
	return q(0.5), q(0.99), q(0.999), h.d[len(h.d)-1]
}

func floor(ctx context.Context, o options) (float64, error) {
	const ptime = 20 * time.Millisecond
	var socks []*net.UDPConn
	defer func() {
		for _, s := range socks {
			s.Close()
		}
	}()
	for range 2 * o.n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return 0, fmt.Errorf("floor socket: %w", err)
		}
		socks = append(socks, c)
	}
	var hist lateHist
	var sent, recvd atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	epoch := time.Now()
	for i, c := range socks {
		peer := socks[i^1].LocalAddr().(*net.UDPAddr).AddrPort()
		phase := time.Duration(i) * ptime / time.Duration(len(socks)) // staggered
		wg.Add(2)
		go func() { // sender: sleep until the next grid point, send
			defer wg.Done()
			pkt := make([]byte, 172)
			for k := int64(1); ; k++ {
				at := phase + time.Duration(k)*ptime
				time.Sleep(time.Until(epoch.Add(at)))
				select {
				case <-done:
					return
				default:
				}
				if _, err := c.WriteToUDPAddrPort(pkt, peer); err == nil {
					sent.Add(1)
				}
				hist.add(time.Since(epoch) - at)
			}
		}()
		go func() { // receiver
			defer wg.Done()
			buf := make([]byte, 1500)
			for {
				if _, _, err := c.ReadFromUDPAddrPort(buf); err != nil {
					return
				}
				recvd.Add(1)
			}
		}()
	}
	rss := rssKB()
	cps, err := measure(ctx, o, func() { hist.reset(); sent.Store(0); recvd.Store(0) })
	s, r := sent.Load(), recvd.Load()
	close(done)
	for _, c := range socks {
		c.Close()
	}
	wg.Wait()
	socks = nil
	if err != nil {
		return 0, err
	}
	p50, p99, p999, mx := hist.quantiles()
	fmt.Printf("floor: %d streams: CPU %.3f ms per stream-second (%.1f%% of a core total); pacing late p50 %v p99 %v p99.9 %v max %v; sent %d recv %d (loss %.3f%%); RSS %d KB\n",
		o.n, cps*1000, cps*float64(o.n)*100, p50, p99, p999, mx, s, r, 100*(1-float64(r)/math.Max(1, float64(s))), rss)
	// Each packet is one send and one receive; a daemon session's packet
	// is one of the two, so compare per socket operation.
	fmt.Printf("floor: CPU per packet sent or received: %.2f µs\n", cps*float64(o.n)*o.dur.Seconds()*1e6/math.Max(1, float64(s+r)))
	return cps, nil
}

// ---- media: N pairs of sessions on loopback.

// tonePort captures a 440 Hz tone from a precomputed period and drops
// what it plays; silent when amp is 0.
type tonePort struct {
	table []int16
	pos   int
	mu    sync.Mutex
}

func newTonePort(amp float64) *tonePort {
	// 440 Hz at 8 kHz repeats exactly every 200 samples (11 cycles).
	t := make([]int16, 200)
	for i := range t {
		t[i] = int16(amp * math.Sin(2*math.Pi*440*float64(i)/8000))
	}
	return &tonePort{table: t}
}

func (p *tonePort) ReadFrame(f []int16) bool {
	p.mu.Lock()
	for i := range f {
		f[i] = p.table[p.pos]
		p.pos = (p.pos + 1) % len(p.table)
	}
	p.mu.Unlock()
	return true
}

func (p *tonePort) WriteFrame([]int16) {}

func engineConfig(o options) (media.Config, error) {
	lo, hi, ok := strings.Cut(o.ports, "-")
	min, err1 := strconv.Atoi(lo)
	max, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil {
		return media.Config{}, fmt.Errorf("-ports %q: want MIN-MAX", o.ports)
	}
	return media.Config{
		BindIP:       net.IPv4(127, 0, 0, 1),
		PortMin:      min,
		PortMax:      max,
		PTime:        20 * time.Millisecond,
		JitterBuffer: o.jitter,
		Timeout:      time.Minute,
	}, nil
}

func mediaLoad(ctx context.Context, o options) (float64, error) {
	cfg, err := engineConfig(o)
	if err != nil {
		return 0, err
	}
	runtime.GC()
	rss0 := rssKB()
	e, err := media.NewEngine(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return 0, err
	}
	defer e.Close()
	rssIdle, memIdle := rssKB(), goMem()
	codec := media.Supported["PCMU"]
	var ss []*media.Session
	for range o.n {
		a, err := e.Allocate(nil)
		if err != nil {
			return 0, err
		}
		b, err := e.Allocate(nil)
		if err != nil {
			return 0, err
		}
		a.Bind(newTonePort(8000))
		b.Bind(newTonePort(0))
		a.Update(media.Params{Remote: b.LocalAddr(), Codec: codec, EventPT: media.TelephoneEventPT, Send: true, Recv: true})
		b.Update(media.Params{Remote: a.LocalAddr(), Codec: codec, EventPT: media.TelephoneEventPT, Send: true, Recv: true})
		ss = append(ss, a, b)
	}
	var before []media.Stats
	cps, err := measure(ctx, o, func() {
		e.ResetPacing()
		before = before[:0]
		for _, s := range ss {
			before = append(before, s.Stats())
		}
	})
	if err != nil {
		return 0, err
	}
	runtime.GC()
	rssActive, memActive := rssKB(), goMem()
	p := e.Pacing()
	var sent, recv, lost, conc uint64
	var jit, depth float64
	for i, s := range ss {
		st := s.Stats()
		sent += st.PacketsSent - before[i].PacketsSent
		recv += st.PacketsReceived - before[i].PacketsReceived
		lost += st.PacketsLost - before[i].PacketsLost
		conc += st.FramesConcealed - before[i].FramesConcealed
		jit += st.JitterMs
		depth += st.JitterBufferMs
	}
	fmt.Printf("media: %d calls (%d sessions): CPU %.3f ms per call-second (%.1f%% of a core total); pacing late p50 %v p99 %v p99.9 %v max %v over %d packets\n",
		o.n, len(ss), cps*1000, cps*float64(o.n)*100, p.P50, p.P99, p.P999, p.Max, p.Packets)
	fmt.Printf("media: sent %d recv %d lost %d (%.3f%%), concealed frames %d, mean jitter %.2f ms, mean jitter-buffer target %.1f ms\n",
		sent, recv, lost, 100*float64(lost)/math.Max(1, float64(sent)), conc, jit/float64(len(ss)), depth/float64(len(ss)))
	fmt.Printf("media: RSS before engine %d KB, idle engine %d KB, with %d sessions %d KB: %.1f KB per session; Go heap+stacks %.1f KB per session\n",
		rss0, rssIdle, len(ss), rssActive, float64(rssActive-rssIdle)/float64(len(ss)), float64(memActive-memIdle)/1024/float64(len(ss)))
	for _, s := range ss {
		s.Close()
	}
	if n := e.InUse(); n != 0 {
		return 0, fmt.Errorf("%d ports still in use after closing every session", n)
	}
	return cps, nil
}

// ---- latency: RTP in -> session -> loopback echo port -> RTP out.

// echoPort plays back what it is given as its capture, frame by frame.
type echoPort struct {
	mu sync.Mutex
	q  [][]int16
}

func (p *echoPort) WriteFrame(f []int16) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.q) > 50 {
		p.q = p.q[1:]
	}
	p.q = append(p.q, append([]int16(nil), f...))
}

func (p *echoPort) ReadFrame(f []int16) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.q) == 0 {
		return false
	}
	copy(f, p.q[0])
	p.q = p.q[1:]
	return true
}

func latency(ctx context.Context, o options) error {
	cfg, err := engineConfig(o)
	if err != nil {
		return err
	}
	e, err := media.NewEngine(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer e.Close()
	codec := media.Supported["PCMU"]
	for range o.n { // background load
		a, err1 := e.Allocate(nil)
		b, err2 := e.Allocate(nil)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		a.Bind(newTonePort(8000))
		b.Bind(newTonePort(0))
		a.Update(media.Params{Remote: b.LocalAddr(), Codec: codec, Send: true, Recv: true})
		b.Update(media.Params{Remote: a.LocalAddr(), Codec: codec, Send: true, Recv: true})
	}
	s, err := e.Allocate(nil)
	if err != nil {
		return err
	}
	s.Bind(&echoPort{})
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	defer peer.Close()
	s.Update(media.Params{Remote: peer.LocalAddr().(*net.UDPAddr), Codec: codec, Send: true, Recv: true})

	// The peer sends µ-law silence (0xFF) with a full-scale frame (0x80)
	// every 25th packet; the first loud packet back marks the echo.
	var mu sync.Mutex
	var loudAt time.Time
	var lat []time.Duration
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		pkt := make([]byte, 172)
		pkt[0], pkt[1] = 0x80, 0
		dst := s.LocalAddr().AddrPort()
		epoch := time.Now()
		for k := 0; ; k++ {
			time.Sleep(time.Until(epoch.Add(time.Duration(k) * 20 * time.Millisecond)))
			select {
			case <-done:
				return
			default:
			}
			pkt[2], pkt[3] = byte(k>>8), byte(k)
			ts := uint32(160 * k)
			pkt[4], pkt[5], pkt[6], pkt[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
			pkt[8], pkt[9], pkt[10], pkt[11] = 0, 0, 0x12, 0x34
			fill := byte(0xFF)
			if k%25 == 0 && k > 0 {
				fill = 0x80
			}
			for i := 12; i < 172; i++ {
				pkt[i] = fill
			}
			now := time.Now()
			peer.WriteToUDPAddrPort(pkt, dst)
			if fill == 0x80 {
				mu.Lock()
				loudAt = now
				mu.Unlock()
			}
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, _, err := peer.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n > 12+80 && buf[12+80] == 0x80 { // full scale: the marked frame
				at := time.Now()
				mu.Lock()
				if !loudAt.IsZero() {
					lat = append(lat, at.Sub(loudAt))
					loudAt = time.Time{}
				}
				mu.Unlock()
			}
		}
	}()
	err = sleepCtx(ctx, o.warm+o.dur)
	close(done)
	peer.Close()
	wg.Wait()
	if err != nil {
		return err
	}
	if len(lat) == 0 {
		return errors.New("no echo came back: the session did not loop audio")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	st := s.Stats()
	fmt.Printf("latency: RTP in -> echo port -> RTP out over %d marked frames (background %d calls): min %v p50 %v p99 %v max %v; jitter-buffer target %.0f ms\n",
		len(lat), o.n, lat[0], lat[len(lat)/2], lat[int(0.99*float64(len(lat)-1))], lat[len(lat)-1], st.JitterBufferMs)
	return nil
}
