package postgres_test

import (
	"context"
	"errors"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/database"
	"github.com/havenbackup/terraform-provider-haven/engine/database/postgres"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

// TestInterruptedAndConcurrentBackups: a backup cancelled while it reads
// the data files (its process gone, as far as the server can tell) leaves
// no replication slot holding WAL behind; then three backups at once, more
// than the machine's cores, each end as a full of its own, and one of them
// restores.
func TestInterruptedAndConcurrentBackups(t *testing.T) {
	ctx := context.Background()
	c := testparts.StartCluster(t)
	c.Pgbench(ctx, "postgres", "-i", "-q", "-s", "1")
	env := repotest.New(t, repo.Options{})

	s, err := postgres.Connect(ctx, c.URL("postgres"))
	must(t, err)
	cctx, cancel := context.WithCancel(ctx)
	w, err := env.Repo.NewWriter(ctx, "")
	must(t, err)
	_, _, err = s.Backup(cctx, w, env.Repo, database.BackupRequest{Kind: database.KindFull, Progress: func(files, bytes int64) { cancel() }})
	w.Abort(ctx)
	s.Close(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled backup: %v, want context.Canceled", err)
	}
	var slots int
	must(t, c.Conn("postgres").QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots").Scan(&slots))
	if slots != 0 {
		t.Errorf("%d replication slots left behind by the cancelled backup", slots)
	}

	done := make(chan *database.Base, 3)
	for range 3 {
		go func() {
			root, m, _ := backup(t, env, c, database.BackupRequest{Kind: database.KindFull})
			done <- &database.Base{Root: root, Meta: m}
		}()
	}
	var last *database.Base
	for range 3 {
		b := <-done
		if b.Meta.Kind != database.KindFull || b.Meta.Files == 0 {
			t.Errorf("concurrent backup: %+v", b.Meta)
		}
		last = b
	}
	restored := restoreAndStart(t, env, last.Root, postgres.Recovery{})
	var accounts int64
	must(t, restored.Conn("postgres").QueryRow(ctx, "SELECT count(*) FROM pgbench_accounts").Scan(&accounts))
	if accounts != 100000 {
		t.Errorf("restored %d accounts, want 100000", accounts)
	}
}
