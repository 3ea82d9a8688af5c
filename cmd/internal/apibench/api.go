package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/telestra/telestra-sip/api"
)

// apiRequester speaks the telestra-sipd API on one connection, one request
// at a time, skipping the broadcast events in between.
type apiRequester struct {
	conn    net.Conn
	fr      *api.FrameReader
	req     []byte // the frame(s) sent per request
	cmd     string
	account string
	seq     uint64
}

func newAPIRequester(conn net.Conn, cmd, account string) *apiRequester {
	return &apiRequester{conn: conn, fr: api.NewFrameReader(conn, 16<<20), cmd: cmd, account: account}
}

func (r *apiRequester) Close() error { return r.conn.Close() }

// reply is the part of a server message the benchmark looks at.
type reply struct {
	Event   string `json:"event"`
	Account string `json:"account"`
	Error   string `json:"error"`
	Cmd     string `json:"cmd"`
	Token   string `json:"token"`
}

func (r *apiRequester) do(ctx context.Context) error {
	deadline(ctx, r.conn)
	r.seq++
	tok := strconv.FormatUint(r.seq, 10)
	// get-status of every account has no fixed number of answers: a ping
	// after it marks the end (commands of a client run in order).
	var msg []byte
	switch {
	case r.cmd == api.CmdPing:
		msg = api.AppendFrame(nil, []byte(`{"cmd":"ping","token":"`+tok+`"}`))
	case r.account == "":
		msg = api.AppendFrame(nil, []byte(`{"cmd":"get-status"}`))
		msg = api.AppendFrame(msg, []byte(`{"cmd":"ping","token":"`+tok+`"}`))
	default:
		b, _ := json.Marshal(map[string]string{"cmd": api.CmdGetStatus, "account": r.account})
		msg = api.AppendFrame(nil, b)
	}
	if _, err := r.conn.Write(msg); err != nil {
		return fmt.Errorf("%w: send: %v", errConn, err)
	}
	var failed error
	for {
		raw, err := r.fr.Next()
		if err != nil {
			if errors.Is(err, api.ErrMessageTooLong) {
				continue
			}
			return fmt.Errorf("%w: read: %v", errConn, err)
		}
		var m reply
		if err := json.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("invalid message from the server %q: %w", raw, err)
		}
		switch {
		case m.Event == api.EventPong && m.Token == tok:
			return failed
		case m.Event == api.EventFail && m.Cmd == api.CmdGetStatus:
			failed = fmt.Errorf("fail: %s", m.Error)
			if r.account != "" {
				return failed
			}
		case m.Event == api.EventStatus && r.account != "" && m.Account == r.account:
			return nil
		}
		// Anything else (broadcast events, statuses before the pong) is
		// skipped.
	}
}
