package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/telestra/telestra-sip/api"
)

// writeStatus prints the accounts, then every call of them.
func writeStatus(w io.Writer, sts []api.Status) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tSTATUS\tMEANING\tREGISTRATION")
	ncalls := 0
	for _, st := range sts {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", st.Account, st.AccountStatus, accountStatusMeaning(st.AccountStatus), registrationLine(st.Registration))
		ncalls += len(st.Calls)
	}
	tw.Flush()
	fmt.Fprintln(w)
	if ncalls == 0 {
		fmt.Fprintln(w, "no calls")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tID\tDIR\tCALLER\tCALLEE\tSTATE\tHOLD\tACTIVE\tDURATION\tCODEC\tMEDIA LOCAL -> REMOTE\tPKTS TX/RX\tLOST\tJITTER\tRTT\tMOS\tEND")
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
			mos := "-"
			if c.MOS > 0 {
				mos = strconv.FormatFloat(c.MOS, 'f', 2, 64)
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%s ms\t%s ms\t%s\t%s\n",
				st.Account, c.CallID, orDash(c.Direction), orDash(c.Caller), orDash(c.Callee), callState(c), holdText(c.Hold), active,
				durationText(c.DurationS), codec, mediaText(c), c.PacketsSent, c.PacketsReceived, c.PacketsLost,
				strconv.FormatFloat(c.JitterMs, 'f', 1, 64), strconv.FormatFloat(c.RTTMs, 'f', 1, 64), mos, endText(c))
		}
	}
	tw.Flush()
}

// registrationLine says what the registration does, for the status table.
func registrationLine(r *api.Registration) string {
	if r == nil {
		return "-"
	}
	s := r.State
	switch r.State {
	case "registered":
		s += fmt.Sprintf(" at %s/%s, expires in %ds", r.Server, r.Transport, r.ExpiresIn)
	case "registering":
		s += fmt.Sprintf(" at %s/%s", r.Server, r.Transport)
	case "rejected", "unreachable":
		s += fmt.Sprintf(" by %s/%s: %s", r.Server, r.Transport, r.LastError)
		if r.RetryIn > 0 {
			s += fmt.Sprintf("; retry in %ds", r.RetryIn)
		}
	}
	return s
}

// holdText says who holds the call.
func holdText(h string) string {
	switch h {
	case "":
		return "-"
	case "local":
		return "we hold"
	case "remote":
		return "peer holds"
	case "both":
		return "both hold"
	}
	return h
}

func durationText(s float64) string {
	d := int(s)
	return fmt.Sprintf("%d:%02d:%02d", d/3600, d/60%60, d%60)
}

func mediaText(c api.Call) string {
	if c.LocalMedia == "" && c.RemoteMedia == "" {
		return "-"
	}
	return orDash(c.LocalMedia) + " -> " + orDash(c.RemoteMedia)
}

// endText is why an ended call ended.
func endText(c api.Call) string {
	if !c.Stopped {
		return "-"
	}
	if c.EndCode != nil && *c.EndCode != 0 && !strings.HasPrefix(c.EndReason, strconv.Itoa(*c.EndCode)) {
		return fmt.Sprintf("%d %s", *c.EndCode, c.EndReason)
	}
	return orDash(c.EndReason)
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
