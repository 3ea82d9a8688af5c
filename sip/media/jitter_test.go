package media

import (
	"testing"
	"time"
)

// Each step pushes its sequence numbers, then pops once.
func TestJitterBuffer(t *testing.T) {
	tests := []struct {
		name    string
		initial time.Duration
		steps   [][]int
		want    []popResult
		late    uint64
	}{
		{
			name:    "in order waits for the initial depth",
			initial: 40 * time.Millisecond,
			steps:   [][]int{{0}, {1}, {2}, {3}},
			want:    []popResult{popIdle, popAudio, popAudio, popAudio},
		},
		{
			name:    "reordered within the depth plays in order",
			initial: 40 * time.Millisecond,
			steps:   [][]int{{0}, {2}, {1}, {3}, {4}},
			want:    []popResult{popIdle, popAudio, popAudio, popAudio, popAudio},
		},
		{
			name:    "a missing packet is lost once later ones are here",
			initial: 20 * time.Millisecond,
			steps:   [][]int{{0}, {2}, {3}, {4}},
			want:    []popResult{popAudio, popLost, popAudio, popAudio},
		},
		{
			name:    "late and duplicate packets are dropped; late ones deepen the buffer",
			initial: 20 * time.Millisecond,
			steps:   [][]int{{0}, {1, 1}, {0, 2}, {3}, {4}},
			// 0 missed its slot by two frames: two stalls deepen the buffer.
			want: []popResult{popAudio, popAudio, popUnderrun, popUnderrun, popAudio},
			late: 2,
		},
		{
			name:    "running dry stalls without skipping",
			initial: 20 * time.Millisecond,
			steps:   [][]int{{0}, {}, {1}, {2}},
			want:    []popResult{popAudio, popUnderrun, popAudio, popAudio},
		},
		{
			name:    "sequence wrap",
			initial: 20 * time.Millisecond,
			steps:   [][]int{{65534}, {65535}, {0}, {1}},
			want:    []popResult{popAudio, popAudio, popAudio, popAudio},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := newJitterBuffer(20*time.Millisecond, tc.initial)
			var got []popResult
			for _, st := range tc.steps {
				for _, s := range st {
					j.push(uint16(s), jbAudio, []byte{byte(s)})
				}
				r, _ := j.pop()
				got = append(got, r)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
			if j.late != tc.late {
				t.Errorf("late %d, want %d", j.late, tc.late)
			}
		})
	}
}

func TestJitterBufferAdapts(t *testing.T) {
	const ptime = 20 * time.Millisecond
	j := newJitterBuffer(ptime, 100*time.Millisecond)
	seq := 0
	tick := func(arrivals int) {
		for range arrivals {
			j.push(uint16(seq), jbAudio, []byte{1})
			seq++
		}
		j.setJitter(0)
		j.pop()
	}
	for range 5 {
		tick(1)
	}
	if j.highest-j.next+1 < 4 {
		t.Fatalf("initial depth not built: occupancy %d", j.highest-j.next+1)
	}
	// A steady stream with no jitter: the depth shrinks to one frame.
	for range 10 * j.window {
		tick(1)
	}
	if occ := j.highest - j.next + 1; occ != 0 {
		t.Errorf("occupancy after the pop %d, want 0 (depth one frame)", occ)
	}
	if j.depth() != 1 {
		t.Errorf("target %d frames, want 1", j.depth())
	}
	// A late packet deepens the buffer by stalling.
	j.push(uint16(seq-3), jbAudio, []byte{1})
	if j.lateTarget < 2 || j.grow == 0 {
		t.Errorf("late packet: lateTarget %d grow %d, want deeper", j.lateTarget, j.grow)
	}
	tick(1)
	if r, _ := j.pop(); r != popUnderrun && j.grow == 0 {
		t.Errorf("no stall after a late packet")
	}
}

func TestConcealmentFades(t *testing.T) {
	j := newJitterBuffer(20*time.Millisecond, 20*time.Millisecond)
	dec := lookupCodec("PCMU").instance()
	loud := make([]byte, 160)
	for i := range loud {
		loud[i] = 0x80 // +32124
	}
	out := make([]int16, 160)
	j.push(0, jbAudio, loud)
	j.fill(out, dec)
	if out[0] != 32124 {
		t.Fatalf("decoded %d", out[0])
	}
	var levels []float64
	for range 6 {
		j.fill(out, dec) // nothing arrives: conceal
		levels = append(levels, rms(out))
	}
	for i := 1; i < len(levels); i++ {
		if levels[i] > levels[i-1] {
			t.Errorf("concealment got louder: %v", levels)
		}
	}
	if levels[0] < 20000 || levels[len(levels)-1] != 0 {
		t.Errorf("concealment levels %v: want loud first, silence at the end", levels)
	}
	if j.concealed != 6 {
		t.Errorf("concealed %d frames, want 6", j.concealed)
	}
}

func TestPacingHistogram(t *testing.T) {
	var h pacingHist
	for i := range 1000 {
		h.add(time.Duration(i) * time.Microsecond) // 0..999 µs
	}
	h.add(50 * time.Millisecond)
	p := h.snapshot()
	if p.Packets != 1001 || p.P50 < 490*time.Microsecond || p.P50 > 510*time.Microsecond {
		t.Errorf("p50 %v over %d", p.P50, p.Packets)
	}
	if p.P99 < 980*time.Microsecond || p.P99 > 1000*time.Microsecond || p.Max != 50*time.Millisecond {
		t.Errorf("p99 %v max %v", p.P99, p.Max)
	}
}
