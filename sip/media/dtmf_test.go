package media

import (
	"testing"
	"time"
)

// evPkt is one received telephone-event packet: timestamp, event, end bit,
// duration (8 kHz units), and the engine time it arrived.
type evPkt struct {
	ts    uint32
	event byte
	end   bool
	dur   int
	at    time.Duration
}

func TestEventReceive(t *testing.T) {
	ms := time.Millisecond
	digit := func(ts uint32, ev byte, durs ...int) []evPkt {
		var out []evPkt
		for i, d := range durs {
			out = append(out, evPkt{ts: ts, event: ev, dur: d, at: time.Duration(ts/8)*ms + time.Duration(i)*20*ms})
		}
		return out
	}
	ends := func(p []evPkt, n int) []evPkt {
		last := p[len(p)-1]
		last.end = true
		p = p[:len(p)-1]
		for i := 0; i < n; i++ {
			p = append(p, last)
		}
		return p
	}
	cat := func(ps ...[]evPkt) []evPkt {
		var out []evPkt
		for _, p := range ps {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name string
		pkts []evPkt
		idle time.Duration // then the scheduler looks at this time
		want []DTMF
	}{
		{"three end packets count once", ends(digit(8000, 5, 160, 320, 480, 800), 3), 0,
			[]DTMF{{'5', 100 * ms}}},
		{"two digits in order", cat(ends(digit(8000, 1, 160, 800), 3), ends(digit(16000, 11, 160, 640), 3)), 0,
			[]DTMF{{'1', 100 * ms}, {'#', 80 * ms}}},
		{"retransmitted continuation packets", cat(digit(8000, 9, 160, 160, 320, 320), ends(digit(8000, 9, 480), 2)), 0,
			[]DTMF{{'9', 60 * ms}}},
		{"ends lost: reported when the next digit starts", cat(digit(8000, 2, 160, 320), ends(digit(16000, 3, 400), 1)), 0,
			[]DTMF{{'2', 40 * ms}, {'3', 50 * ms}}},
		{"ends lost, nothing follows: reported when idle", digit(8000, 4, 160, 320, 480), 2 * time.Second,
			[]DTMF{{'4', 60 * ms}}},
		{"not yet idle: not reported", digit(8000, 4, 160, 320, 480), 1010 * ms, nil},
		{"late packet of the previous digit ignored", cat(ends(digit(16000, 6, 800), 3), ends(digit(8000, 7, 800), 1)), 0,
			[]DTMF{{'6', 100 * ms}}},
		{"non-DTMF event ignored", ends(digit(8000, 36, 160, 800), 3), 0, nil},
		{"star and D", cat(ends(digit(8000, 10, 800), 3), ends(digit(16000, 15, 800), 3)), 0,
			[]DTMF{{'*', 100 * ms}, {'D', 100 * ms}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s Session
			var got []DTMF
			for _, p := range tc.pkts {
				pl := []byte{p.event, dtmfVolume, byte(p.dur >> 8), byte(p.dur)}
				if p.end {
					pl[1] |= 0x80
				}
				out, n := s.eventLocked(p.ts, pl, p.at)
				got = append(got, out[:n]...)
			}
			if tc.idle > 0 {
				if d, ok := s.idleEventLocked(tc.idle); ok {
					got = append(got, d)
					if _, ok := s.idleEventLocked(tc.idle + time.Second); ok {
						t.Error("idle event reported twice")
					}
				}
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("digit %d: got %c %v, want %c %v", i, got[i].Digit, got[i].Duration, tc.want[i].Digit, tc.want[i].Duration)
				}
			}
		})
	}
}
