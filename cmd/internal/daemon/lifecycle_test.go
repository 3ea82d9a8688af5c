package daemon

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/telestra/telestra-sip/api"
	"github.com/telestra/telestra-sip/cmd/internal/plan"
	"github.com/telestra/telestra-sip/sip"
)

// freePort asks the kernel for a free TCP+UDP port on 127.0.0.1.
// testRTPRanges are the RTP port ranges the plans of this package's tests
// use (writePlan, settingsPlan and the reload's new range, limits_test).
var testRTPRanges = [][2]int{{40000, 40001}, {42100, 42399}, {65534, 65535}}

func inTestRTPRange(port int) bool {
	for _, r := range testRTPRanges {
		if port >= r[0] && port <= r[1] {
			return true
		}
	}
	return false
}

func freePort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if inTestRTPRange(port) {
			continue // a plan with it as a SIP or API port would not validate
		}
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

func writePlan(t *testing.T, path string, apiPort, sipPort int) {
	t.Helper()
	body := fmt.Sprintf(`
[tcp-settings]
address = "127.0.0.1"
port = %d
[sip-settings]
address = "127.0.0.1"
port = %d
[rtp-settings]
port-min = 42100
port-max = 42199
[audio]
backend = "loopback"
[audio.channels.ch1]
loopback = "echo"
[accounts.account-1]
user = "3001"
server = ""
register = false
channel = "ch1"
`, apiPort, sipPort)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
}

// notifySocket listens where sd_notify(3) will send, as systemd would.
func notifySocket(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	out := make(chan string, 256)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(out)
				return
			}
			out <- string(buf[:n])
		}
	}()
	return out
}

func expectState(t *testing.T, ch <-chan string, want string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case s := <-ch:
			if s == want {
				return
			}
		case <-deadline:
			t.Fatalf("no %s within %v", want, within)
		}
	}
}

// expectStates waits for every one of want, in any order.
func expectStates(t *testing.T, ch <-chan string, within time.Duration, want ...string) {
	t.Helper()
	missing := map[string]bool{}
	for _, w := range want {
		missing[w] = true
	}
	deadline := time.After(within)
	for len(missing) > 0 {
		select {
		case s := <-ch:
			delete(missing, s)
		case <-deadline:
			t.Fatalf("within %v, not seen: %v", within, missing)
		}
	}
}

