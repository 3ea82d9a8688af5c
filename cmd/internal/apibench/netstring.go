package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
)

// maxNetstring bounds one ctrl_tcp message.
const maxNetstring = 1 << 20

// readNetstring reads one netstring "<len>:<data>," and returns data.
func readNetstring(r *bufio.Reader) ([]byte, error) {
	n := 0
	digits := 0
	for {
		b, err := r.ReadByte()
		if err != nil {
			if err == io.EOF && digits > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if b == ':' {
			break
		}
		if b < '0' || b > '9' {
			return nil, fmt.Errorf("netstring: byte %q in the length", b)
		}
		if digits == 1 && n == 0 {
			return nil, errors.New("netstring: leading zero in the length")
		}
		if digits++; digits > 7 {
			return nil, errors.New("netstring: length too long")
		}
		n = n*10 + int(b-'0')
	}
	if digits == 0 {
		return nil, errors.New("netstring: empty length")
	}
	if n > maxNetstring {
		return nil, fmt.Errorf("netstring: %d bytes is over the %d limit", n, maxNetstring)
	}
	data := make([]byte, n+1)
	if _, err := io.ReadFull(r, data); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if data[n] != ',' {
		return nil, fmt.Errorf("netstring: %q instead of the closing ','", data[n])
	}
	return data[:n], nil
}

func appendNetstring(dst, data []byte) []byte {
	dst = strconv.AppendInt(dst, int64(len(data)), 10)
	dst = append(dst, ':')
	dst = append(dst, data...)
	return append(dst, ',')
}

// baresipRequester sends ctrl_tcp commands and waits for the response with
// the same token, skipping events.
type baresipRequester struct {
	conn net.Conn
	br   *bufio.Reader
	cmd  string
	seq  uint64
}

func newBaresipRequester(conn net.Conn, cmd string) *baresipRequester {
	return &baresipRequester{conn: conn, br: bufio.NewReader(conn), cmd: cmd}
}

func (r *baresipRequester) Close() error { return r.conn.Close() }

func (r *baresipRequester) do(ctx context.Context) error {
	deadline(ctx, r.conn)
	r.seq++
	tok := "b" + strconv.FormatUint(r.seq, 10)
	body, _ := json.Marshal(map[string]string{"command": r.cmd, "token": tok})
	if _, err := r.conn.Write(appendNetstring(nil, body)); err != nil {
		return fmt.Errorf("%w: send: %v", errConn, err)
	}
	for {
		data, err := readNetstring(r.br)
		if err != nil {
			return fmt.Errorf("%w: read: %v", errConn, err)
		}
		var m struct {
			Response bool   `json:"response"`
			OK       bool   `json:"ok"`
			Data     string `json:"data"`
			Token    string `json:"token"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("invalid ctrl_tcp message %q: %w", data, err)
		}
		if !m.Response || m.Token != tok {
			continue // an event
		}
		if !m.OK {
			return fmt.Errorf("baresip refused %q: %s", r.cmd, m.Data)
		}
		return nil
	}
}
