package sip

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
	"github.com/icholy/digest"
)

// asIs tells sipgo to send a request exactly as we built it.
func asIs(*sipgo.Client, *sip.Request) error { return nil }

// transaction starts a client transaction for req (see beforeSend).
func (u *UA) transaction(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	if err := u.beforeSend(ctx, req); err != nil {
		return nil, err
	}
	return u.cli.TransactionRequest(ctx, req, asIs)
}

// write sends req outside a transaction (an ACK for a 2xx).
func (u *UA) write(req *sip.Request) error {
	if err := u.beforeSend(u.ctx, req); err != nil {
		return err
	}
	return u.cli.WriteRequest(req, asIs)
}

func newCallID() string { return uuid.NewString() }
func newTag() string    { return sip.GenerateTagN(16) }

func statusText(res *sip.Response) string {
	return strconv.Itoa(res.StatusCode) + " " + res.Reason
}

// listenPort is the port of the listener used for outbound requests.
func (u *UA) listenPort() int { return u.portOf(u.outTransport) }

// portOf is the port we listen on for transport ("UDP", "TCP", "TLS").
func (u *UA) portOf(transport string) int {
	switch transport {
	case "TCP":
		return u.tcpPort
	case "TLS":
		return u.tlsPort
	}
	return u.udpPort
}

// stream reports a connection-oriented transport (no retransmissions).
func stream(t string) bool { return strings.EqualFold(t, "TCP") || strings.EqualFold(t, "TLS") }

// listening reports whether we listen on transport t ("UDP", "TCP", "TLS").
func (u *UA) listening(t string) bool {
	switch t {
	case "UDP", "TCP", "TLS":
		return u.portOf(t) != 0
	}
	return false
}

// transportTo is the transport for a request to uri (the first hop): its
// transport parameter when we listen on that transport (RFC 3263 §4.1),
// else def ("" = the outbound transport). A peer that reached us over TCP
// and says ;transport=tcp in its Contact gets its in-dialog requests over
// TCP even when UDP is listed first.
func (u *UA) transportTo(uri sip.Uri, def string) string {
	if def == "" {
		def = u.outTransport
	}
	if uri.UriParams != nil {
		if v, ok := uri.UriParams.Get("transport"); ok {
			if t := strings.ToUpper(v); u.listening(t) {
				return t
			}
		}
	}
	if strings.EqualFold(uri.Scheme, "sips") && u.listening("TLS") {
		return "TLS" // RFC 3261 §26.2.2: sips: is TLS to the first hop
	}
	return def
}

// transportOfRequest is the transport an incoming request came over, when
// we listen on it; else "" (the outbound transport).
func (u *UA) transportOfRequest(req *sip.Request) string {
	if t := strings.ToUpper(req.Transport()); u.listening(t) {
		return t
	}
	return ""
}

// localHost is the address we put in Via, Contact and SDP for traffic to
// dest (a host, bracketed or not): the public address, else the bind
// address, else (bound to a wildcard) the address of the interface that
// routes to dest, in the family resolve picks for it. It may resolve dest:
// never call it with u.mu held.
func (u *UA) localHost(dest string) string {
	info := u.hostInfo(dest)
	if u.cur().PublicAddress != "" {
		return u.cur().PublicAddress
	}
	if a := u.cur().Address; a != "" {
		ip := net.ParseIP(a)
		if ip == nil || !ip.IsUnspecified() {
			return a
		}
	}
	return info.local
}

func (u *UA) newVia(host string) *sip.ViaHeader { return u.newViaOver(host, u.outTransport) }

func (u *UA) newViaOver(host, transport string) *sip.ViaHeader {
	v := &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: transport,
		Host: host, Port: u.portOf(transport), Params: sip.NewParams(),
	}
	v.Params.Add("branch", sip.GenerateBranch())
	v.Params.Add("rport", "")
	return v
}

// contactURIOver is where peers reach us for user: the account's user
// keeps the Contact of each account distinguishable when a proxy rewrites
// the Request-URI to it; for a dialog over transport ("" = the
// outbound transport).
func (u *UA) contactURIOver(user, host, transport string) sip.Uri {
	if transport == "" {
		transport = u.outTransport
	}
	uri := sip.Uri{Scheme: "sip", User: user, Host: uriHost(host), Port: u.portOf(transport), UriParams: sip.NewParams()}
	if transport == "TCP" || transport == "TLS" {
		uri.UriParams.Add("transport", strings.ToLower(transport))
	}
	return uri
}

func (u *UA) contactHeader(user, host string) *sip.ContactHeader {
	return u.contactHeaderOver(user, host, "")
}

func (u *UA) contactHeaderOver(user, host, transport string) *sip.ContactHeader {
	return &sip.ContactHeader{Address: u.contactURIOver(user, host, transport), Params: sip.NewParams()}
}

// prepare pins transport and, for UDP, the listening socket as source.
func (u *UA) prepare(req *sip.Request) { u.prepareOver(req, u.outTransport) }

