package edge

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// chunkConn is a net.Conn whose peer sent chunks and then closed; what the
// edge writes back is kept.
type chunkConn struct {
	chunks  [][]byte
	written bytes.Buffer
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	c.chunks[0] = c.chunks[0][n:]
	if len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}
func (c *chunkConn) Write(p []byte) (int, error) { return c.written.Write(p) }
func (c *chunkConn) Close() error                { return nil }
func (c *chunkConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5090} }
func (c *chunkConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *chunkConn) SetDeadline(time.Time) error      { return nil }
func (c *chunkConn) SetReadDeadline(time.Time) error  { return nil }
func (c *chunkConn) SetWriteDeadline(time.Time) error { return nil }

// readAll is what sipgo's reader would get from the stream.
func readAll(t testing.TB, c net.Conn) []byte {
	var out []byte
	buf := make([]byte, 100) // small: messages span several reads
	for i := 0; i < 100000; i++ {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("read: %v", err)
			}
			return out
		}
	}
	t.Fatal("stream never ends")
	return nil
}

func split(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		out = append(out, b[:n])
		b = b[n:]
	}
	return append(out, b)
}

func TestStream(t *testing.T) {
	ok1 := opts()
	ok2 := bytes.Replace(opts(), []byte("c1@example.net"), []byte("c2@example.net"), 1)
	withCL := func(cl string) []byte {
		return bytes.Replace(opts(), []byte("Content-Length: 0"), []byte("Content-Length: "+cl), 1)
	}
	for _, tc := range []struct {
		name    string
		chunks  [][]byte
		pass    []byte
		answers []string // status lines written back, in order
	}{
		{name: "two messages in one read", chunks: [][]byte{append(append([]byte{}, ok1...), ok2...)}, pass: append(append([]byte{}, ok1...), ok2...)},
		{name: "a message in 7-byte pieces", chunks: split(ok1, 7), pass: ok1},
		{name: "keep-alive then a message", chunks: [][]byte{[]byte("\r\n\r\n"), ok1}, pass: append([]byte("\r\n\r\n"), ok1...)},
		{name: "negative Content-Length closes", chunks: [][]byte{withCL("-999"), ok2}, answers: []string{"SIP/2.0 400 Bad Request"}},
		{name: "two Content-Lengths close", chunks: [][]byte{bytes.Replace(opts(), []byte("Content-Length: 0"), []byte("Content-Length: 13\r\nl: 5"), 1), ok2}, answers: []string{"SIP/2.0 400 Bad Request"}},
		{name: "body never comes", chunks: [][]byte{withCL("9999")}},
		{name: "broken request, then a good one", chunks: [][]byte{bytes.Replace(opts(), []byte("OPTIONS sip"), []byte("OPTIONS  sip"), 1), ok2}, pass: ok2, answers: []string{"SIP/2.0 400 Bad Request"}},
		{name: "garbage with an end, then a good one", chunks: [][]byte{[]byte("hello\r\n\r\n"), ok2}, pass: ok2},
		{name: "header without end", chunks: [][]byte{[]byte("OPTIONS sip:user@example.com SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx\r\n")}, answers: []string{"SIP/2.0 400 Bad Request"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := &chunkConn{chunks: tc.chunks}
			sc := &streamConn{Conn: cc, e: newTestEdge()}
			if got := readAll(t, sc); !bytes.Equal(got, tc.pass) {
				t.Errorf("sipgo would read %q, want %q", got, tc.pass)
			}
			var got []string
			for _, l := range strings.Split(cc.written.String(), "\r\n") {
				if strings.HasPrefix(l, "SIP/2.0 ") {
					got = append(got, l)
				}
			}
			if strings.Join(got, "|") != strings.Join(tc.answers, "|") {
				t.Errorf("answers %q, want %q", got, tc.answers)
			}
		})
	}
}

func TestReplyAddr(t *testing.T) {
	from := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
	for via, want := range map[string]int{
		"SIP/2.0/UDP h.example.com;branch=z9hG4bKa":                           5060,
		"SIP/2.0/UDP h.example.com:5070;branch=z9hG4bKa":                      5070,
		"SIP/2.0/UDP h.example.com;branch=z9hG4bKa;rport=40000;received=x":    40000,
		"SIP/2.0/UDP [::1]:5080;branch=z9hG4bKa":                              5080,
		"SIP  / 2.0 / UDP   h.example.com:5090 ;branch=z9hG4bKa, SIP/2.0/UDP": 5090,
		"garbage;;,": 5060,
	} {
		reply := []byte("SIP/2.0 400 Bad Request\r\nVia: " + via + "\r\nContent-Length: 0\r\n\r\n")
		got := replyAddr(reply, from).(*net.UDPAddr)
		if got.Port != want || !got.IP.Equal(from.IP) {
			t.Errorf("Via %q: answer to %v, want port %d of the source", via, got, want)
		}
	}
}

// TestPacketConn: over a real loopback socket, a broken request is
// answered by the edge and never reaches the reader; a valid one does; a
// datagram over the reader's buffer gets 513.
func TestPacketConn(t *testing.T) {
	srv, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc := newTestEdge().PacketConn(srv)
	defer pc.Close()
	cli, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	got := make(chan []byte, 4)
	go func() {
		buf := make([]byte, 2000)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				close(got)
				return
			}
			got <- append([]byte(nil), buf[:n]...)
		}
	}()
	bad := bytes.Replace(opts(), []byte("OPTIONS sip"), []byte("OPTIONS  sip"), 1)
	big := bytes.Replace(opts(), []byte("Max-Forwards: 70"), []byte("Max-Forwards: 70\r\nX-Pad: "+strings.Repeat("x", 3000)), 1)
	for _, m := range [][]byte{bad, big, opts()} {
		if _, err := cli.WriteTo(m, srv.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	cli.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 65535)
	var answers []string
	for i := 0; i < 2; i++ {
		n, _, err := cli.ReadFrom(buf)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		answers = append(answers, statusOf(buf[:n]))
	}
	if strings.Join(answers, "|") != "SIP/2.0 400 Bad Request|SIP/2.0 513 Message Too Large" {
		t.Errorf("answers %q", answers)
	}
	select {
	case m := <-got:
		if !bytes.Equal(m, opts()) {
			t.Errorf("reader got %q, want the valid OPTIONS", m)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the valid OPTIONS never reached the reader")
	}
}
