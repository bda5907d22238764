package server

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	runtimepprof "runtime/pprof"
	"sync"
	"time"
)

// Profiling: `haven server --pprof-listen 127.0.0.1:PORT` serves Go's
// runtime profiles on a listener of its own, apart from the API. It is off
// by default and only ever listens on loopback, without authentication:
// profiles show the server's code paths, goroutine stacks and allocation
// sites (never request bodies or keys, but still more than a network
// should see), and whoever can reach a loopback port of the Haven host can
// already read its data dir. A separate listener keeps the debug routes
// out of the API contract (the OpenAPI document and its authorization
// table) and out of its middleware, whose own cost would show in the
// profiles.
//
// Besides net/http/pprof's handlers, it serves a CPU profile with an open
// end, so that `make profile` can cover exactly one job whose length it
// cannot know beforehand:
//
//	POST /debug/cpu/start   starts it (409 while one runs)
//	POST /debug/cpu/stop    stops it and returns the profile
//
// Allocation, block and mutex profiles are cumulative; a job's share is
// the difference of two snapshots (go tool pprof -base before.pb after.pb).

// Sampling of blocking events and mutex contention while profiling is on:
// one blocking event per 10 µs blocked and one contention event in 10 are
// recorded, enough for shares over a job of seconds at a small cost.
const (
	profileBlockRate     = 10_000
	profileMutexFraction = 10
)

// startProfiling serves the profiles on addr (loopback, checked by
// Validate) and returns the server to shut down with the API's.
func (s *Server) startProfiling(addr string) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--pprof-listen %s: %w", addr, err)
	}
	runtime.SetBlockProfileRate(profileBlockRate)
	runtime.SetMutexProfileFraction(profileMutexFraction)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	cpu := &openCPUProfile{}
	mux.HandleFunc("POST /debug/cpu/start", cpu.start)
	mux.HandleFunc("POST /debug/cpu/stop", cpu.stop)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	s.log.Info("profiles served on loopback", "address", ln.Addr().String())
	return srv, nil
}

// openCPUProfile is a CPU profile started and stopped by two requests.
type openCPUProfile struct {
	mu      sync.Mutex
	buf     *bytes.Buffer
	running bool
}

func (p *openCPUProfile) start(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running {
		http.Error(w, "a CPU profile is already running: POST /debug/cpu/stop first", http.StatusConflict)
		return
	}
	p.buf = &bytes.Buffer{}
	if err := runtimepprof.StartCPUProfile(p.buf); err != nil {
		// Another profiler (GET /debug/pprof/profile) holds the CPU.
		http.Error(w, "cannot start a CPU profile: "+err.Error(), http.StatusConflict)
		return
	}
	p.running = true
	w.WriteHeader(http.StatusNoContent)
}

func (p *openCPUProfile) stop(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running {
		http.Error(w, "no CPU profile is running: POST /debug/cpu/start first", http.StatusConflict)
		return
	}
	runtimepprof.StopCPUProfile()
	p.running = false
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(p.buf.Bytes())
	p.buf = nil
}
