package hw

import (
	"slices"
	"testing"
	"time"
)

func testDevQueues() *devQueues {
	return newDevQueues(Config{Format: tel, FrameTime: 20 * time.Millisecond, Buffer: 20 * time.Millisecond})
}

func TestDevQueuesStaleCaptureTrimmedOnFirstRead(t *testing.T) {
	d := testDevQueues()
	// The device captured for a while before anyone read: 10 frames queued.
	for i := range QueueFrames {
		d.capture.write(slices.Repeat([]int16{int16(i)}, frame20))
	}
	// The first read keeps one frame plus the capture margin (one frame
	// until a backend sets another): the two newest frames.
	got := make([]int16, frame20)
	for _, want := range []int16{QueueFrames - 2, QueueFrames - 1} {
		if !d.ReadFrame(got) || got[0] != want {
			t.Fatalf("read returned frame %d, want %d", got[0], want)
		}
	}
	if d.ReadFrame(got) {
		t.Fatal("stale frames were kept")
	}
}

// The capture margin rises when reads that were flowing starve, and falls
// back by a step after each run of quiet windows; the trim keeps it.
func TestDevQueuesCaptureMarginAdapts(t *testing.T) {
	d := testDevQueues()
	frame := frame20
	d.setMargins(fixedMargin(0), margin{cur: frame / 4, lo: frame / 4, hi: frame, up: frame / 2, down: frame / 8, decay: 2})
	got := make([]int16, frame)
	steady := func(windows int) {
		for range windows * 50 {
			d.capture.write(make([]int16, frame))
			if !d.ReadFrame(got) {
				t.Fatal("a steady read starved")
			}
		}
	}
	d.capture.write(make([]int16, frame)) // one frame standing
	steady(1)
	if n := d.capture.len(); n != frame/4 {
		t.Fatalf("after a window %d samples stand, want the margin %d", n, frame/4)
	}
	// A late delivery: the read after finds less than a frame; and once
	// more in the same window (one stall starves before and after its
	// catch-up), which raises the margin no further.
	d.ReadFrame(got)
	d.capture.write(make([]int16, frame))
	d.ReadFrame(got)
	d.ReadFrame(got)
	if m := d.stats(Stats{}); m.CaptureMargin != 15*time.Millisecond {
		t.Fatalf("margin %v after two starvations in a window, want 5 + 10 ms", m.CaptureMargin)
	}
	// The late audio comes with the next delivery: a frame more stands,
	// and the trim keeps the new margin of it (once a whole window has
	// seen it stand).
	d.capture.write(make([]int16, frame))
	steady(2)
	if n := d.capture.len(); n != 3*frame/4 {
		t.Fatalf("%d samples stand, want the raised margin %d", n, 3*frame/4)
	}
	// Quiet windows lower it again, a step per two windows, to the floor.
	steady(8)
	if m := d.stats(Stats{}); m.CaptureMargin != 5*time.Millisecond {
		t.Fatalf("margin %v after 8 quiet windows, want back to 5 ms", m.CaptureMargin)
	}
	if n := d.capture.len(); n != frame/4 {
		t.Fatalf("%d samples stand, want %d", n, frame/4)
	}
}

// The playback trim counts what the device side holds (the pulse server's
// buffer) with the queue, and a device underrun raises the margin.
func TestDevQueuesPlaybackMarginCountsTheDevice(t *testing.T) {
	d := testDevQueues()
	frame := frame20
	d.setMargins(margin{cur: frame / 4, lo: frame / 4, hi: 2 * frame, up: frame / 2, down: frame / 8, decay: 5}, fixedMargin(frame))
	// The server holds 1.5 frames before each write and the device
	// goroutine sends each frame on: a frame and a quarter stand above
	// the margin, and one window drops them from the queue.
	d.deviceLevel.Store(int64(3 * frame / 2))
	for range 50 {
		d.WriteFrame(make([]int16, frame))
		d.play.readSome(make([]int16, frame))
	}
	d.WriteFrame(make([]int16, frame))
	if dropped := d.play.droppedSamples(); dropped != uint64(frame) {
		t.Fatalf("dropped %d samples, want a frame (all the queue held of the excess)", dropped)
	}
	if m := d.stats(Stats{}); m.PlayMargin != 5*time.Millisecond {
		t.Fatalf("margin %v, want 5 ms", m.PlayMargin)
	}
	d.underruns.Add(1)
	d.WriteFrame(make([]int16, frame))
	if m := d.stats(Stats{}); m.PlayMargin != 15*time.Millisecond {
		t.Fatalf("margin %v after an underrun, want 5 + 10 ms", m.PlayMargin)
	}
	// Between calls the stream runs dry (an underrun), and the next call's
	// stream starts: neither says anything about the margin.
	d.underruns.Add(1)
	time.Sleep(6 * 20 * time.Millisecond) // a pause: more than 5 frames without writes
	d.WriteFrame(make([]int16, frame))
	d.underruns.Add(1)
	d.WriteFrame(make([]int16, frame))
	if m := d.stats(Stats{}); m.PlayMargin != 15*time.Millisecond {
		t.Fatalf("margin %v after a pause and a start, want still 15 ms", m.PlayMargin)
	}
}

