package testparts

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/internal/pgembed"
)

// Cluster is a PostgreSQL cluster a test protects (backs up, restores,
// loads with pgbench): a real cluster from the system binaries, in a
// directory of its own, reached through its unix socket as superuser
// pgembed.Superuser. It is stopped when the test ends.
type Cluster struct {
	*pgembed.Cluster
	t testing.TB
}

// StartCluster starts a new cluster in a temporary directory, with the
// given extra server settings ("archive_mode=on", ...). Without PostgreSQL
// server binaries the test fails with what to install.
func StartCluster(t testing.TB, settings ...string) *Cluster {
	t.Helper()
	return StartClusterIn(t, clusterDir(t), settings...)
}

// StartClusterIn starts a cluster in dir: a new one if dir/data does not
// hold one, else the one there (a restored data directory).
func StartClusterIn(t testing.TB, dir string, settings ...string) *Cluster {
	t.Helper()
	c, err := StartClusterErr(dir, settings...)
	if err != nil {
		t.Fatalf("postgres cluster in %s: %v (install the PostgreSQL server binaries, e.g. apt-get install postgresql)", dir, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c.Stop(ctx)
	})
	return &Cluster{Cluster: c, t: t}
}

// StartClusterErr is StartClusterIn for callers that expect a start to fail
// (a cluster that must not come up); the caller stops what it returns.
func StartClusterErr(dir string, settings ...string) (*pgembed.Cluster, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return pgembed.Start(ctx, pgembed.Options{Dir: dir, Settings: settings,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Database: "postgres"})
}

// ClusterDir makes a directory for a cluster: short enough for its socket
// path, and passable by the unprivileged user postgres runs as under root.
func ClusterDir(t testing.TB) string { return clusterDir(t) }

func clusterDir(t testing.TB) string {
	t.Helper()
	base := os.TempDir()
	if len(base) > 40 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "haven-db-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "c")
}

// DataDir is the cluster's data directory.
func (c *Cluster) DataDir() string { return filepath.Join(c.Dir(), "data") }

// Conn connects to one of the cluster's databases; the connection is
// closed when the test ends.
func (c *Cluster) Conn(database string) *pgx.Conn {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL(database))
	if err != nil {
		c.t.Fatalf("connecting to %s: %v", database, err)
	}
	c.t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs SQL on a database of the cluster and fails the test on error.
func (c *Cluster) Exec(database, sql string, args ...any) {
	c.t.Helper()
	conn := c.Conn(database)
	if _, err := conn.Exec(context.Background(), sql, args...); err != nil {
		c.t.Fatalf("%s: %v", sql, err)
	}
	conn.Close(context.Background())
}

// Pgbench runs the pgbench binary of the cluster's PostgreSQL against a
// database, with args ("-i", "-s", "2"), and fails the test on error.
func (c *Cluster) Pgbench(ctx context.Context, database string, args ...string) {
	c.t.Helper()
	if out, err := c.pgbench(ctx, database, args...); err != nil && ctx.Err() == nil {
		c.t.Fatalf("pgbench %v: %v\n%s", args, err, out)
	}
}

func (c *Cluster) pgbench(ctx context.Context, database string, args ...string) ([]byte, error) {
	return c.Run(ctx, "pgbench", append(args, database)...)
}

// Run runs a client program of the cluster's PostgreSQL (pgbench,
// pg_amcheck, psql) connected to the cluster, and returns its output.
func (c *Cluster) Run(ctx context.Context, program string, args ...string) ([]byte, error) {
	all := append([]string{"-h", c.Dir(), "-U", pgembed.Superuser}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(c.Binaries().Dir, program), all...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// Load runs pgbench's default transactions on a database (initialised
// with Pgbench -i) with clients connections until the returned stop is
// called, which waits for pgbench to end.
func (c *Cluster) Load(database string, clients int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.pgbench(ctx, database, "-n", "-c", fmt.Sprint(clients), "-T", "3600")
	}()
	return func() { cancel(); <-done }
}

// TableSums is every user table of a database with the md5 of its rows
// in a fixed order: equal sums mean equal contents.
func (c *Cluster) TableSums(database string) map[string]string {
	c.t.Helper()
	conn := c.Conn(database)
	defer conn.Close(context.Background())
	ctx := context.Background()
	rows, err := conn.Query(ctx, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
		WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
	if err != nil {
		c.t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		c.t.Fatal(err)
	}
	sums := map[string]string{}
	for _, table := range tables {
		var sum string
		q := fmt.Sprintf("SELECT coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), 'empty') FROM %s t", table)
		if err := conn.QueryRow(ctx, q).Scan(&sum); err != nil {
			c.t.Fatalf("%s: %v", q, err)
		}
		sums[table] = sum
	}
	return sums
}
