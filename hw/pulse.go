package hw

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jfreymuth/pulse/proto"
)

// The pulse backend talks the PulseAudio native protocol through
// github.com/jfreymuth/pulse/proto only. The library's high-level
// PlaybackStream is not used: in v0.1.1 it races (Close writes the stream
// state that its run goroutine reads) and slices past its buffer when a
// server (pipewire-pulse) requests more than BufferMaxLength. Here one
// goroutine per channel owns the connection and both streams, and the
// proto read loop's callback only hands data over under locks.

// pulseRequestTimeout bounds each request/reply round trip.
const pulseRequestTimeout = 2 * time.Second

type pulseChannel struct {
	*devQueues
	cfg    Config
	ch     ChannelConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	xruns atomic.Uint64 // underflows and overflows of every session

	mu      sync.Mutex
	session *pulseSession // current session, nil while reconnecting
	conns   int           // successful connections so far
}

// Stats implements the channels' Stats method.
func (p *pulseChannel) Stats() Stats {
	p.mu.Lock()
	st := Stats{Backend: "pulse", Connected: p.session != nil, Reconnects: uint64(max(p.conns-1, 0))}
	p.mu.Unlock()
	st.Xruns = p.xruns.Load()
	return p.stats(st)
}

func openPulse(octx context.Context, cfg Config, ch ChannelConfig, log *slog.Logger) (Channel, error) {
	ctx, cancel := context.WithCancel(context.Background())
	// Until the channel is open, the caller's context can abort the
	// connection and the wait for the server; then the channel lives on.
	stop := context.AfterFunc(octx, cancel)
	defer stop()
	p := &pulseChannel{
		devQueues: newDevQueues(cfg),
		cfg:       cfg,
		ch:        ch,
		log:       log,
		ctx:       ctx,
		cancel:    cancel,
		done:      make(chan struct{}),
	}
	// The first connection is synchronous so that a wrong server, sink or
	// source fails at start-up with a clear error; later losses are retried.
	// A server that is not running yet is waited for, up to ServerWait.
	s, err := p.connect()
	if err != nil && errors.Is(err, errServerDown) && cfg.ServerWait > 0 {
		s, err = p.waitForServer(err)
	}
	if err == nil && !stop() {
		// The caller gave up as the connection succeeded.
		s.close()
		err = context.Cause(octx)
	}
	if err != nil {
		cancel()
		if octx.Err() != nil {
			return nil, fmt.Errorf("pulse: start given up: %w", context.Cause(octx))
		}
		return nil, err
	}
	p.setSession(s)
	go p.run(s)
	return p, nil
}

// errServerDown marks a connection that failed because nothing listens
// (the server is not running yet), as opposed to a refused stream.
var errServerDown = errors.New("sound server not running")

// waitForServer retries the first connection while the server is down, for
// at most ServerWait.
func (p *pulseChannel) waitForServer(first error) (*pulseSession, error) {
	start := time.Now()
	p.log.Info("pulse: sound server not running yet, waiting", "wait", p.cfg.ServerWait, "err", first)
	var b backoff
	err := first
	for errors.Is(err, errServerDown) {
		left := p.cfg.ServerWait - time.Since(start)
		if left <= 0 {
			return nil, fmt.Errorf("%w (waited %v)", err, time.Since(start).Round(time.Millisecond))
		}
		t := time.NewTimer(min(b.next(), left))
		select {
		case <-p.ctx.Done():
			t.Stop()
			return nil, p.ctx.Err()
		case <-t.C:
		}
		var s *pulseSession
		if s, err = p.connect(); err == nil {
			p.log.Info("pulse: sound server up", "after", time.Since(start).Round(time.Millisecond))
			return s, nil
		}
	}
	return nil, err
}

// Close stops the channel's goroutine and closes the connection; the server
// then drops both streams. It never waits on the server.
func (p *pulseChannel) Close() error {
	p.cancel()
	<-p.done
	return nil
}

func (p *pulseChannel) setSession(s *pulseSession) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.session = s
	if s != nil {
		p.conns++
	}
}

