// headers.go owns reading and writing the SIP headers the dialog code
// needs: tags, our responses (with Server), header values and options,
// Require checks and Record-Route.
package sip

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

func toTag(req *sip.Request) string {
	if to := req.To(); to != nil {
		t, _ := to.Params.Get("tag")
		return t
	}
	return ""
}

func fromTag(req *sip.Request) string {
	if f := req.From(); f != nil {
		t, _ := f.Params.Get("tag")
		return t
	}
	return ""
}

// response builds a response carrying our headers; tag (if any) is our
// dialog tag in To.
func (u *UA) response(req *sip.Request, code int, reason, tag string, hdrs ...sip.Header) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if tag != "" {
		if to := res.To(); to != nil {
			to.Params.Add("tag", tag)
		}
	}
	if u.cur().UserAgent != "" {
		res.AppendHeader(sip.NewHeader("Server", u.cur().UserAgent))
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	return res
}

// addUserAgent adds our User-Agent to a request, when we have one.
func (u *UA) addUserAgent(req *sip.Request) {
	if u.cur().UserAgent != "" {
		req.AppendHeader(sip.NewHeader("User-Agent", u.cur().UserAgent))
	}
}

// send sends a response of a server transaction.
func (u *UA) send(tx sip.ServerTransaction, res *sip.Response) {
	if err := tx.Respond(res); err != nil {
		u.log.Debug("sending response failed", "status", res.StatusCode, "error", err)
	}
}

func (u *UA) reply(req *sip.Request, tx sip.ServerTransaction, code int, reason string, hdrs ...sip.Header) {
	u.send(tx, u.response(req, code, reason, "", hdrs...))
}

func (u *UA) respondTagged(req *sip.Request, tx sip.ServerTransaction, code int, reason, tag string) {
	u.send(tx, u.response(req, code, reason, tag))
}

func headerValue(m sip.Message, names ...string) (string, bool) {
	for _, n := range names {
		if hs := m.GetHeaders(n); len(hs) > 0 {
			return hs[0].Value(), true
		}
	}
	return "", false
}

func hasOption(m sip.Message, header, option string) bool {
	for _, h := range m.GetHeaders(header) {
		for _, o := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(o), option) {
				return true
			}
		}
	}
	return false
}

func hasMethod(allow, m string) bool {
	for _, x := range strings.Split(allow, ",") {
		if strings.EqualFold(strings.TrimSpace(x), m) {
			return true
		}
	}
	return false
}

func unsupportedRequire(req *sip.Request) string {
	var bad []string
	for _, h := range req.GetHeaders("Require") {
		for _, o := range strings.Split(h.Value(), ",") {
			o = strings.TrimSpace(o)
			if o != "" && !strings.EqualFold(o, "timer") && !strings.EqualFold(o, "replaces") {
				bad = append(bad, o)
			}
		}
	}
	return strings.Join(bad, ", ")
}

func recordRoutes(m sip.Message) []sip.Uri {
	var out []sip.Uri
	for _, h := range m.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			out = append(out, *rr.Address.Clone())
			continue
		}
		for _, v := range strings.Split(h.Value(), ",") {
			v = strings.TrimSpace(v)
			v = strings.TrimPrefix(v, "<")
			if i := strings.Index(v, ">"); i >= 0 {
				v = v[:i]
			}
			var uri sip.Uri
			if sip.ParseUri(v, &uri) == nil {
				out = append(out, uri)
			}
		}
	}
	return out
}
