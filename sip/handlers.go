// handlers.go owns the UA's server side outside the INVITE flows: the
// sipgo handler table, matching an incoming INVITE to an account, BYE,
// CANCEL, OPTIONS and the methods we do not implement (INFO is in dtmf.go).
package sip

import "github.com/emiago/sipgo/sip"

func (u *UA) registerHandlers() {
	u.srv.OnInvite(u.onInvite)
	u.srv.OnAck(u.onAck)
	u.srv.OnBye(u.onBye)
	u.srv.OnCancel(u.onCancel)
	u.srv.OnOptions(u.onOptions)
	u.srv.OnUpdate(u.onUpdate)
	u.srv.OnInfo(u.onInfo)
	u.srv.OnRefer(u.onRefer)
	u.srv.OnNotify(u.onNotify)
	u.srv.OnNoRoute(u.onOther)
}

// knownMethods are methods we recognise but do not implement (405, not
// 501); REFER and NOTIFY only out of a dialog (in one: transfer.go).
var knownMethods = map[sip.RequestMethod]bool{
	sip.REGISTER: true, sip.SUBSCRIBE: true, sip.NOTIFY: true, sip.REFER: true,
	sip.MESSAGE: true, sip.PUBLISH: true, sip.PRACK: true,
}

// matchAccount picks the account an incoming INVITE is for: the
// Request-URI user (our Contact user when a proxy rewrote it), else the To
// user.
func (u *UA) matchAccount(req *sip.Request) *account {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.matchAccountLocked(req)
}

func (u *UA) matchAccountLocked(req *sip.Request) *account {
	find := func(user string) *account {
		if user == "" {
			return nil
		}
		for _, a := range u.accounts {
			if a.eff.User == user {
				return a
			}
		}
		return nil
	}
	if a := find(uriUser(req.Recipient)); a != nil {
		return a
	}
	if to := req.To(); to != nil {
		return find(uriUser(to.Address))
	}
	return nil
}

func (u *UA) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := u.dialogFor(req)
	if c == nil {
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	// Ending under the call's lock before answering: a second BYE that
	// races this one finds the call ended and gets 481.
	c.mu.Lock()
	why := "remote hangup"
	if c.phase == phaseReferred {
		why = "transferred" // RFC 5589: the transferor hangs up once we are through
	}
	finish := u.endLocked(c, why, 0)
	c.mu.Unlock()
	if finish == nil {
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	u.reply(req, tx, 200, "OK")
	finish()
}

// onCancel sees only CANCELs that match no INVITE transaction (sipgo
// answers the others with 200 and the INVITE with 487).
func (u *UA) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
}

func (u *UA) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if toTag(req) != "" && u.dialogFor(req) == nil {
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	u.reply(req, tx, 200, "OK",
		sip.NewHeader("Allow", allowHeader),
		sip.NewHeader("Accept", "application/sdp"),
		sip.NewHeader("Supported", supportedHeader))
}

// onOther answers methods we do not handle as RFC 3261 §8.2.1 says: 405
// with Allow for methods we know, 501 for the others; requests for a dialog
// we do not have get 481 first.
func (u *UA) onOther(req *sip.Request, tx sip.ServerTransaction) {
	if req.IsAck() {
		return
	}
	if !knownMethods[req.Method] {
		u.reply(req, tx, 501, "Not Implemented", sip.NewHeader("Allow", allowHeader))
		return
	}
	if toTag(req) != "" && u.dialogFor(req) == nil {
		u.reply(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	u.reply(req, tx, 405, "Method Not Allowed", sip.NewHeader("Allow", allowHeader))
}
