package main

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
)

// proxy forwards connections to target until cut closes them all, as a
// network blip would.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			p.wg.Go(func() { io.Copy(out, in); out.Close() })
			p.wg.Go(func() { io.Copy(in, out); in.Close() })
		}
	})
	t.Cleanup(func() { ln.Close(); p.cut(); p.wg.Wait() })
	return p
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// After a blip, events resumes: the events broadcast while it was away
// are printed once, in order, then the live ones.
func TestEventsResumeAfterBlip(t *testing.T) {
	s, _ := startServer(t)
	px := startProxy(t, s.Addr().String())
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runWithClock(ctx, []string{"-addr", px.ln.Addr().String(), "events", "-json"}, &out, &errb)
	}()
	waitFor(t, func() bool { return s.Stats().Clients == 1 })
	s.Broadcast(api.CallAnswered{Account: "a", CallID: 1})
	waitFor(t, func() bool { return strings.Count(out.String(), "\n") == 1 })

	px.cut()
	waitFor(t, func() bool { return s.Stats().Clients == 0 })
	for id := 2; id <= 4; id++ {
		s.Broadcast(api.CallAnswered{Account: "a", CallID: id}) // nobody connected
	}
	waitFor(t, func() bool { return strings.Contains(errb.String(), "resuming after event 1") })
	s.Broadcast(api.CallAnswered{Account: "a", CallID: 5})
	waitFor(t, func() bool { return strings.Count(out.String(), "\n") == 5 })
	want := ""
	for id := 1; id <= 5; id++ {
		want += `{"event":"call-answered","account":"a","call_id":` + string(rune('0'+id)) + `,"seq":` + string(rune('0'+id)) + "}\n"
	}
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
	if e := errb.String(); !strings.Contains(e, "; reconnecting") || strings.Contains(e, "restarted") {
		t.Fatalf("stderr %q", e)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// A daemon that restarted numbers from 1 again: events prints every event
// of the new run and says so.
func TestEventsAfterRestart(t *testing.T) {
	ctrl := &fakeController{}
	serve := func(port int) (*api.Server, func()) {
		s := api.NewServer(planLimits(api.Config{Address: "127.0.0.1", Port: port}), ctrl, nil, api.WithVersion("9.9.9", time.Time{}))
		if err := s.Listen(); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx) }()
		return s, func() { cancel(); <-done }
	}
	s1, stop1 := serve(0)
	port := s1.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runWithClock(ctx, []string{"-addr", s1.Addr().String(), "events", "-json"}, &out, &errb)
	}()
	waitFor(t, func() bool { return s1.Stats().Clients == 1 })
	for id := 1; id <= 3; id++ {
		s1.Broadcast(api.CallAnswered{Account: "a", CallID: id})
	}
	waitFor(t, func() bool { return strings.Count(out.String(), "\n") == 3 })
	stop1()

	s2, stop2 := serve(port)
	defer stop2()
	s2.Broadcast(api.CallEnded{Account: "a", CallID: 3, Reason: "shutdown"}) // before events is back
	waitFor(t, func() bool { return strings.Count(out.String(), "\n") == 4 })
	s2.Broadcast(api.CallAnswered{Account: "a", CallID: 4})
	waitFor(t, func() bool { return strings.Count(out.String(), "\n") == 5 })
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if lines[3] != `{"event":"call-ended","account":"a","call_id":3,"reason":"shutdown","code":0,"seq":1}` ||
		lines[4] != `{"event":"call-answered","account":"a","call_id":4,"seq":2}` {
		t.Fatalf("after the restart: %q", lines[3:])
	}
	if e := errb.String(); !strings.Contains(e, "resume: the daemon restarted") {
		t.Fatalf("stderr %q", e)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}
