package daemon

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/sip"
)

// controller adapts the UA to api.Controller and gives its errors the texts
// PROTOCOL.md prescribes.
type controller struct{ d *Daemon }

var _ api.Controller = (*controller)(nil)

func (c *controller) Login(_ context.Context, account string, user, pass, server *string) error {
	return c.wrap(account, c.d.ua.Login(account, user, pass, server))
}

func (c *controller) MakeCall(_ context.Context, account, num string, accepted func(int)) error {
	err := c.d.ua.Dial(account, num, func(id int) {
		c.d.metrics.CallPlaced(id)
		accepted(id)
	})
	if errors.Is(err, sip.ErrNoServer) {
		return c.noServer(account, num)
	}
	return c.wrap(account, err)
}

// noServer explains a number an account without a server cannot reach.
func (c *controller) noServer(account, num string) error {
	c.d.mu.Lock()
	var self string
	var others []string
	for _, a := range c.d.plan.Accounts {
		if a.Name == account {
			self = a.User
		} else {
			others = append(others, fmt.Sprintf("%s (%s)", a.User, a.Name))
		}
	}
	c.d.mu.Unlock()
	reach := "a full sip: URI"
	if len(others) > 0 {
		reach = "the user of another account of this daemon: " + strings.Join(others, ", ") + "; or " + reach
	}
	if strings.TrimSpace(num) == self {
		return fmt.Errorf("account %q cannot call itself (%q is its own user); call %s", account, num, reach)
	}
	return fmt.Errorf("account %q has no server, so %q cannot be dialled as an extension; call %s", account, num, reach)
}

func (c *controller) AnswerCall(_ context.Context, account string, id int) error {
	return c.wrapCall(account, id, "answered", c.d.ua.Answer(account, id))
}

func (c *controller) SwitchCall(_ context.Context, account string, id int) error {
	return c.wrapCall(account, id, "switched to", c.d.ua.Switch(account, id))
}

func (c *controller) HangupCall(_ context.Context, account string, id int, decline bool) error {
	return c.wrapCall(account, id, "hung up", c.d.ua.Hangup(account, id, decline))
}

func (c *controller) SendDTMF(_ context.Context, account string, id int, digits string, dur time.Duration) error {
	return c.wrapCall(account, id, "sent DTMF", c.d.ua.SendDTMF(account, id, digits, dur))
}

func (c *controller) TransferCall(_ context.Context, account string, id int, num string) error {
	return c.wrapCall(account, id, "transferred", c.d.ua.Transfer(account, id, num))
}

func (c *controller) Logout(_ context.Context, account string) error {
	return c.wrap(account, c.d.ua.Logout(account))
}

func (c *controller) Status(_ context.Context, account string) ([]api.Status, error) {
	names := []string{account}
	channelOf := map[string]string{}
	c.d.mu.Lock()
	if account == "" {
		names = names[:0]
	}
	for _, a := range c.d.plan.Accounts {
		if account == "" {
			names = append(names, a.Name)
		}
		channelOf[a.Name] = a.Channel
	}
	c.d.mu.Unlock()
	edge := api.SIPEdge(c.d.sipEdge()) // daemon-wide: the same in every status
	audio := map[string]api.Audio{}
	for _, h := range c.d.audio.snapshot() {
		if h.open {
			audio[h.name] = apiAudio(h)
		}
	}
	out := make([]api.Status, 0, len(names))
	for _, name := range names {
		st, err := c.d.ua.Status(name)
		if account == "" && errors.Is(err, sip.ErrUnknownAccount) {
			continue // removed by a reload that is being applied
		}
		if err != nil {
			return nil, c.wrap(name, err)
		}
		as := apiStatus(st)
		as.SIPEdge = &edge
		if a, ok := audio[channelOf[name]]; ok {
			as.Audio = &a
		}
		out = append(out, as)
	}
	return out, nil
}

func (c *controller) wrap(account string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sip.ErrUnknownAccount) {
		return fmt.Errorf("unknown account %q", account)
	}
	return err
}

