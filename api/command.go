package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Command names: the vendor document's seven, plus the extensions "ping"
// and "reload".
const (
	CmdLogin      = "login"
	CmdMakeCall   = "make-call"
	CmdAnswerCall = "answer-call"
	CmdSwitchCall = "switch-call"
	CmdGetStatus  = "get-status"
	CmdHangupCall = "hangup-call"
	CmdLogout     = "logout"
	// CmdPing is an extension: it is answered with a `pong` event carrying
	// the same `token`. As commands of one client run in order, a client can
	// send it after commands that have no reply to learn they were handled.
	CmdPing = "ping"
	// CmdReload is an extension: the daemon re-reads its SIP plan and
	// answers `reloaded` once it is applied, or a `fail` listing every
	// problem once it is rejected (the running plan is then kept).
	CmdReload = "reload"
	// CmdResume is an extension: it replays the broadcast events after
	// `since` that the client missed (history.go).
	CmdResume = "resume"
	// CmdLogLevel is an extension: it reads or sets the daemon's log level.
	CmdLogLevel = "log-level"
	// CmdSendDTMF (extension) sends digits on a call: RFC 4733, else SIP INFO.
	CmdSendDTMF = "send-dtmf"
	// CmdTransferCall (extension) blind-transfers a call (REFER).
	CmdTransferCall = "transfer-call"
)

// DTMF durations a send-dtmf may ask for, in milliseconds.
const (
	MinDTMFMs = 40
	MaxDTMFMs = 5000
)

// MaxTagBytes is the longest `tag` a command may carry.
const MaxTagBytes = 64

// Command is a decoded client command. Only the fields of its Name are set.
type Command struct {
	Name    string
	Account string // "" for get-status without account, and for ping
	Num     string
	CallID  int
	Decline bool
	// Login: nil means "absent, keep the value in force".
	User, Pass, Server *string
	Token              string // ping
	Digits             string // send-dtmf
	DurationMs         int    // send-dtmf; 0: the default
	Since              uint64 // resume
	Started            string // resume: pong's started of the run since counts in; "": not given
	Level              string // log-level; "": read only
	On                 bool   // trace (default true), sip-trace
	// Tag is echoed in the command's direct answer (extension).
	Tag string
}

// CommandError says why a message is not a valid command. Cmd and Account
// are what could be read of the message, for the `fail` event.
type CommandError struct {
	Cmd     string
	Account string
	Tag     string // the command's tag, when it was valid
	Msg     string
}

func (e *CommandError) Error() string { return e.Msg }

// ParseCommand decodes one message (without its NUL). The error is always a
// *CommandError whose text says exactly what was wrong; "at byte N" counts
// the message's bytes from 1, as encoding/json does.
func ParseCommand(msg []byte) (Command, error) {
	// The common case, a flat object of plain ASCII strings, numbers and
	// literals, is scanned without encoding/json and its maps (a third of
	// the daemon's CPU per get-status under load); anything else, including
	// every invalid message, takes the encoding/json path, which words the
	// errors. Both feed the same decoder, so the results are the same
	// (FuzzFlatMatchesJSON).
	var fields [maxFlatFields]field
	if n, ok := scanFlat(msg, &fields); ok {
		return decode(decoder{flat: fields[:n], isFlat: true})
	}
	return parseJSON(msg)
}

// parseJSON is ParseCommand through encoding/json.
func parseJSON(msg []byte) (Command, error) {
	if !utf8.Valid(msg) {
		return Command{}, &CommandError{Msg: fmt.Sprintf("invalid UTF-8 at byte %d: messages must be UTF-8 JSON", invalidUTF8At(msg)+1)}
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(msg, &m); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return Command{}, &CommandError{Msg: fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, se.Error())}
		case errors.As(err, &te):
			return Command{}, &CommandError{Msg: fmt.Sprintf("message must be a JSON object, not %s", jsonKind(msg))}
		default:
			return Command{}, &CommandError{Msg: "invalid JSON: " + err.Error()}
		}
	}
	if m == nil {
		return Command{}, &CommandError{Msg: "message must be a JSON object, not null"}
	}
	return decode(decoder{m: m})
}

