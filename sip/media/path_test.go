package media

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

func loopback(port int) *net.UDPAddr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port} }

func listenTest(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", loopback(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readRTP reads packets from c until f returns false or the deadline.
func readRTP(t *testing.T, c *net.UDPConn, d time.Duration, f func(p *rtp.Packet, from netip.AddrPort) bool) {
	t.Helper()
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(d))
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf[:n]); err != nil {
			t.Fatalf("bad RTP: %v", err)
		}
		if !f(&p, from) {
			return
		}
	}
}

func TestSymmetricRTPLatching(t *testing.T) {
	e := newTestEngine(t, testConfig(40200, 40219))
	a, b := mustAllocate(t, e, nil), mustAllocate(t, e, nil)
	rec := newTonePort(0, 0)
	a.Bind(newTonePort(440, 8000))
	b.Bind(rec)
	// A's SDP names an address nobody uses (a NATed peer's private
	// address, say); B really sends from its own socket.
	a.Update(sendrecv(loopback(40218)))
	b.Update(sendrecv(a.LocalAddr()))
	waitFor(t, 3*time.Second, "A's audio at B through latching", func() bool {
		return b.Stats().PacketsReceived > 20
	})

	// A rogue source doesn't steal the latch while B keeps sending.
	rogue := listenTest(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pkt := make([]byte, 172)
		h := rtp.Header{Version: 2, PayloadType: 0, SSRC: 99}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			h.SequenceNumber, h.Timestamp = uint16(i), uint32(160*i)
			h.MarshalTo(pkt)
			rogue.WriteToUDP(pkt, a.LocalAddr())
		}
	}()
	rogue.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, _, err := rogue.ReadFromUDP(make([]byte, 1500)); err == nil {
		t.Errorf("rogue source received %d bytes: A re-latched to it", n)
	}
	close(stop)
	wg.Wait()

	// A re-INVITE moving A to a new peer resets the latch: A sends to the
	// new Remote even though B's packets still arrive.
	b.Update(Params{Remote: a.LocalAddr(), Codec: pcmu, Send: false, Recv: true})
	newPeer := listenTest(t)
	p := sendrecv(newPeer.LocalAddr().(*net.UDPAddr))
	a.Update(p)
	got := 0
	readRTP(t, newPeer, 2*time.Second, func(p *rtp.Packet, _ netip.AddrPort) bool {
		got++
		return got < 10
	})
}

// impairProxy relays between two RTP endpoints, dropping and reordering
// the A->B direction. It records the sequence numbers it dropped.
type impairProxy struct {
	toA, toB *net.UDPConn // toB faces A (A sends here); toA faces B
	a, b     netip.AddrPort
	dropRate float64
	rng      *rand.Rand

	mu        sync.Mutex
	dropped   map[uint16]bool
	forwarded int
	lastSeq   uint16
	swaps     int
	wg        sync.WaitGroup
}

func newImpairProxy(t *testing.T, a, b *net.UDPAddr, dropRate float64) *impairProxy {
	p := &impairProxy{
		toB: listenTest(t), toA: listenTest(t),
		a: addrPort(a), b: addrPort(b),
		dropRate: dropRate,
		rng:      rand.New(rand.NewPCG(1, 2)),
		dropped:  map[uint16]bool{},
	}
	p.wg.Add(2)
	go p.forwardAB()
	go p.forwardBA()
	t.Cleanup(func() {
		p.toA.Close()
		p.toB.Close()
		p.wg.Wait()
	})
	return p
}

