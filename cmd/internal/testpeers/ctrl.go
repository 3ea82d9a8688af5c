package testpeers

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// ctrlConn speaks baresip's ctrl_tcp: netstrings `<len>:<json>,`. baresip
// accepts one client at a time (a new one silently replaces the old), so a
// Baresip owns exactly one ctrlConn.
type ctrlConn struct {
	conn    net.Conn
	onEvent func(Event)

	mu      sync.Mutex
	nextTok int
	pending map[string]chan ctrlResponse
	err     error // set when the reader stops

	done chan struct{}
}

type ctrlResponse struct {
	OK   bool   `json:"ok"`
	Data string `json:"data"`
}

type ctrlMessage struct {
	Response bool   `json:"response"`
	Event    bool   `json:"event"`
	OK       bool   `json:"ok"`
	Data     string `json:"data"`
	Token    string `json:"token"`
}

func dialCtrl(addr string, timeout time.Duration, onEvent func(Event)) (*ctrlConn, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c := &ctrlConn{conn: conn, onEvent: onEvent, pending: map[string]chan ctrlResponse{}, done: make(chan struct{})}
			go c.read()
			return c, nil
		}
		last = err
		time.Sleep(20 * time.Millisecond)
	}
	return nil, fmt.Errorf("ctrl_tcp %s: %w", addr, last)
}

// read is the connection's only reader; it ends when the connection closes.
func (c *ctrlConn) read() {
	defer close(c.done)
	r := bufio.NewReader(c.conn)
	var err error
	for {
		var msg []byte
		msg, err = readNetstring(r)
		if err != nil {
			break
		}
		var m ctrlMessage
		if json.Unmarshal(msg, &m) != nil {
			continue
		}
		switch {
		case m.Response:
			c.mu.Lock()
			ch := c.pending[m.Token]
			delete(c.pending, m.Token)
			c.mu.Unlock()
			if ch != nil {
				ch <- ctrlResponse{OK: m.OK, Data: m.Data}
			}
		case m.Event:
			var ev Event
			if json.Unmarshal(msg, &ev) == nil {
				ev.Time = time.Now()
				ev.Raw = append(json.RawMessage(nil), msg...)
				c.onEvent(ev)
			}
		}
	}
	c.mu.Lock()
	c.err = fmt.Errorf("ctrl_tcp connection closed: %w", err)
	for tok, ch := range c.pending {
		close(ch)
		delete(c.pending, tok)
	}
	c.mu.Unlock()
}

func readNetstring(r *bufio.Reader) ([]byte, error) {
	head, err := r.ReadString(':')
	if err != nil {
		return nil, err
	}
	n, err := strconv.Atoi(head[:len(head)-1])
	if err != nil || n < 0 || n > 16<<20 {
		return nil, fmt.Errorf("bad netstring length %q", head)
	}
	buf := make([]byte, n+1)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	if buf[n] != ',' {
		return nil, errors.New("netstring without trailing comma")
	}
	return buf[:n], nil
}

// command sends one command and waits for its response.
func (c *ctrlConn) command(name, params string, timeout time.Duration) (string, error) {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return "", err
	}
	c.nextTok++
	tok := "t" + strconv.Itoa(c.nextTok)
	ch := make(chan ctrlResponse, 1)
	c.pending[tok] = ch
	c.mu.Unlock()

	body, _ := json.Marshal(map[string]string{"command": name, "params": params, "token": tok})
	frame := append([]byte(strconv.Itoa(len(body))+":"), body...)
	frame = append(frame, ',')
	_ = c.conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.conn.Write(frame); err != nil {
		c.mu.Lock()
		delete(c.pending, tok)
		c.mu.Unlock()
		return "", fmt.Errorf("ctrl_tcp %s: %w", name, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return "", fmt.Errorf("ctrl_tcp %s: connection closed", name)
		}
		if !r.OK {
			return r.Data, fmt.Errorf("baresip %s %q: %s", name, params, r.Data)
		}
		return r.Data, nil
	case <-time.After(timeout):
		c.mu.Lock()
		delete(c.pending, tok)
		c.mu.Unlock()
		return "", fmt.Errorf("ctrl_tcp %s: no response in %v", name, timeout)
	}
}

func (c *ctrlConn) close() {
	c.conn.Close()
	<-c.done
}
