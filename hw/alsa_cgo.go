//go:build cgo

package hw

/*
#cgo pkg-config: alsa
#include <stdlib.h>
#include <alsa/asoundlib.h>

// hw_open opens a PCM in non-blocking mode (so the device goroutine never
// sleeps inside ALSA and Close cannot hang), asks for S16_LE interleaved at
// the call's rate with plug resampling allowed, and makes playback start as
// soon as one period is queued instead of when the whole buffer is full.
static int hw_open(snd_pcm_t **pcm, const char *name, int capture, unsigned int rate,
                   unsigned int channels, unsigned int latency_us,
                   snd_pcm_uframes_t *buffer, snd_pcm_uframes_t *period) {
	int err = snd_pcm_open(pcm, name, capture ? SND_PCM_STREAM_CAPTURE : SND_PCM_STREAM_PLAYBACK,
	                       SND_PCM_NONBLOCK);
	if (err < 0) {
		*pcm = NULL;
		return err;
	}
	err = snd_pcm_set_params(*pcm, SND_PCM_FORMAT_S16_LE, SND_PCM_ACCESS_RW_INTERLEAVED,
	                         channels, rate, 1, latency_us);
	if (err >= 0)
		err = snd_pcm_get_params(*pcm, buffer, period);
	if (err >= 0 && !capture) {
		snd_pcm_sw_params_t *sw;
		snd_pcm_sw_params_alloca(&sw);
		err = snd_pcm_sw_params_current(*pcm, sw);
		if (err >= 0)
			err = snd_pcm_sw_params_set_start_threshold(*pcm, sw, *period);
		if (err >= 0)
			err = snd_pcm_sw_params(*pcm, sw);
	}
	if (err < 0) {
		snd_pcm_close(*pcm);
		*pcm = NULL;
	}
	return err;
}
*/
import "C"

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unsafe"
)

// alsaChannel moves audio between its devQueues and two ALSA PCMs with one
// goroutine that polls the PCMs every half period. The PCMs are opened
// non-blocking: no call into ALSA waits, so Close returns within a tick.
type alsaChannel struct {
	*devQueues
	cfg    Config
	ch     ChannelConfig
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	open  bool   // PCMs open now
	opens int    // successful opens of the PCM pair
	xruns uint64 // recovered under/overruns
}

// Stats implements the channels' Stats method.
func (a *alsaChannel) Stats() Stats {
	a.mu.Lock()
	st := Stats{Backend: "alsa", Connected: a.open, Reconnects: uint64(max(a.opens-1, 0)), Xruns: a.xruns}
	a.mu.Unlock()
	return a.stats(st)
}

// alsaPCM is one opened PCM with its negotiated sizes, in frames.
type alsaPCM struct {
	pcm    *C.snd_pcm_t
	name   string
	buffer int
	period int
}

func openALSA(cfg Config, ch ChannelConfig, log *slog.Logger) (Channel, error) {
	a := &alsaChannel{
		devQueues: newDevQueues(cfg),
		cfg:       cfg,
		ch:        ch,
		log:       log,
		done:      make(chan struct{}),
	}
	// The first open is synchronous so that a wrong PCM name fails at
	// start-up; later fatal errors are retried with back-off.
	play, rec, err := a.openPair()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	go a.run(ctx, play, rec)
	return a, nil
}

// alsaCloseWait bounds Close: a PCM plugin (the pulse plugin, say) can block
// inside one ALSA call even in non-blocking mode, and a daemon shutting down
// must not hang on it.
const alsaCloseWait = 2 * time.Second

// Close stops the device goroutine, which drops and closes both PCMs. If
// the goroutine is stuck inside ALSA, Close reports it after alsaCloseWait;
// the goroutine still exits (and closes the PCMs) when ALSA returns.
func (a *alsaChannel) Close() error {
	a.cancel()
	t := time.NewTimer(alsaCloseWait)
	defer t.Stop()
	select {
	case <-a.done:
		return nil
	case <-t.C:
		return fmt.Errorf("alsa: channel %q: device thread still inside an ALSA call after %v; it exits when that call returns", a.ch.Name, alsaCloseWait)
	}
}