func (p *impairProxy) forwardAB() {
	defer p.wg.Done()
	var held []byte
	deliver := func(pkt []byte) {
		p.toA.WriteToUDPAddrPort(pkt, p.b)
		seq := uint16(pkt[2])<<8 | uint16(pkt[3])
		p.mu.Lock()
		if p.forwarded == 0 || int16(seq-p.lastSeq) > 0 {
			p.lastSeq = seq
		}
		p.forwarded++
		p.mu.Unlock()
	}
	for {
		buf := make([]byte, 1500)
		n, _, err := p.toB.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		pkt := buf[:n]
		seq := uint16(pkt[2])<<8 | uint16(pkt[3])
		p.mu.Lock()
		drop := p.rng.Float64() < p.dropRate
		swap := !drop && held == nil && p.rng.IntN(10) == 0
		if drop {
			p.dropped[seq] = true
		}
		if swap {
			p.swaps++
		}
		p.mu.Unlock()
		switch {
		case drop:
		case swap:
			held = pkt // goes out after the next packet
		default:
			deliver(pkt)
			if held != nil {
				deliver(held)
				held = nil
			}
		}
	}
}

func (p *impairProxy) forwardBA() {
	defer p.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, _, err := p.toA.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		p.toB.WriteToUDPAddrPort(buf[:n], p.a)
	}
}

// Loss, reordering and concealment at both rates: G.711 on 8 kHz ports
// and G.722 on 16 kHz ports.
func TestLossReorderConcealment(t *testing.T) {
	for _, tc := range []struct {
		name           string
		codec          Codec
		rate, min, max int
	}{
		{name: "PCMU", codec: Supported["PCMU"], rate: 8000, min: 40220, max: 40239},
		{name: "G722", codec: Supported["G722"], rate: 16000, min: 40160, max: 40179},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for try := 1; ; try++ {
				if !lossReorderConcealment(t, tc.codec, tc.rate, tc.min, tc.max, try == 5) {
					break
				}
			}
		})
	}
}

// lossReorderConcealment runs one trial. It returns true, having checked
// the counters but not the played audio, when the engine stalled (unless
// last): the engine drops the ticks a stall missed, by design, so the
// playout then has gaps that measure the machine, not concealment.
func lossReorderConcealment(t *testing.T, codec Codec, rate, portMin, portMax int, last bool) (stalled bool) {
	cfg := testConfig(portMin, portMax)
	cfg.AudioRate = rate
	e := newTestEngine(t, cfg)
	a, b := mustAllocate(t, e, nil), mustAllocate(t, e, nil)
	const amp = 8000
	rec := newTonePort(0, 0)
	tone := newTonePort(440, amp)
	tone.rate = float64(rate)
	a.Bind(tone)
	b.Bind(rec)
	px := newImpairProxy(t, a.LocalAddr(), b.LocalAddr(), 0.05)
	pa := sendrecv(px.toB.LocalAddr().(*net.UDPAddr))
	pa.Codec = codec
	pa.RemoteRTCP = loopback(b.LocalAddr().Port + 1) // RTCP goes direct
	a.Update(pa)
	pb := sendrecv(px.toA.LocalAddr().(*net.UDPAddr))
	pb.Codec = codec
	b.Update(pb)
	waitFor(t, 10*time.Second, "300 packets through the proxy", func() bool { return a.Stats().PacketsSent >= 300 })
	pa.Send = false
	a.Update(pa)
	time.Sleep(300 * time.Millisecond)

	px.mu.Lock()
	var dropped int
	for seq := range px.dropped {
		if int16(seq-px.lastSeq) < 0 { // trailing drops are invisible to RFC 3550
			dropped++
		}
	}
	forwarded, swaps := px.forwarded, px.swaps
	px.mu.Unlock()
	sb := b.Stats()
	t.Logf("forwarded %d, dropped %d, swapped %d; B stats %+v", forwarded, dropped, swaps, sb)
	if dropped < 5 || swaps < 5 {
		t.Fatalf("impairment too weak to test: %d dropped, %d swapped", dropped, swaps)
	}
	if sb.PacketsLost != uint64(dropped) {
		t.Errorf("PacketsLost %d, proxy dropped %d", sb.PacketsLost, dropped)
	}
	if sb.PacketsReceived != uint64(forwarded) {
		t.Errorf("PacketsReceived %d, proxy forwarded %d", sb.PacketsReceived, forwarded)
	}
	if sb.FramesConcealed == 0 {
		t.Error("no frames concealed despite loss")
	}

	if p := e.Pacing(); p.Max > 5*cfg.PTime && !last {
		t.Logf("engine stalled (pacing %+v): its missed ticks were dropped; another trial", p)
		a.Close()
		b.Close()
		return true
	}

	// The played audio: from the first sound to the last, concealment
	// fills every loss: no run of silent frames longer than one frame (PLC
	// fades to silence only after four missing frames in a row).
	got := rec.snapshot()
	frame := rate / 50
	first, lastSound := -1, -1
	for i := 0; i+frame <= len(got); i += frame {
		if rms(got[i:i+frame]) > amp/20 {
			if first < 0 {
				first = i
			}
			lastSound = i
		}
	}
	if first < 0 {
		t.Fatal("B played no audio")
	}
	run := 0
	for i := first; i <= lastSound; i += frame {
		if rms(got[i:i+frame]) < 1 {
			run++
			if run > 1 {
				t.Errorf("gap at %v into playout: %d silent frames (pacing %+v)", time.Duration(i-first)*time.Second/time.Duration(rate), run, e.Pacing())
			}
		} else {
			run = 0
		}
	}
	if n := (lastSound - first) / frame; n < 250 {
		t.Errorf("only %d frames played between first and last sound", n)
	}
	on, off := goertzel(got[first:lastSound], 440, float64(rate)), goertzel(got[first:lastSound], 1000, float64(rate))
	if on < 100*off {
		t.Errorf("played audio not 440 Hz dominated: %.3g vs %.3g at 1 kHz", on, off)
	}

	// A learns B's view of its stream from RTCP.
	waitFor(t, 3*time.Second, "an RTCP report at A", func() bool { return a.Stats().RemotePacketsLost > 0 })
	sa := a.Stats()
	if sa.RemotePacketsLost > int64(dropped) || sa.RemoteJitterMs > 40 || sa.RTCPReceived == 0 {
		t.Errorf("A's view of B's reports implausible: %+v (dropped %d)", sa, dropped)
	}
	return false
}

