// Package debugserver is telestra-sipd's optional diagnostics endpoint: an
// HTTP listener on a loopback address (off unless -debug-addr is given) that
// serves process figures as JSON and the runtime's profiles, for soak tests
// and for an engineer chasing a leak on a live appliance.
//
//	GET /debug/stats                   {"goroutines":..,"threads":..,"fds":..,"rss_bytes":..,"heap_*":..,"cpu_seconds":..,
//	                                    "sip_edge":{"malformed":..,"rejected":..,..},
//	                                    "audio":[{"channel":"ch1","connected":true,"reconnects":..,..}]}
//	GET /debug/runtime-metrics         every runtime/metrics value ("/memory/classes/heap/objects:bytes": ..)
//	GET /debug/pprof/profile?seconds=N CPU profile over N seconds (1-60, default 10)
//	GET /debug/pprof/NAME[?debug=N]    runtime/pprof profile NAME (heap, allocs, goroutine,
//	                                   threadcreate, block, mutex); heap?gc=1 collects first
//
// It binds loopback addresses only: profiles show call IDs and peer
// addresses in goroutine stacks and must not leave the machine.
package debugserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Server is a bound, not yet serving, diagnostics listener.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// SIPEdge are the counters of the SIP front layer (sip/edge), in
// /debug/stats as "sip_edge".
type SIPEdge struct {
	Malformed uint64 `json:"malformed"` // messages that could not be parsed
	Rejected  uint64 `json:"rejected"`  // well-formed requests refused statelessly
	Dropped   uint64 `json:"dropped"`   // dropped without an answer
	Rewritten uint64 `json:"rewritten"` // valid requests rewritten for the stack
	Answers   uint64 `json:"answers"`   // stateless answers sent
	LogLines  uint64 `json:"log_lines"` // log lines about rejected traffic
}

// AudioChannel is one audio channel's health, an entry of /debug/stats
// "audio" (the same object as get-status's `audio`, docs/api.md).
type AudioChannel struct {
	Channel          string  `json:"channel"`
	Backend          string  `json:"backend"`    // loopback pulse alsa
	Connected        bool    `json:"connected"`  // the device is usable now
	Reconnects       uint64  `json:"reconnects"` // after a failure, since start
	Xruns            uint64  `json:"xruns"`      // reported by the device, since start
	PlaybackDroppedS float64 `json:"playback_dropped_s"`
	CaptureDroppedS  float64 `json:"capture_dropped_s"`
	PlaybackMarginMs float64 `json:"playback_margin_ms"`
	CaptureMarginMs  float64 `json:"capture_margin_ms"`
}

// Option configures Listen.
type Option func(*sources)

type sources struct {
	sipEdge func() SIPEdge
	audio   func() []AudioChannel
}

// WithSIPEdge adds the SIP front layer's counters to /debug/stats; f must
// be safe to call from any goroutine.
func WithSIPEdge(f func() SIPEdge) Option { return func(s *sources) { s.sipEdge = f } }

// WithAudio adds the audio channels' health to /debug/stats; f must be
// safe to call from any goroutine.
func WithAudio(f func() []AudioChannel) Option { return func(s *sources) { s.audio = f } }

// Listen binds addr ("127.0.0.1:PORT" or "[::1]:PORT"), refusing any address
// that is not loopback.
func Listen(addr string, opts ...Option) (*Server, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("debug address %q: want a loopback IP:PORT, e.g. 127.0.0.1:6060: %w", addr, err)
	}
	if !ap.Addr().IsLoopback() {
		return nil, fmt.Errorf("debug address %q: only loopback addresses are allowed", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listener: %w", err)
	}
	var src sources
	for _, o := range opts {
		o(&src)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/stats", src.serveStats)
	mux.HandleFunc("GET /debug/runtime-metrics", serveRuntimeMetrics)
	mux.HandleFunc("GET /debug/pprof/{name}", serveProfile)
	return &Server{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}, nil
}

// Addr is the bound address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve answers requests until ctx is done, then closes the listener and
// gives requests in flight up to a second; it returns once they are done.
func (s *Server) Serve(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(s.ln) }()
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = s.srv.Shutdown(shut) // closes the listener, then waits for the handlers
		<-done
		return nil
	case err := <-done:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("debug server on %s: %w", s.ln.Addr(), err)
	}
}

