package daemon

import (
	"io"
	"log/slog"

	"github.com/telestra/telestra-sip/sip"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func sipAccountFailed(account, reason string) sip.Event {
	return sip.Event{Kind: sip.AccountFailed, Account: account, Reason: reason, Code: 403}
}
