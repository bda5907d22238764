package postgres_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/database"
	"github.com/havenbackup/terraform-provider-haven/engine/database/postgres"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

// TestVerifyPassesAGoodPointAndFailsACorruptOne restores points into a
// scratch cluster and checks them: a sound point passes with every table's
// row count; a point of a cluster whose table was damaged on disk before
// the backup is started, checked, and fails, saying what pg_amcheck found.
func TestVerifyPassesAGoodPointAndFailsACorruptOne(t *testing.T) {
	ctx := context.Background()
	c := testparts.StartCluster(t)
	c.Pgbench(ctx, "postgres", "-i", "-q", "-s", "1")
	env := repotest.New(t, repo.Options{})
	root, _, _ := backup(t, env, c, database.BackupRequest{Kind: database.KindFull})
	scratch := filepath.Join(filepath.Dir(c.Dir()), "scratch")
	v, err := postgres.Verify(ctx, env.Repo, root, postgres.VerifyOptions{Scratch: scratch})
	must(t, err)
	if !v.Passed || v.Problem != "" {
		t.Fatalf("sound point: passed %v, problem %q", v.Passed, v.Problem)
	}
	counts := map[string]int64{}
	for _, tr := range v.Tables {
		counts[tr.Database+"/"+tr.Table] = tr.Rows
	}
	if counts["postgres/public.pgbench_accounts"] != 100000 || counts["postgres/public.pgbench_branches"] != 1 {
		t.Errorf("row counts %v, want 100000 accounts and 1 branch", counts)
	}
	if entries, _ := os.ReadDir(scratch); len(entries) != 0 {
		t.Errorf("scratch directory left with %d entries", len(entries))
	}

	// Damage a page of the accounts table on disk, then back up again.
	var rel string
	must(t, c.Conn("postgres").QueryRow(ctx, "SELECT pg_relation_filepath('pgbench_accounts')").Scan(&rel))
	must(t, c.Stop(ctx))
	f, err := os.OpenFile(filepath.Join(c.DataDir(), rel), os.O_WRONLY, 0)
	must(t, err)
	_, err = f.WriteAt([]byte(strings.Repeat("A", 1000)), 3*8192+4096) // tuples: their headers become nonsense
	must(t, err)
	must(t, f.Close())
	c = testparts.StartClusterIn(t, c.Dir())
	root, _, _ = backup(t, env, c, database.BackupRequest{Kind: database.KindFull})
	v, err = postgres.Verify(ctx, env.Repo, root, postgres.VerifyOptions{Scratch: scratch})
	must(t, err)
	if v.Passed || !strings.Contains(v.Problem, "pgbench_accounts") && !strings.Contains(v.Problem, "pg_amcheck") {
		t.Fatalf("damaged point: passed %v, problem %q; want a failure naming what was found", v.Passed, v.Problem)
	}
	t.Logf("damaged point: %s", v.Problem)
}
