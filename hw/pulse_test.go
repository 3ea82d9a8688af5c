package hw

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

func TestPulseServers(t *testing.T) {
	host, _ := os.Hostname()
	tests := []struct {
		name     string
		explicit string
		env      map[string]string
		want     []pulseServer
	}{
		{name: "explicit unix", explicit: "unix:/run/user/990/pulse/native",
			want: []pulseServer{{"unix", "/run/user/990/pulse/native"}}},
		{name: "bare path", explicit: "/run/pulse/native", want: []pulseServer{{"unix", "/run/pulse/native"}}},
		{name: "tcp default port", explicit: "tcp:127.0.0.1", want: []pulseServer{{"tcp", "127.0.0.1:4713"}}},
		{name: "tcp6 with port", explicit: "tcp6:[::1]:4714", want: []pulseServer{{"tcp6", "[::1]:4714"}}},
		{name: "list and host filter", explicit: "{not-this-host}unix:/a {" + host + "}unix:/b junk unix:/c",
			want: []pulseServer{{"unix", "/b"}, {"unix", "/c"}}},
		{name: "env PULSE_SERVER", env: map[string]string{"PULSE_SERVER": "unix:/x"}, want: []pulseServer{{"unix", "/x"}}},
		{name: "explicit wins over env", explicit: "/y", env: map[string]string{"PULSE_SERVER": "unix:/x"}, want: []pulseServer{{"unix", "/y"}}},
		{name: "session then system socket", env: map[string]string{"PULSE_SERVER": "", "XDG_RUNTIME_DIR": "/run/user/990"},
			want: []pulseServer{{"unix", "/run/user/990/pulse/native"}, {"unix", "/run/pulse/native"}}},
		{name: "system socket only", env: map[string]string{"PULSE_SERVER": "", "XDG_RUNTIME_DIR": ""},
			want: []pulseServer{{"unix", "/run/pulse/native"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PULSE_SERVER", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			if got := pulseServers(tc.explicit); !slices.Equal(got, tc.want) {
				t.Fatalf("pulseServers(%q) = %v, want %v", tc.explicit, got, tc.want)
			}
		})
	}
}

// TestWatchedConnSendsCredsPerFrame checks that during authentication the
// header and payload written separately by proto arrive as one message
// carrying SCM_CREDENTIALS, as PulseAudio's auth-group check needs.
func TestWatchedConnSendsCredsPerFrame(t *testing.T) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.SetsockoptInt(fds[1], syscall.SOL_SOCKET, syscall.SO_PASSCRED, 1); err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "sock")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	client, server := conn(fds[0]), conn(fds[1])
	var failed error
	w := &watchedConn{Conn: client, onErr: func(err error) { failed = err }}
	w.sendCreds.Store(true)

	payload := []byte("LpayloadL")
	header := make([]byte, 20)
	binary.BigEndian.PutUint32(header, uint32(len(payload)))
	for _, part := range [][]byte{header[:7], header[7:], payload} {
		if n, err := w.Write(part); err != nil || n != len(part) {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	buf := make([]byte, 100)
	oob := make([]byte, syscall.CmsgSpace(syscall.SizeofUcred))
	n, oobn, _, _, err := server.ReadMsgUnix(buf, oob)
	if err != nil || failed != nil {
		t.Fatalf("read: %v / %v", err, failed)
	}
	if want := append(header, payload...); !slices.Equal(buf[:n], want) {
		t.Fatalf("received %q, want the whole frame %q in one message", buf[:n], want)
	}
	msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v, %v", msgs, err)
	}
	cred, err := syscall.ParseUnixCredentials(&msgs[0])
	if err != nil || int(cred.Uid) != os.Getuid() || int(cred.Pid) != os.Getpid() {
		t.Fatalf("credentials %+v, %v", cred, err)
	}

	// After authentication, writes go straight through.
	w.sendCreds.Store(false)
	if _, err := w.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if n, err := server.Read(buf); err != nil || string(buf[:n]) != "x" {
		t.Fatalf("plain write: %q, %v", buf[:n], err)
	}
}

