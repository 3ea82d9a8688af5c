package api

import (
	"bytes"
	"fmt"
	"strconv"
	"time"
)

// holdTime is how long the broadcasts to a new client wait for its first
// command. A resume sent at once after connecting then replays everything
// after its since and the live stream follows, strictly in order: nothing
// was sent live to the client yet. The held broadcasts come from the
// history, in order, once the first command arrives or holdTime passes.
const holdTime = 100 * time.Millisecond

// historySlot is how many bytes of each kept frame have their place in the
// history's slab; a longer frame (a status with many calls) is kept in a
// copy of its own. Call events are 60-250 bytes.
const historySlot = 256

// history numbers the broadcast events and keeps the frames of the last ones
// for `resume`. Only the hub goroutine touches it: numbering there, at the
// one point every broadcast passes, keeps seq in the order clients see.
//
// The kept frames are copies in one slab allocated up front, not the frames
// sent: those were allocated one by one among the daemon's other garbage
// and, kept for the next ring-size events, left their spans partly used
// after a burst of calls (about 0.8 MB of resident heap for 1024 events).
type history struct {
	seq  uint64   // last number given; 0: no event yet (seq counts from 1)
	ring [][]byte // frame of event n at ring[(n-1)%len(ring)]; empty: none kept
	slab []byte   // len(ring) slots of historySlot bytes, ring's backing
}

func newHistory(size int) *history {
	return &history{ring: make([][]byte, size), slab: make([]byte, size*historySlot)}
}

// keep copies frame into slot i.
func (h *history) keep(i uint64, frame []byte) {
	if len(frame) > historySlot {
		h.ring[i] = bytes.Clone(frame)
		return
	}
	at := i * historySlot
	h.ring[i] = append(h.slab[at:at:at+historySlot], frame...)
}

// stamp numbers the encoded broadcast frame (compact JSON object + NUL) with
// the next seq, keeps it, and returns the stamped frame. Adding the field to
// the encoded object, rather than to every wire struct, keeps the numbering
// independent of how each event is encoded.
func (h *history) stamp(frame []byte) []byte {
	h.seq++
	// frame ends in "}\x00": put `,"seq":N` before the brace.
	body := frame[:len(frame)-2]
	out := make([]byte, 0, len(frame)+28)
	out = append(out, body...)
	if len(body) > 1 { // "{}" has no member to follow
		out = append(out, ',')
	}
	out = append(out, `"seq":`...)
	out = strconv.AppendUint(out, h.seq, 10)
	out = append(out, '}', 0)
	if len(h.ring) > 0 {
		h.keep((h.seq-1)%uint64(len(h.ring)), out)
	}
	return out
}

// oldest is the seq of the oldest event still kept (seq+1 when none is).
func (h *history) oldest() uint64 {
	n := uint64(len(h.ring))
	if h.seq < n {
		return 1
	}
	return h.seq - n + 1
}

// between returns the kept frames of the events after since up to and
// including upto, concatenated in order, and how many of those events are no
// longer kept. since < upto <= h.seq.
func (h *history) between(since, upto uint64) (frames []byte, lost uint64) {
	from := since + 1
	if old := h.oldest(); from < old {
		lost = min(old, upto+1) - from
		from = old
	}
	for n := from; n <= upto; n++ {
		frames = append(frames, h.ring[(n-1)%uint64(len(h.ring))]...)
	}
	return frames, lost
}

// arrivals are the new clients whose broadcasts are held (holdTime).
// Owned by the hub goroutine.
type arrivals struct {
	held  []*client
	timer *time.Timer // armed while held is not empty
}

func (a *arrivals) hold(c *client, now time.Time, d time.Duration) {
	c.held, c.holdUntil = true, now.Add(d)
	a.held = append(a.held, c)
	if a.timer == nil {
		a.timer = time.NewTimer(d)
	} else if len(a.held) == 1 {
		a.timer.Reset(d)
	}
}

// expired is the timer's channel; nil (never ready) when nobody is held.
func (a *arrivals) expired() <-chan time.Time {
	if len(a.held) == 0 {
		return nil
	}
	return a.timer.C
}

// release sends the held broadcasts of every client whose hold ended by
// now (all when all is set) and re-arms the timer for the next.
func (s *Server) release(now time.Time, all bool) {
	a := &s.arrivals
	keep := a.held[:0]
	for _, c := range a.held {
		switch {
		case !c.held: // released by its first command
		case all || !now.Before(c.holdUntil):
			s.activate(c)
		default:
			keep = append(keep, c)
		}
	}
	clear(a.held[len(keep):])
	a.held = keep
	if len(keep) > 0 {
		a.timer.Reset(keep[0].holdUntil.Sub(now))
	}
}

// activate ends c's hold: the broadcasts since it connected, then live.
func (s *Server) activate(c *client) {
	if !c.held {
		return
	}
	c.held = false
	if latest := s.hist.seq; c.joined < latest {
		b, _ := s.hist.between(c.joined, latest)
		c.joined = latest
		if len(b) > 0 {
			s.enqueue(c, b)
		}
	}
}

// resumeReq asks the hub to replay to c what it missed after since.
type resumeReq struct {
	c       *client
	since   uint64
	started string // the run since counts in (pong's started); "": this one
	tag     string
	done    chan struct{}
}

// resume runs on the hub goroutine. The client has been sent, live, every
// event after c.joined; it gets the ones in (since, c.joined] that are
// still kept, queued as one batch so that a replay longer than the client
// queue does not overflow it. As its first command (c.held), nothing was
// sent live yet: it gets everything after since up to now, then live.
func (s *Server) resume(r resumeReq) {
	defer close(r.done)
	c := r.c
	if c.held {
		c.held = false
		c.joined = s.hist.seq
	}
	upto := c.joined
	var out []byte
	fail := func(format string, args ...any) {
		s.stats.fails.Add(1)
		out = encodeFailTag(CmdResume, "", fmt.Sprintf(format, args...), r.tag)
	}
	// A client that saw another run of the daemon gets all of this one's.
	restarted := func(why string) {
		kept := "every event of this run follows"
		var b []byte
		if upto > 0 {
			var lost uint64
			b, lost = s.hist.between(0, upto)
			if lost > 0 {
				kept = fmt.Sprintf("this run's first %d events are no longer kept; the %d kept ones follow", lost, upto-lost)
			}
		}
		fail("resume: %s: any events of the previous run after %d are lost; %s", why, r.since, kept)
		out = append(out, b...)
	}
	switch latest := s.hist.seq; {
	case r.started != "" && r.started != s.opts.startedText:
		restarted(fmt.Sprintf("the daemon restarted (this run started at %s, not %s)", s.opts.startedText, r.started))
	case r.since > latest:
		// seq restarts at 1 with the process.
		restarted(fmt.Sprintf("since %d is ahead of the latest event %d, so the daemon restarted", r.since, latest))
	case r.since < upto:
		b, lost := s.hist.between(r.since, upto)
		if lost > 0 {
			fail("resume: %d events lost: events %d to %d are no longer kept ([tcp-settings] event-history is %d); the %d kept ones follow",
				lost, r.since+1, r.since+lost, len(s.hist.ring), upto-r.since-lost)
		}
		out = append(out, b...)
	}
	if len(out) > 0 {
		s.enqueue(c, out)
	}
}
