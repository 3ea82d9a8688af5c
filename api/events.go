package api

import (
	"encoding/json"
	"fmt"
)

// Event names as they appear in the `event` field.
const (
	EventCallReturn   = "call-return"
	EventStatus       = "status"
	EventFail         = "fail"
	EventCallIncoming = "call-incoming"
	EventCallAnswered = "call-answered"
	EventCallEnded    = "call-ended"
	EventPong         = "pong"      // extension: the answer to ping
	EventLogLevel     = "log-level" // extension: the answer to log-level
	// Extensions, broadcast.
	EventDTMF            = "dtmf"
	EventCallTransferred = "call-transferred"
)

// Wire forms. Field order is the vendor document's.
type (
	// Tag (extension) is only in direct answers, and only when the
	// command carried one.
	wireCallReturn struct {
		Event   string `json:"event"`
		Account string `json:"account"`
		CallID  int    `json:"call_id"`
		Tag     string `json:"tag,omitempty"`
	}
	wireStatus struct {
		Event         string        `json:"event"`
		Account       string        `json:"account"`
		Calls         []Call        `json:"calls"`
		AccountStatus int           `json:"account_status"`
		Registration  *Registration `json:"registration,omitempty"`
		Refused       uint64        `json:"refused,omitempty"`
		SIPEdge       *SIPEdge      `json:"sip_edge,omitempty"`
		Audio         *Audio        `json:"audio,omitempty"`
		Tag           string        `json:"tag,omitempty"`
	}
	wireFail struct {
		Event   string `json:"event"`
		Account string `json:"account"`
		Error   string `json:"error"`
		Cmd     string `json:"cmd,omitempty"`
		// Problems (extension): every reason a reload was rejected.
		Problems []string `json:"problems,omitempty"`
		Tag      string   `json:"tag,omitempty"`
	}
	wireCallIncoming struct {
		Event      string `json:"event"`
		Account    string `json:"account"`
		CallID     int    `json:"call_id"`
		Caller     string `json:"caller"`
		CallerName string `json:"caller_name"`
	}
	wireCallAnswered struct {
		Event    string `json:"event"`
		Account  string `json:"account"`
		CallID   int    `json:"call_id"`
		Replaces *int   `json:"replaces,omitempty"`
	}
	wireCallEnded struct {
		Event   string `json:"event"`
		Account string `json:"account"`
		CallID  int    `json:"call_id"`
		Reason  string `json:"reason"`
		Code    int    `json:"code"`
	}
	wireDTMF struct {
		Event      string `json:"event"`
		Account    string `json:"account"`
		CallID     int    `json:"call_id"`
		Digit      string `json:"digit"`
		DurationMs int    `json:"duration_ms"`
	}
	wireCallTransferred struct {
		Event     string `json:"event"`
		Account   string `json:"account"`
		CallID    int    `json:"call_id"`
		NewCallID int    `json:"new_call_id"`
		Target    string `json:"target"`
	}
	wirePong struct {
		Event string `json:"event"`
		Token string `json:"token"`
		Tag   string `json:"tag,omitempty"`
	}
	// wirePongInfo is the pong of a server that knows its version.
	wirePongInfo struct {
		Event   string `json:"event"`
		Token   string `json:"token"`
		Tag     string `json:"tag,omitempty"`
		Version string `json:"version"`
		UptimeS int64  `json:"uptime_s"`
		Seq     uint64 `json:"seq"`     // latest broadcast event; 0: none yet
		Started string `json:"started"` // start time, RFC 3339 UTC: tells one run from the next
	}
	wireLogLevel struct {
		Event string `json:"event"`
		Level string `json:"level"`
		Tag   string `json:"tag,omitempty"`
	}
)

func (e CallIncoming) wire() any {
	return wireCallIncoming{EventCallIncoming, e.Account, e.CallID, e.Caller, e.CallerName}
}

func (e CallAnswered) wire() any {
	return wireCallAnswered{EventCallAnswered, e.Account, e.CallID, e.Replaces}
}

func (e CallEnded) wire() any {
	return wireCallEnded{EventCallEnded, e.Account, e.CallID, e.Reason, e.Code}
}

func (e DTMF) wire() any {
	return wireDTMF{EventDTMF, e.Account, e.CallID, e.Digit, e.DurationMs}
}

func (e CallTransferred) wire() any {
	return wireCallTransferred{EventCallTransferred, e.Account, e.CallID, e.NewCallID, e.Target}
}

func (e Fail) wire() any {
	return wireFail{Event: EventFail, Account: e.Account, Error: e.Error, Cmd: e.Cmd}
}

// encodeEvent returns the frame (compact JSON + NUL) of a broadcast event.
func encodeEvent(ev Event) ([]byte, error) {
	if ev == nil {
		return nil, fmt.Errorf("cannot broadcast a nil event")
	}
	return frame(ev.wire())
}

func encodeStatus(st Status, tag string) []byte {
	calls := st.Calls
	if calls == nil {
		calls = []Call{}
	}
	b, err := frame(wireStatus{Event: EventStatus, Account: st.Account, Calls: calls, AccountStatus: st.AccountStatus,
		Registration: st.Registration, Refused: st.Refused, SIPEdge: st.SIPEdge, Audio: st.Audio, Tag: tag})
	if err != nil {
		// Only a NaN or infinite jitter can get here.
		return encodeFailTag(CmdGetStatus, st.Account, "cannot encode the status: "+err.Error(), tag)
	}
	return b
}

func encodeFail(cmd, account, msg string) []byte {
	return encodeFailTag(cmd, account, msg, "")
}

func encodeFailTag(cmd, account, msg, tag string) []byte {
	return mustFrame(wireFail{Event: EventFail, Account: account, Error: msg, Cmd: cmd, Tag: tag})
}

// frame marshals v as compact JSON followed by NUL.
func frame(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, 0), nil
}

// mustFrame is for wire structs of strings and integers only, which
// json.Marshal cannot fail on.
func mustFrame(v any) []byte {
	b, _ := frame(v)
	return b
}
