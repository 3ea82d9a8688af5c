//go:build integration

package e2e

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// floodLogBudget is what 1000 malformed datagrams may add to the daemon's
// log at the default level (info). Before the edge layer each one was
// logged at ERROR with its full content: about 2.6 MB for 1000.
const floodLogBudget = 4096

// TestMalformedFloodIsCheap: 1000 datagrams of 2.5 KB, half garbage and
// half SIP requests with a broken request line, from one source: the log
// grows by less than floodLogBudget, the broken requests get at most 50
// answers a second, and the daemon still answers the API and a valid
// OPTIONS. A 60 KB request, more than the stack reads from a datagram,
// gets 513 Message Too Large.
func TestMalformedFloodIsCheap(t *testing.T) {
	p := &plan{
		Accounts:   []account{{Name: "user", User: "user", Pass: "x", NoRegister: true}},
		Transports: []string{"udp", "tcp"},
		LogLevel:   "info",
	}
	d := testpeers.StartDaemon(t, p.render(t))
	c := d.Client(t)
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.SIPPort))
	peer, err := dialPeer("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	port := peer.udp.LocalAddr().(*net.UDPAddr).Port

	// A 60 KB OPTIONS: answered 513, not read truncated.
	big := options(port, "big", "X-Pad: "+strings.Repeat("x", 60000))
	if err := peer.send(big); err != nil {
		t.Fatal(err)
	}
	b, err := peer.recv(3 * time.Second)
	if err != nil {
		t.Fatalf("no answer to a %d-byte OPTIONS: %v", len(big), err)
	}
	if a, err := parseAnswer(b); err != nil || a.code != 513 {
		t.Fatalf("answer to a %d-byte OPTIONS: %q, want 513", len(big), firstLine(b))
	}
	time.Sleep(1100 * time.Millisecond) // a fresh second of answers

	before := len(d.Log())
	pad := strings.Repeat("x", 2500)
	for i := 0; i < 1000; i++ {
		var m []byte
		if i%2 == 0 {
			m = []byte("GARBAGE " + strconv.Itoa(i) + " " + pad + "\r\n\r\n")
		} else {
			m = options(port, "flood"+strconv.Itoa(i), "X-Pad: "+pad)
			m = []byte(strings.Replace(string(m), "OPTIONS sip:", "OPTIONS  sip:", 1)) // two spaces: 400
		}
		if err := peer.send(m); err != nil {
			t.Fatal(err)
		}
	}
	answers := 0
	for {
		if _, err := peer.recv(500 * time.Millisecond); err != nil {
			break
		}
		answers++
	}
	if answers == 0 || answers > 100 {
		t.Errorf("%d answers to 500 broken requests sent within about a second, want 1 to 100 (50 a second)", answers)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.GetStatus(ctx, "user"); err != nil {
		t.Fatalf("API after the flood: %v", err)
	}
	time.Sleep(1100 * time.Millisecond)
	if err := peer.send(options(port, "after", "")); err != nil {
		t.Fatal(err)
	}
	b, err = peer.recv(3 * time.Second)
	if a, perr := parseAnswer(b); err != nil || perr != nil || a.code != 200 {
		t.Fatalf("valid OPTIONS after the flood: %q %v", firstLine(b), err)
	}
	grown := len(d.Log()) - before
	t.Logf("1000 malformed datagrams: log grew %d bytes (budget %d), %d answers", grown, floodLogBudget, answers)
	if grown > floodLogBudget {
		t.Errorf("log grew %d bytes for 1000 malformed datagrams, budget %d:\n%s", grown, floodLogBudget, d.Log()[before:])
	}
}

// options is an OPTIONS to the daemon from 127.0.0.1:port.
func options(port int, callID, extra string) []byte {
	var b strings.Builder
	b.WriteString("OPTIONS sip:user@127.0.0.1 SIP/2.0\r\n")
	b.WriteString("Via: SIP/2.0/UDP 127.0.0.1:" + strconv.Itoa(port) + ";branch=z9hG4bK-" + callID + ";rport\r\n")
	b.WriteString("From: <sip:probe@127.0.0.1>;tag=" + callID + "\r\nTo: <sip:user@127.0.0.1>\r\n")
	b.WriteString("Call-ID: " + callID + "\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n")
	if extra != "" {
		b.WriteString(extra + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	return []byte(b.String())
}
