package postgres_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/database"
	"github.com/havenbackup/terraform-provider-haven/engine/database/postgres"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testparts.StopSharedPostgres()
	os.Exit(code)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// backup takes one backup of c into env's repository and commits it.
func backup(t *testing.T, env *repotest.Env, c *testparts.Cluster, req database.BackupRequest) (format.ID, *database.Meta, repo.WriteStats) {
	t.Helper()
	ctx := context.Background()
	s, err := postgres.Connect(ctx, c.URL("postgres"))
	must(t, err)
	defer s.Close(ctx)
	w, err := env.Repo.NewWriter(ctx, "")
	must(t, err)
	req.Warn = func(path string, err error) { t.Errorf("backup warning: %s: %v", path, err) }
	root, m, err := s.Backup(ctx, w, env.Repo, req)
	if err != nil {
		w.Abort(ctx)
		t.Fatalf("backup: %v", err)
	}
	must(t, w.Commit(ctx, "p-"+time.Now().Format("150405.000000"), root))
	return root, m, w.Stats()
}

// restoreAndStart restores root into a new cluster directory and starts
// the cluster there.
func restoreAndStart(t *testing.T, env *repotest.Env, root format.ID, rec postgres.Recovery) *testparts.Cluster {
	t.Helper()
	dir := testparts.ClusterDir(t)
	st, err := postgres.Restore(context.Background(), env.Repo, root, postgres.RestoreOptions{
		DataDir: filepath.Join(dir, "data"), Staging: filepath.Join(filepath.Dir(dir), "staging", root.Short(), "job"), Recovery: rec})
	must(t, err)
	if st.Files == 0 {
		t.Fatal("restore wrote no files")
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "staging", root.Short(), "job")); !os.IsNotExist(err) {
		t.Errorf("staging directory left behind: %v", err)
	}
	return testparts.StartClusterIn(t, dir)
}

// ledgerTable holds numbered rows, each inserted in a transaction of its
// own, so a restore shows which commits it kept.
const ledgerTable = "CREATE TABLE ledger (id bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"

// ledger inserts numbered rows, one transaction each, until stopped, and
// remembers the highest id committed.
type ledger struct {
	committed atomic.Int64
	stop      chan struct{}
	done      chan struct{}
}