func pcmName(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

func (a *alsaChannel) openPair() (play, rec *alsaPCM, err error) {
	play, err = a.openPCM(pcmName(a.ch.Sink), false)
	if err != nil {
		return nil, nil, err
	}
	rec, err = a.openPCM(pcmName(a.ch.Source), true)
	if err != nil {
		play.close()
		return nil, nil, err
	}
	a.mu.Lock()
	a.opens++
	a.open = true
	a.mu.Unlock()
	a.log.Info("alsa: PCMs open", "playback", play.name, "capture", rec.name, "rate", a.cfg.Format.Rate,
		"play_buffer", a.frames(play.buffer), "play_period", a.frames(play.period),
		"capture_buffer", a.frames(rec.buffer), "capture_period", a.frames(rec.period))
	return play, rec, nil
}

func (a *alsaChannel) frames(n int) time.Duration {
	return time.Duration(n) * time.Second / time.Duration(a.cfg.Format.Rate)
}

func (a *alsaChannel) openPCM(name string, capture bool) (*alsaPCM, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	// The device buffer holds cfg.Buffer plus two frames: the media clock
	// hands over a whole frame per tick.
	latency := a.cfg.Buffer + 2*a.cfg.FrameTime
	var pcm *C.snd_pcm_t
	var buffer, period C.snd_pcm_uframes_t
	capt := C.int(0)
	dir := "playback"
	if capture {
		capt, dir = 1, "capture"
	}
	rc := C.hw_open(&pcm, cname, capt, C.uint(a.cfg.Format.Rate), C.uint(a.cfg.Format.Channels),
		C.uint(latency/time.Microsecond), &buffer, &period)
	if rc < 0 {
		return nil, fmt.Errorf("alsa: open %s PCM %q at %d Hz, %d channel(s): %s (list PCMs: aplay -L; use a plug PCM such as \"default\" or \"plughw:CARD,DEV\" to convert rates)",
			dir, name, a.cfg.Format.Rate, a.cfg.Format.Channels, alsaError(rc))
	}
	p := &alsaPCM{pcm: pcm, name: name, buffer: int(buffer), period: int(period)}
	if capture {
		if rc := C.snd_pcm_start(pcm); rc < 0 {
			p.close()
			return nil, fmt.Errorf("alsa: start capture PCM %q: %s", name, alsaError(C.int(rc)))
		}
	}
	return p, nil
}

func (p *alsaPCM) close() {
	if p == nil || p.pcm == nil {
		return
	}
	C.snd_pcm_drop(p.pcm)
	C.snd_pcm_close(p.pcm)
	p.pcm = nil
}

func alsaError(rc C.int) string { return C.GoString(C.snd_strerror(rc)) }

// run owns the PCMs until ctx ends. A fatal error closes both and reopens
// them with back-off while frames keep being accepted (and dropped).
func (a *alsaChannel) run(ctx context.Context, play, rec *alsaPCM) {
	defer close(a.done)
	var b backoff
	failures := 0
	for {
		if play != nil {
			err := a.serve(ctx, play, rec)
			play.close()
			rec.close()
			play, rec = nil, nil
			a.mu.Lock()
			a.open = false
			a.mu.Unlock()
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("alsa: device failed, reopening", "err", err)
			a.capture.reset()
		}
		t := time.NewTimer(b.next())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		var err error
		play, rec, err = a.openPair()
		if err != nil {
			failures++
			lvl := slog.LevelDebug
			if failures == 1 {
				lvl = slog.LevelWarn
			}
			a.log.Log(ctx, lvl, "alsa: reopen failed, retrying", "err", err, "attempt", failures)
			continue
		}
		a.log.Info("alsa: reopened", "after_attempts", failures+1)
		failures = 0
		b.reset()
	}
}

// serve pumps audio until ctx ends or an error that snd_pcm_recover cannot
// fix.
func (a *alsaChannel) serve(ctx context.Context, play, rec *alsaPCM) error {
	ch := a.cfg.Format.Channels
	tick := time.NewTicker(min(max(a.frames(min(play.period, rec.period))/2, 2*time.Millisecond), 10*time.Millisecond))
	defer tick.Stop()
	playBuf := make([]int16, play.buffer*ch)
	recBuf := make([]int16, rec.buffer*ch)
	// Keep at least a period (and a frame) queued in the device while the
	// call sends nothing, so idle playback does not under-run constantly.
	lowWater := max(play.period, a.cfg.Format.FrameSamples(a.cfg.FrameTime)/ch)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-a.wake:
		}
		if err := a.capturePump(rec, recBuf); err != nil {
			return err
		}
		if err := a.playPump(play, playBuf, lowWater); err != nil {
			return err
		}
	}
}

