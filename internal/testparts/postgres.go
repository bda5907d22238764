package testparts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/internal/pgembed"
)

var sharedPG struct {
	mu      sync.Mutex
	cluster *pgembed.Cluster
	tmp     string
	err     error
	gen     int // counts starts, so a cleanup can tell its cluster is gone
}

// PostgresURL returns a connection URL to a new, empty database created for
// this test, and drops the database when the test ends.
//
// With HAVEN_DATABASE_URL set, the database is created on that server (its
// role needs CREATEDB). Otherwise one embedded cluster (internal/pgembed, fsync
// off) is shared by all tests of this test process, started on first use;
// a package using PostgresURL stops it from TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		testparts.StopSharedPostgres()
//		os.Exit(code)
//	}
//
// If the test process dies without doing so, postgres still exits with it,
// but its temporary directory is left behind.
//
// Without PostgreSQL server binaries the test fails with a hint on what to
// install: it is never skipped.
func PostgresURL(t testing.TB) string {
	t.Helper()
	adminURL, gen, err := postgresAdminURL()
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	name := databaseName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pgExec(ctx, adminURL, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("postgres: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if gen != 0 && !sharedRunning(gen) {
			return // the database went with its cluster
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// FORCE because a test that leaks a pool must not leak the database
		// too, which matters on a long-lived HAVEN_DATABASE_URL server.
		if err := pgExec(ctx, adminURL, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("postgres: drop database %s: %v", name, err)
		}
	})
	u, err := withDatabase(adminURL, name)
	if err != nil {
		t.Fatalf("postgres: %v", err)
	}
	return u
}

// StopSharedPostgres stops the shared embedded cluster started by
// PostgresURL, if any, and deletes its files. A later PostgresURL call starts
// a new one.
func StopSharedPostgres() {
	sharedPG.mu.Lock()
	defer sharedPG.mu.Unlock()
	if sharedPG.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := sharedPG.cluster.Stop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "testparts: stop shared postgres: %v\n", err)
		}
		cancel()
	}
	if sharedPG.tmp != "" {
		_ = os.RemoveAll(sharedPG.tmp)
	}
	sharedPG.cluster, sharedPG.tmp, sharedPG.err = nil, "", nil
}

// postgresAdminURL returns a URL on which databases can be created, and the
// shared cluster's generation (0 for HAVEN_DATABASE_URL).
func postgresAdminURL() (string, int, error) {
	if u := os.Getenv("HAVEN_DATABASE_URL"); u != "" {
		return u, 0, nil
	}
	sharedPG.mu.Lock()
	defer sharedPG.mu.Unlock()
	if sharedPG.cluster == nil && sharedPG.err == nil {
		sharedPG.cluster, sharedPG.tmp, sharedPG.err = startSharedPostgres()
		sharedPG.gen++
	}
	if sharedPG.err != nil {
		// Remembered so that the remaining tests fail at once.
		return "", 0, sharedPG.err
	}
	return sharedPG.cluster.URL("postgres"), sharedPG.gen, nil
}

func sharedRunning(gen int) bool {
	sharedPG.mu.Lock()
	defer sharedPG.mu.Unlock()
	return sharedPG.cluster != nil && sharedPG.gen == gen
}

func startSharedPostgres() (*pgembed.Cluster, string, error) {
	// A long TMPDIR (macOS) would push the socket path over its limit.
	base := os.TempDir()
	if len(base) > 60 {
		base = "/tmp"
	}
	tmp, err := os.MkdirTemp(base, "haven-pg-")
	if err != nil {
		return nil, "", err
	}
	// MkdirTemp makes it 0700; when tests run as root, postgres runs as an
	// unprivileged user that must be able to pass through it.
	if err := os.Chmod(tmp, 0o755); err != nil {
		_ = os.RemoveAll(tmp)
		return nil, "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := pgembed.Start(ctx, pgembed.Options{
		Dir:     filepath.Join(tmp, "pg"),
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		NoFsync: true,
	})
	if err != nil {
		_ = os.RemoveAll(tmp)
		return nil, "", fmt.Errorf("start embedded PostgreSQL: %w", err)
	}
	return c, tmp, nil
}

func pgExec(ctx context.Context, connString, sql string) error {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// databaseName makes a name that needs no quoting (lower-case letters, digits
// and underscores), fits PostgreSQL's 63 bytes, hints at the test it belongs
// to, and is unique across processes sharing a HAVEN_DATABASE_URL server.
func databaseName(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		switch {
		case 'a' <= r && r <= 'z' || '0' <= r && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "_"):
			b.WriteByte('_')
		}
	}
	base := strings.Trim(b.String(), "_")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "_")
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	return "t_" + base + "_" + hex.EncodeToString(suffix[:])
}

// withDatabase points a connection string, in either URL or keyword/value
// form, at database name.
func withDatabase(connString, name string) (string, error) {
	if !strings.HasPrefix(connString, "postgres://") && !strings.HasPrefix(connString, "postgresql://") {
		// Keyword/value form: a repeated keyword overrides the earlier one.
		return strings.TrimSpace(connString) + " dbname=" + name, nil
	}
	u, err := url.Parse(connString)
	if err != nil {
		// url.Error quotes the whole URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("HAVEN_DATABASE_URL is not a valid URL: %w", err)
	}
	u.Path, u.RawPath = "/"+name, ""
	// A dbname parameter would win over the path.
	if q := u.Query(); q.Has("dbname") {
		q.Del("dbname")
		// libpq-style parsers read '+' literally; Encode writes a real '+'
		// as %2B, so this only touches encoded spaces.
		u.RawQuery = strings.ReplaceAll(q.Encode(), "+", "%20")
	}
	return u.String(), nil
}
