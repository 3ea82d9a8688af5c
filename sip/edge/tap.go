package edge

import "net"

// Wire is one message as the edge's sockets carried it. Data is only valid
// during the Tap call: a tap that keeps it copies it.
type Wire struct {
	Sent      bool   // false: received
	Transport string // "udp", "tcp"
	Local     net.Addr
	Remote    net.Addr
	Data      []byte
}

// Tap sees every message the edge's sockets read or write, as on the wire
// (received ones before they are vetted). It runs on the socket's reader
// or writer goroutine, so it must not block; keep-alives are not shown.
type Tap func(Wire)

// SetTap installs t (nil: none); safe while the sockets run.
func (e *Edge) SetTap(t Tap) {
	if t == nil {
		e.tap.Store(nil)
		return
	}
	e.tap.Store(&t)
}

func (e *Edge) tapped(sent bool, transport string, local, remote net.Addr, b []byte) {
	t := e.tap.Load()
	if t == nil || len(b) == 0 || keepAlive(b) {
		return
	}
	(*t)(Wire{Sent: sent, Transport: transport, Local: local, Remote: remote, Data: b})
}

// WriteTo is the stack's send path on UDP. The tap sees a message before
// the socket does, so that it comes before its answer.
func (c *packetConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	c.e.tapped(true, "udp", c.LocalAddr(), addr, p)
	return c.PacketConn.WriteTo(p, addr)
}

// Write is the stack's send path on an accepted stream; sipgo writes one
// message per call.
func (c *streamConn) Write(p []byte) (int, error) {
	c.e.tapped(true, "tcp", c.LocalAddr(), c.RemoteAddr(), p)
	return c.Conn.Write(p)
}