func TestDaemonSystemdNotifyLifecycle(t *testing.T) {
	states := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "200000") // 200 ms: pings every 100 ms
	t.Setenv("WATCHDOG_PID", "")

	planPath := filepath.Join(t.TempDir(), "sipplan.toml")
	apiPort, sipPort := freePort(t), freePort(t)
	writePlan(t, planPath, apiPort, sipPort)
	p, err := plan.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	reload := make(chan os.Signal, 1)
	d := newDaemon(Options{PlanPath: planPath, Plan: p, Log: discardLogger(), Reload: reload})
	hub := &stallingHub{}
	d.wrapHub = func(h eventHub) eventHub { hub.eventHub = h; return hub }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()

	expectStates(t, states, 5*time.Second, "READY=1", "STATUS=1 account (none registers), 0 calls")
	// READY=1 promises bound sockets.
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", apiPort))
	if err != nil {
		t.Fatalf("API port not accepting after READY=1: %v", err)
	}
	c.Close()
	if u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", sipPort)); err == nil {
		u.Close()
		t.Fatal("SIP port not bound after READY=1")
	}
	expectState(t, states, "WATCHDOG=1", time.Second)

	t.Run("no ping while the event path is stalled", func(t *testing.T) {
		block := make(chan struct{})
		hub.stall(block)
		// A ping already in flight may still land; after that, silence.
		time.Sleep(150 * time.Millisecond)
		drain(states)
		time.Sleep(400 * time.Millisecond)
		for _, s := range drain(states) {
			if s == "WATCHDOG=1" {
				t.Fatal("WATCHDOG=1 sent while the event path was stalled")
			}
		}
		close(block)
		expectState(t, states, "WATCHDOG=1", time.Second)
	})

	t.Run("SIGHUP with a valid plan", func(t *testing.T) {
		reload <- syscall.SIGHUP
		expectState(t, states, "RELOADING=1", time.Second)
		expectState(t, states, "READY=1", time.Second)
	})

	t.Run("SIGHUP with an invalid plan keeps the running one", func(t *testing.T) {
		d.mu.Lock()
		before := d.plan
		d.mu.Unlock()
		if err := os.WriteFile(planPath, []byte("[tcp-settings]\nport = \"x\"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		reload <- syscall.SIGHUP
		expectState(t, states, "RELOADING=1", time.Second)
		// STATUS= comes from its own goroutine: before or after READY=1.
		expectStates(t, states, time.Second, "READY=1", "STATUS=1 account (none registers), 0 calls; last reload rejected (journalctl -u telestra-sipd -p err)")
		d.mu.Lock()
		after := d.plan
		d.mu.Unlock()
		if after != before {
			t.Fatal("an invalid plan replaced the running one")
		}
	})

	start := time.Now()
	cancel()
	expectState(t, states, "STOPPING=1", time.Second)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("daemon did not exit within 2 s of SIGTERM")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
}

func drain(ch <-chan string) []string {
	var out []string
	for {
		select {
		case s := <-ch:
			out = append(out, s)
		default:
			return out
		}
	}
}

func TestAPIEventTranslation(t *testing.T) {
	// The fail text for a rejected registration is fixed by PROTOCOL.md.
	got := fmt.Sprint(apiEvent(sipAccountFailed("account-1", "403 Forbidden")))
	if !strings.Contains(got, "Failed to log in to account: account-1: 403 Forbidden") {
		t.Fatalf("fail text = %s", got)
	}
}

// A SIP port that cannot be bound fails the start with a message naming
// it, and leaves the API and metrics ports free again.
func TestDaemonStartFailsOnBusySIPPort(t *testing.T) {
	planPath := filepath.Join(t.TempDir(), "sipplan.toml")
	apiPort, sipPort := freePort(t), freePort(t)
	writePlan(t, planPath, apiPort, sipPort)
	busy, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", sipPort))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	p, err := plan.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	p.Metrics.Address = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	n := &recNotifier{}
	err = Run(context.Background(), Options{PlanPath: planPath, Plan: p, Log: discardLogger(), Notifier: n})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("SIP listener on 127.0.0.1:%d", sipPort)) {
		t.Fatalf("Run = %v, want an error naming the SIP listener", err)
	}
	if n.count("READY=1") != 0 {
		t.Fatal("READY=1 sent although the SIP port was not bound")
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", apiPort))
	if err != nil {
		t.Fatalf("API port still bound after the failed start: %v", err)
	}
	l.Close()
	if l, err = net.Listen("tcp", p.Metrics.Address); err != nil {
		t.Fatalf("metrics port still bound after the failed start: %v", err)
	}
	l.Close()
}

func TestAPIEventTranslationExtensions(t *testing.T) {
	five := 5
	tests := []struct {
		name string
		in   sip.Event
		want api.Event
	}{
		{"dtmf", sip.Event{Kind: sip.DTMFReceived, Account: "a", CallID: 3, Digit: '#', Duration: 120 * time.Millisecond},
			api.DTMF{Account: "a", CallID: 3, Digit: "#", DurationMs: 120}},
		{"call-transferred", sip.Event{Kind: sip.CallTransferred, Account: "a", CallID: 3, NewCallID: 4, Target: "sip:9@pbx"},
			api.CallTransferred{Account: "a", CallID: 3, NewCallID: 4, Target: "sip:9@pbx"}},
		{"transfer failed", sip.Event{Kind: sip.TransferFailed, Account: "a", CallID: 3, Target: "sip:9@pbx", Reason: "486 Busy Here", Code: 486},
			api.Fail{Account: "a", Cmd: "transfer-call", Error: "transfer of call 3 to sip:9@pbx failed: 486 Busy Here"}},
		{"answered", sip.Event{Kind: sip.CallAnswered, Account: "a", CallID: 8, Replaces: -1}, api.CallAnswered{Account: "a", CallID: 8}},
		{"answered replacing", sip.Event{Kind: sip.CallAnswered, Account: "a", CallID: 8, Replaces: 5}, api.CallAnswered{Account: "a", CallID: 8, Replaces: &five}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := apiEvent(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

// A stop (SIGTERM: Run's ctx) while the start waits for a sound server
// that is not running yet ends the wait at once, and it is a stop, not a
// failure: Run returns nil, without READY=1.
func TestDaemonStopWhileWaitingForSoundServer(t *testing.T) {
	planPath := filepath.Join(t.TempDir(), "sipplan.toml")
	writePlan(t, planPath, freePort(t), freePort(t))
	body, err := os.ReadFile(planPath)
	if err != nil {
		t.Fatal(err)
	}
	server := "unix:" + filepath.Join(t.TempDir(), "native") // nothing listens
	body = []byte(strings.Replace(string(body), "backend = \"loopback\"\n[audio.channels.ch1]\nloopback = \"echo\"",
		fmt.Sprintf("backend = \"pulse\"\npulse-server = %q\n[audio.channels.ch1]\nsink = \"chan1\"", server), 1))
	if err := os.WriteFile(planPath, body, 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := plan.Load(planPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &recNotifier{}
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{PlanPath: planPath, Plan: p, Log: discardLogger(), Notifier: n}) }()
	select {
	case err := <-done:
		t.Fatalf("Run returned before the stop, without a server: %v", err)
	case <-time.After(500 * time.Millisecond): // waiting (SoundServerWait is 20 s)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v after a stop during the wait, want nil", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Run still waiting for the sound server 3 s after the stop")
	}
	if n.count("READY=1") != 0 {
		t.Error("READY=1 sent without audio channels")
	}
}