func TestRTCPReports(t *testing.T) {
	e := newTestEngine(t, testConfig(40240, 40259))
	a, b := mustAllocate(t, e, nil), mustAllocate(t, e, nil)
	a.Bind(newTonePort(440, 8000))
	b.Bind(newTonePort(440, 8000))
	// A's RTCP goes to a raw socket we parse. B's goes to a sink: if it
	// reached A, A would latch to B's RTCP source and report there.
	raw, sink := listenTest(t), listenTest(t)
	pa := sendrecv(b.LocalAddr())
	pa.RemoteRTCP = raw.LocalAddr().(*net.UDPAddr)
	a.Update(pa)
	pb := sendrecv(a.LocalAddr())
	pb.RemoteRTCP = sink.LocalAddr().(*net.UDPAddr)
	b.Update(pb)

	buf := make([]byte, 1500)
	raw.SetReadDeadline(time.Now().Add(3 * time.Second))
	var sr *rtcp.SenderReport
	var cname bool
	for sr == nil || len(sr.Reports) == 0 {
		n, err := raw.Read(buf)
		if err != nil {
			t.Fatalf("no SR with a report block from A: %v", err)
		}
		pkts, err := rtcp.Unmarshal(buf[:n])
		if err != nil {
			t.Fatalf("A sent bad RTCP: %v", err)
		}
		sr, cname = nil, false
		for _, p := range pkts {
			switch p := p.(type) {
			case *rtcp.SenderReport:
				sr = p
			case *rtcp.SourceDescription:
				cname = len(p.Chunks) == 1 && p.Chunks[0].Items[0].Type == rtcp.SDESCNAME
			}
		}
		if !cname {
			t.Fatalf("compound without SDES CNAME: %v", pkts)
		}
	}
	rb := sr.Reports[0]
	if sr.PacketCount == 0 || sr.OctetCount != 160*sr.PacketCount || sr.NTPTime == 0 {
		t.Errorf("implausible SR %+v", sr)
	}
	// The jitter of a real loopback stream measures how late the sending
	// and receiving goroutines ran, not the code (TestReceiveJitter pins
	// the estimate): one 20 ms stall on a loaded machine adds 10 units.
	// Above 20 ms (160 units) would be a wrong unit or a broken estimate.
	if rb.TotalLost != 0 || rb.FractionLost != 0 || rb.Jitter > 8*20 || rb.LastSequenceNumber == 0 {
		t.Errorf("implausible report block on loopback: %+v", rb)
	}
	waitFor(t, time.Second, "A's RTCPSent", func() bool { return a.Stats().RTCPSent > 0 })
	if sa := a.Stats(); sa.RTCPReceived != 0 {
		t.Errorf("A's RTCP counters: %+v", sa)
	}
}

