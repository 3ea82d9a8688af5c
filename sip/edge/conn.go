package edge

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
)

// maxDatagram is the largest UDP payload (RFC 3261 §18.1.1: a UDP
// implementation must take messages up to it).
const maxDatagram = 65535

// PacketConn returns c with every datagram vetted before its reader (sipgo)
// sees it. Only one goroutine may read from the result, as sipgo does.
func (e *Edge) PacketConn(c net.PacketConn) net.PacketConn {
	return &packetConn{PacketConn: c, e: e, buf: make([]byte, maxDatagram)}
}

type packetConn struct {
	net.PacketConn
	e   *Edge
	buf []byte // owned by the single reader
}

func (c *packetConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(c.buf)
		if err != nil {
			return 0, addr, err
		}
		data := c.buf[:n]
		if c.e.closing.Load() {
			continue // Close began: nothing more for the stack
		}
		if keepAlive(data) {
			return copy(p, data), addr, nil
		}
		c.e.tapped(false, "udp", c.LocalAddr(), addr, data)
		var v verdict
		if n > len(p) {
			// More than the stack reads (sipgo's buffer, 32 KB): it would see
			// a truncated message.
			v = c.e.tooBig(data, addr)
		} else {
			v = c.e.vet(data, addr)
		}
		if len(v.pass) > len(p) {
			v = c.e.tooBig(data, addr)
		}
		if v.reply != nil {
			// Best effort, like any stateless answer; an error here is the
			// peer's problem (unreachable), not ours.
			_, _ = c.WriteTo(v.reply, replyAddr(v.reply, addr))
		}
		if v.pass != nil {
			return copy(p, v.pass), addr, nil
		}
	}
}

// replyAddr is where a stateless answer over UDP goes (RFC 3261 §18.2.2,
// as sipgo sends its own): the source address, with the source port when
// the top Via asked for rport (RFC 3581, filled in by response), else the
// Via's sent-by port, else 5060.
func replyAddr(reply []byte, src net.Addr) net.Addr {
	ua, ok := src.(*net.UDPAddr)
	if !ok {
		return src
	}
	raw := splitRaw(reply)
	via, ok := raw.first("via")
	if !ok {
		return src
	}
	top, _, _ := strings.Cut(via, ",")
	for _, p := range params(top) {
		k, _, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "rport") {
			return src
		}
	}
	return &net.UDPAddr{IP: ua.IP, Port: sentByPort(top), Zone: ua.Zone}
}

// sentByPort is the port of a Via value's sent-by, 5060 when it has none
// or it cannot be read.
func sentByPort(via string) int {
	sentBy, _, _ := strings.Cut(via, ";")
	f := strings.Fields(strings.ReplaceAll(sentBy, "/", " / "))
	if len(f) == 0 {
		return 5060
	}
	hostport := f[len(f)-1]
	if strings.HasSuffix(hostport, "]") {
		return 5060
	}
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.Contains(hostport[:i], ":") {
		if p, err := strconv.Atoi(hostport[i+1:]); err == nil && p > 0 && p < 65536 {
			return p
		}
	}
	if i := strings.LastIndex(hostport, "]:"); i >= 0 {
		if p, err := strconv.Atoi(hostport[i+2:]); err == nil && p > 0 && p < 65536 {
			return p
		}
	}
	return 5060
}

// Listener returns l with the messages of every accepted connection
// framed and vetted before its reader (sipgo) sees them.
func (e *Edge) Listener(l net.Listener) net.Listener { return &listener{Listener: l, e: e} }

type listener struct {
	net.Listener
	e *Edge
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.e.Stream(c), nil
}

// Stream returns c, a connection we opened ourselves, with its messages
// framed and vetted as on an accepted one.
func (e *Edge) Stream(c net.Conn) net.Conn { return &streamConn{Conn: c, e: e} }

// maxStreamMessage bounds one message on a stream: header and body.
const maxStreamMessage = maxDatagram