// decode reads the command out of the fields of a valid JSON object.
func decode(d decoder) (Command, error) {
	name, ok, err := d.name()
	if err != nil {
		return Command{}, &CommandError{Msg: err.Error()}
	}
	if !ok {
		return Command{}, &CommandError{Msg: `missing field "cmd"`}
	}
	d.cmd = name
	c := Command{Name: name}
	// The account is read first, once, so that every later error can name
	// it.
	var acct accountField
	c.Account, acct.present, acct.err = d.str("account")
	if err := d.tag(&c); err != nil {
		return Command{}, &CommandError{Cmd: name, Account: c.Account, Msg: err.Error()}
	}
	switch name {
	case CmdLogin:
		err = d.each(acct.require(d, c.Account), d.optStr("user", &c.User), d.optStr("pass", &c.Pass), d.optStr("server", &c.Server))
	case CmdMakeCall:
		err = d.each(acct.require(d, c.Account), d.reqStr("num", &c.Num))
	case CmdAnswerCall, CmdSwitchCall:
		err = d.each(acct.require(d, c.Account), d.callID(&c))
	case CmdHangupCall:
		err = d.each(acct.require(d, c.Account), d.callID(&c), d.optBool("decline", &c.Decline))
	case CmdLogout:
		err = acct.require(d, c.Account)
	case CmdGetStatus:
		// account is optional: absent or "" means every account.
		err = acct.err
	case CmdPing:
		err = acct.err
		if err == nil {
			c.Token, _, err = d.str("token")
		}
	case CmdReload:
		err = acct.err
	case CmdResume:
		err = d.each(d.since(&c), d.optStrTo("started", &c.Started))
	case CmdLogLevel:
		err = d.level(&c)
	case CmdSendDTMF:
		err = d.each(acct.require(d, c.Account), d.callID(&c), d.reqStr("digits", &c.Digits), d.optInt("duration_ms", MinDTMFMs, MaxDTMFMs, &c.DurationMs))
		if err == nil && c.Digits == "" {
			err = d.errorf(`field "digits" must not be empty`)
		}
	case CmdTransferCall:
		err = d.each(acct.require(d, c.Account), d.callID(&c), d.reqStr("num", &c.Num))
		if err == nil && c.Num == "" {
			err = d.errorf(`field "num" must not be empty`)
		}
	case CmdTrace:
		c.On = true
		err = acct.err
		if err == nil {
			err = d.optBool("on", &c.On)
		}
	case CmdSIPTrace:
		if _, ok := d.get("on"); !ok {
			err = d.errorf(`missing field "on"`)
		} else {
			err = d.optBool("on", &c.On)
		}
	default:
		return Command{}, &CommandError{Cmd: name, Account: c.Account, Tag: c.Tag,
			Msg: fmt.Sprintf("unknown command %q: use login, make-call, answer-call, switch-call, get-status, hangup-call, logout, ping, reload, resume, log-level, send-dtmf, transfer-call, trace or sip-trace", name)}
	}
	if err != nil {
		return Command{}, &CommandError{Cmd: name, Account: c.Account, Tag: c.Tag, Msg: err.Error()}
	}
	return c, nil
}

// decoder reads typed fields of one command; its errors are prefixed with
// the command name. The fields are in m, or in flat (scanFlat) when isFlat.
type decoder struct {
	cmd    string
	m      map[string]json.RawMessage
	flat   []field
	isFlat bool
}

// get returns the raw value of a field. In a flat object the last of
// duplicate keys wins, as it does when encoding/json fills m.
func (d decoder) get(name string) (json.RawMessage, bool) {
	if !d.isFlat {
		raw, ok := d.m[name]
		return raw, ok
	}
	for i := len(d.flat) - 1; i >= 0; i-- {
		if string(d.flat[i].key) == name {
			return d.flat[i].val, true
		}
	}
	return nil, false
}

// name reads "cmd", returning the constant for a known command name so
// that the usual command costs no allocation for it.
func (d decoder) name() (string, bool, error) {
	if raw, ok := d.get("cmd"); ok && len(raw) >= 2 && raw[0] == '"' {
		switch string(raw[1 : len(raw)-1]) {
		case CmdLogin:
			return CmdLogin, true, nil
		case CmdMakeCall:
			return CmdMakeCall, true, nil
		case CmdAnswerCall:
			return CmdAnswerCall, true, nil
		case CmdSwitchCall:
			return CmdSwitchCall, true, nil
		case CmdGetStatus:
			return CmdGetStatus, true, nil
		case CmdHangupCall:
			return CmdHangupCall, true, nil
		case CmdLogout:
			return CmdLogout, true, nil
		case CmdPing:
			return CmdPing, true, nil
		case CmdReload:
			return CmdReload, true, nil
		case CmdResume:
			return CmdResume, true, nil
		case CmdLogLevel:
			return CmdLogLevel, true, nil
		case CmdSendDTMF:
			return CmdSendDTMF, true, nil
		case CmdTransferCall:
			return CmdTransferCall, true, nil
		}
	}
	return d.str("cmd")
}

func (d decoder) errorf(format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if d.cmd != "" {
		msg = d.cmd + ": " + msg
	}
	return errors.New(msg)
}

