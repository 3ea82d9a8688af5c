package debugserver

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestListenRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0", "localhost:0", "127.0.0.1", ""} {
		if s, err := Listen(addr); err == nil {
			s.ln.Close()
			t.Errorf("Listen(%q) succeeded, want an error", addr)
		}
	}
}

func TestServe(t *testing.T) {
	audio := []AudioChannel{{Channel: "ch1", Backend: "pulse", Reconnects: 40, PlaybackDroppedS: 0.5, CaptureMarginMs: 10}}
	s, err := Listen("127.0.0.1:0", WithSIPEdge(func() SIPEdge { return SIPEdge{Malformed: 5, Answers: 4} }),
		WithAudio(func() []AudioChannel { return audio }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	base := "http://" + s.Addr().String()
	get := func(path string) (int, string) {
		t.Helper()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}

	code, body := get("/debug/stats")
	var st Stats
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("stats: %d %v %q", code, err, body)
	}
	if st.Goroutines < 2 || st.Threads < 1 || st.FDs < 3 || st.RSSBytes <= 0 || st.RSSAnonBytes <= 0 || st.RSSFileBytes <= 0 || st.RSSAnonBytes+st.RSSFileBytes > st.RSSBytes || st.HeapAlloc == 0 {
		t.Errorf("implausible stats %+v", st)
	}
	if st.SIPEdge == nil || *st.SIPEdge != (SIPEdge{Malformed: 5, Answers: 4}) || !strings.Contains(body, `"sip_edge":{"malformed":5,`) {
		t.Errorf("stats without the SIP edge counters given: %s", body)
	}
	if !slices.Equal(st.Audio, audio) || !strings.Contains(body, `"audio":[{"channel":"ch1","backend":"pulse","connected":false,"reconnects":40,`) {
		t.Errorf("stats without the audio channels given: %s", body)
	}
	if code, body := get("/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "debugserver.TestServe") {
		t.Errorf("goroutine profile: %d %.200q", code, body)
	}
	code, body = get("/debug/runtime-metrics")
	var rm map[string]float64
	if err := json.Unmarshal([]byte(body), &rm); code != 200 || err != nil {
		t.Fatalf("runtime-metrics: %d %v %.200q", code, err, body)
	}
	if rm["/memory/classes/heap/objects:bytes"] <= 0 || rm["/memory/classes/total:bytes"] < rm["/memory/classes/heap/objects:bytes"] {
		t.Errorf("runtime-metrics without plausible memory classes: %.300q", body)
	}
	if code, _ := get("/debug/pprof/heap?gc=1"); code != 200 {
		t.Errorf("heap profile: %d", code)
	}
	if code, body := get("/debug/pprof/profile?seconds=1"); code != 200 || len(body) == 0 {
		t.Errorf("CPU profile: %d, %d bytes", code, len(body))
	}
	if code, _ := get("/debug/pprof/profile?seconds=0"); code != 400 {
		t.Errorf("CPU profile of 0 s: %d, want 400", code)
	}
	if code, _ := get("/debug/pprof/nope"); code != 404 {
		t.Errorf("unknown profile: %d, want 404", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}
