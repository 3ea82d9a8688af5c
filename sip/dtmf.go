// dtmf.go owns DTMF of a call: SendDTMF (RFC 4733 telephone-event on the
// negotiated payload type, else SIP INFO application/dtmf-relay), the INFO
// sender that plays a call's digits one after another, and the digits
// received by either means, reported as DTMF events.
package sip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/telestra/telestra-sip/sip/media"
)

const (
	// DefaultDTMFDuration is a digit's length when the command gives none.
	DefaultDTMFDuration = media.DefaultDTMFDuration
	// MaxDTMFDigits bounds the digits one call may have queued.
	MaxDTMFDigits = 64
	dtmfPause     = 500 * time.Millisecond // a ',' in the digits
	dtmfInfoGap   = 50 * time.Millisecond  // between two INFO digits
	minDTMF       = 40 * time.Millisecond
	maxDTMF       = 5 * time.Second
)

// ErrNoDTMF: the peer negotiated no telephone-event and does not accept INFO.
var ErrNoDTMF = errors.New("the peer accepts neither RFC 4733 telephone-event nor SIP INFO")

// infoQueue is the digits waiting to go out by INFO, guarded by call.mu.
type infoQueue struct {
	digits  []rune // ',' is a pause
	dur     []time.Duration
	running bool // the sender goroutine runs
}

// validDTMF checks a digit string of send-dtmf: 0-9 * # A-D (any case) and ','.
func validDTMF(digits string) error {
	if digits == "" {
		return errors.New("no digits")
	}
	n := 0
	for _, d := range digits {
		switch {
		case d >= '0' && d <= '9', d == '*', d == '#', d == ',', d >= 'A' && d <= 'D', d >= 'a' && d <= 'd':
		default:
			return fmt.Errorf("digit %q: use 0-9, *, #, A-D and ',' for a pause", string(d))
		}
		n++
	}
	if n > MaxDTMFDigits {
		return fmt.Errorf("%d digits: at most %d per command", n, MaxDTMFDigits)
	}
	return nil
}

// SendDTMF queues digits on an established call, after any still being
// sent: as RFC 4733 telephone-event when the peer negotiated it, else by
// SIP INFO (application/dtmf-relay), else it fails with ErrNoDTMF. dur 0
// means DefaultDTMFDuration.
func (u *UA) SendDTMF(account string, callID int, digits string, dur time.Duration) error {
	if err := validDTMF(digits); err != nil {
		return fmt.Errorf("account %q call %d: %w", account, callID, err)
	}
	if dur == 0 {
		dur = DefaultDTMFDuration
	}
	if dur < minDTMF || dur > maxDTMF {
		return fmt.Errorf("account %q call %d: duration %v: use %v to %v", account, callID, dur, minDTMF, maxDTMF)
	}
	c, err := u.call(account, callID)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.phase.established():
		return fmt.Errorf("account %q call %d (%s): %w", account, callID, c.status, ErrCallState)
	case c.hold.held():
		return fmt.Errorf("account %q call %d is on hold: resume it to send DTMF: %w", account, callID, ErrCallState)
	}
	if c.neg != nil && c.neg.EventPT >= 0 && c.sess != nil {
		return queueRTP(c.sess, digits, dur)
	}
	if c.peerAllow != "" && !hasMethod(c.peerAllow, "INFO") {
		return fmt.Errorf("account %q call %d: %w", account, callID, ErrNoDTMF)
	}
	q := &c.info
	if len(q.digits)+len(digits) > MaxDTMFDigits {
		return fmt.Errorf("account %q call %d: %d digits still queued: at most %d", account, callID, len(q.digits), MaxDTMFDigits)
	}
	for _, d := range strings.ToUpper(digits) {
		q.digits = append(q.digits, d)
		q.dur = append(q.dur, dur)
	}
	if !q.running {
		q.running = true
		if !u.goTracked(func() { u.sendInfoDigits(c) }) {
			q.running = false
			return ErrClosed
		}
	}
	return nil
}

// dtmfQueue is what SendDTMF needs of a media session.
type dtmfQueue interface {
	QueueDTMF(digit rune, dur time.Duration) error
	QueuePause(dur time.Duration) error
}

