package daemon

import (
	"slices"
	"sync"
	"time"

	"github.com/telestra/telestra-sip/hw"
)

// statsReader is what the daemon reads of an audio channel's health; every hw
// backend's Channel has it.
type statsReader interface{ Stats() hw.Stats }

// channelHealth is one channel name's health as the operator sees it
// (metrics, /debug/stats, get-status).
type channelHealth struct {
	name string
	// open: a channel of this name is open now; the fields below the
	// counters are that channel's. false: a reload removed the name.
	open bool
	// Summed over every channel opened under the name since start.
	reconnects, xruns               uint64
	playbackDropped, captureDropped time.Duration
	// The newest open channel's.
	backend                       string
	connected                     bool
	playbackMargin, captureMargin time.Duration
}

// audioHealth keeps each channel name's counters over reopens: a reload
// that reopens a channel (new devices, another backend) closes the old one,
// whose last counts are added to those of the name from then on. So a
// counter only grows while the process runs, as Prometheus expects of a
// counter, and an increase() over the reload loses nothing.
type audioHealth struct {
	format hw.Format // of every channel: the rate is bound at start

	mu sync.Mutex
	// live is the open channels by name, in opening order: during a
	// reload the old and the new channel are both open, and the newest is
	// the one in use once the reload is applied (a reload that fails
	// closes it again).
	live map[string][]statsReader
	done map[string]hw.Stats // by name: the counters of closed channels, summed
}

func newAudioHealth(f hw.Format) *audioHealth {
	return &audioHealth{format: f, live: map[string][]statsReader{}, done: map[string]hw.Stats{}}
}

// opened counts ch under name from now on.
func (a *audioHealth) opened(name string, ch hw.Channel) {
	s, ok := ch.(statsReader)
	if !ok {
		return
	}
	a.mu.Lock()
	a.live[name] = append(a.live[name], s)
	a.mu.Unlock()
}

// closed folds the final counts of ch, closed, into name's.
func (a *audioHealth) closed(name string, ch hw.Channel) {
	s, ok := ch.(statsReader)
	if !ok {
		return
	}
	st := s.Stats() // a closed channel's counts no longer move
	a.mu.Lock()
	defer a.mu.Unlock()
	i := slices.Index(a.live[name], s)
	if i < 0 {
		return
	}
	a.live[name] = slices.Delete(a.live[name], i, i+1)
	if len(a.live[name]) == 0 {
		delete(a.live, name)
	}
	a.done[name] = addCounts(a.done[name], st)
}

func addCounts(sum, st hw.Stats) hw.Stats {
	sum.Reconnects += st.Reconnects
	sum.Xruns += st.Xruns
	sum.PlayDropped += st.PlayDropped
	sum.CaptureDropped += st.CaptureDropped
	return sum
}

// snapshot is every channel name's health, by name. The channels' Stats
// are read after the lock: a channel closed meanwhile reports its final
// counts, which the copy of done does not hold yet, so nothing is
// counted twice and no counter goes down.
func (a *audioHealth) snapshot() []channelHealth {
	a.mu.Lock()
	open := make(map[string][]statsReader, len(a.live))
	for name, chs := range a.live {
		open[name] = slices.Clone(chs)
	}
	closed := make(map[string]hw.Stats, len(a.done))
	for name, st := range a.done {
		closed[name] = st
	}
	a.mu.Unlock()

	names := make([]string, 0, len(open)+len(closed))
	for name := range open {
		names = append(names, name)
	}
	for name := range closed {
		if _, ok := open[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	out := make([]channelHealth, 0, len(names))
	for _, name := range names {
		sum := closed[name]
		var cur hw.Stats
		for _, s := range open[name] {
			cur = s.Stats()
			sum = addCounts(sum, cur)
		}
		h := channelHealth{name: name, open: len(open[name]) > 0,
			reconnects: sum.Reconnects, xruns: sum.Xruns,
			playbackDropped: a.samplesTime(sum.PlayDropped), captureDropped: a.samplesTime(sum.CaptureDropped)}
		if h.open {
			h.backend, h.connected = cur.Backend, cur.Connected
			h.playbackMargin, h.captureMargin = cur.PlayMargin, cur.CaptureMargin
		}
		out = append(out, h)
	}
	return out
}

// samplesTime is how long n samples play (without overflowing for years
// of samples).
func (a *audioHealth) samplesTime(n uint64) time.Duration {
	perSec := uint64(max(a.format.Rate*a.format.Channels, 1))
	return time.Duration(n/perSec)*time.Second + time.Duration(n%perSec*uint64(time.Second)/perSec)
}
