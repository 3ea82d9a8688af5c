//go:build integration

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/testpeers"
)

// TestTwoClientsGetEveryBroadcast: call-incoming, call-answered and
// call-ended reach both connected clients; the command's direct answer only
// the sender.
func TestTwoClientsGetEveryBroadcast(t *testing.T) {
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{})
	e.start(&plan{Accounts: []account{e.user("acc1", "3001")}})
	waitRegistered(t, e.c, "acc1", 200)
	c2 := e.d.Client(t)
	// Its pong proves the hub admitted client 2: the call's first event
	// must not come before (broadcasts go to the clients admitted).
	if err := c2.Ping(e.ctx); err != nil {
		t.Fatal(err)
	}

	if err := p.Dial(e.uri("3001")); err != nil {
		t.Fatal(err)
	}
	in1 := wait(t, e.c, 10*time.Second, "call-incoming (client 1)", event(api.EventCallIncoming, "acc1", -1))
	in2 := wait(t, c2, 5*time.Second, "call-incoming (client 2)", event(api.EventCallIncoming, "acc1", -1))
	if in1.CallID != in2.CallID || in1.Caller != in2.Caller || in1.CallerName != in2.CallerName {
		t.Errorf("clients got different call-incoming: %s vs %s", in1.Raw, in2.Raw)
	}
	// Client 2 answers; client 1 hears about it too.
	if err := c2.AnswerCall(e.ctx, "acc1", in1.CallID); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 5*time.Second, "call-answered (client 1)", event(api.EventCallAnswered, "acc1", in1.CallID))
	wait(t, c2, 5*time.Second, "call-answered (client 2)", event(api.EventCallAnswered, "acc1", in1.CallID))

	// A status asked by client 1 goes to client 1 only.
	status(t, e.c, "acc1")

	if err := e.c.HangupCall(e.ctx, "acc1", in1.CallID, false); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 5*time.Second, "call-ended (client 1)", event(api.EventCallEnded, "acc1", in1.CallID))
	wait(t, c2, 5*time.Second, "call-ended (client 2)", event(api.EventCallEnded, "acc1", in1.CallID))
	// Client 2 then has nothing but its own pongs: no status leaked to it.
	if err := c2.Ping(e.ctx); err != nil {
		t.Fatal(err)
	}
	for {
		m, err := c2.Next(peerCtx(t, 200*time.Millisecond))
		if err != nil {
			break
		}
		if m.Event == api.EventStatus {
			t.Errorf("client 2 received client 1's status: %s", m.Raw)
		}
	}
}

// TestSlowClientDropped: a client that sends commands but never reads is
// disconnected once its queue is full, while another client keeps getting
// call events promptly.
func TestSlowClientDropped(t *testing.T) {
	e := newEnv(t)
	p := e.peer("3002", testpeers.BaresipOptions{})
	// Many accounts make every get-status without account answer with as
	// many statuses: the replies outgrow what the kernel buffers hold long
	// before the commands do. (A client with a full receive window may also
	// stop getting its own data through; then it is the server's writes that
	// must give up.)
	accts := []account{e.user("acc1", "3001")}
	for i := 2; i <= 32; i++ {
		accts = append(accts, account{Name: fmt.Sprintf("local%02d", i), User: fmt.Sprintf("40%02d", i), Pass: "x", MaxCalls: 1})
	}
	e.start(&plan{Accounts: accts, RTPPorts: 80})
	waitRegistered(t, e.c, "acc1", 200)

	slow, err := net.DialTCP("tcp", nil, mustResolve(t, e.d.APIAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	_ = slow.SetReadBuffer(4096) // fill up fast: the kernel holds little for us
	// Writes of many get-status commands (32 statuses each); the client
	// never reads a byte.
	batch := bytes.Repeat([]byte("{\"cmd\":\"get-status\"}\x00"), 2000)
	var sent atomic.Int64
	dropped := make(chan error, 1)
	go func() {
		for {
			_ = slow.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := slow.Write(batch); err != nil {
				dropped <- err
				return
			}
			sent.Add(2000)
		}
	}()

	// Meanwhile the normal client gets call events within a second.
	time.Sleep(500 * time.Millisecond)
	start := time.Now()
	if err := p.Dial(e.uri("3001")); err != nil {
		t.Fatal(err)
	}
	in := wait(t, e.c, 3*time.Second, "call-incoming during the flood", event(api.EventCallIncoming, "acc1", -1))
	if d := time.Since(start); d > time.Second {
		t.Errorf("call-incoming took %v during the flood, want < 1 s", d)
	}
	if err := e.c.HangupCall(e.ctx, "acc1", in.CallID, false); err != nil {
		t.Fatal(err)
	}
	wait(t, e.c, 3*time.Second, "call-ended", event(api.EventCallEnded, "acc1", in.CallID))

	select {
	case err := <-dropped:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// Is the whole daemon stuck or only this client's connection?
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, serr := e.c.GetStatus(ctx, "acc1")
			cancel()
			dumpPath := filepath.Join(e.d.Dir(), "daemon.log")
			e.d.DumpGoroutines()
			t.Fatalf("the server stopped reading from the slow client without dropping it (writes blocked 20 s after %d commands); "+
				"get-status on the other client meanwhile: %v; goroutine dump (SIGQUIT) in %s", sent.Load(), serr, dumpPath)
		}
		t.Logf("slow client dropped after ~%d commands: %v", sent.Load(), err)
	case <-time.After(30 * time.Second):
		t.Fatalf("slow client not dropped after %d commands", sent.Load())
	}
	// The server closed the connection: reading ends (after any buffered data).
	_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1<<16)
	for {
		if _, err := slow.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Error("slow client's connection still open 5 s after the drop")
			}
			break
		}
	}
	// And the daemon still serves the other client.
	if st := status(t, e.c, "acc1"); st.AccountStatus != 200 {
		t.Errorf("after the drop: %+v", st)
	}
}

func mustResolve(t *testing.T, addr string) *net.TCPAddr {
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
