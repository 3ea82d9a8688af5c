package media

import (
	"errors"
	"fmt"
	"time"

	"github.com/pion/rtp"
)

// RFC 4733 telephone-event sending and receiving.

// DefaultDTMFDuration is a digit's length when QueueDTMF is given none.
const DefaultDTMFDuration = 100 * time.Millisecond

const (
	dtmfEndRepeats = 3  // the end packet is sent three times (RFC 4733 2.5.1.4)
	dtmfVolume     = 10 // -10 dBm0
	dtmfQueueMax   = 130
	// dtmfGap of audio follows every digit, so that receivers which
	// detect tones rather than timestamps see two digits, not one.
	dtmfGap = 50 * time.Millisecond
	// dtmfRxIdle: a received event whose end packets were all lost is
	// reported this long after its last packet.
	dtmfRxIdle = 500 * time.Millisecond
	// eventClock is the telephone-event clock rate we negotiate (8000).
	eventClock = 8000
)

// DTMF is a received digit: 0-9 * # A-D and how long it was held.
type DTMF struct {
	Digit    rune
	Duration time.Duration
}

// rxEvent is the telephone-event being received: one event is all the
// packets with its timestamp, whatever their number (continuation
// packets, repeated end packets).
type rxEvent struct {
	ts       uint32
	digit    rune
	dur      int           // latest duration field, timestamp units
	last     time.Duration // engine time of its latest packet
	active   bool          // ts is valid
	reported bool          // handed to onDTMF already
}

// ErrNoEvents is returned by QueueDTMF when telephone-event was not negotiated.
var ErrNoEvents = errors.New("media: telephone-event not negotiated with the peer")

type dtmfTone struct {
	pause    bool // a pause (',' or the gap after a digit): audio is sent
	event    byte
	samples  int // total duration in timestamp units
	elapsed  int
	ts       uint32
	started  bool
	endsLeft int
}

func dtmfEvent(d rune) (byte, bool) {
	switch {
	case d >= '0' && d <= '9':
		return byte(d - '0'), true
	case d == '*':
		return 10, true
	case d == '#':
		return 11, true
	case d >= 'A' && d <= 'D':
		return byte(12 + d - 'A'), true
	case d >= 'a' && d <= 'd':
		return byte(12 + d - 'a'), true
	}
	return 0, false
}

func eventDigit(e byte) rune {
	switch {
	case e <= 9:
		return rune('0' + e)
	case e == 10:
		return '*'
	case e == 11:
		return '#'
	case e <= 15:
		return rune('A' + e - 12)
	}
	return 0
}

// QueueDTMF queues an RFC 4733 digit (0-9 * # A-D) lasting dur (0:
// DefaultDTMFDuration): start packet (marker), continuation packets every ptime, then the
// end packet three times. Audio is not sent meanwhile. Digits queue and
// play one after another.
func (s *Session) QueueDTMF(digit rune, dur time.Duration) error {
	ev, ok := dtmfEvent(digit)
	if !ok {
		return fmt.Errorf("media: DTMF digit %q: use 0-9, *, #, A-D", digit)
	}
	if dur <= 0 {
		dur = DefaultDTMFDuration
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p.EventPT == 0 || s.codec == nil {
		return ErrNoEvents
	}
	if len(s.dtmfQ) >= dtmfQueueMax {
		return fmt.Errorf("media: DTMF queue full (%d digits): wait for the digits to go out", dtmfQueueMax)
	}
	samples := int(int64(s.codec.clockRate) * int64(dur) / int64(time.Second))
	samples = min(max(samples, int(s.tsStep)), 0xFFFF) // the duration field is 16 bits
	s.dtmfQ = append(s.dtmfQ, dtmfTone{event: ev, samples: samples, endsLeft: dtmfEndRepeats},
		dtmfTone{pause: true, samples: s.samplesLocked(dtmfGap)})
	return nil
}

// QueuePause queues a pause of dur between queued digits (a ',' of a
// dial string); audio is sent meanwhile.
func (s *Session) QueuePause(dur time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p.EventPT == 0 || s.codec == nil {
		return ErrNoEvents
	}
	if len(s.dtmfQ) >= dtmfQueueMax {
		return fmt.Errorf("media: DTMF queue full (%d digits): wait for the digits to go out", dtmfQueueMax/2)
	}
	s.dtmfQ = append(s.dtmfQ, dtmfTone{pause: true, samples: s.samplesLocked(dur)})
	return nil
}

func (s *Session) samplesLocked(d time.Duration) int {
	return max(int(int64(s.codec.clockRate)*int64(d)/int64(time.Second)), int(s.tsStep))
}

// DTMFPending reports whether queued digits are still to be sent.
func (s *Session) DTMFPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dtmfCur != nil || len(s.dtmfQ) > 0
}

