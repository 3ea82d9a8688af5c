package media

// RFC 3550 appendix A.1/A.3/A.8 receive statistics for the peer's stream.

const (
	maxDropout  = 3000
	maxMisorder = 100
	seqMod      = 1 << 16
)

type rxStats struct {
	valid    bool
	ssrc     uint32
	baseSeq  uint32
	maxSeq   uint16
	cycles   uint32
	badSeq   uint32
	received uint64

	expectedPrior, receivedPrior uint64

	haveTransit bool
	transit     int32
	jitter      float64 // in timestamp units

	// Totals of earlier SSRCs or resyncs, so the counters never go back.
	foldExpected, foldReceived uint64
}

func (r *rxStats) initSeq(seq uint16) {
	r.baseSeq = uint32(seq)
	r.maxSeq = seq
	r.badSeq = seqMod + 1
	r.cycles = 0
	r.received = 0
	r.expectedPrior, r.receivedPrior = 0, 0
}

func (r *rxStats) fold() {
	if r.valid {
		r.foldExpected += r.expected()
		r.foldReceived += r.received
	}
}

// update accounts one packet; false means it is not (yet) part of the
// stream: the first packet after a large sequence jump, per A.1.
// arrival is the arrival time in timestamp units; audio packets feed the
// jitter estimate (telephone-event timestamps stand still, so they don't).
func (r *rxStats) update(ssrc uint32, seq uint16, ts uint32, arrival int64, audio bool) (newSource, ok bool) {
	if !r.valid || ssrc != r.ssrc {
		r.fold()
		r.valid, r.ssrc = true, ssrc
		r.initSeq(seq)
		r.haveTransit, r.jitter = false, 0
		newSource = true
	} else {
		udelta := seq - r.maxSeq
		switch {
		case udelta < maxDropout:
			if seq < r.maxSeq {
				r.cycles += seqMod
			}
			r.maxSeq = seq
		case udelta <= seqMod-maxMisorder:
			if uint32(seq) != r.badSeq {
				r.badSeq = (uint32(seq) + 1) & (seqMod - 1)
				return false, false
			}
			// Two sequential packets after a jump: the source restarted.
			r.fold()
			r.initSeq(seq)
			r.haveTransit = false
			newSource = true
		default:
			// duplicate or reordered
		}
	}
	r.received++
	if audio {
		transit := int32(uint32(arrival) - ts)
		if r.haveTransit {
			d := float64(transit - r.transit)
			if d < 0 {
				d = -d
			}
			r.jitter += (d - r.jitter) / 16
		}
		r.transit, r.haveTransit = transit, true
	}
	return newSource, true
}

func (r *rxStats) extMax() uint32 { return r.cycles + uint32(r.maxSeq) }

func (r *rxStats) expected() uint64 {
	if !r.valid {
		return 0
	}
	return uint64(r.extMax()-r.baseSeq) + 1
}

// totals are the cumulative expected and received over all sources.
func (r *rxStats) totals() (expected, received uint64) {
	return r.foldExpected + r.expected(), r.foldReceived + r.received
}

// lost is the RFC 3550 cumulative loss; negative with duplicates.
func (r *rxStats) lost() int64 {
	e, rc := r.totals()
	return int64(e) - int64(rc)
}

// interval returns the A.3 fraction lost since the last call, and advances.
func (r *rxStats) interval() uint8 {
	exp := r.expected()
	expInt := exp - r.expectedPrior
	r.expectedPrior = exp
	recInt := r.received - r.receivedPrior
	r.receivedPrior = r.received
	lostInt := int64(expInt) - int64(recInt)
	if expInt == 0 || lostInt <= 0 {
		return 0
	}
	return uint8((lostInt << 8) / int64(expInt))
}
