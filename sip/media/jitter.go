package media

import "time"

type jbKind uint8

const (
	jbEmpty jbKind = iota
	jbAudio
	jbEvent
)

type jbSlot struct {
	seq  int64 // extended sequence number
	kind jbKind
	data []byte // payload, reused
}

// popResult is what the playout found for the next sequence number.
type popResult uint8

const (
	popIdle     popResult = iota // not playing (no stream yet, or buffering)
	popAudio                     // an audio payload
	popEvent                     // a telephone-event packet: conceal, don't decode
	popLost                      // the packet is missing but later ones are here
	popUnderrun                  // nothing to play: the buffer ran dry
)

// concealGains is the PLC envelope per consecutive concealed frame: the
// last good frame repeats, attenuated, then fades to silence.
var concealGains = [...]float32{0.8, 0.5, 0.25, 0.1}

// jitterBuffer reorders packets by sequence number and plays one packet per
// pop. Its depth (packets queued ahead of playout) starts at the configured
// depth and adapts: it shrinks by one frame a window when the queue never
// dropped to the target in that window, grows by stalling when the buffer
// runs dry or a packet arrives too late, and the target follows the
// RFC 3550 jitter estimate within minF..maxF. Not safe for concurrent use:
// Session.mu guards it.
type jitterBuffer struct {
	ring []jbSlot
	mask int64

	init    bool
	playing bool
	next    int64 // extended seq to play next
	highest int64 // highest extended seq received

	initial, minF, maxF int // depths in frames
	target              int // current depth target
	lateTarget          int // raised by late packets, decays slowly
	window              int // pops per adaptation window (~1 s)
	winN, winMin        int
	holdoff             int // pops before the buffer may shrink again
	quiet               int // windows without a late packet
	grow                int // stalls still to insert
	dry                 int // consecutive underruns
	havePkts            int // packets seen, for the jitter target warm-up

	// PCM stage: decoded samples not yet played (packets need not match
	// the frame length).
	pcm    []int16
	last   []int16 // last decoded audio, for concealment
	plcRun int
	gain   float32 // gain at the end of the last output sample

	late, concealed uint64
}

func newJitterBuffer(ptime, initial time.Duration) *jitterBuffer {
	j := &jitterBuffer{}
	j.configure(ptime, initial)
	return j
}

func (j *jitterBuffer) configure(ptime, initial time.Duration) {
	j.minF = max(1, int((MinJitterBuffer+ptime-1)/ptime))
	j.maxF = max(j.minF, int(MaxJitterBuffer/ptime))
	j.initial = min(max(int((initial+ptime-1)/ptime), j.minF), j.maxF)
	size := 8
	for size < 2*j.maxF+8 {
		size *= 2
	}
	j.ring = make([]jbSlot, size)
	j.mask = int64(size - 1)
	j.window = max(1, int(time.Second/ptime))
	j.reset()
}

// reset forgets the stream (SSRC change, resume, codec change).
func (j *jitterBuffer) reset() {
	for i := range j.ring {
		j.ring[i].kind = jbEmpty
	}
	j.init, j.playing = false, false
	j.target, j.lateTarget = j.initial, 0
	j.winN, j.winMin, j.holdoff, j.quiet, j.grow, j.dry, j.havePkts = 0, 1<<30, 0, 0, 0, 0, 0
	j.pcm = j.pcm[:0]
	j.plcRun, j.gain = 0, 0
}

func (j *jitterBuffer) extend(seq uint16) int64 {
	if !j.init {
		return 1<<32 + int64(seq)
	}
	return j.highest + int64(int16(seq-uint16(j.highest)))
}

// push queues one packet. Late and duplicate packets are dropped.
func (j *jitterBuffer) push(seq uint16, kind jbKind, payload []byte) {
	ext := j.extend(seq)
	if !j.init {
		j.init, j.next, j.highest = true, ext, ext
	}
	if ext < j.next {
		j.late++
		if j.playing {
			// Too shallow for this path: deepen by the miss.
			miss := int(j.next - ext)
			if t := min(j.maxF, j.target+miss); t > j.lateTarget {
				j.lateTarget = t
			}
			j.grow = min(j.grow+miss, j.maxF)
			j.quiet = 0
			j.holdoff = 3 * j.window
		}
		return
	}
	if ext-j.next >= int64(len(j.ring)) {
		// A jump far beyond the buffer: the stream restarted. Re-buffer.
		j.reset()
		j.init, j.next, j.highest = true, ext, ext
	}
	s := &j.ring[ext&j.mask]
	if s.kind != jbEmpty && s.seq == ext {
		j.late++ // duplicate
		return
	}
	s.seq, s.kind = ext, kind
	s.data = append(s.data[:0], payload...)
	if ext > j.highest {
		j.highest = ext
	}
	j.havePkts++
}

