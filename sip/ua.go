// Package sip is the SIP user agent of the daemon, on github.com/emiago/sipgo.
//
// CONTRACT SKELETON: the exported API below is what the daemon relies on.
// Bodies are filled in by the signalling work; keep the signatures.
package sip

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/telestra/telestra-sip/sip/media"
)

// Sentinel errors; the API turns err.Error() into the fail text, so wrap
// them with the account/call context (fmt.Errorf("...: %w", ErrX)).
var (
	ErrUnknownAccount = errors.New("unknown account")
	ErrUnknownCall    = errors.New("unknown call")
	ErrCallState      = errors.New("call is not in a state that allows this")
	ErrNoServer       = errors.New("account has no server and no local account matches")
	ErrTooManyCalls   = errors.New("account has reached max-calls")
)

// Account is one [accounts.NAME] of the plan.
type Account struct {
	Name        string
	User        string
	Pass        string
	AuthUser    string // digest user name; empty: User
	Server      string // host[:port]; empty: no registration, local/direct calls
	DisplayName string // empty: Name
	Register    bool
	MaxCalls    int
	Audio       media.AudioPort // the account's channel; nil: no audio
	AudioName   string          // channel name; accounts sharing a channel share one binding
}

// Config is [sip-settings] plus the media configuration.
type Config struct {
	Address         string   // bind address
	Port            int      // bind port
	Transports      []string // "udp", "tcp"
	PublicAddress   string   // Contact/Via/SDP address; empty: derived from Address
	UserAgent       string
	RegisterExpires time.Duration
	RegisterRetry   time.Duration // first retry; doubles up to 5 min
	EndedCallLinger time.Duration
	SessionExpires  time.Duration // RFC 4028 interval we ask for / accept; 0: 1800s
	Media           media.Config
}

// EventKind says what happened.
type EventKind int

const (
	CallIncoming EventKind = iota + 1 // Caller, CallerName set
	CallAnswered                      // the call became established (either side answered)
	CallEnded                         // Reason, Code set
	AccountFailed                     // a REGISTER was rejected or timed out; Reason, Code set
)

// Event is delivered to the handler given to New. The handler must not
// block; events of one call are delivered in order.
type Event struct {
	Kind       EventKind
	Account    string
	CallID     int
	Caller     string
	CallerName string
	Reason     string
	Code       int
}

// AccountStatus is a snapshot for get-status.
type AccountStatus struct {
	Account string
	Code    int // final code of the latest REGISTER transaction; 0: none
	Calls   []CallStatus
}

// CallStatus is one call of an AccountStatus.
type CallStatus struct {
	ID        int
	Caller    string // user parts
	Callee    string
	Started   bool // media established
	Stopped   bool // ended (lingers for EndedCallLinger)
	State     string // ringing early active held ended
	Direction string // in out
	Active    bool   // bound to the account's audio channel
	Media     media.Stats
}

// UA is the user agent: one SIP stack serving every account of the plan.
type UA struct{}

// New builds the UA; nothing is bound until Start.
func New(cfg Config, accounts []Account, onEvent func(Event), log *slog.Logger) (*UA, error) {
	panic("sip: not implemented")
}

// Start binds the SIP listeners (returning once they are bound) and starts
// registering. ctx bounds the UA's background work.
func (u *UA) Start(ctx context.Context) error { panic("sip: not implemented") }

// Reload replaces the account list: changed or new accounts re-register,
// removed ones un-register and end their calls; calls of unchanged accounts
// are not touched.
func (u *UA) Reload(accounts []Account) error { panic("sip: not implemented") }

// Login re-registers account with the given values (nil: keep).
func (u *UA) Login(account string, user, pass, server *string) error { panic("sip: not implemented") }

// Logout un-registers account (Expires: 0); calls are left alone.
func (u *UA) Logout(account string) error { panic("sip: not implemented") }

// Dial places a call. accepted is called synchronously with the new call ID
// before the INVITE is sent and before any event of the call.
func (u *UA) Dial(account, num string, accepted func(callID int)) error {
	panic("sip: not implemented")
}

// Answer answers a ringing incoming call, holding the account's active call first.
func (u *UA) Answer(account string, callID int) error { panic("sip: not implemented") }

// Switch holds the account's active call and resumes callID.
func (u *UA) Switch(account string, callID int) error { panic("sip: not implemented") }

// Hangup declines (486, or 603 when decline), cancels or BYEs the call.
func (u *UA) Hangup(account string, callID int, decline bool) error { panic("sip: not implemented") }

// Status snapshots one account.
func (u *UA) Status(account string) (AccountStatus, error) { panic("sip: not implemented") }

// Healthy reports an error when the UA's internal loops have stopped.
func (u *UA) Healthy() error { panic("sip: not implemented") }

// Shutdown ends every call (BYE/CANCEL/486), un-registers every account and
// closes the listeners, within ctx.
func (u *UA) Shutdown(ctx context.Context) error { panic("sip: not implemented") }