// The RFC 3550 jitter estimate, in the units the report block carries, for
// known arrival times: every other packet 2 ms late makes each transit
// difference 16 timestamp units (8 kHz), so J converges to 16.
func TestReceiveJitter(t *testing.T) {
	e := newTestEngine(t, testConfig(40340, 40349))
	s := mustAllocate(t, e, nil)
	peer := listenTest(t)
	p := sendrecv(peer.LocalAddr().(*net.UDPAddr))
	p.Send = false
	s.Update(p)
	src := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	base := e.clock.now() + time.Second // after the Update: not the old peer's
	for i := range 400 {
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pcmu.PayloadType, SequenceNumber: uint16(1000 + i),
			Timestamp: uint32(5000 + 160*i), SSRC: 0x1234}, Payload: make([]byte, 160)}
		b, err := pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		at := base + time.Duration(i)*20*time.Millisecond
		if i%2 == 1 {
			at += 2 * time.Millisecond
		}
		s.receive(b, src, at)
	}
	s.mu.Lock()
	j, valid := s.rx.jitter, s.rx.valid
	s.mu.Unlock()
	if !valid || j < 15.99 || j > 16.01 {
		t.Fatalf("jitter %.3f timestamp units (stream seen: %v), want 16", j, valid)
	}
}

