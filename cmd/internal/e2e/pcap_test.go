//go:build integration

package e2e

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// evDigit is one digit of a generated RFC 4733 capture.
type evDigit struct {
	event    byte          // 0-9, 10 '*', 11 '#'
	pt       uint8         // payload type
	dur      time.Duration // key press
	dupCont  bool          // every continuation packet sent twice (a retransmitting sender)
	lostEnds bool          // none of the three end packets
}

// rfc4733Pcap writes a pcap (Ethernet, IPv4, UDP) of the telephone-event
// packets of digits as RFC 4733 2.5 has a sender send them: a start packet
// with the marker, a continuation every 20 ms with the growing duration,
// the end packet three times; 100 ms between digits. SIPp's
// play_pcap_audio sends the UDP payloads at their recorded times from its
// media port to the daemon's (the capture's addresses do not matter).
func rfc4733Pcap(t *testing.T, digits []evDigit) string {
	t.Helper()
	var b bytes.Buffer
	le := binary.LittleEndian
	hdr := make([]byte, 24)
	le.PutUint32(hdr[0:], 0xa1b2c3d4)
	le.PutUint16(hdr[4:], 2)
	le.PutUint16(hdr[6:], 4)
	le.PutUint32(hdr[16:], 65535)
	le.PutUint32(hdr[20:], 1) // LINKTYPE_ETHERNET
	b.Write(hdr)
	var seq uint16 = 4000
	var at time.Duration
	ts := uint32(160000)
	packet := func(pt uint8, marker bool, event byte, end bool, dur int) {
		rtp := make([]byte, 16)
		rtp[0] = 0x80
		rtp[1] = pt
		if marker {
			rtp[1] |= 0x80
		}
		binary.BigEndian.PutUint16(rtp[2:], seq)
		binary.BigEndian.PutUint32(rtp[4:], ts)
		binary.BigEndian.PutUint32(rtp[8:], 0x7e1e57a5)
		rtp[12] = event
		rtp[13] = 10
		if end {
			rtp[13] |= 0x80
		}
		binary.BigEndian.PutUint16(rtp[14:], uint16(dur))
		seq++
		udp := make([]byte, 8)
		binary.BigEndian.PutUint16(udp[0:], 40000)
		binary.BigEndian.PutUint16(udp[2:], 40002)
		binary.BigEndian.PutUint16(udp[4:], uint16(8+len(rtp)))
		ip := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1}
		binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(rtp)))
		eth := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00}
		frame := append(append(append(eth, ip...), udp...), rtp...)
		rec := make([]byte, 16)
		le.PutUint32(rec[0:], uint32(at/time.Second))
		le.PutUint32(rec[4:], uint32(at%time.Second/time.Microsecond))
		le.PutUint32(rec[8:], uint32(len(frame)))
		le.PutUint32(rec[12:], uint32(len(frame)))
		b.Write(rec)
		b.Write(frame)
	}
	at = 200 * time.Millisecond
	for _, d := range digits {
		steps := int(d.dur / (20 * time.Millisecond))
		for i := 0; i < steps; i++ {
			n := 1
			if d.dupCont && i > 0 {
				n = 2
			}
			for j := 0; j < n; j++ {
				packet(d.pt, i == 0, d.event, false, 160*(i+1))
			}
			at += 20 * time.Millisecond
		}
		if !d.lostEnds {
			for i := 0; i < 3; i++ {
				packet(d.pt, false, d.event, true, 160*(steps+1))
			}
		}
		at += 100 * time.Millisecond
		ts += uint32(160*(steps+1)) + 800
	}
	path := filepath.Join(t.TempDir(), "dtmf.pcap")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// sippScenario copies testdata/sipp/NAME with @KEY@ replaced by vars into a
// temporary folder (SIPp does not substitute its -key values in actions).
func sippScenario(t *testing.T, name string, vars map[string]string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testpeers.RepoRoot(t), "testdata", "sipp", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for k, v := range vars {
		s = strings.ReplaceAll(s, "@"+k+"@", v)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
