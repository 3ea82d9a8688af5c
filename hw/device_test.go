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
	got := make([]int16, frame20)
	if !d.ReadFrame(got) || got[0] != QueueFrames-1 {
		t.Fatalf("first read returned frame %d, want the newest (%d)", got[0], QueueFrames-1)
	}
	if d.ReadFrame(got) {
		t.Fatal("stale frames were kept")
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
