package api

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// EventReloaded is the extension event that answers `reload` once the plan
// is applied.
const EventReloaded = "reloaded"

// Reloader re-reads and applies the daemon's configuration for the `reload`
// extension. Reload returns once the new plan is applied or rejected; a
// rejection is a *ReloadRejected naming every problem.
type Reloader interface {
	Reload(ctx context.Context) (Reloaded, error)
}

// Reloaded is the body of a `reloaded` event.
type Reloaded struct {
	Plan    string   `json:"plan"`    // the file that was read
	Changes []Change `json:"changes"` // never null: [] when nothing changed
	// Warnings are settings of the new plan that have no effect, one line
	// each, "FILE:LINE: KEY: ...".
	Warnings []string `json:"warnings,omitempty"`
}

// Change is one difference between the running and the reloaded plan.
type Change struct {
	Key  string `json:"key"`  // TOML key, e.g. "accounts.account-1.server"
	Kind string `json:"kind"` // "added", "removed" (a table) or "changed"
	Old  string `json:"old,omitempty"`
	New  string `json:"new,omitempty"`
	// Restart: the setting is bound when the daemon starts (a listener's
	// socket, the media the audio channels run at), so the change is not
	// in effect yet; Old is the value in effect and Reason says why.
	Restart bool   `json:"restart,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Text    string `json:"text"` // the change as one line, for people
}

// ReloadRejected is a reload that was not applied: the running plan is
// kept. Problems are one line each, "FILE:LINE: KEY: what is wrong".
type ReloadRejected struct {
	Plan     string
	Problems []string
}

func (e *ReloadRejected) Error() string {
	n := "1 problem"
	if len(e.Problems) != 1 {
		n = strconv.Itoa(len(e.Problems)) + " problems"
	}
	return "reload of " + e.Plan + " rejected, the running plan is kept (" + n + "): " + strings.Join(e.Problems, "; ")
}

type wireReloaded struct {
	Event    string   `json:"event"`
	Plan     string   `json:"plan"`
	Changes  []Change `json:"changes"`
	Warnings []string `json:"warnings,omitempty"`
	Tag      string   `json:"tag,omitempty"`
}

// errNoReloader is the fail of `reload` on a server without a Reloader.
var errNoReloader = errors.New("reload is not available on this server")

// reload runs the reload command and writes its answer.
func (s *Server) reload(ctx context.Context, c *client, tag string) {
	if s.opts.reloader == nil {
		s.failTag(c, CmdReload, "", tag, errNoReloader.Error())
		return
	}
	r, err := s.opts.reloader.Reload(ctx)
	var rr *ReloadRejected
	switch {
	case errors.As(err, &rr):
		s.stats.fails.Add(1)
		s.reply(c, mustFrame(wireFail{Event: EventFail, Account: "", Error: rr.Error(), Cmd: CmdReload,
			Problems: append([]string{}, rr.Problems...), Tag: tag}))
	case err != nil:
		s.failTag(c, CmdReload, "", tag, err.Error())
	default:
		changes := r.Changes
		if changes == nil {
			changes = []Change{}
		}
		s.reply(c, mustFrame(wireReloaded{EventReloaded, r.Plan, changes, r.Warnings, tag}))
	}
}
