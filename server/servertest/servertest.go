// Package servertest starts real Haven servers for tests: a fresh database
// on the shared test PostgreSQL (embedded, or HAVEN_DATABASE_URL), a fresh
// data dir, a loopback listener, and an admin client.
package servertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// Server is a running test server.
type Server struct {
	URL         string
	AdminToken  string
	DataDir     string
	DatabaseURL string
	Client      *api.Client
	Server      *server.Server
	logs        *SyncBuffer
}

// Logs returns everything the server has logged so far.
func (s *Server) Logs() string { return s.logs.String() }

// Start runs a server on a fresh database and stops it when the test ends.
func Start(t testing.TB) *Server {
	return StartWith(t, nil)
}

// StartWith is Start with a chance to adjust the configuration.
func StartWith(t testing.TB, adjust func(*server.Config)) *Server {
	t.Helper()
	cfg := server.Config{
		Listen:      "127.0.0.1:0",
		DataDir:     t.TempDir(),
		DatabaseURL: testparts.PostgresURL(t),
		LogLevel:    "info",
		// Tests back up and restore temp dirs wherever the system puts
		// them; the data dir and keys stay out of reach whatever the roots.
		LocalRoots: []string{"/"},
	}
	if adjust != nil {
		adjust(&cfg)
	}
	return Run(t, cfg)
}

// Run starts a server with exactly this configuration.
func Run(t testing.TB, cfg server.Config) *Server {
	t.Helper()
	logs := &SyncBuffer{}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv, err := server.Start(ctx, cfg, server.NewLogger(logs, cfg.LogLevel))
	if err != nil {
		t.Fatalf("starting haven server: %v\nserver log:\n%s", err, logs.String())
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("server shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", failureLog(logs.String()))
		}
	})
	token, err := os.ReadFile(filepath.Join(cfg.DataDir, server.AdminTokenFile))
	if err != nil {
		t.Fatalf("reading admin token: %v", err)
	}
	s := &Server{URL: srv.URL(), AdminToken: strings.TrimSpace(string(token)), DataDir: cfg.DataDir, DatabaseURL: cfg.DatabaseURL, Server: srv, logs: logs}
	s.Client = s.NewClient(t, s.AdminToken)
	return s
}

// NewClient returns a client of this server that uses token.
func (s *Server) NewClient(t testing.TB, token string) *api.Client {
	t.Helper()
	c, err := api.NewClient(api.ClientOptions{Endpoint: s.URL, Token: token, MaxRetries: 2})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// StopShared stops the shared test PostgreSQL and moto. Call it from
// TestMain after m.Run.
func StopShared() {
	testparts.StopSharedPostgres()
	testparts.StopMoto()
}

// SyncBuffer is a goroutine-safe log sink: the server logs from request
// goroutines while the test may read it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// failureLog is the server log shown with a failed test: every event, but
// only the last of the per-request lines, which can run to thousands and
// push the test's own failure message out of a CI excerpt.
func failureLog(all string) string {
	const keepRequests = 20
	lines := strings.Split(strings.TrimRight(all, "\n"), "\n")
	var requests int
	for _, l := range lines {
		if strings.Contains(l, `"msg":"request"`) {
			requests++
		}
	}
	var out []string
	seen := 0
	for _, l := range lines {
		if strings.Contains(l, `"msg":"request"`) {
			if seen++; seen <= requests-keepRequests {
				continue
			}
		}
		out = append(out, l)
	}
	if requests > keepRequests {
		out = append([]string{fmt.Sprintf("(%d request lines omitted; the last %d are kept)", requests-keepRequests, keepRequests)}, out...)
	}
	return strings.Join(out, "\n")
}
