package repo_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

// openOnFreshIndex opens env's store, found by its keys alone, over a
// brand-new database: the server's database is gone, the store is not.
func openOnFreshIndex(t *testing.T, env *repotest.Env, opts repo.Options) *repo.Repository {
	t.Helper()
	pool := repotest.Pool(t, testparts.PostgresURL(t))
	r, err := repo.OpenExisting(context.Background(), env.Store, pool, env.Master, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func storeObjects(t *testing.T, st store.Store, prefix string) []store.ObjectInfo {
	t.Helper()
	var out []store.ObjectInfo
	if err := st.List(context.Background(), prefix, func(o store.ObjectInfo) error {
		out = append(out, o)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRebuildFromTheStoreAlone: with the index lost, the store and the
// master key give back the repository's id, every pack's chunks and every
// live point with the catalog entry kept at its commit (or updated since);
// the points read
// back whole, a deleted point stays gone, a second rebuild adds nothing,
// and a new backup deduplicates against the rebuilt index.
func TestRebuildFromTheStoreAlone(t *testing.T) {
	opts := repo.Options{PackSize: 64 << 10}
	env := repotest.New(t, opts)
	ctx := context.Background()
	writePointWith(t, env.Repo, "a", "", seq(0, 6), []byte(`{"asset":"docs","n":1}`))
	writePointWith(t, env.Repo, "b", "a", seq(4, 10), []byte(`{"asset":"docs","n":2}`))
	writePointWith(t, env.Repo, "gone", "", seq(20, 22), []byte(`{"n":3}`))
	if err := env.Repo.DeletePoint(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	// The committer's records of a changed after the commit.
	if err := env.Repo.UpdatePointCatalog(ctx, "a", func(c []byte) ([]byte, error) {
		return []byte(strings.Replace(string(c), `"n":1`, `"n":1,"held":true`, 1)), nil
	}); err != nil {
		t.Fatal(err)
	}
	packs := storeObjects(t, env.Store, repo.PacksPrefix)

	r := openOnFreshIndex(t, env, opts)
	if r.ID() != env.RepoID {
		t.Fatalf("the store's repository opened as %q, want %q", r.ID(), env.RepoID)
	}
	if _, err := r.Root(ctx, "a"); !errors.Is(err, repo.ErrNoRoot) {
		t.Fatalf("before the rebuild the fresh index knows point a: %v", err)
	}
	var heard []repo.RebuildProgress
	rep, err := r.Rebuild(ctx, func(p repo.RebuildProgress) { heard = append(heard, p) })
	if err != nil {
		t.Fatal(err)
	}
	records := int64(len(storeObjects(t, env.Store, repo.PointsPrefix)))
	if last := heard[len(heard)-1]; len(heard) < len(packs)+int(records) || last.PacksDone != int64(len(packs)) ||
		last.PacksTotal != last.PacksDone || last.BytesDone == 0 || last.BytesTotal != last.BytesDone ||
		last.PointsDone != records || last.PointsTotal != records {
		t.Errorf("rebuild progress heard %+v, want every one of %d packs and %d point records counted", heard, len(packs), records)
	}
	if rep.Packs != int64(len(packs)) || rep.KnownPacks != 0 || len(rep.Skipped) != 0 {
		t.Fatalf("rebuild indexed %d of %d packs (%d known), skipped %+v", rep.Packs, len(packs), rep.KnownPacks, rep.Skipped)
	}
	// 22 data blocks (0..9 and 20, 21 of the deleted point: GC has not run)
	// and the manifests' chunks.
	if rep.Chunks < 13 {
		t.Errorf("rebuild indexed %d chunks, want at least the 13 data blocks", rep.Chunks)
	}
	if len(rep.Points) != 2 || rep.Points[0].PointID != "a" || rep.Points[1].PointID != "b" {
		t.Fatalf("rebuild found points %+v, want a and b", rep.Points)
	}
	for i, want := range []string{`{"asset":"docs","n":1,"held":true}`, `{"asset":"docs","n":2}`} {
		p := rep.Points[i]
		if string(p.Catalog) != want || p.RecordVersion != 2 || !p.Added || p.Committed.IsZero() || time.Since(p.Committed) > time.Hour {
			t.Errorf("point %s: %+v, want catalog %s from a version 2 record, added now", p.PointID, p, want)
		}
		root, err := env.Repo.Root(ctx, p.PointID)
		if err != nil || root != p.Root {
			t.Errorf("point %s rebuilt with root %s, committed with %s (%v)", p.PointID, p.Root, root, err)
		}
	}
	checkPoint(t, r, "a", seq(0, 6))
	checkPoint(t, r, "b", seq(4, 10))
	if _, err := r.Root(ctx, "gone"); !errors.Is(err, repo.ErrNoRoot) {
		t.Errorf("the deleted point came back: %v", err)
	}
	if v, err := r.Verify(ctx, nil); err != nil || !v.OK() || v.Packs != int64(len(packs)) {
		t.Errorf("verify of the rebuilt repository: %+v %v", v, err)
	}

	again, err := r.Rebuild(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Packs != 0 || again.Chunks != 0 || again.KnownPacks != int64(len(packs)) || len(again.Points) != 2 ||
		again.Points[0].Added || again.Points[1].Added || len(again.Skipped) != 0 {
		t.Errorf("a second rebuild changed something: %+v", again)
	}

	w, err := r.NewWriter(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range append(seq(0, 10), 30) {
		data := block(n, 16<<10)
		if err := w.Save(ctx, format.Data, []format.ID{r.Hash(data)}, [][]byte{data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w.Abort(ctx)
	if st := w.Stats(); st.NewChunks != 1 {
		t.Errorf("a backup on the rebuilt index stored %d new chunks of 11, want only the 1 new block", st.NewChunks)
	}
}

// TestRebuildSkipsWhatItCannotUse: a pack whose trailer does not open is
// reported, and so is every point needing its chunks, while the rest is
// rebuilt; a point record of version 1 (before records kept a catalog
// entry) is imported with what it has.
func TestRebuildSkipsWhatItCannotUse(t *testing.T) {
	opts := repo.Options{PackSize: 1 << 20}
	env := repotest.New(t, opts)
	ctx := context.Background()
	writePointWith(t, env.Repo, "first", "", seq(0, 4), []byte(`{}`))
	firstPacks := storeObjects(t, env.Store, repo.PacksPrefix)
	writePointWith(t, env.Repo, "second", "", seq(10, 14), []byte(`{}`))
	var broken store.ObjectInfo
	for _, o := range storeObjects(t, env.Store, repo.PacksPrefix) {
		if !strings.Contains(names(firstPacks), o.Name) {
			broken = o
		}
	}
	if broken.Name == "" {
		t.Fatal("the second point stored no pack of its own")
	}
	garbage := make([]byte, broken.Size)
	rand.Read(garbage)
	if err := env.Store.Put(ctx, broken.Name, strings.NewReader(string(garbage)), broken.Size, store.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	// A version 1 record, as Haven wrote before the catalog entry: the
	// first point's root under another id.
	root, err := env.Repo.Root(ctx, "first")
	if err != nil {
		t.Fatal(err)
	}
	old, _ := json.Marshal(map[string]any{"version": 1, "point_id": "old", "root": root, "committed": time.Now().UTC()})
	sealed := env.Repo.Sealer().SealObject("haven/point", old)
	if err := env.Store.Put(ctx, repo.PointsPrefix+"old", strings.NewReader(string(sealed)), int64(len(sealed)), store.PutOptions{}); err != nil {
		t.Fatal(err)
	}

	r := openOnFreshIndex(t, env, opts)
	rep, err := r.Rebuild(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Points) != 2 || rep.Points[0].PointID != "first" || rep.Points[1].PointID != "old" {
		t.Fatalf("rebuilt points %+v, want first and old", rep.Points)
	}
	if p := rep.Points[1]; p.RecordVersion != 1 || p.Catalog != nil || p.Root != root {
		t.Errorf("the version 1 record rebuilt as %+v", p)
	}
	checkPoint(t, r, "old", seq(0, 4))
	skipped := map[string]string{}
	for _, s := range rep.Skipped {
		skipped[s.Object] = s.Reason
	}
	if len(skipped) != 2 || !strings.Contains(skipped[broken.Name], "trailer") ||
		!strings.Contains(skipped[repo.PointsPrefix+"second"], "not whole") {
		t.Errorf("skipped %+v, want the broken pack %s and the point second", rep.Skipped, broken.Name)
	}
	if _, err := r.Root(ctx, "second"); !errors.Is(err, repo.ErrNoRoot) {
		t.Errorf("the point whose pack is broken was rebuilt: %v", err)
	}
}

func names(objs []store.ObjectInfo) string {
	var b strings.Builder
	for _, o := range objs {
		b.WriteString(o.Name + "\n")
	}
	return b.String()
}

// TestOpenExistingNeedsTheRepositorysMasterKey: a store without keys holds
// no repository, and keys wrapped by another master key name that key;
// neither creates keys.
func TestOpenExistingNeedsTheRepositorysMasterKey(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	ctx := context.Background()
	empty, err := fsstoreNew(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.OpenExisting(ctx, empty, env.Pool, env.Master, repo.Options{}); !errors.Is(err, repo.ErrNoRepository) {
		t.Errorf("an empty store opened: %v", err)
	}
	if objs := storeObjects(t, empty, ""); len(objs) != 0 {
		t.Errorf("opening an empty store wrote %+v", objs)
	}
	raw := make([]byte, keys.MasterKeySize)
	rand.Read(raw)
	other, err := keys.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	_, err = repo.OpenExisting(ctx, env.Store, env.Pool, other, repo.Options{})
	var wrong *repo.WrongMasterKeyError
	if !errors.As(err, &wrong) || len(wrong.Want) != 1 || wrong.Want[0] != env.Master.ID() || wrong.Have != other.ID() {
		t.Errorf("another master key: %v, want a WrongMasterKeyError naming %s", err, env.Master.ID())
	}
	if objs := storeObjects(t, env.Store, repo.KeysPrefix); len(objs) != 1 {
		t.Errorf("the store has %d keys objects after a wrong key tried it", len(objs))
	}
}