// Stats is the /debug/stats document.
type Stats struct {
	Goroutines    int     `json:"goroutines"`
	Threads       int     `json:"threads"`        // kernel threads (/proc/self/status Threads)
	FDs           int     `json:"fds"`            // open file descriptors (/proc/self/fd)
	RSSBytes      int64   `json:"rss_bytes"`      // VmRSS
	RSSAnonBytes  int64   `json:"rss_anon_bytes"` // RssAnon: the heap, stacks, runtime metadata
	RSSFileBytes  int64   `json:"rss_file_bytes"` // RssFile: pages of the binary and libraries read so far
	HeapAlloc     uint64  `json:"heap_alloc_bytes"`
	HeapInuse     uint64  `json:"heap_inuse_bytes"`
	HeapIdle      uint64  `json:"heap_idle_bytes"`
	HeapReleased  uint64  `json:"heap_released_bytes"`
	HeapObjects   uint64  `json:"heap_objects"`
	Allocated     uint64  `json:"allocated_bytes"` // cumulative, since start
	Sys           uint64  `json:"sys_bytes"`       // everything the Go runtime got from the OS
	StackSys      uint64  `json:"stack_sys_bytes"`
	MetaSys       uint64  `json:"runtime_meta_sys_bytes"` // span structures, GC metadata, caches, other
	NumGC         uint32  `json:"num_gc"`
	CPUSeconds    float64 `json:"cpu_seconds"` // user + system CPU time of the process
	GOMEMLIMIT    int64   `json:"gomemlimit_bytes"`
	UptimeSeconds int64   `json:"uptime_seconds"`
	// SIPEdge is there when the server was given WithSIPEdge.
	SIPEdge *SIPEdge `json:"sip_edge,omitempty"`
	// Audio is there when the server was given WithAudio: every open
	// channel, by name.
	Audio []AudioChannel `json:"audio,omitempty"`
}

var started = time.Now()

// Read collects the figures of the running process.
func Read() Stats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	st := Stats{
		Goroutines:    runtime.NumGoroutine(),
		HeapAlloc:     m.HeapAlloc,
		HeapInuse:     m.HeapInuse,
		HeapIdle:      m.HeapIdle,
		HeapReleased:  m.HeapReleased,
		HeapObjects:   m.HeapObjects,
		Allocated:     m.TotalAlloc,
		Sys:           m.Sys,
		StackSys:      m.StackSys,
		MetaSys:       m.MSpanSys + m.MCacheSys + m.BuckHashSys + m.GCSys + m.OtherSys,
		NumGC:         m.NumGC,
		GOMEMLIMIT:    memLimit(),
		UptimeSeconds: int64(time.Since(started).Seconds()),
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		st.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		st.FDs = len(fds) - 1 // the directory being read
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Fields(l)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			switch f[0] {
			case "Threads:":
				st.Threads = int(kb)
			case "VmRSS:":
				st.RSSBytes = kb * 1024
			case "RssAnon:":
				st.RSSAnonBytes = kb * 1024
			case "RssFile:":
				st.RSSFileBytes = kb * 1024
			}
		}
	}
	return st
}

func (s sources) serveStats(w http.ResponseWriter, _ *http.Request) {
	st := Read()
	if s.sipEdge != nil {
		e := s.sipEdge()
		st.SIPEdge = &e
	}
	if s.audio != nil {
		st.Audio = s.audio()
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(st)
}

// RuntimeMetrics reads every scalar runtime/metrics value (histograms are
// left out), keyed by metric name: where /debug/stats sums the runtime's
// own memory into one figure, these split it (/memory/classes/*) and add
// the GC's pause and CPU figures (/gc/*, /cpu/classes/*).
func RuntimeMetrics() map[string]float64 {
	descs := metrics.All()
	samples := make([]metrics.Sample, 0, len(descs))
	for _, d := range descs {
		if d.Kind == metrics.KindUint64 || d.Kind == metrics.KindFloat64 {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(samples)
	out := make(map[string]float64, len(samples))
	for _, s := range samples {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			out[s.Name] = float64(s.Value.Uint64())
		case metrics.KindFloat64:
			out[s.Name] = s.Value.Float64()
		}
	}
	return out
}

func serveRuntimeMetrics(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(RuntimeMetrics())
}

func serveProfile(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("name") == "profile" {
		serveCPUProfile(w, r)
		return
	}
	p := pprof.Lookup(r.PathValue("name"))
	if p == nil {
		http.Error(w, "unknown profile", http.StatusNotFound)
		return
	}
	debug, _ := strconv.Atoi(r.FormValue("debug"))
	if r.FormValue("gc") == "1" {
		runtime.GC()
	}
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", p.Name()))
	}
	_ = p.WriteTo(w, debug)
}

func serveCPUProfile(w http.ResponseWriter, r *http.Request) {
	secs, err := strconv.Atoi(r.FormValue("seconds"))
	if r.FormValue("seconds") == "" {
		secs, err = 10, nil
	}
	if err != nil || secs < 1 || secs > 60 {
		http.Error(w, "seconds: from 1 to 60", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="profile"`)
	if err := pprof.StartCPUProfile(w); err != nil {
		http.Error(w, err.Error(), http.StatusConflict) // another profile runs
		return
	}
	select {
	case <-time.After(time.Duration(secs) * time.Second):
	case <-r.Context().Done():
	}
	pprof.StopCPUProfile()
}

// memLimit reads the soft memory limit (GOMEMLIMIT) without changing it.
func memLimit() int64 { return debug.SetMemoryLimit(-1) }