func TestDevQueuesStandingLatencyDropped(t *testing.T) {
	d := testDevQueues()
	got := make([]int16, frame20)
	// A steady reader with 4 extra frames standing in the queue (a burst
	// after a device stall): after one window of reads the excess is gone.
	d.capture.write(make([]int16, 4*frame20))
	for range 60 {
		d.capture.write(make([]int16, frame20))
		if !d.ReadFrame(got) {
			t.Fatal("read failed with frames queued")
		}
	}
	if n := d.capture.len(); n > frame20 {
		t.Fatalf("%d samples still standing after a second, want ≤ one frame", n)
	}
	// A bursty device (two frames every other tick) is not trimmed.
	before := d.capture.droppedSamples()
	for i := range 200 {
		if i%2 == 0 {
			d.capture.write(make([]int16, 2*frame20))
		}
		d.ReadFrame(got)
	}
	if dropped := d.capture.droppedSamples() - before; dropped != 0 {
		t.Fatalf("bursty but balanced delivery lost %d samples", dropped)
	}
}

func TestDevQueuesWriteNonBlockingAndBounded(t *testing.T) {
	d := testDevQueues()
	for range 1000 { // no device goroutine is draining
		d.WriteFrame(make([]int16, frame20))
	}
	if n := d.play.len(); n > QueueFrames*frame20 {
		t.Fatalf("play queue holds %d samples, bound is %d", n, QueueFrames*frame20)
	}
	select {
	case <-d.wake:
	default:
		t.Fatal("WriteFrame did not wake the device goroutine")
	}
}

func TestBackoff(t *testing.T) {
	var b backoff
	var got []time.Duration
	for range 8 {
		got = append(got, b.next())
	}
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		1600 * time.Millisecond, 3200 * time.Millisecond, 5 * time.Second, 5 * time.Second, 5 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("back-off %v, want %v", got, want)
	}
	b.reset()
	if d := b.next(); d != 200*time.Millisecond {
		t.Fatalf("after reset %v", d)
	}
}

func TestS16LERoundTrip(t *testing.T) {
	in := []int16{0, 1, -1, 32767, -32768, 0x1234}
	b := putS16LE(make([]byte, 2*len(in)), in)
	if b[10] != 0x34 || b[11] != 0x12 {
		t.Fatalf("not little-endian: % x", b)
	}
	if out := getS16LE(make([]int16, len(in)), b); !slices.Equal(out, in) {
		t.Fatalf("round trip %v, want %v", out, in)
	}
}

// Capture drops count only while calls read: what the device captured
// between calls, overflowing a queue nobody reads, and the stale audio the
// first read drops are no loss to anyone.
func TestDevQueuesCaptureDroppedOnlyWhileRead(t *testing.T) {
	d := testDevQueues()
	got := make([]int16, frame20)
	capacity := len(d.capture.buf)
	d.capture.write(make([]int16, capacity+5*frame20)) // idle: no call reads
	d.ReadFrame(got)                                   // a call starts: stale audio trimmed
	if st := d.stats(Stats{}); st.CaptureDropped != 0 || d.capture.droppedSamples() == 0 {
		t.Fatalf("CaptureDropped %d before any loss in a call (queue dropped %d), want 0", st.CaptureDropped, d.capture.droppedSamples())
	}
	// In the call, the device delivers a burst the queue cannot hold.
	over := d.capture.len() + frame20 // what stood, and a frame more than the queue holds
	d.capture.write(make([]int16, capacity+frame20))
	d.ReadFrame(got)
	if st := d.stats(Stats{}); st.CaptureDropped != uint64(over) {
		t.Fatalf("CaptureDropped %d after an overflow in a call, want %d", st.CaptureDropped, over)
	}
	// The call ends; the device fills the queue again, and the next call's
	// first read trims it: not counted.
	time.Sleep(6 * 20 * time.Millisecond)
	d.capture.write(make([]int16, 2*capacity))
	d.ReadFrame(got)
	if st := d.stats(Stats{}); st.CaptureDropped != uint64(over) {
		t.Fatalf("CaptureDropped %d after a pause, want still %d", st.CaptureDropped, over)
	}
}
