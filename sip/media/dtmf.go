package media

import (
	"errors"
	"fmt"
	"time"

	"github.com/pion/rtp"
)

// RFC 4733 telephone-event sending and receiving.

const (
	dtmfEndRepeats = 3  // the end packet is sent three times (RFC 4733 2.5.1.4)
	dtmfVolume     = 10 // -10 dBm0
	dtmfQueueMax   = 64
)

// ErrNoEvents is returned by QueueDTMF when telephone-event was not negotiated.
var ErrNoEvents = errors.New("media: telephone-event not negotiated with the peer")

type dtmfTone struct {
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

// SendDTMF queues an RFC 4733 digit (0-9 * # A-D) lasting dur (0: 100 ms).
// Problems are logged; use QueueDTMF to get them as an error.
func (s *Session) SendDTMF(digit rune, dur time.Duration) {
	if err := s.QueueDTMF(digit, dur); err != nil {
		s.e.log.Warn("media: DTMF not sent", "digit", string(digit), "port", s.port, "err", err)
	}
}

// QueueDTMF queues an RFC 4733 digit: start packet (marker), continuation
// packets every ptime, then the end packet three times. Audio is not sent
// meanwhile. Digits queue and play one after another.
func (s *Session) QueueDTMF(digit rune, dur time.Duration) error {
	ev, ok := dtmfEvent(digit)
	if !ok {
		return fmt.Errorf("media: DTMF digit %q: use 0-9, *, #, A-D", digit)
	}
	if dur <= 0 {
		dur = 100 * time.Millisecond
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
	s.dtmfQ = append(s.dtmfQ, dtmfTone{event: ev, samples: samples, endsLeft: dtmfEndRepeats})
	return nil
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

// eventLocked returns the digit of a received telephone-event packet when
// it starts a new event (a new timestamp), else 0. s.mu held.
func (s *Session) eventLocked(ts uint32, payload []byte) rune {
	if s.haveEventTS && ts == s.eventTS {
		return 0
	}
	d := eventDigit(payload[0])
	if d == 0 {
		return 0 // not a DTMF event (e.g. a fax tone); ignore
	}
	s.eventTS, s.haveEventTS = ts, true
	return d
}
