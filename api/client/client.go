// Package client is a small Go client of the telestra-sipd TCP API: it frames
// commands as NUL-terminated JSON and reads the replies and broadcast events.
// The CLI and the end-to-end tests use it.
//
//	c, err := client.Dial(ctx, "127.0.0.1:3550")
//	id, err := c.MakeCall(ctx, "account-1", "3002")
//	m, err := c.WaitFor(ctx, client.Match(api.EventCallAnswered, "account-1", id))
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/telestra/telestra-sip/api"
)

// maxFrame bounds one message from the server; a status of many calls is
// far below it.
const maxFrame = 16 << 20

// Message is one message from the server. The common fields are decoded;
// Raw holds the whole JSON object for the rest (Decode).
type Message struct {
	Event      string   `json:"event"`
	Account    string   `json:"account"`
	CallID     int      `json:"call_id"`
	Error      string   `json:"error"`       // fail
	Cmd        string   `json:"cmd"`         // fail caused by a command
	Caller     string   `json:"caller"`      // call-incoming
	CallerName string   `json:"caller_name"` // call-incoming
	Reason     string   `json:"reason"`      // call-ended
	Code       int      `json:"code"`        // call-ended
	Token      string   `json:"token"`       // pong
	Problems   []string `json:"problems"`    // fail of reload: every problem
	Seq        uint64   `json:"seq"`         // broadcast events (extension); pong: the latest; else 0
	Tag        string   `json:"tag"`         // direct answers to a tagged command (extension)
	Version    string   `json:"version"`     // pong (extension)
	UptimeS    int64    `json:"uptime_s"`    // pong (extension)
	Started    string   `json:"started"`     // pong (extension): the daemon run's start time
	Level      string   `json:"level"`       // log-level (extension)
	Digit      string   `json:"digit"`       // dtmf
	DurationMs int      `json:"duration_ms"` // dtmf
	NewCallID  int      `json:"new_call_id"` // call-transferred
	Target     string   `json:"target"`      // call-transferred
	Replaces   *int     `json:"replaces"`    // call-answered of a call that replaced another

	Raw json.RawMessage `json:"-"`
}

// Decode unmarshals the whole message into v (e.g. an *api.Status).
func (m Message) Decode(v any) error { return json.Unmarshal(m.Raw, v) }

// FailError is a `fail` answer to a command.
type FailError struct{ Message }

func (e *FailError) Error() string {
	if e.Account != "" {
		return e.Account + ": " + e.Message.Error
	}
	return e.Message.Error
}

// Client is one connection. Send may be called from any goroutine; Next and
// WaitFor from one goroutine at a time.
type Client struct {
	conn net.Conn
	wmu  sync.Mutex

	msgs   chan item // filled by the read goroutine
	readWG sync.WaitGroup
	closed chan struct{}
	once   sync.Once
	err    error // terminal read error, once msgs is closed

	backlog []Message // skipped by WaitFor, returned first by Next
	tokens  atomic.Uint64
}

type item struct {
	msg Message
	err error
}

// Dial connects to addr ("host:port").
func Dial(ctx context.Context, addr string) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect to the telestra-sipd API at %s: %w", addr, err)
	}
	return New(conn), nil
}

// New wraps an established connection.
func New(conn net.Conn) *Client {
	c := &Client{conn: conn, msgs: make(chan item, 256), closed: make(chan struct{})}
	c.readWG.Go(c.readLoop)
	return c
}

// readLoop owns reading; it ends when the connection does (Close).
func (c *Client) readLoop() {
	defer close(c.msgs)
	fr := api.NewFrameReader(c.conn, maxFrame)
	for {
		raw, err := fr.Next()
		if err != nil && !errors.Is(err, api.ErrMessageTooLong) {
			c.err = fmt.Errorf("read from %s: %w", c.conn.RemoteAddr(), err)
			return
		}
		var it item
		if err != nil {
			it.err = fmt.Errorf("message from the server longer than %d bytes skipped", maxFrame)
		} else if it.msg, it.err = parse(raw); it.err != nil {
			it.err = fmt.Errorf("server sent an invalid message %q: %w", raw, it.err)
		}
		select {
		case c.msgs <- it:
		case <-c.closed:
			return
		}
	}
}

func parse(raw []byte) (Message, error) {
	var m Message
	if err := json.Unmarshal(raw, &m); err != nil {
		return Message{}, err
	}
	m.Raw = append(json.RawMessage(nil), raw...)
	return m, nil
}

// Close closes the connection and waits for the read goroutine.
func (c *Client) Close() error {
	var err error
	c.once.Do(func() {
		close(c.closed)
		err = c.conn.Close()
		c.readWG.Wait()
	})
	return err
}

// Send marshals cmd as JSON and sends it with its NUL terminator.
func (c *Client) Send(cmd any) error {
	b, err := json.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("encode command: %w", err)
	}
	return c.SendRaw(b)
}

// SendRaw sends b followed by a NUL, as is (for tests of bad input).
func (c *Client) SendRaw(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.conn.Write(api.AppendFrame(make([]byte, 0, len(b)+1), b)); err != nil {
		return fmt.Errorf("send to %s: %w", c.conn.RemoteAddr(), err)
	}
	return nil
}

