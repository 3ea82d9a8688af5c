//go:build integration

package hw

import (
	"slices"
	"testing"
	"time"
)

// burstLatency measures the device path play → sink → monitor → record of
// a pair of channels the way a media clock drives them: every 20 ms one
// frame is written to play and one read from rec. Silence with a 100 ms
// 1 kHz burst every 500 ms is played; the latency of a burst is the number
// of samples between the frame it was written in and the first loud sample
// read back. Frames ReadFrame could not fill count as silence, so the
// sample positions of both sides stay on the same clock. Returns the
// latencies of the bursts found.
func burstLatency(play, rec Channel, bursts int) []time.Duration {
	const frame = frame20
	gen := newToneGen(1000, 8000, ToneLevel)
	out := make([]int16, frame)
	in := make([]int16, frame)
	var starts []int // sample index of each burst's first sample
	var got []int16
	var playLvl, capLvl, nLvl int
	period, length := 25, 5 // frames: a burst of 100 ms every 500 ms
	total := (bursts+1)*period + 10
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for done := 0; done < total; {
		now := <-tick.C
		due := min(total, int(now.Sub(start)/(20*time.Millisecond)))
		for ; done < due; done++ {
			clear(out)
			if k := done % period; done >= period && k < length {
				if k == 0 {
					starts = append(starts, done*frame)
				}
				gen.fill(out, 1)
			}
			play.WriteFrame(out)
			if !rec.ReadFrame(in) {
				clear(in)
			}
			got = append(got, in...)
			if pc, ok := play.(*pulseChannel); ok {
				playLvl += pc.play.len()
			}
			if rc, ok := rec.(*pulseChannel); ok {
				capLvl += rc.capture.len()
			}
			nLvl++
		}
	}
	if nLvl > 0 {
		lastLevels = [2]float64{float64(playLvl) / float64(nLvl) / 8, float64(capLvl) / float64(nLvl) / 8}
	}
	thr := int16(ToneLevel * 32767 / 4)
	var lat []time.Duration
	for _, s := range starts {
		for i := s; i < len(got) && i < s+period*frame; i++ {
			if got[i] > thr || got[i] < -thr {
				lat = append(lat, time.Duration(i-s)*time.Second/8000)
				break
			}
		}
	}
	return lat
}

// lastLevels: mean play and capture queue levels (ms) of the last burstLatency.
var lastLevels [2]float64

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// After the backend reconnected, the device path's latency is what it was
// before: audio written during the outage is late and must not be played
// on the new stream, where it would stay as extra latency for the rest of
// the call. The outage audio is a 2 kHz tone, so hearing any of it after
// the reconnect is the defect itself; the latencies are measured and
// logged (on a loaded machine they vary by tens of ms, so only a gross
// growth fails).
func TestPulseLatencyUnchangedByReconnect(t *testing.T) {
	forEachServer(t, testLatencyUnchangedByReconnect)
}

func testLatencyUnchangedByReconnect(t *testing.T, srv soundServer) {
	a, b := openPair(t, pulseConfig(srv), nil)
	waitTone(t, a, b, 440, 8*time.Second)
	before := burstLatency(a, b, 5)
	t.Logf("queues before: play %.1f ms, capture %.1f ms", lastLevels[0], lastLevels[1])
	srv.kill()
	newClock(2000, a, b).run(500 * time.Millisecond) // the call goes on during the outage
	srv.start()
	var heard []int16
	deadline := time.Now().Add(15 * time.Second)
	for {
		c := newClock(440, a, b)
		c.run(300 * time.Millisecond)
		heard = append(heard, c.got...)
		if s := c.last(200 * time.Millisecond); len(s) >= 1600 && Goertzel(s, 8000, 440) > 0.9 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no audio 15 s after the server restarted")
		}
	}
	for i := 0; i+400 <= len(heard); i += 400 {
		if w := heard[i : i+400]; RMS(w) > 0.02 && Goertzel(w, 8000, 2000) > 0.5 {
			t.Fatalf("audio written during the outage (2 kHz) was played after the reconnect, %v in", time.Duration(i)*time.Second/8000)
		}
	}
	// Let the queues' standing-latency trim (1 s window) settle.
	newClock(440, a, b).run(1500 * time.Millisecond)
	after := burstLatency(a, b, 5)
	t.Logf("queues after: play %.1f ms, capture %.1f ms", lastLevels[0], lastLevels[1])
	mb, ma := median(before), median(after)
	t.Logf("play → sink → monitor → record latency, median of %d/%d bursts: %v before the reconnect, %v after (all: %v / %v)",
		len(before), len(after), mb, ma, before, after)
	if len(before) < 3 || len(after) < 3 {
		t.Fatalf("bursts found: %d before, %d after; want at least 3 each", len(before), len(after))
	}
	if ma > 2*mb+40*time.Millisecond {
		t.Errorf("latency grew from %v to %v after the reconnect", mb, ma)
	}
}
