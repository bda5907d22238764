package repo_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// chunkEntry is a manifest entry naming one chunk, stored or not.
func chunkEntry(path string, id format.ID) map[string]any {
	return map[string]any{"path": path, "chunks": []map[string]any{{"id": id, "len": 1}}}
}

// TestCommitRefusesPointThatIsNotWhole: a root that was never stored, a
// manifest naming a chunk nobody stored, and a VM-style point whose nested
// disk manifest does: none of them is committed, and the error says what
// is missing and where.
func TestCommitRefusesPointThatIsNotWhole(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 64 << 10})
	ctx := context.Background()
	stored := block(1, 16<<10)
	storedID := env.Repo.Hash(stored)
	var ghost format.ID
	copy(ghost[:], "a chunk that was never uploaded!")

	cases := []struct {
		name  string
		build func(w *repo.Writer) format.ID
		want  string
	}{
		{"root never stored", func(*repo.Writer) format.ID { return ghost }, "manifest cannot be read"},
		{"file chunk never stored", func(w *repo.Writer) format.ID {
			m := w.NewManifest("test")
			must(t, m.Add(ctx, chunkEntry("kept", storedID)))
			must(t, m.Add(ctx, chunkEntry("lost", ghost)))
			root, err := m.Close(ctx, nil)
			must(t, err)
			return root
		}, "1 referenced chunks are not in the repository, first " + ghost.String() + " (needed by lost)"},
		{"nested manifest chunk never stored", func(w *repo.Writer) format.ID {
			inner := w.NewManifest("disk")
			must(t, inner.Add(ctx, chunkEntry("block-0", storedID)))
			must(t, inner.Add(ctx, chunkEntry("block-1", ghost)))
			innerRoot, err := inner.Close(ctx, nil)
			must(t, err)
			outer := w.NewManifest("vm")
			must(t, outer.Add(ctx, map[string]any{"path": "disk-2000", "manifest": innerRoot}))
			root, err := outer.Close(ctx, nil)
			must(t, err)
			return root
		}, "(needed by disk-2000/block-1)"},
		{"chunks missing in later lookup batches", func(w *repo.Writer) format.ID {
			// Five lookup batches, looked up at once: each missing
			// chunk is still found, and the first named is the first
			// in walk order.
			var ghost2 format.ID
			copy(ghost2[:], "another chunk never uploaded....")
			m := w.NewManifest("test")
			for i := range 20000 {
				e := chunkEntry(fmt.Sprintf("f%05d", i), storedID)
				switch i {
				case 9000:
					e = chunkEntry("lost-a", ghost)
				case 15000:
					e = chunkEntry("lost-b", ghost2)
				}
				must(t, m.Add(ctx, e))
			}
			root, err := m.Close(ctx, nil)
			must(t, err)
			return root
		}, "2 referenced chunks are not in the repository, first " + ghost.String() + " (needed by lost-a)"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w, err := env.Repo.NewWriter(ctx, "")
			must(t, err)
			defer w.Abort(ctx)
			must(t, w.Save(ctx, format.Data, []format.ID{storedID}, [][]byte{stored}))
			point := fmt.Sprintf("p%d", i)
			err = w.Commit(ctx, point, c.build(w))
			if !errors.Is(err, repo.ErrPointIncomplete) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("commit: %v; want ErrPointIncomplete naming %q", err, c.want)
			}
			if _, err := env.Repo.Index().Root(ctx, point); !errors.Is(err, index.ErrNoRoot) {
				t.Fatalf("the refused point has a root: %v", err)
			}
			if _, err := env.Store.Stat(ctx, repo.PointsPrefix+point); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the refused point has a store record: %v", err)
			}
		})
	}

	// The same session commits once its point is whole.
	w, err := env.Repo.NewWriter(ctx, "")
	must(t, err)
	m := w.NewManifest("test")
	must(t, m.Add(ctx, chunkEntry("kept", storedID)))
	root, err := m.Close(ctx, nil)
	must(t, err)
	must(t, w.Commit(ctx, "whole", root))
}

// TestVerifyWalksEveryPoint loses one index entry a committed point needs
// (its pack is intact): reading packs alone finds nothing wrong, so a
// whole-storage verify must walk the points to report it, by point id.
func TestVerifyWalksEveryPoint(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 64 << 10})
	ctx := context.Background()
	writePoint(t, env.Repo, "intact", "", seq(0, 10))
	writePoint(t, env.Repo, "broken", "", seq(10, 20))
	lost := env.Repo.Hash(block(13, 16<<10))
	if _, err := env.Pool.Exec(ctx, `DELETE FROM repo_chunks WHERE repo_id = $1 AND chunk_id = $2`, env.RepoID, lost[:]); err != nil {
		t.Fatal(err)
	}
	for _, points := range [][]string{nil, {"broken"}} {
		v, err := env.Repo.Verify(ctx, points)
		must(t, err)
		m := v.Missing["broken"]
		if v.OK() || len(v.Missing) != 1 || m == nil || m.Count != 1 || m.Chunks[0] != lost || m.Files[0] != "block-13" {
			t.Fatalf("verify %v: ok %v, missing %+v, damaged %+v, unreadable %v", points, v.OK(), v.Missing, v.Damaged, v.Unreadable)
		}
	}
	if v, err := env.Repo.Verify(ctx, []string{"intact"}); err != nil || !v.OK() {
		t.Fatalf("verify of the intact point: %v %+v", err, v)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
