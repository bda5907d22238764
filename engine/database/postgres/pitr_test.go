package postgres_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/engine/database"
	"github.com/havenbackup/terraform-provider-haven/engine/database/postgres"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

// archivingCluster starts a cluster whose archive_command copies each WAL
// segment into the returned directory, under a name of its own first, so
// that a segment appears there whole (as haven agent wal-push's do): a
// plain cp let a log capture read a segment still being copied.
func archivingCluster(t *testing.T) (*testparts.Cluster, string) {
	// Beside the cluster's own directory, which the user postgres runs
	// as (under root) can reach; writable by that user.
	arch := testparts.ClusterDir(t) + "-archive"
	must(t, os.Mkdir(arch, 0o777))
	must(t, os.Chmod(arch, 0o777))
	c := testparts.StartCluster(t, "archive_mode=on", "archive_command=cp %p "+arch+"/%f.part && mv "+arch+"/%f.part "+arch+"/%f", "archive_timeout=0")
	return c, arch
}

// archivedFull starts an archiving cluster with an empty ledger and takes
// a full backup of it.
func archivedFull(t *testing.T) (*testparts.Cluster, string, *repotest.Env, format.ID, *postgres.Meta) {
	c, arch := archivingCluster(t)
	c.Exec("postgres", ledgerTable)
	env := repotest.New(t, repo.Options{})
	root, _, _ := backup(t, env, c, database.BackupRequest{Kind: database.KindFull})
	full, err := postgres.ReadMeta(context.Background(), env.Repo, root)
	must(t, err)
	return c, arch, env, root, full
}

// captureLog stores WAL segments of c (backed up in full) as a log point.
func captureLog(t *testing.T, env *repotest.Env, c *testparts.Cluster, full *postgres.Meta, req postgres.LogRequest) (format.ID, *postgres.LogMeta) {
	t.Helper()
	ctx := context.Background()
	w, err := env.Repo.NewWriter(ctx, "")
	must(t, err)
	req.SystemID, req.WALDump = full.SystemID, filepath.Join(c.Binaries().Dir, "pg_waldump")
	root, m, err := postgres.CaptureLog(ctx, w, env.Repo, req)
	if err != nil {
		w.Abort(ctx)
		t.Fatal(err)
	}
	must(t, w.Commit(ctx, "log-"+root.Short(), root))
	return root, m
}

// switchAndArchive closes the current WAL segment and waits until the
// archiver has copied it.
func switchAndArchive(t *testing.T, c *testparts.Cluster, arch string) {
	t.Helper()
	var seg string
	must(t, c.Conn("postgres").QueryRow(context.Background(), "SELECT pg_walfile_name(pg_switch_wal())").Scan(&seg))
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(arch, seg)); err == nil {
			return
		}
	}
	t.Fatalf("segment %s was not archived", seg)
}

// archived lists the archive's segments from the full's last one on.
func archived(t *testing.T, arch string, full *postgres.Meta) []string {
	segs, err := postgres.ArchivedSegments(arch, full.WALSegments[len(full.WALSegments)-1])
	must(t, err)
	return segs
}

// insertLedger inserts ledger rows from..to, one transaction each.
func insertLedger(t *testing.T, c *testparts.Cluster, from, to int64) {
	conn := c.Conn("postgres")
	for id := from; id <= to; id++ {
		if _, err := conn.Exec(context.Background(), "INSERT INTO ledger (id) VALUES ($1)", id); err != nil {
			t.Fatal(err)
		}
	}
}

func ledgerMax(t *testing.T, c *testparts.Cluster) int64 {
	var n, count int64
	must(t, c.Conn("postgres").QueryRow(context.Background(), "SELECT coalesce(max(id), 0), count(*) FROM ledger").Scan(&n, &count))
	if n != count {
		t.Errorf("ledger has %d rows up to id %d: a gap", count, n)
	}
	return n
}

