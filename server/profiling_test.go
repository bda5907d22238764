package server_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

func TestPprofListenIsOffByDefaultAndLoopbackOnly(t *testing.T) {
	cfg, err := server.ParseFlags([]string{"--data-dir", t.TempDir()}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PprofListen != "" {
		t.Fatalf("profiles are served by default on %q; want off", cfg.PprofListen)
	}
	for _, addr := range []string{"0.0.0.0:6060", "192.0.2.1:6060", ":6060"} {
		_, err := server.ParseFlags([]string{"--data-dir", t.TempDir(), "--pprof-listen", addr}, os.Stderr)
		if err == nil || !strings.Contains(err.Error(), "--pprof-listen") || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("--pprof-listen %s: want a refusal naming the flag and loopback, got %v", addr, err)
		}
	}
	if _, err := server.ParseFlags([]string{"--data-dir", t.TempDir(), "--pprof-listen", "nonsense"}, os.Stderr); err == nil || !strings.Contains(err.Error(), "--pprof-listen") {
		t.Errorf("a malformed address must be refused naming the flag, got %v", err)
	}
	t.Setenv("HAVEN_PPROF_LISTEN", "127.0.0.1:6060")
	cfg, err = server.ParseFlags([]string{"--data-dir", t.TempDir()}, os.Stderr)
	if err != nil || cfg.PprofListen != "127.0.0.1:6060" {
		t.Fatalf("HAVEN_PPROF_LISTEN on loopback: got %q, %v", cfg.PprofListen, err)
	}
}

// The profiles are served on their own listener, not the API's, and the
// open-ended CPU profile starts and stops on request.
func TestPprofListenServesProfilesApartFromTheAPI(t *testing.T) {
	addr := "127.0.0.1:" + freePort(t)
	srv := servertest.StartWith(t, func(c *server.Config) { c.PprofListen = addr })
	base := "http://" + addr

	get := func(url string) (int, []byte) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	post := func(path string) (int, []byte) {
		t.Helper()
		resp, err := http.Post(base+path, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}

	if code, body := get(base + "/debug/pprof/"); code != http.StatusOK || !bytes.Contains(body, []byte("goroutine")) {
		t.Fatalf("GET /debug/pprof/ on the profiling address: %d %.200s", code, body)
	}
	if code, body := get(base + "/debug/pprof/allocs?gc=1"); code != http.StatusOK || !isGzip(body) {
		t.Fatalf("GET /debug/pprof/allocs: %d, %d bytes, want a gzipped profile", code, len(body))
	}
	if code, _ := get(srv.URL + "/debug/pprof/"); code == http.StatusOK {
		t.Fatalf("the API listener serves /debug/pprof/ too")
	}

	if code, _ := post("/debug/cpu/stop"); code != http.StatusConflict {
		t.Fatalf("stop before start: %d, want 409", code)
	}
	if code, body := post("/debug/cpu/start"); code != http.StatusNoContent {
		t.Fatalf("start: %d %s", code, body)
	}
	if code, _ := post("/debug/cpu/start"); code != http.StatusConflict {
		t.Fatalf("a second start: %d, want 409", code)
	}
	code, body := post("/debug/cpu/stop")
	if code != http.StatusOK || !isGzip(body) {
		t.Fatalf("stop: %d, %d bytes, want a gzipped CPU profile", code, len(body))
	}
	// A stopped profile can be started again (the next job's).
	if code, body := post("/debug/cpu/start"); code != http.StatusNoContent {
		t.Fatalf("start after stop: %d %s", code, body)
	}
	if code, _ := post("/debug/cpu/stop"); code != http.StatusOK {
		t.Fatalf("second stop: %d", code)
	}
}

// isGzip reports whether b starts like a gzip stream: pprof's format.
func isGzip(b []byte) bool { return len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b }
