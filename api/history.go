package api

import (
	"fmt"
	"strconv"
)

// DefaultEventHistory is how many broadcast events are kept for resume.
const DefaultEventHistory = 1024

// history numbers the broadcast events and keeps the frames of the last ones
// for `resume`. Only the hub goroutine touches it: numbering there, at the
// one point every broadcast passes, keeps seq in the order clients see.
type history struct {
	seq  uint64   // last number given; 0: no event yet (seq counts from 1)
	ring [][]byte // frame of event n at ring[(n-1)%len(ring)]; empty: none kept
}

func newHistory(size int) *history {
	return &history{ring: make([][]byte, size)}
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
		h.ring[(h.seq-1)%uint64(len(h.ring))] = out
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

// resumeReq asks the hub to replay to c what it missed after since.
type resumeReq struct {
	c       *client
	since   uint64
	started string // the run since counts in (pong's started); "": this one
	tag     string
	done    chan struct{}
}

// resume runs on the hub goroutine. The client has been sent, live, every
// event after c.joined (the latest seq when it connected); it gets the ones
// in (since, c.joined] that are still kept, queued as one batch so that a
// replay longer than the client queue does not overflow it.
func (s *Server) resume(r resumeReq) {
	defer close(r.done)
	c := r.c
	var out []byte
	fail := func(format string, args ...any) {
		s.stats.fails.Add(1)
		out = encodeFailTag(CmdResume, "", fmt.Sprintf(format, args...), r.tag)
	}
	// A client that saw another run of the daemon gets all of this one's.
	restarted := func(why string) {
		b, lost := s.hist.between(0, c.joined)
		kept := "every event of this run follows"
		if lost > 0 {
			kept = fmt.Sprintf("this run's first %d events are no longer kept; the %d kept ones follow", lost, c.joined-lost)
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
	case r.since < c.joined:
		b, lost := s.hist.between(r.since, c.joined)
		if lost > 0 {
			fail("resume: %d events lost: events %d to %d are no longer kept ([tcp-settings] event-history is %d); the %d kept ones follow",
				lost, r.since+1, r.since+lost, len(s.hist.ring), c.joined-r.since-lost)
		}
		out = append(out, b...)
	}
	if len(out) > 0 {
		s.enqueue(c, out)
	}
}