// Next returns the next message: first those WaitFor skipped, in order. A
// message the server framed wrongly gives an error but the client stays
// usable; after the connection ended every call returns the same error.
func (c *Client) Next(ctx context.Context) (Message, error) {
	if len(c.backlog) > 0 {
		m := c.backlog[0]
		c.backlog = c.backlog[1:]
		return m, nil
	}
	return c.receive(ctx)
}

func (c *Client) receive(ctx context.Context) (Message, error) {
	select {
	case it, ok := <-c.msgs:
		if !ok {
			return Message{}, c.err
		}
		return it.msg, it.err
	case <-ctx.Done():
		return Message{}, ctx.Err()
	}
}

// WaitFor returns the first message (backlog first) for which match is
// true. The messages it skips are kept, in order, for later Next calls.
func (c *Client) WaitFor(ctx context.Context, match func(Message) bool) (Message, error) {
	for i, m := range c.backlog {
		if match(m) {
			c.backlog = append(c.backlog[:i:i], c.backlog[i+1:]...)
			return m, nil
		}
	}
	for {
		m, err := c.receive(ctx)
		if err != nil {
			return Message{}, err
		}
		if match(m) {
			return m, nil
		}
		c.backlog = append(c.backlog, m)
	}
}

// Match matches an event by name, account ("" = any) and call ID (< 0 = any).
func Match(event, account string, callID int) func(Message) bool {
	return func(m Message) bool {
		return m.Event == event && (account == "" || m.Account == account) && (callID < 0 || m.CallID == callID)
	}
}

// failOf matches the fail caused by cmd on account.
func failOf(cmd, account string) func(Message) bool {
	return func(m Message) bool {
		return m.Event == api.EventFail && m.Cmd == cmd && m.Account == account
	}
}

// Typed commands. The helpers rely on one client's commands being run in
// order and their direct answers written before anything they cause later.

// Ping sends a ping and waits for its pong. Commands sent before it have
// been run when it returns.
func (c *Client) Ping(ctx context.Context) error {
	_, err := c.Pong(ctx)
	return err
}

// Pong is Ping returning the pong, which tells the daemon's version and
// uptime.
func (c *Client) Pong(ctx context.Context) (Message, error) {
	tok := "sync-" + strconv.FormatUint(c.tokens.Add(1), 10)
	if err := c.Send(map[string]any{"cmd": api.CmdPing, "token": tok}); err != nil {
		return Message{}, err
	}
	return c.WaitFor(ctx, func(m Message) bool { return m.Event == api.EventPong && m.Token == tok })
}

// Resume asks for the broadcast events after seq since that this client
// missed; they arrive, in order, before the answers to later commands.
// started is the Started of a pong of the run since counts in ("": not
// known): when the daemon has restarted since, every kept event of the new
// run comes instead. A fail with cmd "resume" says what is lost.
func (c *Client) Resume(since uint64, started string) error {
	cmd := map[string]any{"cmd": api.CmdResume, "since": since}
	if started != "" {
		cmd["started"] = started
	}
	return c.Send(cmd)
}

// LogLevel sets the daemon's log level ("debug", "info", "warn", "error"),
// or only reads it when level is "", and returns the level in force.
func (c *Client) LogLevel(ctx context.Context, level string) (string, error) {
	cmd := map[string]any{"cmd": api.CmdLogLevel}
	if level != "" {
		cmd["level"] = level
	}
	if err := c.Send(cmd); err != nil {
		return "", err
	}
	isFail := failOf(api.CmdLogLevel, "")
	m, err := c.WaitFor(ctx, func(m Message) bool { return isFail(m) || m.Event == api.EventLogLevel })
	if err != nil {
		return "", err
	}
	if m.Event == api.EventFail {
		return "", &FailError{m}
	}
	return m.Level, nil
}

// do sends a command that has no answer of its own, then a ping: a fail of
// that command before the pong is returned as a *FailError.
func (c *Client) do(ctx context.Context, cmd map[string]any) error {
	name, _ := cmd["cmd"].(string)
	account, _ := cmd["account"].(string)
	tok := "sync-" + strconv.FormatUint(c.tokens.Add(1), 10)
	if err := c.Send(cmd); err != nil {
		return err
	}
	if err := c.Send(map[string]any{"cmd": api.CmdPing, "token": tok}); err != nil {
		return err
	}
	isFail := failOf(name, account)
	m, err := c.WaitFor(ctx, func(m Message) bool {
		return isFail(m) || m.Event == api.EventPong && m.Token == tok
	})
	if err != nil {
		return err
	}
	if m.Event == api.EventFail {
		// Drop the pong that follows so it does not surface in Next.
		if _, err := c.WaitFor(ctx, func(m Message) bool { return m.Event == api.EventPong && m.Token == tok }); err != nil {
			return err
		}
		return &FailError{m}
	}
	return nil
}