func startLedger(t *testing.T, c *testparts.Cluster) *ledger {
	c.Exec("postgres", ledgerTable)
	conn := c.Conn("postgres")
	l := &ledger{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for id := int64(1); ; id++ {
			select {
			case <-l.stop:
				return
			default:
			}
			if _, err := conn.Exec(context.Background(), "INSERT INTO ledger (id) VALUES ($1)", id); err != nil {
				t.Errorf("ledger insert %d: %v", id, err)
				return
			}
			l.committed.Store(id)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return l
}

func (l *ledger) Stop() { close(l.stop); <-l.done }

// checkLedger says the restored ledger holds 1..n without a gap, with n at
// least atLeast (every row committed before the backup began).
func checkLedger(t *testing.T, c *testparts.Cluster, atLeast int64) int64 {
	t.Helper()
	var n, count int64
	must(t, c.Conn("postgres").QueryRow(context.Background(), "SELECT coalesce(max(id), 0), count(*) FROM ledger").Scan(&n, &count))
	if n != count {
		t.Errorf("restored ledger has %d rows up to id %d: a gap", count, n)
	}
	if n < atLeast {
		t.Errorf("restored ledger ends at %d; %d were committed before the backup began", n, atLeast)
	}
	return n
}

// TestFullUnderLoadThenDifferential backs up a cluster under pgbench load
// (plus a ledger of numbered inserts), restores the full and checks that
// it starts, that every row committed before the backup began is there,
// and that pg_amcheck finds nothing wrong. Then, with the load stopped, a
// differential must read only what changed, and its restore must equal
// the source table for table.
func TestFullUnderLoadThenDifferential(t *testing.T) {
	c := testparts.StartCluster(t)
	c.Pgbench(context.Background(), "postgres", "-i", "-q", "-s", "2")
	env := repotest.New(t, repo.Options{})

	// An unlogged table: PostgreSQL empties it on recovery, so its data
	// is left out of the backup, and the restore has it empty.
	c.Exec("postgres", "CREATE UNLOGGED TABLE scratch AS SELECT g AS id, repeat('x', 500) AS pad FROM generate_series(1, 40000) g")
	l := startLedger(t, c)
	stopLoad := c.Load("postgres", 2)
	time.Sleep(300 * time.Millisecond)
	before := l.committed.Load()
	fullRoot, full, _ := backup(t, env, c, database.BackupRequest{Kind: database.KindFull})
	stopLoad()
	l.Stop()
	if full.Kind != database.KindFull || full.Converted != "" {
		t.Fatalf("full: kind %q, converted %q", full.Kind, full.Converted)
	}
	if full.StartLSN == "" || full.StopLSN == "" || full.Files == 0 || full.ReadBytes != full.Bytes {
		t.Fatalf("full meta: %+v", full)
	}

	var unlogged int64
	must(t, c.Conn("postgres").QueryRow(context.Background(), "SELECT pg_relation_size('scratch')").Scan(&unlogged))
	if unlogged < 10<<20 || full.Bytes > dataDirBytes(t, c.DataDir())-unlogged {
		t.Errorf("full holds %d bytes; the data directory less the unlogged table's %d is %d: its data was taken", full.Bytes, unlogged, dataDirBytes(t, c.DataDir())-unlogged)
	}
	restored := restoreAndStart(t, env, fullRoot, postgres.Recovery{})
	var scratchRows int64
	must(t, restored.Conn("postgres").QueryRow(context.Background(), "SELECT count(*) FROM scratch").Scan(&scratchRows))
	if scratchRows != 0 {
		t.Errorf("restored unlogged table has %d rows, want it empty", scratchRows)
	}
	n := checkLedger(t, restored, before)
	t.Logf("full: %d files, %d bytes; ledger had %d committed at start, restored %d", full.Files, full.Bytes, before, n)
	amcheck(t, restored)
	restored.Stop(context.Background())

	// Two more fulls, the load stopped: each reads every file again
	// (fulls are ever-incremental), and the second of them, with nothing
	// changed in between, adds next to nothing to the repository.
	// (Frozen first, so that reading the tables later sets no hint bits,
	// which would write to every page of them.)
	c.Exec("postgres", "VACUUM FREEZE")
	c.Exec("postgres", "CHECKPOINT")
	backup(t, env, c, database.BackupRequest{Kind: database.KindFull})
	// A differential re-reads whatever its base saw written within a
	// second before it began (the delta rule); the base below comes later.
	time.Sleep(1200 * time.Millisecond)
	full2Root, full2, _ := backup(t, env, c, database.BackupRequest{Kind: database.KindFull})
	if full2.ReadBytes != full2.Bytes || full2.NewBytes > full2.Bytes/20 {
		t.Errorf("unchanged full read %d of %d bytes and stored %d new: want all read, next to nothing stored", full2.ReadBytes, full2.Bytes, full2.NewBytes)
	}
	t.Logf("unchanged full: read %d bytes, %d new", full2.ReadBytes, full2.NewBytes)

	// Changes that leave pgbench_accounts alone, then a differential on
	// the quiet full: the accounts table is taken from the full unread.
	var accounts int64
	must(t, c.Conn("postgres").QueryRow(context.Background(), "SELECT pg_relation_size('pgbench_accounts')").Scan(&accounts))
	c.Exec("postgres", "UPDATE pgbench_branches SET bbalance = bbalance + 1")
	c.Exec("postgres", "INSERT INTO ledger (id) SELECT max(id) + g FROM ledger, generate_series(1, 100) g GROUP BY g")
	c.Exec("postgres", "CREATE TABLE after_full AS SELECT g AS id FROM generate_series(1, 1000) g")
	c.Exec("postgres", "CHECKPOINT")
	want := c.TableSums("postgres")
	// The unlogged table comes back empty, as checked above.
	delete(want, "public.scratch")
	diffRoot, diff, _ := backup(t, env, c, database.BackupRequest{Kind: database.KindDifferential,
		Base: &database.Base{Root: full2Root, Meta: full2}})
	if diff.Kind != database.KindDifferential || diff.Converted != "" || diff.BaseRoot != full2Root {
		t.Fatalf("differential: kind %q, converted %q, base %s", diff.Kind, diff.Converted, diff.BaseRoot.Short())
	}
	if diff.ReadBytes >= accounts || diff.Reused < diff.Files*9/10 {
		t.Errorf("differential read %d bytes (pgbench_accounts alone is %d), reused %d of %d files: unchanged files were read again",
			diff.ReadBytes, accounts, diff.Reused, diff.Files)
	}
	if diff.ReadBytes == 0 || diff.NewBytes == 0 {
		t.Errorf("differential read %d bytes and stored %d: the changed files were not taken", diff.ReadBytes, diff.NewBytes)
	}
	t.Logf("differential: read %d of %d bytes, reused %d of %d files, %d new bytes stored", diff.ReadBytes, diff.Bytes, diff.Reused, diff.Files, diff.NewBytes)

	restored = restoreAndStart(t, env, diffRoot, postgres.Recovery{})
	got := restored.TableSums("postgres")
	delete(got, "public.scratch")
	if len(got) != len(want) {
		t.Fatalf("restored tables %v, want %v", keys(got), keys(want))
	}
	for table, sum := range want {
		if got[table] != sum {
			t.Errorf("table %s differs after the differential's restore", table)
		}
	}
	amcheck(t, restored)
}

// dataDirBytes is the size of the regular files under dir, pg_wal's left
// out.
func dataDirBytes(t *testing.T, dir string) int64 {
	var n int64
	must(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && d.Name() == "pg_wal" {
			return fs.SkipDir
		}
		if info, err := d.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	}))
	return n
}

// amcheck runs pg_amcheck over every database of a running cluster: heap
// and B-tree checks.
func amcheck(t *testing.T, c *testparts.Cluster) {
	t.Helper()
	out, err := c.Run(context.Background(), "pg_amcheck", "--all", "--install-missing", "--heapallindexed")
	if err != nil {
		t.Fatalf("pg_amcheck: %v\n%s", err, out)
	}
}

func keys(m map[string]string) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return strings.Join(ks, ", ")
}