// run owns the connection: serve a session until it is lost, then reconnect
// with back-off until Close. Frames written meanwhile are queued and the
// oldest dropped, so the call goes on.
func (p *pulseChannel) run(s *pulseSession) {
	defer close(p.done)
	var b backoff
	failures := 0
	for {
		if s != nil {
			err := s.serve(p.ctx, p.devQueues)
			s.close()
			p.setSession(nil)
			p.deviceLevel.Store(0)
			if p.ctx.Err() != nil {
				return
			}
			p.log.Warn("pulse: connection lost, reconnecting", "err", err)
			p.capture.reset()
			s = nil
		}
		t := time.NewTimer(b.next())
		select {
		case <-p.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		var err error
		s, err = p.connect()
		if err != nil {
			failures++
			// The first failure is worth a warning; the rest of the outage is noise.
			lvl := slog.LevelDebug
			if failures == 1 {
				lvl = slog.LevelWarn
			}
			p.log.Log(p.ctx, lvl, "pulse: reconnect failed, retrying", "err", err, "attempt", failures)
			continue
		}
		// Audio written during the outage is late now. Sent, it would fill
		// the new stream's buffer at once and stay there as extra latency
		// for the rest of the call (the stream only asks for what it
		// plays): start the stream empty, as a new one.
		p.play.trim(0)
		p.setSession(s)
		p.log.Info("pulse: reconnected", "after_attempts", failures+1)
		failures = 0
		b.reset()
	}
}

// pulseSession is one connection with one playback and one record stream.
type pulseSession struct {
	conn net.Conn
	c    *proto.Client
	ch   int // channels per sample frame

	playIndex  uint32
	playAttr   proto.CreatePlaybackStreamReply
	recordAttr proto.CreateRecordStreamReply

	kick  chan struct{}  // the server requested data
	xruns *atomic.Uint64 // the channel's counter
	q     *devQueues     // the channel's queues: margins and the server's level

	mu        sync.Mutex // guards the fields below, shared with the read loop
	requested int        // bytes the server asked for and has not got yet
	primed    bool       // a start's worth sent since the start or the last underflow
	lost      error      // first reason the session died
	lostCh    chan struct{}
	capture   *sampleQueue
	carry     []byte  // odd trailing byte of a data packet
	scratch   []int16 // decode buffer, read loop only
}

// connect dials the server, authenticates and creates both streams.
func (p *pulseChannel) connect() (*pulseSession, error) {
	servers := pulseServers(p.cfg.PulseServer)
	var errs []error
	for _, srv := range servers {
		s, err := p.connectTo(srv)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
		if p.ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (p *pulseChannel) connectTo(srv pulseServer) (*pulseSession, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(p.ctx, pulseRequestTimeout)
	defer cancel()
	conn, err := d.DialContext(dctx, srv.network, srv.addr)
	if err != nil {
		return nil, fmt.Errorf("pulse: connect to %s: %w: %w (is PulseAudio or pipewire-pulse running? set audio pulse-server or PULSE_SERVER)", srv, errServerDown, err)
	}
	s := &pulseSession{
		conn:    conn,
		ch:      p.cfg.Format.Channels,
		kick:    make(chan struct{}, 1),
		xruns:   &p.xruns,
		q:       p.devQueues,
		lostCh:  make(chan struct{}),
		capture: p.capture,
	}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	// Close aborts a connect in progress: every blocking call here is on conn.
	stop := context.AfterFunc(p.ctx, func() { conn.Close() })
	defer stop()

	s.c = &proto.Client{}
	s.c.SetTimeout(pulseRequestTimeout)
	// Set before Open: the read loop calls it from its first message on
	// (proto.Connect sets it only after auth, and a server closing the
	// connection during auth would make the read loop call a nil func).
	s.c.Callback = s.onMessage
	wc := &watchedConn{Conn: conn, onErr: s.fail}
	// Send our credentials with the auth packet, as libpulse does: a system
	// PulseAudio admits members of its auth group (pulse-access) by them.
	wc.sendCreds.Store(srv.network == "unix")
	s.c.Open(wc)

	var auth proto.AuthReply
	if err := s.c.Request(&proto.Auth{Version: s.c.Version(), Cookie: pulseCookie()}, &auth); err != nil {
		return nil, fmt.Errorf("pulse: authenticate to %s: %w (the server needs auth-anonymous=1, a readable cookie, or this user in its auth group)", srv, err)
	}
	wc.sendCreds.Store(false)
	s.c.SetVersion(auth.Version)
	props := proto.PropList{
		"application.name":           proto.PropListString("telestra-sipd"),
		"application.process.id":     proto.PropListString(strconv.Itoa(os.Getpid())),
		"application.process.binary": proto.PropListString(filepath.Base(os.Args[0])),
	}
	if err := s.c.Request(&proto.SetClientName{Props: props}, &proto.SetClientNameReply{}); err != nil {
		return nil, fmt.Errorf("pulse: set client name on %s: %w", srv, err)
	}

	// A named sink or source must exist: pipewire-pulse accepts a stream
	// for an unknown name and links it to the default device instead, where
	// a call's audio would play on another channel's device.
	if p.ch.Sink != "" {
		var info proto.GetSinkInfoReply
		if err := s.c.Request(&proto.GetSinkInfo{SinkIndex: proto.Undefined, SinkName: p.ch.Sink}, &info); err != nil {
			return nil, fmt.Errorf("pulse: sink %q on %s: %w (list sinks: pactl list short sinks)", p.ch.Sink, srv, err)
		}
	}
	if p.ch.Source != "" {
		var info proto.GetSourceInfoReply
		if err := s.c.Request(&proto.GetSourceInfo{SourceIndex: proto.Undefined, SourceName: p.ch.Source}, &info); err != nil {
			return nil, fmt.Errorf("pulse: source %q on %s: %w (list sources: pactl list short sources)", p.ch.Source, srv, err)
		}
	}

	var info proto.GetServerInfoReply
	if err := s.c.Request(&proto.GetServerInfo{}, &info); err != nil {
		return nil, fmt.Errorf("pulse: server info from %s: %w", srv, err)
	}
	pipewire := strings.Contains(info.PackageName, "PipeWire")
	f := p.cfg.Format
	bytesPer := func(d time.Duration) uint32 { return uint32(2 * f.FrameSamples(d)) }
	spec := proto.SampleSpec{Format: proto.FormatInt16LE, Channels: byte(f.Channels), Rate: uint32(f.Rate)}
	cmap := channelMap(f.Channels)
	vols := make(proto.ChannelVolumes, f.Channels)
	for i := range vols {
		vols[i] = uint32(proto.VolumeNorm)
	}
	name := streamProps(p.ch.Name)

	play := pulsePlayAttr(p.cfg, pipewire)
	if err := s.c.Request(&proto.CreatePlaybackStream{
		SampleSpec:            spec,
		ChannelMap:            cmap,
		SinkIndex:             proto.Undefined,
		SinkName:              p.ch.Sink, // empty: the default sink
		ChannelVolumes:        vols,
		BufferMaxLength:       proto.Undefined,
		BufferTargetLength:    bytesPer(play.tlength),
		BufferPrebufferLength: bytesPer(play.prebuf),
		BufferMinimumRequest:  bytesPer(play.minreq),
		AdjustLatency:         !play.early,
		EarlyRequests:         play.early,
		Properties:            name,
	}, &s.playAttr); err != nil {
		return nil, fmt.Errorf("pulse: play to sink %s on %s: %w (list sinks: pactl list short sinks)", quoteOr(p.ch.Sink, "default"), srv, err)
	}
	s.playIndex = s.playAttr.StreamIndex
	if p.ch.Sink != "" && s.playAttr.SinkName != p.ch.Sink {
		return nil, fmt.Errorf("pulse: play to sink %q on %s: the server routed the stream to %q instead", p.ch.Sink, srv, s.playAttr.SinkName)
	}
	s.addRequested(int(s.playAttr.Missing))

	if err := s.c.Request(&proto.CreateRecordStream{
		SampleSpec:         spec,
		ChannelMap:         cmap,
		SourceIndex:        proto.Undefined,
		SourceName:         p.ch.Source, // empty: the default source
		ChannelVolumes:     vols,
		BufferMaxLength:    proto.Undefined,
		BufferFragSize:     bytesPer(pulseFragSize(p.cfg, pipewire)),
		AdjustLatency:      true,
		DirectOnInputIndex: proto.Undefined,
		Properties:         name,
	}, &s.recordAttr); err != nil {
		return nil, fmt.Errorf("pulse: record from source %s on %s: %w (list sources: pactl list short sources)", quoteOr(p.ch.Source, "default"), srv, err)
	}
	if p.ch.Source != "" && s.recordAttr.SourceName != p.ch.Source {
		return nil, fmt.Errorf("pulse: record from source %q on %s: the server routed the stream to %q instead", p.ch.Source, srv, s.recordAttr.SourceName)
	}
	ok = true
	frag := int(s.recordAttr.BufferFragSize) / 2
	if s.recordAttr.BufferFragSize == proto.Undefined {
		frag = f.FrameSamples(p.cfg.Buffer)
	}
	p.setMargins(pulseMargins(p.cfg, pipewire, frag))
	ms := func(b uint32) string {
		if b == proto.Undefined {
			return "server default"
		}
		return (time.Duration(b) * time.Second / time.Duration(2*f.Rate*f.Channels)).String()
	}
	p.log.Info("pulse: streams open", "server", srv.String(), "server_package", info.PackageName+" "+info.PackageVersion,
		"sink", s.playAttr.SinkName, "source", s.recordAttr.SourceName,
		"rate", f.Rate, "play_tlength", ms(s.playAttr.BufferTargetLength),
		"record_fragsize", ms(s.recordAttr.BufferFragSize))
	return s, nil
}

// DefaultPipeWireQuantum is Config.PipeWireQuantum's default, 5.3 ms: what
// keeps a call between two channels within 60 ms on pipewire-pulse
// (docs/audio.md). PipeWire's own default, 1024, gives about 100 ms.
const DefaultPipeWireQuantum = 256

// pipeWireQuantum is the graph period our streams ask pipewire-pulse for
// (Config.PipeWireQuantum, samples at 48 kHz). pipewire-pulse turns each stream's buffer attributes into a node
// latency and runs the graph at the largest power-of-two quantum that fits
// the smallest of them, so the graph runs at this period or a smaller one
// another client asks for. Every term of the path is a quantum: pipewire-
// pulse's own buffer for the stream, the playback margin, the capture
// delivery. At 1024 (21.3 ms) a call between two channels takes about
// 100 ms, at 256 (5.3 ms) about 50 ms. A smaller period needs PipeWire's
// data threads to run in time (realtime scheduling: module-rt, rtkit);
// when they miss cycles the stream underruns and the margins rise.
func pipeWireQuantum(cfg Config) time.Duration {
	q := cfg.PipeWireQuantum
	if q <= 0 {
		q = DefaultPipeWireQuantum
	}
	return time.Duration(q) * time.Second / 48000
}

type playAttr struct {
	tlength, prebuf, minreq time.Duration
	early                   bool // early requests: the sink's latency is minreq
}

// pulsePlayAttr is what the playback stream asks for. How much the server
// really holds is the backend's business (the playback margin, primed
// locally and trimmed by devQueues); tlength only has to be above it.
//
// PulseAudio: early requests, so the sink runs at minreq (half the device
// buffer, 5 ms) and asks for data in such small steps, and tlength is not
// shortened by the sink's latency (adjust-latency would halve it and give
// the sink the other half as its own buffer); prebuf minreq, as the backend
// primes the stream itself.
//
// pipewire-pulse computes the node latency as (tlength - 2·minreq)/2 and
// keeps tlength minus that latency: asked so that the latency is one
// quantum (see pipeWireQuantum) and what remains is above the largest
// margin. It ignores prebuf.
func pulsePlayAttr(cfg Config, pipewire bool) playAttr {
	f := cfg.FrameTime
	if !pipewire {
		req := max(cfg.Buffer/2, time.Millisecond)
		return playAttr{tlength: cfg.Buffer + 2*f, prebuf: req, minreq: req, early: true}
	}
	lat := pipeWireQuantum(cfg) + time.Millisecond
	return playAttr{tlength: 2*lat + 2*f, prebuf: 2 * f, minreq: f}
}

// pulseMargins are the playback and capture margins (see margin) for a
// pulse server, in samples; frag is the record fragment the server granted.
//
// The lowest margin is the server's own granularity, by which one late
// delivery starves the other side: PulseAudio's sink takes minreq (5 ms) at
// a time and its source delivers a fragment; PipeWire moves one quantum per
// graph cycle both ways and delivers capture by the fragment or the quantum,
// whichever is larger. Where that is a frame or more (a 1024 quantum), a
// quantum that arrives a little after the read it used to precede leaves
// it a frame short, so there the capture margin is a whole frame (what a
// quarter frame showed under load).
// The margins start there and rise by half a frame per starvation, to at
// most two frames above (playback) or one frame above (capture) the lowest;
// each falls by an eighth of a frame after five quiet seconds.
func pulseMargins(cfg Config, pipewire bool, frag int) (play, capture margin) {
	f := cfg.Format
	frame := f.FrameSamples(cfg.FrameTime)
	adapt := func(lo, span int) margin {
		return margin{cur: lo, lo: lo, hi: lo + span, up: frame / 2, down: max(frame/8, 1), decay: 5}
	}
	if pipewire {
		q := f.FrameSamples(pipeWireQuantum(cfg))
		capLo := frame
		if g := max(frag, q); g < frame {
			capLo = g
		}
		return adapt(q, 2*frame), adapt(capLo, frame)
	}
	return adapt(f.FrameSamples(pulsePlayAttr(cfg, false).minreq), 2*frame), adapt(frag, frame)
}

// pulseFragSize is the record fragment: the device buffer, and on
// pipewire-pulse (node latency = fragsize) at least one quantum.
func pulseFragSize(cfg Config, pipewire bool) time.Duration {
	if pipewire {
		return max(cfg.Buffer, pipeWireQuantum(cfg)+time.Millisecond)
	}
	return cfg.Buffer
}

// streamProps gives each channel's streams their own identity. Session
// managers remember volume and routing per stream by the first of
// media.role, application.id, application.name, media.name (WirePlumber's
// restore-stream): with only the shared application.name every channel's
// stream would get the volume last set on any of them.
func streamProps(channel string) proto.PropList {
	return proto.PropList{
		"media.name":     proto.PropListString("telestra-sip " + channel),
		"application.id": proto.PropListString("telestra-sipd." + channel),
	}
}

// onMessage runs on the proto read loop: it must not block or make requests.
func (s *pulseSession) onMessage(msg interface{}) {
	switch m := msg.(type) {
	case *proto.Request:
		// Only our playback stream exists on this connection.
		s.addRequested(int(m.Length))
	case *proto.Underflow:
		s.xruns.Add(1)
		s.q.underruns.Add(1)
		s.mu.Lock()
		s.primed = false
		s.publishLevel()
		s.mu.Unlock()

	case *proto.Overflow:
		s.xruns.Add(1)
	case *proto.DataPacket:
		s.onData(m.Data)
	case *proto.PlaybackStreamKilled:
		s.fail(errors.New("pulse: playback stream killed by the server (sink removed?)"))
	case *proto.RecordStreamKilled:
		s.fail(errors.New("pulse: record stream killed by the server (source removed?)"))
	case *proto.ConnectionClosed:
		s.fail(errors.New("pulse: server closed the connection"))
	}
}

func (s *pulseSession) addRequested(n int) {
	s.mu.Lock()
	s.requested += n
	s.publishLevel()
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// publishLevel tells devQueues how much audio the server holds: what it
// keeps as its target minus what it still asks for (within minreq: the
// server requests in such steps). Nothing while the stream is not primed
// (starting, or stopped after an underflow). s.mu held.
func (s *pulseSession) publishLevel() {
	if s.lost != nil {
		return // the channel has moved on (run resets the level)
	}
	lvl := 0
	if s.primed {
		lvl = max(int(s.playAttr.BufferTargetLength)-s.requested, 0) / 2
	}
	s.q.deviceLevel.Store(int64(lvl))
}

// onData queues recorded audio. Data is only valid during the call.
func (s *pulseSession) onData(data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost != nil {
		return
	}
	if len(s.carry) > 0 {
		s.carry = append(s.carry, data...)
		data, s.carry = s.carry, nil
	}
	if len(data)%2 == 1 {
		s.carry = append(s.carry[:0], data[len(data)-1])
		data = data[:len(data)-1]
	}
	if cap(s.scratch) < len(data)/2 {
		s.scratch = make([]int16, len(data)/2)
	}
	s.capture.write(getS16LE(s.scratch, data))
}

// fail records why the session ended; the first reason wins.
func (s *pulseSession) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lost == nil {
		s.lost = err
		close(s.lostCh)
	}
}

func (s *pulseSession) close() {
	s.fail(errClosed)
	s.conn.Close()
}

// serve sends queued playback audio whenever the server has asked for it and
// audio is queued, until ctx ends or the session is lost. It never pads with
// silence: when the queue runs dry the server plays silence itself (an
// underflow) and the stream restarts once a frame plus the playback margin
// is queued.
func (s *pulseSession) serve(ctx context.Context, q *devQueues) error {
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	var samples []int16
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.lostCh:
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.lost
		case <-s.kick:
		case <-q.wake:
		}
		s.mu.Lock()
		want := s.requested / (2 * s.ch) * s.ch // whole sample frames
		primed := s.primed
		s.mu.Unlock()
		queued := q.play.len() / s.ch * s.ch
		// Start (and restart after an underflow) with a frame plus the
		// margin queued, sent at once, so the server holds the margin when
		// the next frame comes: pipewire-pulse ignores prebuf and starts a
		// stream as soon as it holds one quantum, so a stream fed frame by
		// frame would start, and stay, with no margin at all. More than
		// that is late (the frames a media clock caught up on after the
		// stall that underran): the stream restarts with the newest.
		if !primed {
			start := (q.frame + int(q.playKeep.Load())) / s.ch * s.ch
			if queued < start {
				continue
			}
			if q.play.trim(start) {
				queued = start
			}
		}
		n := min(want, queued)
		if n == 0 {
			continue
		}
		if cap(samples) < n {
			samples = make([]int16, n)
			buf = make([]byte, 2*n)
		}
		got := q.play.readSome(samples[:n])
		if err := s.c.Send(s.playIndex, putS16LE(buf, samples[:got])); err != nil {
			return fmt.Errorf("pulse: send audio: %w", err)
		}
		s.mu.Lock()
		s.requested -= 2 * got
		s.primed = true
		s.publishLevel()
		s.mu.Unlock()
	}
}

// watchedConn reports the first read or write error: the proto read loop
// only signals io.EOF, not a reset connection.
//
// While sendCreds is set (during authentication on a unix socket) it also
// sends SCM_CREDENTIALS, as libpulse does: a system PulseAudio admits members
// of its auth group (pulse-access) by them. PulseAudio expects the
// credentials on a whole frame, while proto writes the 20-byte frame header
// and the payload separately, so frames are assembled before sending.
type watchedConn struct {
	net.Conn
	onErr     func(error)
	sendCreds atomic.Bool
	pending   []byte // partial frame while sendCreds is set; proto serialises writes
}

func (w *watchedConn) Read(b []byte) (int, error) {
	n, err := w.Conn.Read(b)
	if err != nil {
		w.onErr(fmt.Errorf("pulse: read: %w", err))
	}
	return n, err
}

func (w *watchedConn) Write(b []byte) (int, error) {
	uc, ok := w.Conn.(*net.UnixConn)
	if !ok || !w.sendCreds.Load() {
		n, err := w.Conn.Write(b)
		if err != nil {
			w.onErr(fmt.Errorf("pulse: write: %w", err))
		}
		return n, err
	}
	w.pending = append(w.pending, b...)
	for len(w.pending) >= 20 {
		frame := 20 + int(binary.BigEndian.Uint32(w.pending))
		if len(w.pending) < frame {
			break
		}
		oob := syscall.UnixCredentials(&syscall.Ucred{
			Pid: int32(os.Getpid()), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid()),
		})
		if _, _, err := uc.WriteMsgUnix(w.pending[:frame], oob, nil); err != nil {
			w.onErr(fmt.Errorf("pulse: write: %w", err))
			return 0, err
		}
		w.pending = w.pending[frame:]
	}
	return len(b), nil
}

