package sip

import (
	"context"
	"net"
	"runtime"
	"strconv"
	"testing"
	"time"
	"weak"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// rawUAS is a UDP socket answering the UA's INVITEs as a called party
// would, without a SIP stack: the test decides what goes on the wire and
// sees every request the UA sends, retransmissions and ACKs included.
type rawUAS struct {
	conn net.PacketConn
	got  chan *sip.Request
	sent chan []byte // the datagrams of the answers to INVITE, as sent
	code int         // final answer to an INVITE
}

func newRawUAS(t *testing.T, code int) *rawUAS {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUAS{conn: c, got: make(chan *sip.Request, 64), sent: make(chan []byte, 16), code: code}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, src, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			msg, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
			req, ok := msg.(*sip.Request)
			if err != nil || !ok {
				continue
			}
			select {
			case u.got <- req:
			default:
			}
			switch {
			case req.IsAck():
			case req.IsInvite():
				res := sip.NewResponseFromRequest(req, u.code, "Final", nil)
				res.To().Params.Add("tag", "uas1")
				if u.code == 200 {
					res.AppendHeader(sip.NewHeader("Contact", "<sip:peer@"+c.LocalAddr().String()+">"))
					res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
					res.SetBody(peerSDP(30000, "sendrecv", "", 1))
				}
				b := []byte(res.String())
				_, _ = c.WriteTo(b, src)
				select {
				case u.sent <- b:
				default:
				}
			default:
				_, _ = c.WriteTo([]byte(sip.NewResponseFromRequest(req, 200, "OK", nil).String()), src)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return u
}

func (u *rawUAS) uri(user string) string { return "sip:" + user + "@" + u.conn.LocalAddr().String() }

// expect returns the next request of method m (others are skipped).
func (u *rawUAS) expect(t *testing.T, m sip.RequestMethod, timeout time.Duration) *sip.Request {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case r := <-u.got:
			if r.Method == m {
				return r
			}
		case <-deadline:
			t.Fatalf("raw UAS: no %s within %v", m, timeout)
			return nil
		}
	}
}

// TestAnswerRetransmissionIsAckedAgain: a UAS retransmits its 2xx until
// the ACK arrives (RFC 3261 §13.3.1.4); when the first ACK is lost the UA
// core must ACK the retransmission (§13.2.2.4), although the INVITE
// transaction ended on the 2xx (tuneSipgo's Timer_M = 0).
func TestAnswerRetransmissionIsAckedAgain(t *testing.T) {
	uas := newRawUAS(t, 200)
	h := startUA(t, []Account{{Name: "a1", User: "3001"}}, nil)
	dialAccount(t, h, "a1", uas.uri("3009"))
	if ev := h.ev.wait(t, CallAnswered, 3*time.Second); ev.Kind != CallAnswered {
		t.Fatalf("event %+v", ev)
	}
	inv := uas.expect(t, sip.INVITE, time.Second)
	first := uas.expect(t, sip.ACK, 2*time.Second)
	answer := <-uas.sent
	// The retransmission a UAS sends after T1 without an ACK, and one
	// more after 2*T1: every one of them gets its ACK.
	for i, wait := range []time.Duration{sip.T1, 2 * sip.T1} {
		time.Sleep(wait)
		if _, err := uas.conn.WriteTo(answer, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: h.ua.udpPort}); err != nil {
			t.Fatal(err)
		}
		again := uas.expect(t, sip.ACK, 2*time.Second)
		if again.CSeq().SeqNo != inv.CSeq().SeqNo || again.CallID().Value() != first.CallID().Value() {
			t.Errorf("retransmission %d: ACK %s for CSeq %d, want the ACK of CSeq %d", i+1, again.StartLine(), again.CSeq().SeqNo, inv.CSeq().SeqNo)
		}
		if tag, _ := again.To().Params.Get("tag"); tag != "uas1" {
			t.Errorf("retransmission %d: ACK To tag %q, want uas1", i+1, tag)
		}
	}
}

// TestAnsweredInviteTransactionReleased: an INVITE client transaction
// terminated by its owner on the 2xx is garbage as soon as the owner drops
// it. Without tuneSipgo's Timer_M = 0, sipgo's Timer M (64*T1, which
// Terminate does not stop) kept each one, its INVITE and its 2xx
// reachable for 32 s: about 5 KB of live heap per answered call.
func TestAnsweredInviteTransactionReleased(t *testing.T) {
	tuneSipgo()
	callee := newPeer(t)
	callee.handle(sip.INVITE, func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(callee.answer(req, 200, "OK", "callee1", peerSDP(30000, "sendrecv", "", 1)))
	})
	caller := newPeer(t)
	w := answeredInvite(t, caller, callee)
	if !collected(func() bool { return w.Value() == nil }) {
		t.Fatalf("the INVITE transaction is still reachable 3 s after its 2xx and Terminate (sip.Timer_M = %v)", sip.Timer_M)
	}
}

