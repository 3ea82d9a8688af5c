package main

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/telestra/telestra-sip/api"
)

// writeStatus prints the accounts, then every call of them.
func writeStatus(w io.Writer, sts []api.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tSTATUS\tSERVER\tREFUSED\tMEANING")
	ncalls := 0
	for _, st := range sts {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\n", st.Account, st.AccountStatus, orDash(st.Server), st.Refused, accountStatusMeaning(st.AccountStatus))
		ncalls += len(st.Calls)
	}
	tw.Flush()
	fmt.Fprintln(w)
	if ncalls == 0 {
		fmt.Fprintln(w, "no calls")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tID\tDIR\tCALLER\tCALLEE\tSTATE\tACTIVE\tCODEC\tPKTS TX/RX\tLOST\tJITTER")
	for _, st := range sts {
		for _, c := range st.Calls {
			active := "no"
			if c.Active {
				active = "yes"
			}
			codec := c.Codec
			if codec == "" {
				codec = "-"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%s ms\n",
				st.Account, c.CallID, orDash(c.Direction), orDash(c.Caller), orDash(c.Callee), callState(c), active, codec,
				c.PacketsSent, c.PacketsReceived, c.PacketsLost, strconv.FormatFloat(c.JitterMs, 'f', 1, 64))
		}
	}
	tw.Flush()
}

// callState falls back to the vendor fields when the daemon sends no state.
func callState(c api.Call) string {
	switch {
	case c.State != "":
		return c.State
	case c.Stopped:
		return "ended"
	case c.Started:
		return "started"
	default:
		return "setup"
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// accountStatusMeaning explains account_status, the final code of the
// account's latest REGISTER (PROTOCOL.md).
func accountStatusMeaning(code int) string {
	switch code {
	case 0:
		return "not registered (never, logged out, or register = false)"
	case 200:
		return "registered"
	case 401:
		return "rejected: 401 Unauthorized (check user and pass)"
	case 403:
		return "rejected: 403 Forbidden (check user and pass)"
	case 404:
		return "rejected: 404 Not Found (unknown user at the registrar)"
	case 407:
		return "rejected: 407 Proxy Authentication Required"
	case 408:
		return "no answer from the registrar (408)"
	case 480:
		return "rejected: 480 Temporarily Unavailable"
	case 500:
		return "registrar error (500)"
	case 503:
		return "registrar unavailable (503)"
	}
	switch {
	case code >= 200 && code < 300:
		return "registered"
	case code >= 300 && code < 400:
		return "redirected (not registered)"
	case code >= 400 && code < 700:
		return "rejected"
	default:
		return "unknown"
	}
}