// streamConn frames the byte stream into messages (RFC 3261 §18.3: by
// Content-Length) and passes on the ones vet lets through. Read is called
// by one goroutine (sipgo's reader); replies are written on the conn, which
// is safe next to sipgo's own writes.
type streamConn struct {
	net.Conn
	e       *Edge
	in      []byte // read, not yet framed
	out     []byte // vetted, not yet returned
	rbuf    []byte
	readErr error
	closing bool // framing lost: return EOF once out is drained
}

func (c *streamConn) Read(p []byte) (int, error) {
	for len(c.out) == 0 {
		if c.closing {
			// sipgo closes the connection when its reader sees EOF.
			return 0, io.EOF
		}
		if c.frame() {
			continue
		}
		if c.readErr != nil {
			return 0, c.readErr
		}
		if c.rbuf == nil {
			c.rbuf = make([]byte, 16*1024)
		}
		n, err := c.Conn.Read(c.rbuf)
		c.in = append(c.in, c.rbuf[:n]...)
		if err != nil {
			c.readErr = err
		}
	}
	n := copy(p, c.out)
	c.out = c.out[n:]
	if len(c.out) == 0 {
		c.out = nil
	}
	return n, nil
}

// frame moves what it can from in to out (or answers it); false when it
// needs more bytes.
func (c *streamConn) frame() bool {
	if len(c.in) == 0 {
		return false
	}
	// CRLF keep-alives (RFC 5626 §3.5.1) go to sipgo, which answers them.
	if i := leadingCRLF(c.in); i > 0 {
		c.out = append(c.out, c.in[:i]...)
		c.in = c.in[i:]
		return true
	}
	end := headerEnd(c.in)
	if end < 0 {
		if len(c.in) > maxStreamMessage || (c.readErr != nil && len(c.in) > 0) {
			c.lost(c.in, "header without end")
			return true
		}
		return false
	}
	raw := splitRaw(c.in[:end])
	cl, ok := contentLength(&raw)
	if !ok {
		c.lost(c.in[:end], "bad Content-Length")
		return true
	}
	if end+cl > maxStreamMessage {
		v := c.e.tooBig(c.in[:end], c.RemoteAddr())
		c.send(v)
		c.closing = true
		return true
	}
	if len(c.in) < end+cl {
		if c.readErr != nil {
			// The peer is gone before the body came (RFC 4475 §3.1.2.2 over
			// a stream): nothing to answer.
			c.in = nil
		}
		return false
	}
	msg := c.in[: end+cl : end+cl]
	c.in = c.in[end+cl:]
	if c.e.closing.Load() {
		return true // Close began: nothing more for the stack
	}
	c.e.tapped(false, "tcp", c.LocalAddr(), c.RemoteAddr(), msg)
	v := c.e.vet(msg, c.RemoteAddr())
	c.send(v)
	if v.pass != nil {
		c.out = append(c.out, v.pass...)
	}
	return true
}

// lost answers the message whose framing cannot be trusted (400 when it
// is a request with a Via) and closes the connection after: the stream
// cannot be resynchronised (RFC 4475 §3.1.2.3, §3.3.9).
func (c *streamConn) lost(head []byte, why string) {
	raw := splitRaw(head)
	c.e.malformed.Add(1)
	v := c.e.answer(&raw, c.RemoteAddr(), 400, "Bad Request", why, nil)
	c.send(v)
	c.in = nil
	c.closing = true
}

func (c *streamConn) send(v verdict) {
	if v.reply != nil {
		_, _ = c.Write(v.reply)
	}
	if v.closeConn {
		c.closing = true
	}
}

func leadingCRLF(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// contentLength of a stream message: absent is 0; several different
// values, a negative or non-numeric one is a framing error.
func contentLength(m *rawMessage) (int, bool) {
	vals := m.all("content-length")
	if len(vals) == 0 {
		return 0, true
	}
	n := -1
	for _, v := range vals {
		v = strings.TrimSpace(v)
		x, err := strconv.Atoi(v)
		if err != nil || x < 0 || (n >= 0 && x != n) || bytes.ContainsAny([]byte(v), "+-") {
			return 0, false
		}
		n = x
	}
	return n, true
}