// collected collects garbage until gone reports true, for 3 s at most. A
// stopped timer stays in the runtime's timer heap of its P, with its
// closure (sipgo's hold the transaction), until the runtime drops it:
// when a quarter of that heap is stopped timers, or at the timer's
// deadline (Timer B: 32 s). Stopping timers on every P gets it dropped.
func collected(gone func() bool) bool {
	deadline := time.Now().Add(3 * time.Second)
	for !gone() {
		if time.Now().After(deadline) {
			return false
		}
		// Timers go to the heap of the P that runs this goroutine, and only
		// that P drops its stopped ones; between sleeps the goroutine meets
		// every P. They are stopped after all are in (adding a timer drops a
		// stopped one at the heap's tail), so that they count.
		ts := make([]*time.Timer, 256)
		for i := range ts {
			ts[i] = time.AfterFunc(time.Hour, func() {})
		}
		for _, t := range ts {
			t.Stop()
		}
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// answeredInvite sends an INVITE from caller to callee, takes its 2xx,
// ACKs it, terminates the transaction and returns a weak pointer to it.
func answeredInvite(t *testing.T, caller, callee *peer) weak.Pointer[sip.ClientTx] {
	t.Helper()
	d := &pdialog{p: caller, callID: newCallID(), localTag: newTag(), cseq: 1,
		local:  sip.Uri{Scheme: "sip", User: "5555", Host: caller.host},
		remote: sip.Uri{Scheme: "sip", User: "3009", Host: "127.0.0.1"},
		target: sip.Uri{Scheme: "sip", User: "3009", Host: "127.0.0.1", Port: callee.port}}
	req := d.request(sip.INVITE, peerSDP(30002, "sendrecv", "", 1))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tx, err := caller.cli.TransactionRequest(ctx, req, func(*sipgo.Client, *sip.Request) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	var res *sip.Response
	for res == nil || res.IsProvisional() {
		select {
		case res = <-tx.Responses():
		case <-tx.Done():
			t.Fatalf("INVITE transaction ended: %v", tx.Err())
		case <-ctx.Done():
			t.Fatal("no answer to the INVITE")
		}
	}
	if res.StatusCode != 200 {
		t.Fatalf("INVITE answered %s", res.StartLine())
	}
	d.remoteTag, _ = res.To().Params.Get("tag")
	ack := d.request(sip.ACK, nil)
	ack.CSeq().SeqNo = req.CSeq().SeqNo
	if err := caller.cli.WriteRequest(ack, func(*sipgo.Client, *sip.Request) error { return nil }); err != nil {
		t.Fatal(err)
	}
	tx.Terminate()
	select {
	case <-tx.Done():
	case <-time.After(time.Second):
		t.Fatal("the transaction is not done after Terminate")
	}
	ct, ok := tx.(*sip.ClientTx)
	if !ok {
		t.Fatalf("transaction of type %T", tx)
	}
	return weak.Make(ct)
}

// TestRejectionRetransmissionIsAckedAgain: a UAS retransmits its 486 until
// the ACK arrives (RFC 3261 §17.2.1); while Timer D runs every
// retransmission gets the ACK again (§17.1.1.2), and at once, although the
// UA ended the INVITE transaction on the answer (endRejected).
func TestRejectionRetransmissionIsAckedAgain(t *testing.T) {
	uas := newRawUAS(t, 486)
	h := startUA(t, []Account{{Name: "a1", User: "3001"}}, nil)
	dialAccount(t, h, "a1", uas.uri("3009"))
	if ev := h.ev.wait(t, CallEnded, 3*time.Second); ev.Code != 486 {
		t.Fatalf("ended %+v, want 486", ev)
	}
	inv := uas.expect(t, sip.INVITE, time.Second)
	branch, _ := inv.Via().Params.Get("branch")
	first := uas.expect(t, sip.ACK, 2*time.Second)
	answer := <-uas.sent
	for i, wait := range []time.Duration{sip.T1, 2 * sip.T1} {
		time.Sleep(wait)
		sentAt := time.Now()
		if _, err := uas.conn.WriteTo(answer, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: h.ua.udpPort}); err != nil {
			t.Fatal(err)
		}
		// sipgo's own Completed state re-ACKed only after T2 (4 s).
		again := uas.expect(t, sip.ACK, time.Second)
		if took := time.Since(sentAt); took > 500*time.Millisecond {
			t.Errorf("retransmission %d: ACK after %v", i+1, took)
		}
		b, _ := again.Via().Params.Get("branch")
		tag, _ := again.To().Params.Get("tag")
		if b != branch || again.CSeq().SeqNo != inv.CSeq().SeqNo || again.CSeq().MethodName != sip.ACK || tag != "uas1" ||
			again.Recipient.String() != inv.Recipient.String() || again.CallID().Value() != first.CallID().Value() {
			t.Errorf("retransmission %d: ACK\n%s\nwant the ACK of the INVITE\n%s", i+1, again, inv)
		}
	}
	if n := h.ua.rejects.size(time.Now()); n != 1 {
		t.Errorf("%d ACKs kept, want 1", n)
	}
}

// TestRejectedInviteTransactionReleased: endRejected leaves nothing of the
// transaction reachable (sipgo's Timer D kept it, with the INVITE, the
// answer and the ACK, for 32 s), while the ACK is kept.
func TestRejectedInviteTransactionReleased(t *testing.T) {
	h := startUA(t, []Account{{Name: "a1", User: "3001"}}, nil)
	callee := newPeer(t)
	callee.handle(sip.INVITE, func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(callee.answer(req, 486, "Busy Here", "callee1", nil))
	})
	caller := newPeer(t)
	w, branch := rejectedInvite(t, h.ua, caller, callee)
	if !collected(func() bool { return w.Value() == nil }) {
		t.Fatal("the rejected INVITE transaction is still reachable 3 s after endRejected")
	}
	ack, err := h.ua.rejects.ack(branch, time.Now())
	if err != nil || ack == nil || !ack.IsAck() || ack.Transport() != "UDP" || ack.Destination() != "127.0.0.1:"+strconv.Itoa(callee.port) {
		t.Fatalf("kept ACK %v %v", ack, err)
	}
}

func rejectedInvite(t *testing.T, u *UA, caller, callee *peer) (weak.Pointer[sip.ClientTx], string) {
	t.Helper()
	d := &pdialog{p: caller, callID: newCallID(), localTag: newTag(), cseq: 1,
		local:  sip.Uri{Scheme: "sip", User: "5555", Host: caller.host},
		remote: sip.Uri{Scheme: "sip", User: "3009", Host: "127.0.0.1"},
		target: sip.Uri{Scheme: "sip", User: "3009", Host: "127.0.0.1", Port: callee.port}}
	req := d.request(sip.INVITE, nil)
	req.SetDestination("127.0.0.1:" + strconv.Itoa(callee.port))
	branch, _ := req.Via().Params.Get("branch")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tx, err := caller.cli.TransactionRequest(ctx, req, func(*sipgo.Client, *sip.Request) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	var res *sip.Response
	for res == nil || res.IsProvisional() {
		select {
		case res = <-tx.Responses():
		case <-ctx.Done():
			t.Fatal("no answer to the INVITE")
		}
	}
	if res.StatusCode != 486 {
		t.Fatalf("INVITE answered %s", res.StartLine())
	}
	u.endRejected(tx, req, res)
	ct, ok := tx.(*sip.ClientTx)
	if !ok {
		t.Fatalf("transaction of type %T", tx)
	}
	return weak.Make(ct), branch
}

// TestRejectAcksExpire: a kept ACK lives Timer D (rejectLinger) on the
// UA's clock, and the sweep forgets it without another call to keep.
func TestRejectAcksExpire(t *testing.T) {
	clk := newFakeClock()
	t0 := clk.Now()
	ack := sip.NewRequest(sip.ACK, sip.Uri{Scheme: "sip", User: "x", Host: "127.0.0.1", Port: 5070})
	ack.SetTransport("UDP")
	var r rejectAcks
	r.keep("b1", ack, clk)
	clk.Advance(10 * time.Second)
	r.keep("b2", ack, clk)
	tests := []struct {
		name   string
		at     time.Duration // since t0
		branch string
		found  bool
		size   int
	}{
		{name: "kept", at: 11 * time.Second, branch: "b1", found: true, size: 2},
		{name: "unknown branch", at: 11 * time.Second, branch: "b9", size: 2},
		{name: "last moment of Timer D", at: rejectLinger - time.Millisecond, branch: "b1", found: true, size: 2},
		{name: "Timer D over", at: rejectLinger, branch: "b1", size: 1},
		{name: "the later one still kept", at: rejectLinger + 5*time.Second, branch: "b2", found: true, size: 1},
		{name: "all gone", at: rejectLinger + 10*time.Second, branch: "b2", size: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk.Advance(t0.Add(tt.at).Sub(clk.Now()))
			got, err := r.ack(tt.branch, clk.Now())
			if err != nil || (got != nil) != tt.found {
				t.Errorf("ack(%s) = %v, %v; want found %v", tt.branch, got, err, tt.found)
			}
			if got != nil && (got.Destination() != "127.0.0.1:5070" || got.Transport() != "UDP" || !got.IsAck()) {
				t.Errorf("kept ACK %s goes to %s over %s", got.StartLine(), got.Destination(), got.Transport())
			}
			if n := r.size(clk.Now()); n != tt.size {
				t.Errorf("size %d, want %d", n, tt.size)
			}
		})
	}

	// Without any look-up, the sweep empties the store once Timer D is over.
	var q rejectAcks
	q.keep("b3", ack, clk)
	clk.Advance(rejectLinger)
	eventually(t, "the sweep to forget b3", 2*time.Second, func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.kept == nil && q.order == nil && q.sweep == nil
	})
	q.stop()
	q.keep("b4", ack, clk)
	if n := q.size(clk.Now()); n != 0 {
		t.Errorf("kept %d after stop", n)
	}
}