// each returns the first non-nil error; arguments are evaluated in order,
// so the first field in the list that is wrong is the one reported.
func (decoder) each(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// str returns a string field; ok is false when it is absent.
func (d decoder) str(name string) (string, bool, error) {
	raw, ok := d.get(name)
	if !ok {
		return "", false, nil
	}
	if len(raw) < 2 || raw[0] != '"' {
		return "", true, d.errorf("field %q must be a string", name)
	}
	if !bytes.ContainsRune(raw, '\\') {
		// The document was validated: a string without escapes is literal.
		return string(raw[1 : len(raw)-1]), true, nil
	}
	var v string // only here: taking its address puts it on the heap
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", true, d.errorf("field %q must be a string", name)
	}
	return v, true, nil
}

func (d decoder) reqStr(name string, dst *string) error {
	v, ok, err := d.str(name)
	switch {
	case err != nil:
		return err
	case !ok:
		return d.errorf("missing field %q", name)
	}
	*dst = v
	return nil
}

func (d decoder) optStr(name string, dst **string) error {
	v, ok, err := d.str(name)
	if err == nil && ok {
		*dst = &v
	}
	return err
}

// optStrTo reads an optional string field into dst ("" when absent).
func (d decoder) optStrTo(name string, dst *string) error {
	v, _, err := d.str(name)
	if err == nil {
		*dst = v
	}
	return err
}

// accountField is how decode found "account": read once, as every
// command's errors name it and most commands require it.
type accountField struct {
	present bool
	err     error // not a string
}

// require checks a required account; v is its value.
func (a accountField) require(d decoder, v string) error {
	switch {
	case a.err != nil:
		return a.err
	case !a.present:
		return d.errorf(`missing field "account"`)
	case v == "":
		return d.errorf(`field "account" must not be empty`)
	}
	return nil
}

func (d decoder) callID(c *Command) error {
	raw, ok := d.get("call_id")
	if !ok {
		return d.errorf(`missing field "call_id"`)
	}
	// Only a plain JSON integer: "3" (a string), 3.5 and 3e0 are refused.
	n, err := strconv.Atoi(string(raw))
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return d.errorf(`field "call_id" is out of range`)
		}
		return d.errorf(`field "call_id" must be an integer`)
	}
	c.CallID = n
	return nil
}

// tag reads the optional request tag, which any command may carry.
func (d decoder) tag(c *Command) error {
	v, _, err := d.str("tag")
	if err != nil {
		return err
	}
	if len(v) > MaxTagBytes {
		return d.errorf("field \"tag\" is %d bytes long; at most %d are allowed", len(v), MaxTagBytes)
	}
	c.Tag = v
	return nil
}

func (d decoder) since(c *Command) error {
	raw, ok := d.get("since")
	if !ok {
		return d.errorf(`missing field "since"`)
	}
	n, err := strconv.ParseUint(string(raw), 10, 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return d.errorf(`field "since" is out of range`)
		}
		return d.errorf(`field "since" must be a non-negative integer (the seq of the last event received; 0: none)`)
	}
	c.Since = n
	return nil
}

// logLevels are the levels `log-level` accepts, as in [log] level.
var logLevels = []string{"debug", "info", "warn", "error"}

func (d decoder) level(c *Command) error {
	v, ok, err := d.str("level")
	if err != nil || !ok {
		return err
	}
	for _, l := range logLevels {
		if v == l {
			c.Level = v
			return nil
		}
	}
	return d.errorf(`field "level" must be "debug", "info", "warn" or "error" (got %q)`, v)
}

// optInt reads an optional integer field that must lie in [lo, hi].
func (d decoder) optInt(name string, lo, hi int, dst *int) error {
	raw, ok := d.get(name)
	if !ok {
		return nil
	}
	n, err := strconv.Atoi(string(raw))
	if err != nil || n < lo || n > hi {
		return d.errorf("field %q must be an integer from %d to %d", name, lo, hi)
	}
	*dst = n
	return nil
}

func (d decoder) optBool(name string, dst *bool) error {
	raw, ok := d.get(name)
	if !ok {
		return nil
	}
	switch string(raw) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		return d.errorf("field %q must be true or false", name)
	}
	return nil
}

// jsonKind names the type of a valid JSON value for error messages.
func jsonKind(msg []byte) string {
	for _, b := range msg {
		switch {
		case isSpace(b):
			continue
		case b == '[':
			return "an array"
		case b == '"':
			return "a string"
		case b == 't' || b == 'f':
			return "a boolean"
		case b == 'n':
			return "null"
		default:
			return "a number"
		}
	}
	return "empty"
}

// invalidUTF8At returns the index of the first byte that is not UTF-8.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}
