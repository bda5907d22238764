package postgres_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/database"
	"github.com/havenbackup/terraform-provider-haven/engine/database/postgres"
	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

// TestDifferentialConversions checks every rule that turns a requested
// differential into a full, on a real cluster: each change is made, the
// differential asked for, and the full it became must name the change.
func TestDifferentialConversions(t *testing.T) {
	c, arch := archivingCluster(t)
	env := repotest.New(t, repo.Options{})
	ask := func(base *database.Base, lastFailed bool) (*database.Base, *database.Meta) {
		t.Helper()
		var history []string
		names, _ := filepath.Glob(filepath.Join(arch, "*.backup"))
		for _, name := range names {
			b, err := os.ReadFile(name)
			must(t, err)
			history = append(history, string(b))
		}
		root, m, _ := backup(t, env, c, database.BackupRequest{Kind: database.KindDifferential, Base: base, LastFullFailed: lastFailed,
			BackupHistory: history})
		return &database.Base{Root: root, Meta: m}, m
	}
	expect := func(m *database.Meta, reason string) {
		t.Helper()
		if m.Kind != database.KindFull || !strings.Contains(m.Converted, reason) {
			t.Errorf("want a full converted because %q; got a %s, converted %q", reason, m.Kind, m.Converted)
		}
	}
	base, m := ask(nil, false)
	expect(m, "no complete full exists")
	_, m = ask(base, true)
	expect(m, "the last full failed")
	if _, m = ask(base, false); m.Kind != database.KindDifferential || m.Converted != "" {
		t.Fatalf("nothing changed: got a %s, converted %q", m.Kind, m.Converted)
	}

	for _, step := range []struct{ sql, reason string }{
		{"CREATE DATABASE added_db", `database "added_db" was added`},
		{"ALTER DATABASE added_db RENAME TO renamed_db", `database "added_db" was renamed to "renamed_db"`},
		{"DROP DATABASE renamed_db", `database "renamed_db" was dropped`},
	} {
		c.Exec("postgres", step.sql)
		base, m = ask(base, false)
		expect(m, step.reason)
	}

	// A tablespace is a data file in SQL Server's sense: added, then
	// renamed, then dropped.
	loc := filepath.Join(filepath.Dir(c.Dir()), "ts1")
	must(t, os.Mkdir(loc, 0o700))
	var st syscall.Stat_t
	must(t, syscall.Stat(c.DataDir(), &st))
	must(t, os.Chown(loc, int(st.Uid), int(st.Gid)))
	for _, step := range []struct{ sql, reason string }{
		{"CREATE TABLESPACE ts1 LOCATION '" + loc + "'", `data file "ts1" was added`},
		{"ALTER TABLESPACE ts1 RENAME TO ts2", `data file "ts1" was renamed to "ts2"`},
		{"DROP TABLESPACE ts2", `data file "ts2" was dropped`},
	} {
		c.Exec("postgres", step.sql)
		base, m = ask(base, false)
		expect(m, step.reason)
	}

	// The cluster made anew elsewhere, or restored and promoted.
	other := *base.Meta
	other.SystemID = "1"
	_, m = ask(&database.Base{Root: base.Root, Meta: &other}, false)
	expect(m, "identity changed")
	other = *base.Meta
	other.Timeline++
	_, m = ask(&database.Base{Root: base.Root, Meta: &other}, false)
	expect(m, "timeline changed")

	// A base whose stored manifest is not a PostgreSQL point's.
	w, err := env.Repo.NewWriter(context.Background(), "")
	must(t, err)
	filesRoot, _, err := files.Capture(context.Background(), w, env.Repo, files.CaptureOptions{Paths: []string{loc}})
	must(t, err)
	must(t, w.Commit(context.Background(), "files", filesRoot))
	_, m = ask(&database.Base{Root: filesRoot, Meta: base.Meta}, false)
	expect(m, "stored metadata and the files disagree")

	// Another tool's full since the base (pg_basebackup), found in the
	// backup history PostgreSQL keeps.
	if out, err := c.Run(context.Background(), "pg_basebackup", "-D", filepath.Join(filepath.Dir(c.Dir()), "other"), "-X", "none", "-c", "fast"); err != nil {
		t.Fatalf("pg_basebackup: %v\n%s", err, out)
	}
	switchAndArchive(t, c, arch)
	_, m = ask(base, false)
	expect(m, "a full was taken by another tool")
}

// TestMinimalWALRefusesBackups: with wal_level=minimal PostgreSQL allows
// no online backup and has no log to archive; with archive_mode off it
// backs up, but log backups are refused, and both say why.
func TestMinimalWALRefusesBackups(t *testing.T) {
	ctx := context.Background()
	minimal := testparts.StartCluster(t, "wal_level=minimal", "max_wal_senders=0")
	s, err := postgres.Connect(ctx, minimal.URL("postgres"))
	must(t, err)
	defer s.Close(ctx)
	id, err := s.Identify(ctx)
	must(t, err)
	if !strings.Contains(id.LogRefusal, "wal_level is minimal") {
		t.Errorf("log refusal %q, want it to name wal_level", id.LogRefusal)
	}
	env := repotest.New(t, repo.Options{})
	w, err := env.Repo.NewWriter(ctx, "")
	must(t, err)
	defer w.Abort(ctx)
	if _, _, err := s.Backup(ctx, w, env.Repo, database.BackupRequest{Kind: database.KindFull}); err == nil || !strings.Contains(err.Error(), "wal_level is minimal") {
		t.Errorf("backup with wal_level=minimal: %v, want a refusal naming wal_level", err)
	}

	plain := testparts.StartCluster(t)
	p, err := postgres.Connect(ctx, plain.URL("postgres"))
	must(t, err)
	defer p.Close(ctx)
	if id, err = p.Identify(ctx); err != nil || !strings.Contains(id.LogRefusal, "archive_mode is off") {
		t.Errorf("archive_mode off: refusal %q (%v), want it to name archive_mode", id.LogRefusal, err)
	}
	archiving := testparts.StartCluster(t, "archive_mode=on", "archive_command=/bin/true")
	a, err := postgres.Connect(ctx, archiving.URL("postgres"))
	must(t, err)
	defer a.Close(ctx)
	if id, err = a.Identify(ctx); err != nil || id.LogRefusal != "" {
		t.Errorf("archiving cluster: refusal %q (%v), want none", id.LogRefusal, err)
	}
}
