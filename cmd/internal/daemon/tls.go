package daemon

import (
	"slices"
	"time"

	"github.com/telestra/telestra-sip/cmd/internal/plan"
	"github.com/telestra/telestra-sip/sip"
)

// CheckTLS is the plan.Check of telestra-sipd -check: with transport
// "tls", it loads the files of [sip-settings] tls-certificate, tls-key and
// tls-ca as the UA does at start, and checks the certificate's validity
// period. Each problem names the key and the file.
func CheckTLS(p *plan.Plan) (problems, warnings plan.Problems) {
	return checkTLS(p, time.Now())
}

// StartTLS is the plan.Check of a start: a TLS file that does not load
// fails the start as an invalid plan does (exit 78, which systemd does not
// retry), with its key and line; a certificate outside its validity period
// is only logged, as the UDP and TCP accounts work all the same.
func StartTLS(p *plan.Plan) (problems, warnings plan.Problems) {
	return checkTLSWith(p, time.Now(), sip.CheckTLSStart)
}

func checkTLS(p *plan.Plan, now time.Time) (problems, warnings plan.Problems) {
	return checkTLSWith(p, now, sip.CheckTLS)
}

func checkTLSWith(p *plan.Plan, now time.Time, check func(sip.TLSConfig, time.Time) (problems, warnings []*sip.TLSFileError)) (problems, warnings plan.Problems) {
	if !slices.Contains(p.SIP.Transports, "tls") {
		return nil, nil // the UA does not read them
	}
	probs, warns := check(sipConfig(p).TLS, now)
	return tlsProblems(probs), tlsProblems(warns)
}

// tlsProblems puts each TLS file error on the key that names the file.
func tlsProblems(errs []*sip.TLSFileError) plan.Problems {
	var out plan.Problems
	for _, e := range errs {
		out = append(out, plan.Problem{Key: "sip-settings." + e.Key, Msg: e.Detail()})
	}
	return out
}
