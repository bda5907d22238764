package repo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// TestRootAndHas: Root finds exactly the committed, live points; Has finds
// exactly the stored chunks; both sentinel errors match under the
// repository's and the index's names.
func TestRootAndHas(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 64 << 10})
	r, ctx := env.Repo, context.Background()
	ids := make([]format.ID, 4)
	for i := range ids {
		ids[i] = r.Hash(block(i, 16<<10))
	}
	if found, err := r.Has(ctx, ids); err != nil || len(found) != 0 {
		t.Fatalf("Has on an empty repository: %v, %v", found, err)
	}
	writePoint(t, r, "a", "", seq(0, 2))
	found, err := r.Has(ctx, ids)
	if err != nil {
		t.Fatal(err)
	}
	if !found[ids[0]] || !found[ids[1]] || found[ids[2]] || found[ids[3]] {
		t.Fatalf("Has after storing blocks 0 and 1: %v", found)
	}

	root, err := r.Root(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.OpenManifest(ctx, root)
	if err != nil {
		t.Fatalf("root %s of point a: %v", root, err)
	}
	var e diskEntry
	if err := m.Next(&e); err != nil || len(e.Chunks) != 1 || e.Chunks[0].ID != ids[0] {
		t.Fatalf("root %s of point a does not lead to block 0: %+v, %v", root, e, err)
	}
	for _, point := range []string{"never-written", "a"} {
		if point == "a" {
			if err := r.DeletePoint(ctx, "a"); err != nil {
				t.Fatal(err)
			}
		}
		_, err := r.Root(ctx, point)
		if !errors.Is(err, repo.ErrNoRoot) || !errors.Is(err, index.ErrNoRoot) {
			t.Fatalf("Root of %s: %v, want ErrNoRoot", point, err)
		}
	}
}

// TestHasRenewsTouch: a found chunk's touch time is renewed once it is
// older than the touch granularity given to OpenOn, which is what keeps
// a deduplicated chunk from GC.
func TestHasRenewsTouch(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	ctx := context.Background()
	writePoint(t, env.Repo, "a", "", seq(0, 1))
	r := env.Open(t, repo.Options{TouchGranularity: time.Millisecond})
	id := r.Hash(block(0, 16<<10))
	touched := func() time.Time {
		var at time.Time
		if err := env.Pool.QueryRow(ctx, `SELECT touched_at FROM repo_chunks WHERE repo_id = $1 AND chunk_id = $2`, env.RepoID, id[:]).Scan(&at); err != nil {
			t.Fatal(err)
		}
		return at
	}
	before := touched()
	time.Sleep(20 * time.Millisecond)
	if found, err := r.Has(ctx, []format.ID{id}); err != nil || !found[id] {
		t.Fatalf("Has: %v, %v", found, err)
	}
	if after := touched(); !after.After(before) {
		t.Fatalf("touch time %v not renewed by Has (was %v)", after, before)
	}
}

// TestBeginSession: a session opened by id takes chunks from a joined
// writer and commits a point; a parent that is gone refuses the session
// with ErrParentGone and opens nothing.
func TestBeginSession(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 64 << 10})
	r, ctx := env.Repo, context.Background()
	writePoint(t, r, "a", "", seq(0, 2))

	live := func() int {
		n, err := r.Index().LiveSessions(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for _, parent := range []string{"never-written", "deleted"} {
		if parent == "deleted" {
			writePoint(t, r, "deleted", "", seq(5, 6))
			if err := r.DeletePoint(ctx, "deleted"); err != nil {
				t.Fatal(err)
			}
		}
		id, err := r.BeginSession(ctx, parent)
		if !errors.Is(err, repo.ErrParentGone) || !errors.Is(err, index.ErrParentGone) || id != "" {
			t.Fatalf("BeginSession on parent %s: %q, %v, want ErrParentGone", parent, id, err)
		}
	}
	if n := live(); n != 0 {
		t.Fatalf("%d sessions live after refused BeginSession", n)
	}

	sessionID, err := r.BeginSession(ctx, "a")
	if err != nil || sessionID == "" {
		t.Fatalf("BeginSession on a live parent: %q, %v", sessionID, err)
	}
	var parent string
	if err := env.Pool.QueryRow(ctx, `SELECT parent_point FROM repo_sessions WHERE session_id = $1`, sessionID).Scan(&parent); err != nil || parent != "a" {
		t.Fatalf("session's parent: %q, %v", parent, err)
	}
	if n := live(); n != 1 {
		t.Fatalf("%d sessions live, want 1", n)
	}
	if err := r.Heartbeat(ctx, sessionID); err != nil {
		t.Fatal(err)
	}
	w := r.JoinSession(ctx, sessionID)
	data := block(9, 16<<10)
	if err := w.Save(ctx, format.Data, []format.ID{r.Hash(data)}, [][]byte{data}); err != nil {
		t.Fatal(err)
	}
	mw := w.NewManifest("test")
	if err := mw.Add(ctx, diskEntry{Path: "block-9"}); err != nil {
		t.Fatal(err)
	}
	root, err := mw.Close(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.CommitSession(ctx, sessionID, "b", root, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := r.Root(ctx, "b"); err != nil || got != root {
		t.Fatalf("Root of b: %s, %v, want %s", got, err, root)
	}
	if n := live(); n != 0 {
		t.Fatalf("%d sessions live after commit", n)
	}
	if err := r.Heartbeat(ctx, sessionID); !errors.Is(err, repo.ErrSessionExpired) {
		t.Fatalf("Heartbeat of a committed session: %v, want ErrSessionExpired", err)
	}
}