// TestPointInTimeRestores takes a full, then WAL with 150 numbered
// inserts, an instant noted after the 50th and a named restore point
// after the 100th, and stores the archived WAL as a log point. Restores
// to the instant, to the restore point and to the end of the logs must
// show exactly 50, 100 and 150 rows. A standby restore to the instant is
// read-only, is rolled forward to the restore point, then promoted.
func TestPointInTimeRestores(t *testing.T) {
	ctx := context.Background()
	c, arch, env, fullRoot, full := archivedFull(t)

	insertLedger(t, c, 1, 50)
	var instant time.Time
	must(t, c.Conn("postgres").QueryRow(ctx, "SELECT clock_timestamp()").Scan(&instant))
	time.Sleep(20 * time.Millisecond)
	insertLedger(t, c, 51, 100)
	c.Exec("postgres", "SELECT pg_create_restore_point('after_100')")
	insertLedger(t, c, 101, 150)
	switchAndArchive(t, c, arch)

	segments := archived(t, arch, full)
	logRoot, logMeta := captureLog(t, env, c, full, postgres.LogRequest{Segments: segments})
	if len(logMeta.RestorePoints) != 1 || logMeta.RestorePoints[0].Name != "after_100" {
		t.Errorf("log point's restore points %+v, want after_100", logMeta.RestorePoints)
	}
	if logMeta.FirstTime.After(instant) || logMeta.LastTime.Before(instant) {
		t.Errorf("log point covers %s..%s, which leaves out %s", logMeta.FirstTime, logMeta.LastTime, instant)
	}
	t.Logf("log point: %d segments, %s..%s, %s..%s", len(logMeta.Segments), logMeta.StartLSN, logMeta.EndLSN, logMeta.FirstTime, logMeta.LastTime)

	restoreTo := func(rec postgres.Recovery) (*testparts.Cluster, string) {
		t.Helper()
		logs := filepath.Join(testparts.ClusterDir(t)+"-wal", "archive")
		must(t, postgres.RestoreLogs(ctx, env.Repo, []format.ID{logRoot}, logs, true))
		must(t, os.Chmod(filepath.Dir(logs), 0o755))
		rec.RestoreCommand = "cp " + logs + "/%f %p"
		dir := testparts.ClusterDir(t)
		_, err := postgres.Restore(ctx, env.Repo, fullRoot, postgres.RestoreOptions{DataDir: filepath.Join(dir, "data"),
			Staging: filepath.Join(filepath.Dir(dir), "staging"), Recovery: rec})
		must(t, err)
		return testparts.StartClusterIn(t, dir), rec.RestoreCommand
	}
	waitPromoted := func(r *testparts.Cluster) {
		t.Helper()
		waitFor(t, func() bool {
			conn, err := pgx.Connect(ctx, r.URL("postgres"))
			if err != nil {
				return false
			}
			defer conn.Close(ctx)
			var inRecovery bool
			return conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery) == nil && !inRecovery
		})
	}
	for _, tc := range []struct {
		name string
		rec  postgres.Recovery
		want int64
	}{
		{"instant", postgres.Recovery{TargetTime: instant}, 50},
		{"restore point", postgres.Recovery{TargetName: "after_100"}, 100},
		{"end of logs", postgres.Recovery{}, 150},
	} {
		r, _ := restoreTo(tc.rec)
		waitPromoted(r)
		if got := ledgerMax(t, r); got != tc.want {
			t.Errorf("restore to %s: ledger ends at %d, want %d", tc.name, got, tc.want)
		}
		r.Exec("postgres", "INSERT INTO ledger (id) VALUES (1000)") // open for writes
		r.Stop(ctx)
	}

	// A standby at the instant: read-only, 50 rows; rolled forward to the
	// restore point, 100; then promoted and open.
	r, restoreCommand := restoreTo(postgres.Recovery{TargetTime: instant, EndState: postgres.EndStandby})
	waitFor(t, func() bool { return ledgerMaxQuiet(r) == 50 })
	if _, err := r.Conn("postgres").Exec(ctx, "INSERT INTO ledger (id) VALUES (1000)"); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("insert into a standby: %v, want a read-only refusal", err)
	}
	must(t, r.Stop(ctx))
	must(t, postgres.Reconfigure(r.DataDir(), postgres.Recovery{TargetName: "after_100", EndState: postgres.EndStandby, RestoreCommand: restoreCommand}))
	r = testparts.StartClusterIn(t, r.Dir())
	waitFor(t, func() bool { return ledgerMaxQuiet(r) == 100 })
	must(t, r.Stop(ctx))
	must(t, postgres.Reconfigure(r.DataDir(), postgres.Recovery{TargetName: "after_100", RestoreCommand: restoreCommand}))
	r = testparts.StartClusterIn(t, r.Dir())
	waitPromoted(r)
	if got := ledgerMax(t, r); got != 100 {
		t.Errorf("promoted standby: ledger ends at %d, want 100", got)
	}
	r.Exec("postgres", "INSERT INTO ledger (id) VALUES (1000)")
}

