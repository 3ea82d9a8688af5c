//go:build integration

package testpeers

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sipRegister sends one REGISTER over UDP from conn and returns the final
// response's status code and headers (lower-cased names).
func sipRegister(t *testing.T, conn *net.UDPConn, registrar, user string, cseq, expires int, callID, auth string) (int, map[string]string) {
	t.Helper()
	local := conn.LocalAddr().(*net.UDPAddr)
	req := fmt.Sprintf("REGISTER sip:%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;rport;branch=z9hG4bK%x\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:%s@%s>;tag=%x\r\n"+
		"To: <sip:%s@%s>\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: %d REGISTER\r\n"+
		"Contact: <sip:%s@%s>\r\n"+
		"Expires: %d\r\n"+
		"%s"+
		"Content-Length: 0\r\n\r\n",
		registrar, local, rand.Uint64(), user, registrar, rand.Uint32(), user, registrar,
		callID, cseq, user, local, expires, auth)
	raddr, _ := net.ResolveUDPAddr("udp", registrar)
	if _, err := conn.WriteToUDP([]byte(req), raddr); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 8192)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("REGISTER %s: no response: %v", user, err)
		}
		lines := strings.Split(string(buf[:n]), "\r\n")
		var code int
		fmt.Sscanf(lines[0], "SIP/2.0 %d", &code)
		if code < 200 {
			continue
		}
		h := map[string]string{}
		for _, l := range lines[1:] {
			if k, v, ok := strings.Cut(l, ":"); ok {
				h[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
			}
		}
		return code, h
	}
}

func md5hex(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }

func digestAuth(t *testing.T, challenge, user, pass, uri string) string {
	t.Helper()
	param := func(name string) string {
		m := regexp.MustCompile(name + `="?([^",]*)"?`).FindStringSubmatch(challenge)
		if m == nil {
			t.Fatalf("challenge %q has no %s", challenge, name)
		}
		return m[1]
	}
	realm, nonce, qop := param("realm"), param("nonce"), param("qop")
	if qop != "auth" || !strings.Contains(challenge, "algorithm=MD5") {
		t.Errorf("challenge %q: want qop=auth, algorithm=MD5", challenge)
	}
	cnonce := fmt.Sprintf("%x", rand.Uint64())
	ha1 := md5hex(user + ":" + realm + ":" + pass)
	ha2 := md5hex("REGISTER:" + uri)
	resp := md5hex(ha1 + ":" + nonce + ":00000001:" + cnonce + ":auth:" + ha2)
	return fmt.Sprintf("Authorization: Digest username=%q, realm=%q, nonce=%q, uri=%q, response=%q, algorithm=MD5, qop=auth, nc=00000001, cnonce=%q\r\n",
		user, realm, nonce, uri, resp, cnonce)
}

