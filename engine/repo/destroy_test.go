package repo_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// TestDestroyRemovesEverything: a destroyed repository leaves no object in
// its store and no index row, and refuses while a backup session writes.
func TestDestroyRemovesEverything(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 64 << 10})
	ctx := context.Background()
	writePoint(t, env.Repo, "a", "", seq(0, 40))
	writePoint(t, env.Repo, "b", "a", seq(20, 60))

	s, err := env.Repo.Index().BeginSession(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Repo.Destroy(ctx); err == nil || !strings.Contains(err.Error(), "still writing") {
		t.Fatalf("destroy during a backup session: %v", err)
	}
	if err := env.Repo.Index().Abort(ctx, s); err != nil {
		t.Fatal(err)
	}

	rep, err := env.Repo.Destroy(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	filepath.WalkDir(env.StoreDir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 || rep.Objects == 0 || rep.Bytes == 0 {
		t.Fatalf("destroy reported %+v and left %v", rep, left)
	}
	var rows int
	if err := env.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM repo_chunks WHERE repo_id = $1) + (SELECT count(*) FROM repo_packs WHERE repo_id = $1)
		+ (SELECT count(*) FROM repo_roots WHERE repo_id = $1) + (SELECT count(*) FROM repo_sessions WHERE repo_id = $1)`, env.RepoID).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 0 {
		t.Fatalf("%d index rows left", rows)
	}
}
