package api

import (
	"context"
	"time"
)

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
	CallFeatures
}

// CallFeatures are the extension commands on an established call.
type CallFeatures interface {
	// SendDTMF queues digits (0-9 * # A-D, ',' a pause) after any still
	// being sent; dur 0 is the default length.
	SendDTMF(ctx context.Context, account string, callID int, digits string, dur time.Duration) error
	// TransferCall blind-transfers the call to num (as make-call forms it);
	// the outcome comes later as call-ended "transferred" or a fail.
	TransferCall(ctx context.Context, account string, callID int, num string) error
}

// Status is the body of a `status` event.
type Status struct {
	Account       string `json:"account"`
	Calls         []Call `json:"calls"` // never null: [] when empty
	AccountStatus int    `json:"account_status"`
	// Refused (extension) counts out-of-dialog requests refused because
	// of their source (accept-from).
	Refused uint64 `json:"refused,omitempty"`
	// Registration (extension) is the registration in words.
	Registration *Registration `json:"registration,omitempty"`
	// SIPEdge (extension) counts the malformed and refused SIP traffic of
	// the whole daemon, the same in every account's status; nil: omitted.
	SIPEdge *SIPEdge `json:"sip_edge,omitempty"`
	// Audio (extension) is the health of the account's audio channel;
	// nil: omitted.
	Audio *Audio `json:"audio,omitempty"`
}

// Registration is the `registration` object of a status (extension).
type Registration struct {
	// State: no-server disabled registering registered rejected
	// unreachable logged-out.
	State     string `json:"state"`
	Server    string `json:"server"`
	Transport string `json:"transport"`    // udp tcp; "" without registration
	ExpiresIn int64  `json:"expires_in_s"` // registered: seconds until the binding expires
	LastError string `json:"last_error"`   // the latest failure; "" after a success
	RetryIn   int64  `json:"retry_in_s"`   // rejected, unreachable: seconds until the next attempt
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

// Audio is the `audio` object of a status (extension): the health of the
// account's audio channel. The counters are since the daemon started, over
// every channel a reload opened under the name.
type Audio struct {
	Channel    string `json:"channel"`    // [audio.channels.NAME]
	Backend    string `json:"backend"`    // loopback pulse alsa
	Connected  bool   `json:"connected"`  // the device is usable now
	Reconnects uint64 `json:"reconnects"` // reconnections (pulse) or reopens (alsa) after a failure
	Xruns      uint64 `json:"xruns"`      // underruns and overruns the device reported
	// Audio dropped from the channel's queues, in seconds of audio.
	PlaybackDroppedS float64 `json:"playback_dropped_s"`
	CaptureDroppedS  float64 `json:"capture_dropped_s"`
	// The adaptive margins now.
	PlaybackMarginMs float64 `json:"playback_margin_ms"`
	CaptureMarginMs  float64 `json:"capture_margin_ms"`
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

	Hold      string  `json:"hold"`                 // "" local remote both
	DurationS float64 `json:"duration_s"`           // since the answer; frozen at the end
	EndReason string  `json:"end_reason,omitempty"` // an ended call: the call-ended reason
	EndCode   *int    `json:"end_code,omitempty"`   // an ended call: the call-ended code
	// Our RTP address and the peer's (from its SDP), "address:port".
	LocalMedia     string  `json:"local_media,omitempty"`
	RemoteMedia    string  `json:"remote_media,omitempty"`
	OctetsSent     uint64  `json:"octets_sent"`     // RTP payload octets
	OctetsReceived uint64  `json:"octets_received"` // RTP payload octets
	RTTMs          float64 `json:"rtt_ms"`          // from RTCP; 0 until measured
	// MOS is the E-model estimate of what we hear (docs/api.md), 0 until
	// RTP arrives; RFactor is the R it comes from.
	MOS     float64 `json:"mos"`
	RFactor float64 `json:"r_factor"`
	SRTP    bool    `json:"srtp,omitempty"` // media encrypted (SRTP)
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
	// Replaces (extension) is the call this one replaced (an INVITE with
	// Replaces, RFC 3891); nil: none, and the field is left out.
	Replaces *int
}

// CallEnded is the `call-ended` event; Reason and Code are extensions.
type CallEnded struct {
	Account string
	CallID  int
	Reason  string
	Code    int
}

// DTMF (extension) is the `dtmf` event: a digit received on a call.
type DTMF struct {
	Account    string
	CallID     int
	Digit      string // 0-9 * # A-D
	DurationMs int    // 0: the sender did not say
}

// CallTransferred (extension) is the `call-transferred` event: the peer of
// CallID referred us to Target and NewCallID is the call placed there.
type CallTransferred struct {
	Account   string
	CallID    int
	NewCallID int
	Target    string
}

// Fail is a `fail` event that no command caused (e.g. a registration refresh
// was rejected); it goes to every client.
type Fail struct {
	Account string
	Error   string
	Cmd     string // the command whose later outcome failed (transfer-call); "": none
}