type pulseServer struct{ network, addr string }

func (s pulseServer) String() string { return s.network + ":" + s.addr }

// pulseServers resolves the server string like libpulse: explicit setting,
// else $PULSE_SERVER, else the session socket $XDG_RUNTIME_DIR/pulse/native
// and then the system-wide /run/pulse/native. Entries are tried in order;
// "{host}" prefixes restrict an entry to that host name.
func pulseServers(explicit string) []pulseServer {
	str := explicit
	if str == "" {
		str = os.Getenv("PULSE_SERVER")
	}
	if str == "" {
		var out []pulseServer
		if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
			out = append(out, pulseServer{"unix", filepath.Join(d, "pulse", "native")})
		}
		return append(out, pulseServer{"unix", "/run/pulse/native"})
	}
	host, _ := os.Hostname()
	var out []pulseServer
	for _, f := range strings.Fields(str) {
		if strings.HasPrefix(f, "{") {
			end := strings.IndexByte(f, '}')
			if end < 0 || f[1:end] != host {
				continue
			}
			f = f[end+1:]
		}
		switch {
		case strings.HasPrefix(f, "/"):
			out = append(out, pulseServer{"unix", f})
		case strings.HasPrefix(f, "unix:"):
			out = append(out, pulseServer{"unix", f[5:]})
		case strings.HasPrefix(f, "tcp4:"):
			out = append(out, pulseServer{"tcp4", withPort(f[5:])})
		case strings.HasPrefix(f, "tcp6:"):
			out = append(out, pulseServer{"tcp6", withPort(f[5:])})
		case strings.HasPrefix(f, "tcp:"):
			out = append(out, pulseServer{"tcp", withPort(f[4:])})
		}
	}
	return out
}

