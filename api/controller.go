package api

import "context"

// Controller executes the commands of the API. The daemon implements it on
// top of package sip. Every method returns promptly (SIP transactions run in
// the background); errors become a `fail` to the client that sent the command,
// with err.Error() as the `error` text.
type Controller interface {
	// Login re-registers account; nil fields keep the values in force.
	Login(ctx context.Context, account string, user, pass, server *string) error
	// MakeCall places a call. accepted is called exactly once, synchronously,
	// with the new call ID before any event of that call can be broadcast,
	// unless MakeCall fails before a call ID exists (then it returns an error
	// and accepted is never called).
	MakeCall(ctx context.Context, account, num string, accepted func(callID int)) error
	AnswerCall(ctx context.Context, account string, callID int) error
	SwitchCall(ctx context.Context, account string, callID int) error
	// HangupCall declines (486, or 603 when decline), cancels or BYEs the call.
	HangupCall(ctx context.Context, account string, callID int, decline bool) error
	Logout(ctx context.Context, account string) error
	// Status reports one account, or every account in plan order when
	// account is "".
	Status(ctx context.Context, account string) ([]Status, error)
}

// Status is the body of a `status` event.
type Status struct {
	Account       string `json:"account"`
	Calls         []Call `json:"calls"` // never null: [] when empty
	AccountStatus int    `json:"account_status"`
	// SIPEdge (extension) counts the malformed and refused SIP traffic of
	// the whole daemon, the same in every account's status; nil: omitted.
	SIPEdge *SIPEdge `json:"sip_edge,omitempty"`
}

// SIPEdge is the `sip_edge` object of a status (extension): what the SIP
// front layer answered or dropped before the SIP stack, since start.
type SIPEdge struct {
	Malformed uint64 `json:"malformed"` // messages that could not be parsed
	Rejected  uint64 `json:"rejected"`  // well-formed requests refused statelessly
	Dropped   uint64 `json:"dropped"`   // dropped without an answer
	Rewritten uint64 `json:"rewritten"` // valid requests rewritten for the stack
	Answers   uint64 `json:"answers"`   // stateless answers sent
	LogLines  uint64 `json:"log_lines"` // log lines about rejected traffic
}

// Call is one entry of Status.Calls. The first five fields are the vendor
// document's; the rest are extensions allowed by PROTOCOL.md.
type Call struct {
	CallID    int    `json:"call_id"`
	Caller    string `json:"caller"`
	Callee    string `json:"callee"`
	Started   bool   `json:"started"`
	Stopped   bool   `json:"stopped"`
	State     string `json:"state"`     // ringing early active held ended
	Direction string `json:"direction"` // in out
	Active    bool   `json:"active"`    // bound to the audio channel
	// Media statistics (zero until RTP flows).
	Codec           string  `json:"codec,omitempty"`
	PacketsSent     uint64  `json:"packets_sent"`
	PacketsReceived uint64  `json:"packets_received"`
	PacketsLost     uint64  `json:"packets_lost"`
	JitterMs        float64 `json:"jitter_ms"`
}

// Broadcast events, built by the daemon and fanned out by Server.Broadcast.

// Event is a broadcast event: CallIncoming, CallAnswered, CallEnded or
// Fail (by value or pointer).
type Event interface {
	wire() any // the wire form of the event
}

// CallIncoming is the `call-incoming` event.
type CallIncoming struct {
	Account    string
	CallID     int
	Caller     string
	CallerName string
}

// CallAnswered is the `call-answered` event.
type CallAnswered struct {
	Account string
	CallID  int
}

// CallEnded is the `call-ended` event; Reason and Code are extensions.
type CallEnded struct {
	Account string
	CallID  int
	Reason  string
	Code    int
}

// Fail is a `fail` event that no command caused (e.g. a registration refresh
// was rejected); it goes to every client.
type Fail struct {
	Account string
	Error   string
}