// A start that waits for a sound server that is not running yet gives up
// as soon as its context ends (the daemon's SIGTERM), not after ServerWait.
func TestPulseWaitForServerEndsWithContext(t *testing.T) {
	cfg := Config{Backend: "pulse", PulseServer: "unix:" + filepath.Join(t.TempDir(), "native"),
		Format: Format{Rate: 8000, Channels: 1}, FrameTime: 20 * time.Millisecond, Buffer: 10 * time.Millisecond,
		ServerWait: 20 * time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	ch, err := OpenContext(ctx, cfg, ChannelConfig{Name: "a"}, nil)
	if err == nil {
		ch.Close()
		t.Fatal("OpenContext succeeded without a server")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("OpenContext = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("OpenContext returned %v after the cancel, want at once", d-300*time.Millisecond)
	}
}

// On pipewire-pulse every buffer the backend asks for and the margins it
// starts from follow Config.PipeWireQuantum, the graph period: the node
// latency pipewire-pulse derives from the playback attributes,
// (tlength - 2·minreq)/2, and the record fragment are one quantum (plus
// 1 ms, so the graph's power-of-two rounding lands on it), and the
// playback margin starts at one quantum.
func TestPipeWireBuffersFollowQuantum(t *testing.T) {
	for _, tc := range []struct {
		quantum     int
		wantLat     time.Duration // node latency from the playback attributes
		wantFrag    time.Duration
		wantPlay    int // playback margin's low point, samples at 8 kHz
		wantCapture int // capture margin's, with a 10 ms record fragment granted
	}{
		{quantum: 0, wantLat: 256*time.Second/48000 + time.Millisecond, wantFrag: 10 * time.Millisecond, wantPlay: 42, wantCapture: 80}, // the default, 256
		{quantum: 1024, wantLat: 1024*time.Second/48000 + time.Millisecond, wantFrag: 1024*time.Second/48000 + time.Millisecond, wantPlay: 170, wantCapture: 160},
		{quantum: 512, wantLat: 512*time.Second/48000 + time.Millisecond, wantFrag: 512*time.Second/48000 + time.Millisecond, wantPlay: 85, wantCapture: 85},
		// The record fragment never goes below the device buffer (10 ms).
		{quantum: 256, wantLat: 256*time.Second/48000 + time.Millisecond, wantFrag: 10 * time.Millisecond, wantPlay: 42, wantCapture: 80},
	} {
		cfg := Config{Format: Format{Rate: 8000, Channels: 1}, FrameTime: 20 * time.Millisecond,
			Buffer: 10 * time.Millisecond, PipeWireQuantum: tc.quantum}
		a := pulsePlayAttr(cfg, true)
		if lat := (a.tlength - 2*a.minreq) / 2; lat != tc.wantLat {
			t.Errorf("quantum %d: playback node latency %v, want %v (%+v)", tc.quantum, lat, tc.wantLat, a)
		}
		if frag := pulseFragSize(cfg, true); frag != tc.wantFrag {
			t.Errorf("quantum %d: record fragment %v, want %v", tc.quantum, frag, tc.wantFrag)
		}
		play, capture := pulseMargins(cfg, true, 80)
		if play.lo != tc.wantPlay || play.cur != tc.wantPlay {
			t.Errorf("quantum %d: playback margin starts at %d (low %d), want %d", tc.quantum, play.cur, play.lo, tc.wantPlay)
		}
		if capture.lo != tc.wantCapture {
			t.Errorf("quantum %d: capture margin low %d, want %d", tc.quantum, capture.lo, tc.wantCapture)
		}
		// PulseAudio ignores it.
		if pulsePlayAttr(cfg, false) != pulsePlayAttr(Config{Format: cfg.Format, FrameTime: cfg.FrameTime, Buffer: cfg.Buffer}, false) {
			t.Errorf("quantum %d changes PulseAudio's attributes", tc.quantum)
		}
	}
}