func (c *controller) wrapCall(account string, id int, verb string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sip.ErrUnknownCall):
		return fmt.Errorf("unknown call_id %d for account %q", id, account)
	case errors.Is(err, sip.ErrCallState):
		return c.callState(account, id, verb, err)
	}
	return c.wrap(account, err)
}

// callState says why a call cannot be answered, switched to, hung up,
// given DTMF or transferred, from its state as get-status shows it.
func (c *controller) callState(account string, id int, verb string, err error) error {
	st, serr := c.d.ua.Status(account)
	if serr != nil {
		return err
	}
	for _, cs := range st.Calls {
		if cs.ID != id {
			continue
		}
		switch {
		case cs.Stopped:
			return fmt.Errorf("call_id %d of account %q has already ended; it cannot be %s", id, account, verb)
		case verb == "answered" && cs.Direction == "out":
			return fmt.Errorf("call_id %d of account %q is an outgoing call; only a ringing incoming call can be answered", id, account)
		case verb == "answered":
			return fmt.Errorf("call_id %d of account %q is %s, not ringing; only a ringing incoming call can be answered", id, account, cs.State)
		case verb == "switched to":
			return fmt.Errorf("call_id %d of account %q is %s; only an established (active or held) call can be switched to", id, account, cs.State)
		case verb == "sent DTMF":
			return fmt.Errorf("call_id %d of account %q is %s; DTMF can only be sent on an active call (established, not on hold)", id, account, cs.State)
		case verb == "transferred":
			return fmt.Errorf("call_id %d of account %q is %s; only an established call with no transfer under way can be transferred", id, account, cs.State)
		}
		return fmt.Errorf("call_id %d of account %q is %s and cannot be %s now", id, account, cs.State, verb)
	}
	return err
}

func apiStatus(st sip.AccountStatus) api.Status {
	calls := make([]api.Call, 0, len(st.Calls))
	for _, cs := range st.Calls {
		calls = append(calls, api.Call{
			CallID:          cs.ID,
			Caller:          cs.Caller,
			Callee:          cs.Callee,
			Started:         cs.Started,
			Stopped:         cs.Stopped,
			State:           cs.State,
			Direction:       cs.Direction,
			Active:          cs.Active,
			Codec:           cs.Media.Codec,
			PacketsSent:     cs.Media.PacketsSent,
			PacketsReceived: cs.Media.PacketsReceived,
			PacketsLost:     cs.Media.PacketsLost,
			JitterMs:        cs.Media.JitterMs,
			Hold:            cs.Hold,
			DurationS:       round(cs.Duration.Seconds(), 1),
			EndReason:       cs.EndReason,
			LocalMedia:      cs.LocalMedia,
			RemoteMedia:     cs.RemoteMedia,
			OctetsSent:      cs.Media.OctetsSent,
			OctetsReceived:  cs.Media.OctetsReceived,
			RTTMs:           round(cs.Media.RTTMs, 1),
			MOS:             round(cs.Quality.MOS, 2),
			RFactor:         round(cs.Quality.R, 1),
			SRTP:            cs.Media.SRTP,
		})
		if cs.Stopped {
			code := cs.EndCode
			calls[len(calls)-1].EndCode = &code
		}
	}
	r := st.Registration
	return api.Status{Account: st.Account, Calls: calls, AccountStatus: st.Code, Refused: st.Refused, Registration: &api.Registration{
		State: r.State, Server: r.Server, Transport: r.Transport, LastError: r.LastError,
		ExpiresIn: ceilSeconds(r.ExpiresIn), RetryIn: ceilSeconds(r.RetryIn),
	}}
}

// round keeps n decimals: status figures are for people and monitors.
func round(v float64, n int) float64 {
	p := math.Pow(10, float64(n))
	return math.Round(v*p) / p
}

// ceilSeconds: a retry due in 0.2 s reads 1, not 0 ("now").
func ceilSeconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}