func (u *UA) prepareOver(req *sip.Request, transport string) {
	req.SetTransport(transport)
	u.pinDestination(req)
	if transport == "UDP" {
		u.udpLaddr.Copy(&req.Laddr)
	}
}

// freshVia replaces the top Via with a new branch (a new transaction).
func (u *UA) freshVia(req *sip.Request) {
	host, transport := "", u.outTransport
	if v := req.Via(); v != nil {
		host, transport = v.Host, v.Transport
	}
	req.RemoveHeader("Via")
	req.PrependHeader(u.newViaOver(host, transport))
}

type credentials struct {
	user, pass string
	account    string       // for log lines
	servers    []netip.Addr // who may challenge (trust.go)
}

func copyAuth(from, to *sip.Request) {
	for _, name := range []string{"Authorization", "Proxy-Authorization"} {
		to.RemoveHeader(name)
		for _, h := range from.GetHeaders(name) {
			to.AppendHeader(sip.NewHeader(name, h.Value()))
		}
	}
}

// authorize adds credentials for the challenge in res (401 or 407) to req.
func authorize(req *sip.Request, res *sip.Response, cr credentials) error {
	chName, authName := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		chName, authName = "Proxy-Authenticate", "Proxy-Authorization"
	}
	hs := res.GetHeaders(chName)
	if len(hs) == 0 {
		return fmt.Errorf("%s without %s header", statusText(res), chName)
	}
	var lastErr error
	for _, h := range hs {
		chal, err := digest.ParseChallenge(h.Value())
		if err != nil {
			lastErr = err
			continue
		}
		chal.Algorithm = strings.ToUpper(chal.Algorithm)
		if !digest.CanDigest(chal) {
			lastErr = fmt.Errorf("unsupported digest algorithm %q", chal.Algorithm)
			continue
		}
		cred, err := digest.Digest(chal, digest.Options{
			Method:   string(req.Method),
			URI:      req.Recipient.String(),
			Username: cr.user,
			Password: cr.pass,
		})
		if err != nil {
			lastErr = err
			continue
		}
		// Replace only the credentials for this realm's header type.
		req.RemoveHeader(authName)
		req.AppendHeader(sip.NewHeader(authName, cred.String()))
		return nil
	}
	return fmt.Errorf("cannot answer digest challenge: %w", lastErr)
}

// doWithAuth sends a non-INVITE request and waits for its final response,
// answering 401/407 challenges: rebuild makes the next request (new CSeq,
// new branch) from the previous one.
func (u *UA) doWithAuth(ctx context.Context, req *sip.Request, cr credentials, rebuild func(*sip.Request) *sip.Request) (*sip.Response, error) {
	for attempt := 0; ; attempt++ {
		res, err := u.do(ctx, req)
		if err != nil {
			return nil, err
		}
		if (res.StatusCode != 401 && res.StatusCode != 407) || attempt >= 2 || cr.pass == "" {
			return res, nil
		}
		// A second challenge is only worth answering when the nonce was stale.
		if attempt == 1 && !staleChallenge(res) {
			return res, nil
		}
		next := rebuild(req)
		if err := u.authorize(next, res, cr); err != nil {
			return res, nil
		}
		req = next
	}
}

func staleChallenge(res *sip.Response) bool {
	for _, name := range []string{"WWW-Authenticate", "Proxy-Authenticate"} {
		for _, h := range res.GetHeaders(name) {
			if strings.Contains(strings.ToLower(h.Value()), "stale=true") {
				return true
			}
		}
	}
	return false
}

// do runs one non-INVITE client transaction to its final response.
func (u *UA) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	tx, err := u.transaction(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("send %s: %w", req.Method, err)
	}
	defer tx.Terminate()
	res, err := u.waitFinal(ctx, tx, nil)
	if err != nil && err != ctx.Err() {
		err = fmt.Errorf("%s: %w", req.Method, err)
	}
	return res, err
}

// onStrayResponse sees responses no transaction wants: a retransmitted 2xx
// to an INVITE whose transaction is gone gets its ACK again, and so does a
// retransmitted rejection within Timer D (rejected.go).
func (u *UA) onStrayResponse(res *sip.Response) {
	if u.reAckRejected(res) {
		return
	}
	cseq := res.CSeq()
	if cseq == nil || cseq.MethodName != sip.INVITE || !res.IsSuccess() {
		return
	}
	cid := res.CallID()
	from := res.From()
	if cid == nil || from == nil {
		return
	}
	tag, _ := from.Params.Get("tag")
	u.mu.Lock()
	c := u.dialogs[cid.Value()+"|"+tag]
	u.mu.Unlock()
	if c == nil {
		return
	}
	var ack *sip.Request
	c.mu.Lock()
	if c.lastAck != nil && c.lastAckSeq == cseq.SeqNo {
		ack = c.lastAck.Clone()
	}
	c.mu.Unlock()
	if ack != nil {
		if err := u.write(ack); err != nil {
			c.log.Debug("re-ACK failed", "error", err)
		}
	}
}