// withPort adds PulseAudio's default TCP port 4713 when none is given.
func withPort(hostport string) string {
	if _, _, err := net.SplitHostPort(hostport); err == nil {
		return hostport
	}
	return net.JoinHostPort(strings.Trim(hostport, "[]"), "4713")
}

// pulseCookie is $PULSE_COOKIE or ~/.config/pulse/cookie; without one the
// server must allow anonymous clients (auth-anonymous=1) or authenticate
// this user by group (system mode, pulse-access), and any 256 bytes do.
func pulseCookie() []byte {
	path := os.Getenv("PULSE_COOKIE")
	if path == "" {
		if home, err := os.UserHomeDir(); err == nil {
			path = filepath.Join(home, ".config", "pulse", "cookie")
		}
	}
	if path != "" {
		if b, err := os.ReadFile(path); err == nil && len(b) == 256 {
			return b
		}
	}
	return make([]byte, 256)
}

func channelMap(n int) proto.ChannelMap {
	switch n {
	case 1:
		return proto.ChannelMap{proto.ChannelMono}
	case 2:
		return proto.ChannelMap{proto.ChannelLeft, proto.ChannelRight}
	}
	m := make(proto.ChannelMap, n)
	for i := range m {
		m[i] = byte(proto.ChannelAux0 + i)
	}
	return m
}

func quoteOr(s, def string) string {
	if s == "" {
		return "(" + def + ")"
	}
	return strconv.Quote(s)
}