// Login sends login; nil credentials are left out (the daemon keeps the
// values in force). It returns once the daemon accepted the command;
// registration itself runs in the background (watch for a broadcast fail).
func (c *Client) Login(ctx context.Context, account string, user, pass, server *string) error {
	cmd := map[string]any{"cmd": api.CmdLogin, "account": account}
	for k, v := range map[string]*string{"user": user, "pass": pass, "server": server} {
		if v != nil {
			cmd[k] = *v
		}
	}
	return c.do(ctx, cmd)
}

// Logout sends logout.
func (c *Client) Logout(ctx context.Context, account string) error {
	return c.do(ctx, map[string]any{"cmd": api.CmdLogout, "account": account})
}

// AnswerCall sends answer-call.
func (c *Client) AnswerCall(ctx context.Context, account string, callID int) error {
	return c.do(ctx, map[string]any{"cmd": api.CmdAnswerCall, "account": account, "call_id": callID})
}

// SwitchCall sends switch-call.
func (c *Client) SwitchCall(ctx context.Context, account string, callID int) error {
	return c.do(ctx, map[string]any{"cmd": api.CmdSwitchCall, "account": account, "call_id": callID})
}

// HangupCall sends hangup-call (decline: 603 instead of 486 for a ringing
// incoming call).
func (c *Client) HangupCall(ctx context.Context, account string, callID int, decline bool) error {
	cmd := map[string]any{"cmd": api.CmdHangupCall, "account": account, "call_id": callID}
	if decline {
		cmd["decline"] = true
	}
	return c.do(ctx, cmd)
}

// SendDTMF sends send-dtmf (durationMs 0: the daemon's default).
func (c *Client) SendDTMF(ctx context.Context, account string, callID int, digits string, durationMs int) error {
	cmd := map[string]any{"cmd": api.CmdSendDTMF, "account": account, "call_id": callID, "digits": digits}
	if durationMs > 0 {
		cmd["duration_ms"] = durationMs
	}
	return c.do(ctx, cmd)
}

// TransferCall sends transfer-call; the outcome comes later (call-ended
// "transferred", or a fail).
func (c *Client) TransferCall(ctx context.Context, account string, callID int, num string) error {
	return c.do(ctx, map[string]any{"cmd": api.CmdTransferCall, "account": account, "call_id": callID, "num": num})
}

// MakeCall sends make-call and returns the call ID of its call-return.
func (c *Client) MakeCall(ctx context.Context, account, num string) (int, error) {
	if err := c.Send(map[string]any{"cmd": api.CmdMakeCall, "account": account, "num": num}); err != nil {
		return 0, err
	}
	isFail := failOf(api.CmdMakeCall, account)
	m, err := c.WaitFor(ctx, func(m Message) bool {
		return isFail(m) || m.Event == api.EventCallReturn && m.Account == account
	})
	if err != nil {
		return 0, err
	}
	if m.Event == api.EventFail {
		return 0, &FailError{m}
	}
	return m.CallID, nil
}

// GetStatus returns the status of account, or of every account in plan
// order when account is "".
func (c *Client) GetStatus(ctx context.Context, account string) ([]api.Status, error) {
	cmd := map[string]any{"cmd": api.CmdGetStatus}
	if account != "" {
		cmd["account"] = account
	}
	if err := c.Send(cmd); err != nil {
		return nil, err
	}
	// The statuses of one command arrive together; a pong marks the end.
	tok := "sync-" + strconv.FormatUint(c.tokens.Add(1), 10)
	if err := c.Send(map[string]any{"cmd": api.CmdPing, "token": tok}); err != nil {
		return nil, err
	}
	isFail := failOf(api.CmdGetStatus, account)
	var out []api.Status
	var failed *FailError
	for {
		m, err := c.WaitFor(ctx, func(m Message) bool {
			return m.Event == api.EventStatus || isFail(m) || m.Event == api.EventPong && m.Token == tok
		})
		if err != nil {
			return nil, err
		}
		switch m.Event {
		case api.EventPong:
			if failed != nil {
				return nil, failed
			}
			return out, nil
		case api.EventFail:
			failed = &FailError{m}
		default:
			var st api.Status
			if err := m.Decode(&st); err != nil {
				return nil, fmt.Errorf("decode status: %w", err)
			}
			out = append(out, st)
		}
	}
}

// Reload asks the daemon to re-read its SIP plan and waits until it is
// applied (the changes are returned) or rejected (a *FailError whose
// Problems list every problem; the daemon keeps the running plan).
func (c *Client) Reload(ctx context.Context) (api.Reloaded, error) {
	if err := c.Send(map[string]any{"cmd": api.CmdReload}); err != nil {
		return api.Reloaded{}, err
	}
	isFail := failOf(api.CmdReload, "")
	m, err := c.WaitFor(ctx, func(m Message) bool { return isFail(m) || m.Event == api.EventReloaded })
	if err != nil {
		return api.Reloaded{}, err
	}
	if m.Event == api.EventFail {
		return api.Reloaded{}, &FailError{m}
	}
	var r api.Reloaded
	if err := m.Decode(&r); err != nil {
		return api.Reloaded{}, fmt.Errorf("decode reloaded: %w", err)
	}
	return r, nil
}