// recover handles an ALSA error code: under/overruns and suspends are
// recovered (counted as xruns), anything else is fatal.
func (a *alsaChannel) recover(p *alsaPCM, rc C.long, capture bool) error {
	if rc == -C.EAGAIN {
		return nil
	}
	if r := C.snd_pcm_recover(p.pcm, C.int(rc), 1); r < 0 {
		return fmt.Errorf("alsa: PCM %q: %s (recover: %s)", p.name, alsaError(C.int(rc)), alsaError(r))
	}
	a.mu.Lock()
	a.xruns++
	a.mu.Unlock()
	if capture {
		if r := C.snd_pcm_start(p.pcm); r < 0 {
			return fmt.Errorf("alsa: restart capture PCM %q: %s", p.name, alsaError(r))
		}
	}
	return nil
}

// capturePump reads what the device has captured, at most a buffer per
// tick (a PCM that is not paced by a clock, such as null, always has more).
func (a *alsaChannel) capturePump(p *alsaPCM, buf []int16) error {
	ch := a.cfg.Format.Channels
	for range 2 {
		avail := C.snd_pcm_avail_update(p.pcm)
		if avail < 0 {
			return a.recover(p, C.long(avail), true)
		}
		if avail == 0 {
			return nil
		}
		n := min(int(avail), len(buf)/ch)
		got := C.snd_pcm_readi(p.pcm, unsafe.Pointer(&buf[0]), C.snd_pcm_uframes_t(n))
		if got < 0 {
			return a.recover(p, C.long(got), true)
		}
		if got == 0 {
			return nil
		}
		a.capture.write(buf[:int(got)*ch])
	}
	return nil
}

func (a *alsaChannel) playPump(p *alsaPCM, buf []int16, lowWater int) error {
	ch := a.cfg.Format.Channels
	avail := C.snd_pcm_avail_update(p.pcm)
	if avail < 0 {
		return a.recover(p, C.long(avail), false)
	}
	free := min(int(avail), p.buffer)
	fill := p.buffer - free
	// Real audio first, as much as the device takes.
	if n := min(free, a.play.len()/ch); n > 0 {
		got := a.play.readSome(buf[:n*ch]) / ch
		w, err := a.writei(p, buf[:got*ch])
		if err != nil {
			return err
		}
		fill += w
		free -= w
	}
	if fill < lowWater && free > 0 {
		n := min(free, lowWater+p.period-fill)
		clear(buf[:n*ch])
		if _, err := a.writei(p, buf[:n*ch]); err != nil {
			return err
		}
	}
	return nil
}

// writei writes interleaved samples; it returns frames written.
func (a *alsaChannel) writei(p *alsaPCM, s []int16) (int, error) {
	ch := a.cfg.Format.Channels
	frames := len(s) / ch
	done := 0
	for done < frames {
		w := C.snd_pcm_writei(p.pcm, unsafe.Pointer(&s[done*ch]), C.snd_pcm_uframes_t(frames-done))
		if w == -C.EAGAIN {
			return done, nil // device full: the rest is dropped, latency stays bounded
		}
		if w < 0 {
			return done, a.recover(p, C.long(w), false)
		}
		done += int(w)
	}
	return done, nil
}