func TestRTPTimeout(t *testing.T) {
	cfg := testConfig(40260, 40279)
	cfg.Timeout = 300 * time.Millisecond
	e := newTestEngine(t, cfg)
	fired := make(chan string, 4)
	a := mustAllocate(t, e, func() { fired <- "a" })
	b := mustAllocate(t, e, func() { fired <- "b" })
	idle := mustAllocate(t, e, func() { fired <- "never started" })
	_ = idle
	a.Update(sendrecv(b.LocalAddr()))
	b.Update(Params{Remote: a.LocalAddr(), Codec: pcmu, Send: true, Recv: false}) // B on hold: sendonly
	expectNone := func(d time.Duration) {
		t.Helper()
		select {
		case who := <-fired:
			t.Fatalf("unexpected timeout of %s", who)
		case <-time.After(d):
		}
	}
	expectNone(time.Second) // A hears B; B holds (Recv=false) and never times out

	// B stops sending: A times out once.
	b.Update(Params{Remote: a.LocalAddr(), Codec: pcmu, Send: false, Recv: false})
	start := time.Now()
	select {
	case who := <-fired:
		if who != "a" {
			t.Fatalf("timeout of %s, want a", who)
		}
		// A stall of the engine (a loaded machine) delays the tick that
		// notices; its pacing record says by how much at most.
		if d, p := time.Since(start), e.Pacing(); d < 250*time.Millisecond || d > time.Second+p.Max {
			t.Errorf("timeout after %v, want about 300ms (engine pacing %+v)", d, p)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no timeout after RTP stopped")
	}
	expectNone(600 * time.Millisecond) // once only

	// A held (Recv=false) never times out; resuming restarts the timer.
	c := mustAllocate(t, e, func() { fired <- "c" })
	nowhere := loopback(40278) // nobody sends to c
	c.Update(Params{Remote: nowhere, Codec: pcmu, Send: true, Recv: false})
	expectNone(700 * time.Millisecond)
	c.Update(Params{Remote: nowhere, Codec: pcmu, Send: true, Recv: true})
	select {
	case who := <-fired:
		if who != "c" {
			t.Fatalf("timeout of %s, want c", who)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no timeout after resume without RTP")
	}
}

func TestDTMF(t *testing.T) {
	e := newTestEngine(t, testConfig(40280, 40299))
	t.Run("wire format", func(t *testing.T) {
		a := mustAllocate(t, e, nil)
		defer a.Close()
		raw := listenTest(t)
		a.Update(sendrecv(raw.LocalAddr().(*net.UDPAddr)))
		if err := a.QueueDTMF('7', 100*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := a.QueueDTMF('x', 0); err == nil {
			t.Error("QueueDTMF accepted 'x'")
		}
		var events []*rtp.Packet
		ends := 0
		readRTP(t, raw, 3*time.Second, func(p *rtp.Packet, _ netip.AddrPort) bool {
			if p.PayloadType == TelephoneEventPT {
				events = append(events, p)
				if p.Payload[1]&0x80 != 0 {
					ends++
				}
			} else if len(events) > 0 && ends < 3 {
				t.Fatalf("audio packet inside the event")
			}
			return ends < 3
		})
		if !events[0].Marker {
			t.Error("first event packet has no marker")
		}
		prevDur := 0
		for i, p := range events {
			if p.Timestamp != events[0].Timestamp || p.Payload[0] != 7 || len(p.Payload) != 4 {
				t.Errorf("event packet %d: ts %d payload %x", i, p.Timestamp, p.Payload)
			}
			if i > 0 && p.SequenceNumber != events[i-1].SequenceNumber+1 {
				t.Errorf("sequence gap at event packet %d", i)
			}
			d := int(p.Payload[2])<<8 | int(p.Payload[3])
			if d < prevDur {
				t.Errorf("duration went back at packet %d", i)
			}
			prevDur = d
		}
		if prevDur != 800 || len(events) != 5+2 {
			t.Errorf("final duration %d over %d packets, want 800 over 7 (5 + 2 repeated ends)", prevDur, len(events))
		}
		waitFor(t, time.Second, "DTMFSent == 1", func() bool { return a.Stats().DTMFSent == 1 })
	})
	t.Run("received without glitches", func(t *testing.T) {
		a, b := mustAllocate(t, e, nil), mustAllocate(t, e, nil)
		defer a.Close()
		defer b.Close()
		const amp = 8000
		rec := newTonePort(0, 0)
		a.Bind(newTonePort(440, amp))
		b.Bind(rec)
		var mu sync.Mutex
		var digits []rune
		b.OnDTMF(func(d DTMF) { mu.Lock(); digits = append(digits, d.Digit); mu.Unlock() })
		a.Update(sendrecv(b.LocalAddr()))
		b.Update(sendrecv(a.LocalAddr()))
		waitFor(t, 3*time.Second, "audio", func() bool { return b.Stats().PacketsReceived > 20 })
		for _, d := range "5#" {
			if err := a.QueueDTMF(d, 120*time.Millisecond); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 3*time.Second, "two digits", func() bool { return b.Stats().DTMFReceived == 2 })
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		if string(digits) != "5#" {
			t.Errorf("digits %q, want 5#", string(digits))
		}
		mu.Unlock()
		// Every played frame is either (concealed) tone or quiet: event
		// payloads never decoded as audio.
		got := rec.snapshot()
		for i := 0; i+160 <= len(got); i += 160 {
			f := got[i : i+160]
			if r := rms(f); r > amp*1.2/1.414 {
				t.Errorf("frame %d louder than the tone: RMS %.0f", i/160, r)
			} else if r > 300 && goertzel(f, 440, 8000) < 20*goertzel(f, 1500, 8000) {
				t.Errorf("frame %d is not tone: noise from event packets?", i/160)
			}
		}
	})
}