// nextEventLocked turns h into a telephone-event packet when a digit is
// being sent; ended reports the digit's last packet. s.mu held.
func (s *Session) nextEventLocked(ts uint32, h *rtp.Header, payload *[4]byte) (isEvent, ended bool) {
	if s.p.EventPT == 0 {
		// Not negotiated (any more: a re-INVITE may drop it mid-digit):
		// drop what is pending rather than send events as PT 0 audio.
		s.dtmfCur, s.dtmfQ = nil, s.dtmfQ[:0]
		return false, false
	}
	if s.dtmfCur == nil {
		if len(s.dtmfQ) == 0 {
			return false, false
		}
		t := s.dtmfQ[0]
		s.dtmfQ = append(s.dtmfQ[:0], s.dtmfQ[1:]...)
		s.dtmfCur = &t
	}
	t := s.dtmfCur
	if t.pause {
		t.elapsed += int(s.tsStep)
		if t.elapsed >= t.samples {
			s.dtmfCur = nil
		}
		return false, false
	}
	h.PayloadType = s.p.EventPT
	if !t.started {
		t.started, t.ts = true, ts
		h.Marker = true
	} else {
		h.Marker = false
	}
	h.Timestamp = t.ts // every packet of one event carries its start time
	end := false
	if t.elapsed < t.samples {
		t.elapsed = min(t.elapsed+int(s.tsStep), t.samples)
	}
	if t.elapsed >= t.samples {
		end = true
		t.endsLeft--
	}
	payload[0] = t.event
	payload[1] = dtmfVolume
	if end {
		payload[1] |= 0x80
	}
	payload[2], payload[3] = byte(t.elapsed>>8), byte(t.elapsed)
	if end && t.endsLeft == 0 {
		s.dtmfCur = nil
		return true, true
	}
	return true, false
}

// eventLocked follows the received telephone-event packets and returns
// the digits they complete: an event is reported once, at its first end
// packet (repeated end packets and continuation packets of the same
// timestamp are the same event); an event whose end never came is
// reported when the next event starts (or by idleEventLocked). A packet
// older than the current event is a late duplicate and is ignored.
// s.mu held.
func (s *Session) eventLocked(ts uint32, payload []byte, now time.Duration) (out [2]DTMF, n int) {
	ev := &s.rxEv
	if ev.active && ts != ev.ts {
		if int32(ts-ev.ts) < 0 {
			return out, 0
		}
		if !ev.reported {
			out[n] = ev.report()
			n++
		}
		ev.active = false
	}
	d := eventDigit(payload[0])
	if d == 0 {
		return out, n // not a DTMF event (e.g. a fax tone); ignore
	}
	if !ev.active {
		*ev = rxEvent{ts: ts, digit: d, active: true}
	}
	ev.last = now
	ev.dur = max(ev.dur, int(payload[2])<<8|int(payload[3]))
	if payload[1]&0x80 != 0 && !ev.reported {
		out[n] = ev.report()
		n++
	}
	return out, n
}

// idleEventLocked reports an event whose end packets were all lost, once
// nothing of it came for dtmfRxIdle. s.mu held.
func (s *Session) idleEventLocked(now time.Duration) (DTMF, bool) {
	ev := &s.rxEv
	if !ev.active || ev.reported || now-ev.last < dtmfRxIdle {
		return DTMF{}, false
	}
	return ev.report(), true
}

func (ev *rxEvent) report() DTMF {
	ev.reported = true
	return DTMF{Digit: ev.digit, Duration: time.Duration(ev.dur) * time.Second / eventClock}
}
