// Package pgembed runs the Haven server's private PostgreSQL cluster when no
// HAVEN_DATABASE_URL is configured. It lives under internal/ rather than
// server/ because the test harness (internal/testparts) and the benchmark
// start the same cluster, and the engine's tests must not depend on server code.
//
// The cluster uses the PostgreSQL server binaries already installed on the
// machine (see FindBinaries) and lives entirely inside one directory:
//
//	<Dir>/              0700, owned by the user postgres runs as
//	<Dir>/data/         the data directory created by initdb
//	<Dir>/postgres.log  postgres's stderr
//	<Dir>/.s.PGSQL.5432 the only way in: there is no TCP listener
//
// Authentication is "trust" on the socket, so the directory permissions are
// the access control: only the cluster's user and root can reach the socket.
package pgembed

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// Superuser is the role initdb creates; every URL connects as it.
	Superuser = "haven"
	// DefaultDatabase is created by Start when Options.Database is empty.
	DefaultDatabase = "haven"

	// port only names the socket file (.s.PGSQL.5432); nothing listens on TCP.
	port        = 5432
	socketName  = ".s.PGSQL.5432"
	logName     = "postgres.log"
	dataName    = "data"
	lockName    = "pgembed.lock"
	maxLogBytes = 10 << 20
)

// Options configures Start.
type Options struct {
	// Dir is the cluster directory, normally <data-dir>/postgres. It is
	// created if missing. The socket lives in it, so its absolute path can
	// be at most 94 bytes on Linux (90 on macOS).
	Dir string
	// Logger receives lifecycle events; nil means slog.Default().
	Logger *slog.Logger
	// Database is created after start if missing; empty means "haven".
	Database string
	// NoFsync turns off fsync, synchronous_commit and full_page_writes. It
	// trades crash safety for speed and exists for tests only.
	NoFsync bool
	// StartTimeout bounds initdb plus startup (including crash recovery
	// after an unclean stop) when ctx has no earlier deadline; 0 means 2m.
	StartTimeout time.Duration
	// Role is the superuser URLs connect as, for a cluster made
	// elsewhere (a restored one); empty means Superuser, the role initdb
	// is run with here.
	Role string
	// Settings are extra "name=value" server settings, passed with -c
	// after the defaults (so they win): a cluster Haven protects in tests
	// runs with wal_level, archive_mode and archive_command of its own.
	Settings []string
}

// Cluster is a running embedded PostgreSQL server started by Start.
type Cluster struct {
	dir     string
	dataDir string
	bin     Binaries
	log     *slog.Logger

	cmd      *exec.Cmd
	exited   chan struct{} // closed once cmd.Wait has returned
	exitErr  error         // cmd.Wait's result, valid after exited is closed
	lockFile *os.File
	logFile  *os.File
	settings []string // Options.Settings
	role     string   // Options.Role; empty means Superuser

	ready    atomic.Bool // Start returned it; later exits are worth an ERROR
	stopping atomic.Bool
	stopOnce sync.Once
	stopErr  error
}

// Dir returns the cluster directory, which is also the socket directory.
func (c *Cluster) Dir() string { return c.dir }

// Binaries returns the installation the cluster runs on.
func (c *Cluster) Binaries() Binaries { return c.bin }

// URL returns a connection URL for database over the cluster's unix socket,
// usable by pgx and libpq. Port and sslmode are spelled out so that PGPORT or
// PGSSLMODE in the environment cannot redirect the connection.
func (c *Cluster) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(cmp.Or(c.role, Superuser)),
		Path:     "/" + database,
		RawQuery: fmt.Sprintf("host=%s&port=%d&sslmode=disable", queryEscape(c.dir), port),
	}
	return u.String()
}

// queryEscape differs from url.QueryEscape because libpq-style URI parsers
// (pgx included) do not decode '+' as a space; keeping '/' readable is only
// cosmetic.
func queryEscape(s string) string {
	s = strings.ReplaceAll(url.QueryEscape(s), "+", "%20")
	return strings.ReplaceAll(s, "%2F", "/")
}

// CreateDatabase creates database name unless it already exists.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) error {
	return createDatabase(ctx, c.URL("postgres"), name)
}

func createDatabase(ctx context.Context, adminURL, name string) error {
	// PostgreSQL silently truncates longer names, after which the existence
	// check below would never match.
	if name == "" || len(name) > 63 {
		return fmt.Errorf("invalid database name %q: must be 1 to 63 bytes", name)
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: a concurrent caller won
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// serverArgs builds the postgres command line. Settings are passed with -c on
// every start instead of being written to postgresql.conf, so a newer Haven
// applies its tuning to a cluster created by an older one.
func serverArgs(dir, dataDir string, noFsync bool, extra []string) []string {
	settings := []string{
		"listen_addresses=",
		"unix_socket_directories=" + quoteListItem(dir),
		"unix_socket_permissions=0700",
		fmt.Sprintf("port=%d", port),
		// The server's pool, the job queue workers and parallel test
		// packages all connect here; idle slots cost little memory.
		"max_connections=200",
		"shared_buffers=64MB",
		// Parallel query buys nothing for small OLTP queries, and its
		// dynamic shared memory is what breaks in containers with a small
		// /dev/shm.
		"max_parallel_workers_per_gather=0",
		"jit=off",
		"timezone=UTC",
		"log_timezone=UTC",
		"logging_collector=off",
		"log_destination=stderr",
		"log_line_prefix=%m [%p] %q%u@%d ",
	}
	if noFsync {
		settings = append(settings, "fsync=off", "synchronous_commit=off", "full_page_writes=off")
	}
	settings = append(settings, extra...)
	args := []string{"-D", dataDir}
	for _, s := range settings {
		args = append(args, "-c", s)
	}
	return args
}

// quoteListItem protects a directory that contains a list separator, since
// unix_socket_directories is a comma-separated list.
func quoteListItem(s string) string {
	if !strings.ContainsAny(s, ", \t\"") {
		return s
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// checkSocketPath fails early with an actionable message; postgres itself
// would only log a terse error and exit.
func checkSocketPath(dir string) error {
	p := filepath.Join(dir, socketName)
	if len(p) > maxSocketPath {
		return fmt.Errorf("unix socket path %s is %d bytes, over the %d-byte limit: use a shorter data directory", p, len(p), maxSocketPath)
	}
	return nil
}

// logTail returns the last lines postgres wrote since offset, for error
// messages: a failed start is almost always explained there.
func logTail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const maxTail = 4096
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	start := max(offset, fi.Size()-maxTail)
	buf := make([]byte, fi.Size()-start)
	n, _ := f.ReadAt(buf, start)
	lines := strings.Split(strings.TrimRight(string(buf[:n]), "\n"), "\n")
	if start > offset && len(lines) > 1 {
		lines = lines[1:] // drop the partial first line
	}
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.TrimSpace(strings.Join(lines, "\n"))
}

func withLogTail(err error, path string, offset int64) error {
	tail := logTail(path, offset)
	if tail == "" {
		return fmt.Errorf("%w (see %s)", err, path)
	}
	return fmt.Errorf("%w; last lines of %s:\n%s", err, path, tail)
}
