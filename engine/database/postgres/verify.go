package postgres

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/pgembed"
)

// TableRows is one table's row count in a verified copy.
type TableRows struct {
	Database string `json:"database"`
	Table    string `json:"table"`
	Rows     int64  `json:"rows"`
}

// Verification is what a restore check of a point found.
type Verification struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Passed: the copy started, pg_amcheck found nothing wrong in any
	// database, and every table could be read to its end.
	Passed bool `json:"passed"`
	// Problem says what failed, when it did.
	Problem   string      `json:"problem,omitempty"`
	Databases int         `json:"databases"`
	Tables    []TableRows `json:"tables"`
}

// VerifyOptions configure a restore check.
type VerifyOptions struct {
	// Scratch is a directory on the host, with room for the point, that
	// the check may fill and removes when done.
	Scratch string
}

// Verify proves a point restorable, further than the anchors' backup
// checks do: it restores the point into a scratch cluster on this host,
// starts it (on a socket of its own, no TCP, no archiving, trust for
// local connections only, whatever the source's settings were), runs
// pg_amcheck with heap and B-tree checks over every database, counts the
// rows of every table, and stops and removes it. A point that does not
// pass gives a Verification with Problem set, not an error; errors are
// for checks that could not run.
func Verify(ctx context.Context, src files.Source, root format.ID, opts VerifyOptions) (*Verification, error) {
	v := &Verification{Started: time.Now()}
	m, err := ReadMeta(ctx, src, root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Scratch, 0o755); err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp(opts.Scratch, "verify-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	if err := os.Chmod(scratch, 0o755); err != nil {
		return nil, err
	}
	dir := filepath.Join(scratch, "c")
	if _, err := Restore(ctx, src, root, RestoreOptions{DataDir: filepath.Join(dir, "data"), Staging: filepath.Join(scratch, "staging"),
		Owner: os.Geteuid() == 0}); err != nil {
		return nil, fmt.Errorf("restoring into the scratch directory: %w", err)
	}
	hba := filepath.Join(dir, "haven_verify_hba.conf")
	if err := os.WriteFile(hba, []byte("local all all trust\n"), 0o644); err != nil {
		return nil, err
	}
	role := m.BootstrapRole
	if role == "" {
		role = "postgres"
	}
	cluster, err := pgembed.Start(ctx, pgembed.Options{Dir: dir, Role: role, Database: "postgres",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Settings: []string{"archive_mode=off", "hba_file=" + hba, "shared_preload_libraries=", "max_wal_senders=0",
			"wal_level=replica", "hot_standby=on"}})
	if err != nil {
		return finish(v, "the restored copy did not start: "+err.Error()), nil
	}
	defer cluster.Stop(context.WithoutCancel(ctx))

	amcheck := exec.CommandContext(ctx, filepath.Join(cluster.Binaries().Dir, "pg_amcheck"), "-h", dir, "-U", role,
		"--all", "--install-missing", "--heapallindexed", "--no-strict-names")
	var out bytes.Buffer
	amcheck.Stdout, amcheck.Stderr = &out, &out
	if err := amcheck.Run(); err != nil {
		return finish(v, fmt.Sprintf("pg_amcheck: %v: %s", err, lastLines(out.String(), 20))), nil
	}
	if problem, err := countRows(ctx, cluster, v); err != nil {
		return nil, err
	} else if problem != "" {
		return finish(v, problem), nil
	}
	v.Passed = true
	return finish(v, ""), nil
}

func finish(v *Verification, problem string) *Verification {
	v.Problem, v.Finished = problem, time.Now()
	return v
}

// countRows reads every table of every database that takes connections to
// its end, counting rows; a table that cannot be read is the problem.
func countRows(ctx context.Context, c *pgembed.Cluster, v *Verification) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "connecting to the restored copy: " + err.Error(), nil
	}
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datallowconn ORDER BY datname")
	var dbs []string
	if err == nil {
		dbs, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	conn.Close(ctx)
	if err != nil {
		return "listing databases: " + err.Error(), nil
	}
	v.Databases = len(dbs)
	for _, db := range dbs {
		conn, err := pgx.Connect(ctx, c.URL(db))
		if err != nil {
			return fmt.Sprintf("connecting to database %s: %v", db, err), nil
		}
		rows, err := conn.Query(ctx, `SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE c.relkind IN ('r', 'm', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
			ORDER BY 1`)
		var tables []string
		if err == nil {
			tables, err = pgx.CollectRows(rows, pgx.RowTo[string])
		}
		if err != nil {
			conn.Close(ctx)
			return fmt.Sprintf("listing the tables of %s: %v", db, err), nil
		}
		for _, table := range tables {
			var n int64
			if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
				conn.Close(ctx)
				return fmt.Sprintf("reading %s.%s: %v", db, table, err), nil
			}
			v.Tables = append(v.Tables, TableRows{Database: db, Table: table, Rows: n})
		}
		conn.Close(ctx)
	}
	return "", nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