// ledgerMaxQuiet is the ledger's last id, or -1 while it cannot be read.
func ledgerMaxQuiet(c *testparts.Cluster) int64 {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return -1
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(id), 0) FROM ledger").Scan(&n); err != nil {
		return -1
	}
	return n
}

// waitFor waits up to 30 s for cond, then fails with what the optional
// explain says.
func waitFor(t *testing.T, cond func() bool, explain ...func() string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	why := ""
	for _, e := range explain {
		why += ": " + e()
	}
	t.Fatal("condition not met in 30 s" + why)
}

// TestTailLogRestoreOverOriginal kills a cluster whose last rows were
// never archived, deletes its data files but not pg_wal, takes a tail-log
// backup from pg_wal and restores over the original: the last committed
// row is there.
func TestTailLogRestoreOverOriginal(t *testing.T) {
	ctx := context.Background()
	c, arch, env, fullRoot, full := archivedFull(t)
	insertLedger(t, c, 1, 100)
	switchAndArchive(t, c, arch)
	insertLedger(t, c, 101, 130) // committed, in pg_wal only
	segments := archived(t, arch, full)
	logRoot, _ := captureLog(t, env, c, full, postgres.LogRequest{Segments: segments})

	c.Kill()
	entries, err := os.ReadDir(c.DataDir())
	must(t, err)
	for _, e := range entries {
		if e.Name() != "pg_wal" {
			must(t, os.RemoveAll(filepath.Join(c.DataDir(), e.Name())))
		}
	}
	tail, err := postgres.TailSegments(c.DataDir(), filepath.Base(segments[len(segments)-1]))
	must(t, err)
	if len(tail) == 0 {
		t.Fatal("no WAL after the last archived segment in pg_wal")
	}
	tailRoot, _ := captureLog(t, env, c, full, postgres.LogRequest{Segments: tail, Partial: true})

	logs := filepath.Join(testparts.ClusterDir(t)+"-wal", "archive")
	must(t, postgres.RestoreLogs(ctx, env.Repo, []format.ID{logRoot, tailRoot}, logs, true))
	must(t, os.Chmod(filepath.Dir(logs), 0o755))
	_, err = postgres.Restore(ctx, env.Repo, fullRoot, postgres.RestoreOptions{DataDir: c.DataDir(),
		Staging: filepath.Join(filepath.Dir(c.Dir()), "staging")})
	if err == nil || !strings.Contains(err.Error(), "overwrite") {
		t.Fatalf("restore over a non-empty data directory without overwrite: %v, want a refusal", err)
	}
	_, err = postgres.Restore(ctx, env.Repo, fullRoot, postgres.RestoreOptions{DataDir: c.DataDir(), Overwrite: true,
		Staging: filepath.Join(filepath.Dir(c.Dir()), "staging"), Recovery: postgres.Recovery{RestoreCommand: "cp " + logs + "/%f %p"}})
	must(t, err)
	r := testparts.StartClusterIn(t, c.Dir())
	waitFor(t, func() bool { return ledgerMaxQuiet(r) == 130 }, func() string {
		b, _ := os.ReadFile(filepath.Join(r.Dir(), "postgres.log"))
		return fmt.Sprintf("ledger ends at %d; the restored cluster's log:\n%s", ledgerMaxQuiet(r), b)
	})
}