// queueRTP queues digits as RFC 4733 events; the session sends them in
// order after those already queued.
func queueRTP(s dtmfQueue, digits string, dur time.Duration) error {
	for _, d := range digits {
		var err error
		if d == ',' {
			err = s.QueuePause(dtmfPause)
		} else {
			err = s.QueueDTMF(d, dur)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// sendInfoDigits sends c's INFO digits one transaction at a time, each
// followed by its duration and a gap, until the queue is empty or the call
// ends. It is the only goroutine that takes from c.info.
func (u *UA) sendInfoDigits(c *call) {
	for {
		c.mu.Lock()
		q := &c.info
		if len(q.digits) == 0 || !c.phase.live() {
			q.running = false
			q.digits, q.dur = nil, nil
			c.mu.Unlock()
			return
		}
		d, dur := q.digits[0], q.dur[0]
		q.digits, q.dur = q.digits[1:], q.dur[1:]
		var req *sip.Request
		var cr credentials
		if d != ',' {
			req = u.infoLocked(c, d, dur)
			cr = u.creds(c)
		}
		c.mu.Unlock()
		wait := dtmfPause
		if req != nil {
			wait = dur + dtmfInfoGap
			ctx, cancel := context.WithTimeout(u.ctx, 64*sip.T1)
			res, err := u.doWithAuth(ctx, req, cr, func(*sip.Request) *sip.Request {
				c.mu.Lock()
				defer c.mu.Unlock()
				return u.infoLocked(c, d, dur)
			})
			cancel()
			switch {
			case err != nil:
				c.log.Warn("DTMF INFO got no answer", "digit", string(d), "error", err)
			case res.StatusCode >= 300:
				c.log.Warn("DTMF INFO rejected", "digit", string(d), "status", statusText(res))
			}
		}
		t := u.clock.NewTimer(wait)
		select {
		case <-t.C():
		case <-c.ended:
			t.Stop()
		case <-u.ctx.Done():
			t.Stop()
		}
	}
}

// infoLocked builds the INFO of one digit (c.mu held).
func (u *UA) infoLocked(c *call, d rune, dur time.Duration) *sip.Request {
	req := u.inDialogLocked(c, sip.INFO, 0)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
	req.SetBody([]byte(fmt.Sprintf("Signal=%c\r\nDuration=%d\r\n", d, dur/time.Millisecond)))
	return req
}

// onRTPDigit reports a digit the media session received.
func (u *UA) onRTPDigit(c *call, d media.DTMF) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u.digitLocked(c, d.Digit, d.Duration, "rfc4733")
}

// digitLocked emits the DTMF event of a received digit, unless the call
// has ended (no event of a call follows its CallEnded). c.mu held.
func (u *UA) digitLocked(c *call, d rune, dur time.Duration, via string) {
	if !c.phase.live() {
		return
	}
	c.log.Debug("DTMF received", "digit", string(d), "duration", dur, "via", via)
	u.emitLocked(Event{Kind: DTMFReceived, Account: c.account, CallID: c.id, Digit: d, Duration: dur})
}

// parseDTMFInfo reads the digit of an INFO body: application/dtmf-relay
// ("Signal=5", "Duration=160" lines) or application/dtmf (the digit
// alone). ok is false when the body holds no digit we know.
func parseDTMFInfo(ctype string, body []byte) (d rune, dur time.Duration, ok bool) {
	mt, _, _ := strings.Cut(ctype, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	text := strings.TrimSpace(string(body))
	switch mt {
	case "application/dtmf":
		return dtmfRune(text), 0, dtmfRune(text) != 0
	case "application/dtmf-relay":
	default:
		return 0, 0, false
	}
	for _, line := range strings.Split(text, "\n") {
		k, v, found := strings.Cut(line, "=")
		if !found {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "signal":
			d = dtmfRune(v)
		case "duration":
			if n, err := strconv.Atoi(v); err == nil && n > 0 && n <= 60000 {
				dur = time.Duration(n) * time.Millisecond
			}
		}
	}
	if d == 0 {
		return 0, 0, false
	}
	return d, dur, true
}

// dtmfRune maps a signal text to a digit (0 for none): 0-9 * # A-D, and
// the numeric event codes 10-15 some gateways send for * # A-D.
func dtmfRune(s string) rune {
	if len(s) == 1 {
		d := rune(strings.ToUpper(s)[0])
		if (d >= '0' && d <= '9') || d == '*' || d == '#' || (d >= 'A' && d <= 'D') {
			return d
		}
		return 0
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 10 && n <= 15 {
		return []rune("*#ABCD")[n-10]
	}
	return 0
}

// onInfo answers INFO in a dialog; a DTMF body is reported as a digit.
func (u *UA) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	c := u.dialogFor(req)
	if c == nil {
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	ctype, _ := headerValue(req, "Content-Type")
	d, dur, ok := parseDTMFInfo(ctype, req.Body())
	if !ok && strings.HasPrefix(strings.ToLower(strings.TrimSpace(ctype)), "application/dtmf") {
		u.reply(req, tx, 400, "Bad DTMF Body")
		return
	}
	c.mu.Lock()
	fresh := checkSeqLocked(c, req)
	if ok && fresh {
		u.digitLocked(c, d, dur, "info")
	}
	c.mu.Unlock()
	if !fresh {
		u.reply(req, tx, 500, "Server Internal Error") // RFC 3261 12.2.2: a lower CSeq
		return
	}
	u.reply(req, tx, 200, "OK")
}