// setJitter updates the target from the RFC 3550 jitter estimate (in
// frames): one frame plus three mean deviations, rounded.
func (j *jitterBuffer) setJitter(jitterFrames float64) {
	if j.havePkts < j.window {
		return // keep the configured depth until the estimate settles
	}
	t := 1 + int(3*jitterFrames+0.5)
	j.target = min(max(t, j.lateTarget, j.minF), j.maxF)
}

func (j *jitterBuffer) pop() (popResult, []byte) {
	if !j.init {
		return popIdle, nil
	}
	occ := int(j.highest - j.next + 1)
	if !j.playing {
		if occ < j.target {
			return popIdle, nil
		}
		j.playing, j.dry = true, 0
	}
	j.adapt(occ)
	if j.grow > 0 {
		j.grow--
		return popUnderrun, nil
	}
	if j.highest < j.next {
		j.dry++
		j.holdoff = 3 * j.window
		if j.dry > j.maxF {
			// The stream stopped: re-buffer to the target when it resumes.
			j.playing = false
		}
		return popUnderrun, nil
	}
	j.dry = 0
	s := &j.ring[j.next&j.mask]
	j.next++
	if s.kind == jbEmpty || s.seq != j.next-1 {
		return popLost, nil
	}
	k := s.kind
	s.kind = jbEmpty
	if k == jbEvent {
		return popEvent, nil
	}
	return popAudio, s.data
}

// adapt shrinks the buffer by one frame at the end of a window whose
// minimum occupancy stayed above the target.
func (j *jitterBuffer) adapt(occ int) {
	j.winMin = min(j.winMin, occ)
	if j.holdoff > 0 {
		j.holdoff--
	}
	j.winN++
	if j.winN < j.window {
		return
	}
	if j.quiet++; j.quiet >= 10 && j.lateTarget > 0 {
		j.lateTarget--
		j.quiet = 0
	}
	if j.holdoff == 0 && j.winMin > j.target && j.highest >= j.next {
		s := &j.ring[j.next&j.mask]
		s.kind = jbEmpty
		j.next++
	}
	j.winN, j.winMin = 0, 1<<30
}

// depth is the current target in frames.
func (j *jitterBuffer) depth() int { return j.target }

// fill writes exactly len(out) samples of playout: decoded audio, concealed
// audio for lost and event packets and underruns, or silence while idle.
func (j *jitterBuffer) fill(out []int16, dec *codecState) {
	n := len(out)
	for len(j.pcm) < n {
		res, data := j.pop()
		switch res {
		case popAudio:
			m := min(dec.samplesFor(len(data)), 4*n) // bound a giant packet
			j.pcm = grow(j.pcm, m)
			got := dec.dec.Decode(j.pcm[len(j.pcm)-m:], data)
			j.pcm = j.pcm[:len(j.pcm)-m+got]
			if got > 0 {
				j.last = append(j.last[:0], j.pcm[len(j.pcm)-got:]...)
				if j.plcRun > 0 {
					j.fadeIn(j.pcm[len(j.pcm)-got:])
				}
				j.plcRun, j.gain = 0, 1
			}
		case popLost, popEvent:
			j.conceal(n)
		case popUnderrun:
			j.conceal(n - len(j.pcm))
		default:
			k := n - len(j.pcm)
			j.pcm = grow(j.pcm, k)
			clear(j.pcm[len(j.pcm)-k:])
			j.gain = 0
		}
	}
	copy(out, j.pcm[:n])
	rest := copy(j.pcm, j.pcm[n:])
	j.pcm = j.pcm[:rest]
}

// conceal appends k samples repeating the last good audio under the PLC
// envelope, ramping the gain within the frame to avoid clicks.
func (j *jitterBuffer) conceal(k int) {
	j.pcm = grow(j.pcm, k)
	dst := j.pcm[len(j.pcm)-k:]
	j.concealed++
	var g1 float32
	if j.plcRun < len(concealGains) {
		g1 = concealGains[j.plcRun]
	}
	j.plcRun++
	g0 := j.gain
	j.gain = g1
	if len(j.last) == 0 || (g0 == 0 && g1 == 0) {
		clear(dst)
		return
	}
	for i := range dst {
		g := g0 + (g1-g0)*float32(i)/float32(k)
		dst[i] = int16(float32(j.last[i%len(j.last)]) * g)
	}
}

// fadeIn ramps the first frame after concealment up from the PLC gain.
func (j *jitterBuffer) fadeIn(p []int16) {
	g0 := j.gain
	for i := range p {
		g := g0 + (1-g0)*float32(i)/float32(len(p))
		p[i] = int16(float32(p[i]) * g)
	}
}

// grow extends s by k elements, reusing capacity.
func grow(s []int16, k int) []int16 {
	if len(s)+k <= cap(s) {
		return s[:len(s)+k]
	}
	ns := make([]int16, len(s)+k, 2*(len(s)+k))
	copy(ns, s)
	return ns
}
