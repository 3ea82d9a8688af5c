package hw

import (
	"slices"
	"testing"
)

func seq(from, n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(from + i)
	}
	return s
}

func TestSampleQueue(t *testing.T) {
	tests := []struct {
		name    string
		cap     int
		writes  [][]int16
		read    int
		want    []int16 // nil: readFull must fail
		dropped uint64
	}{
		{name: "empty", cap: 8, read: 4},
		{name: "partial is not a frame", cap: 8, writes: [][]int16{seq(0, 3)}, read: 4},
		{name: "exact", cap: 8, writes: [][]int16{seq(0, 4)}, read: 4, want: seq(0, 4)},
		{name: "fifo", cap: 8, writes: [][]int16{seq(0, 4), seq(4, 4)}, read: 6, want: seq(0, 6)},
		{name: "overflow drops oldest", cap: 8, writes: [][]int16{seq(0, 4), seq(4, 4), seq(8, 4)}, read: 8, want: seq(4, 8), dropped: 4},
		{name: "write bigger than capacity", cap: 8, writes: [][]int16{seq(0, 3), seq(100, 20)}, read: 8, want: seq(112, 8), dropped: 15},
		{name: "wraps", cap: 5, writes: [][]int16{seq(0, 3), seq(3, 3), seq(6, 3)}, read: 5, want: seq(4, 5), dropped: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := newSampleQueue(tc.cap)
			for _, w := range tc.writes {
				q.write(w)
			}
			got := make([]int16, tc.read)
			ok := q.readFull(got)
			if ok != (tc.want != nil) {
				t.Fatalf("readFull = %v, want %v", ok, tc.want != nil)
			}
			if ok && !slices.Equal(got, tc.want) {
				t.Errorf("read %v, want %v", got, tc.want)
			}
			if d := q.droppedSamples(); d != tc.dropped {
				t.Errorf("dropped %d, want %d", d, tc.dropped)
			}
		})
	}
}

func TestSampleQueueReadSomeAfterWrap(t *testing.T) {
	q := newSampleQueue(4)
	q.write(seq(0, 3))
	buf := make([]int16, 2)
	q.readSome(buf)
	q.write(seq(3, 3)) // wraps: ring holds 2,3,4,5
	got := make([]int16, 10)
	n := q.readSome(got)
	if !slices.Equal(got[:n], seq(2, 4)) {
		t.Fatalf("got %v, want %v", got[:n], seq(2, 4))
	}
	if q.len() != 0 {
		t.Fatalf("len %d after draining", q.len())
	}
}