// TestKamailioRegistrar checks the registrar the e2e tests rely on: 401 with
// qop=auth MD5, wrong password rejected, right one saved in the location
// table, un-REGISTER removes it, the table is empty after a restart.
func TestKamailioRegistrar(t *testing.T) {
	k := StartKamailio(t, KamailioOptions{Users: map[string]string{"4000": "secret4000"}})
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	uri := "sip:" + k.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for _, user := range []string{"3001", "4000"} {
		pass := map[string]string{"3001": "sip3001", "4000": "secret4000"}[user]
		callID := fmt.Sprintf("%x@test", rand.Uint64())
		code, h := sipRegister(t, conn, k.Addr(), user, 1, 60, callID, "")
		if code != 401 || !strings.HasPrefix(h["www-authenticate"], "Digest") {
			t.Fatalf("%s: REGISTER without credentials = %d %q, want 401 with a Digest challenge", user, code, h["www-authenticate"])
		}
		code, _ = sipRegister(t, conn, k.Addr(), user, 2, 60, callID, digestAuth(t, h["www-authenticate"], user, "wrong", uri))
		if code != 401 && code != 403 {
			t.Fatalf("%s: wrong password got %d, want 401 or 403", user, code)
		}
		code, h = sipRegister(t, conn, k.Addr(), user, 3, 60, callID, "")
		code, _ = sipRegister(t, conn, k.Addr(), user, 4, 60, callID, digestAuth(t, h["www-authenticate"], user, pass, uri))
		if code != 200 {
			t.Fatalf("%s: right password got %d, want 200", user, code)
		}
		if err := k.WaitLocation(ctx, user, true); err != nil {
			t.Fatal(err)
		}
		if user == "3001" {
			code, h = sipRegister(t, conn, k.Addr(), user, 5, 0, callID, "")
			code, _ = sipRegister(t, conn, k.Addr(), user, 6, 0, callID, digestAuth(t, h["www-authenticate"], user, pass, uri))
			if code != 200 {
				t.Fatalf("un-REGISTER got %d, want 200", code)
			}
			if err := k.WaitLocation(ctx, user, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Expires below the minimum is raised to 10 s.
	callID := fmt.Sprintf("%x@test", rand.Uint64())
	_, h := sipRegister(t, conn, k.Addr(), "3002", 1, 5, callID, "")
	code, h := sipRegister(t, conn, k.Addr(), "3002", 2, 5, callID, digestAuth(t, h["www-authenticate"], "3002", "sip3002", uri))
	if code != 200 || !strings.Contains(h["contact"], "expires=10") {
		t.Errorf("Expires 5 got %d with Contact %q, want 200 and expires=10", code, h["contact"])
	}

	port := k.Port()
	k.Restart()
	if k.Port() != port {
		t.Fatalf("restart moved the port from %d to %d", port, k.Port())
	}
	if l, err := k.Locations(); err != nil || len(l) != 0 {
		t.Fatalf("after restart: locations %v, %v; want none", l, err)
	}
	if len(k.LogLines("AUTH challenge REGISTER")) == 0 {
		t.Error("log has no AUTH challenge lines")
	}
}

// TestBaresipCallThroughKamailio: two registered baresips call each other
// through Kamailio (407 on INVITE), the callee answers manually, both hear
// the other's tone, hold/resume is visible on both sides, hangup closes the
// call on both.
func TestBaresipCallThroughKamailio(t *testing.T) {
	k := StartKamailio(t, KamailioOptions{})
	a := StartBaresip(t, "3001", BaresipOptions{Registrar: k.Addr(), Source: "ausine,440", Record: true})
	b := StartBaresip(t, "3002", BaresipOptions{Registrar: k.Addr(), Source: "ausine,880", Record: true, Answer: "manual", DisplayName: "Bob Peer"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, u := range []string{"3001", "3002"} {
		if err := k.WaitLocation(ctx, u, true); err != nil {
			t.Fatal(err)
		}
	}

	start := time.Now()
	if err := a.Dial("sip:3002@" + k.Addr()); err != nil {
		t.Fatal(err)
	}
	in, err := b.WaitEvent(ctx, "CALL_INCOMING")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(in.PeerURI, "3001") || in.PeerDisplayName != "Peer 3001" {
		t.Errorf("CALL_INCOMING peer %q %q, want 3001 \"Peer 3001\"", in.PeerURI, in.PeerDisplayName)
	}
	if err := b.Answer(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Baresip{a, b} {
		if _, err := p.WaitEvent(ctx, "CALL_ESTABLISHED"); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("dial → both established: %v", time.Since(start))
	if len(k.LogLines("AUTH challenge INVITE 3001")) == 0 {
		t.Error("INVITE was not challenged with 407")
	}
	time.Sleep(2 * time.Second)

	if err := a.Hold(); err != nil {
		t.Fatal(err)
	}
	waitDir(t, b, "recvonly")
	if err := a.Resume(); err != nil {
		t.Fatal(err)
	}
	waitDir(t, b, "sendrecv")
	if got := k.LogLines("REINVITE INVITE from 3001 to 3002 dir=sendonly"); len(got) != 1 {
		t.Errorf("kamailio saw %d hold re-INVITEs, want 1", len(got))
	}

	if err := a.Hangup(); err != nil {
		t.Fatal(err)
	}
	closed, err := b.WaitEvent(ctx, "CALL_CLOSED")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("callee CALL_CLOSED: %q", closed.Param)
	if _, err := a.WaitEvent(ctx, "CALL_CLOSED"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		p    *Baresip
		want float64
	}{{a, 880}, {b, 440}} {
		wavs := tc.p.ReceivedWAVs()
		if len(wavs) != 1 {
			t.Fatalf("%s recorded %v, want one *-dec.wav", tc.p.Ext(), wavs)
		}
		au, err := ReadWAV(wavs[0])
		if err != nil {
			t.Fatal(err)
		}
		// The first 2 s, before any re-INVITE (sndfile's recording of the
		// received side stops at the first hold).
		head := au.Slice(0.3, 1.8)
		f := DominantFrequency(head.Samples, head.Rate)
		r := ToneRatio(head.Samples, head.Rate, tc.want)
		t.Logf("%s heard %.1f Hz (ratio at %v: %.3f, rms %.3f, %.1f s recorded)", tc.p.Ext(), f, tc.want, r, RMS(head.Samples), au.Seconds())
		if math.Abs(f-tc.want) > 5 || r < 0.8 {
			t.Errorf("%s heard %.1f Hz (ratio %.3f), want %v Hz", tc.p.Ext(), f, r, tc.want)
		}
	}
}

func waitDir(t *testing.T, p *Baresip, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := p.AudioDir()
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s audio dir = %q (%v), want %q", p.Ext(), got, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestBaresipDirectBusyAndAbsent: an unregistered peer is reached directly;
// a manual peer that hangs up a ringing call answers 486; a call to an
// unregistered user through Kamailio gets 404.
func TestBaresipDirectBusyAndAbsent(t *testing.T) {
	k := StartKamailio(t, KamailioOptions{})
	a := StartBaresip(t, "3003", BaresipOptions{Registrar: k.Addr()})
	b := StartBaresip(t, "3004", BaresipOptions{Answer: "manual"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if err := a.Dial(b.URI()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitEvent(ctx, "CALL_INCOMING"); err != nil {
		t.Fatal(err)
	}
	if err := b.Hangup(); err != nil {
		t.Fatal(err)
	}
	ev, err := a.WaitEvent(ctx, "CALL_CLOSED")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ev.Param, "486") {
		t.Errorf("busy callee: caller CALL_CLOSED %q, want 486", ev.Param)
	}

	if err := a.Dial("sip:3009@" + k.Addr()); err != nil {
		t.Fatal(err)
	}
	ev, err = a.WaitEvent(ctx, "CALL_CLOSED")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ev.Param, "404") {
		t.Errorf("absent callee: CALL_CLOSED %q, want 404", ev.Param)
	}
}

// TestPulse: a tone played into a null sink is recorded from its monitor,
// and module-loopback carries it into a second sink.
func TestPulse(t *testing.T) {
	p := StartPulse(t)
	p.NullSink("chan1")
	p.NullSink("chan2")
	p.Loopback("chan1.monitor", "chan2")
	rec1 := p.Record("chan1.monitor", 8000)
	rec2 := p.Record("chan2.monitor", 8000)
	wav := t.TempDir() + "/tone.wav"
	if err := WriteToneWAV(wav, 48000, 1000, 0.5, 2); err != nil {
		t.Fatal(err)
	}
	paplay := RequireBinary(t, "paplay", "pulseaudio-utils")
	cmd := exec.Command(paplay, "-d", "chan1", wav)
	cmd.Env = append(os.Environ(), p.Env()...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("paplay: %v: %s", err, out)
	}
	time.Sleep(300 * time.Millisecond)
	for name, a := range map[string]Audio{"chan1.monitor": rec1.Stop(), "chan2.monitor (loopback)": rec2.Stop()} {
		f := DominantFrequency(a.Samples, a.Rate)
		t.Logf("%s: %.1f s, %.1f Hz, rms %.3f, ratio %.3f", name, a.Seconds(), f, RMS(a.Samples), ToneRatio(a.Samples, a.Rate, 1000))
		if math.Abs(f-1000) > 5 || ToneRatio(a.Samples, a.Rate, 1000) < 0.9 {
			t.Errorf("%s: heard %.1f Hz, want 1000", name, f)
		}
	}
}

// cpuSeconds is utime+stime of pid from /proc (clock ticks of 100 Hz).
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the ")" of the command name: state is field 3, utime 14, stime 15.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var ut, st float64
	fmt.Sscan(f[11], &ut)
	fmt.Sscan(f[12], &st)
	return (ut + st) / 100
}

// TestBaresipPlayerCPU guards the default player choice: a call between two
// harness peers must cost a few percent of a core, not the whole core that
// the clock-less alsa,null player burns.
func TestBaresipPlayerCPU(t *testing.T) {
	a := StartBaresip(t, "3005", BaresipOptions{Record: true})
	b := StartBaresip(t, "3006", BaresipOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Dial(b.URI()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*Baresip{a, b} {
		if _, err := p.WaitEvent(ctx, "CALL_ESTABLISHED"); err != nil {
			t.Fatal(err)
		}
	}
	ca, cb := cpuSeconds(t, a.PID()), cpuSeconds(t, b.PID())
	const talk = 4 * time.Second
	time.Sleep(talk)
	for _, x := range []struct {
		p    *Baresip
		from float64
	}{{a, ca}, {b, cb}} {
		share := (cpuSeconds(t, x.p.PID()) - x.from) / talk.Seconds()
		t.Logf("baresip %s: %.1f%% of a core during the call", x.p.Ext(), share*100)
		if share > 0.2 {
			t.Errorf("baresip %s used %.0f%% of a core in a call, want < 20%% (a busy-looping player?)", x.p.Ext(), share*100)
		}
	}
	if err := a.Hangup(); err != nil {
		t.Fatal(err)
	}
}
