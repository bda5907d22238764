package repo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(runChildWriter())
	}
	code := m.Run()
	testparts.StopSharedPostgres()
	testparts.StopMoto()
	os.Exit(code)
}

// block returns deterministic pseudo-random content for block n.
func block(n int, size int) []byte {
	rng := mrand.New(mrand.NewPCG(uint64(n), 0x5eed))
	b := make([]byte, size)
	for i := 0; i+8 <= size; i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

type diskEntry struct {
	Path   string `json:"path"`
	Chunks []struct {
		ID  format.ID `json:"id"`
		Len int64     `json:"len"`
	} `json:"chunks"`
}

// writePoint stores blocks as one manifest entry per block and commits.
func writePoint(t testing.TB, r *repo.Repository, pointID, parent string, blocks []int) {
	t.Helper()
	writePointWith(t, r, pointID, parent, blocks, nil)
}

// writePointWith is writePoint that keeps a catalog entry with the point
// (none when catalog is nil).
func writePointWith(t testing.TB, r *repo.Repository, pointID, parent string, blocks []int, catalog []byte) {
	t.Helper()
	ctx := context.Background()
	w, err := r.NewWriter(ctx, parent)
	if err != nil {
		t.Fatal(err)
	}
	mw := w.NewManifest("test")
	for _, n := range blocks {
		data := block(n, 16<<10)
		id := r.Hash(data)
		if err := w.Save(ctx, format.Data, []format.ID{id}, [][]byte{data}); err != nil {
			t.Fatal(err)
		}
		e := diskEntry{Path: fmt.Sprintf("block-%d", n)}
		e.Chunks = append(e.Chunks, struct {
			ID  format.ID `json:"id"`
			Len int64     `json:"len"`
		}{id, int64(len(data))})
		if err := mw.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	root, err := mw.Close(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var also repo.CatalogFunc
	if catalog != nil {
		also = func(pgx.Tx) ([]byte, error) { return catalog, nil }
	}
	if err := w.CommitWith(ctx, pointID, root, also); err != nil {
		t.Fatal(err)
	}
}

// checkPoint restores every block of a point and compares it.
func checkPoint(t testing.TB, r *repo.Repository, pointID string, blocks []int) {
	t.Helper()
	ctx := context.Background()
	root, err := r.Index().Root(ctx, pointID)
	if err != nil {
		t.Fatal(err)
	}
	m, err := r.OpenManifest(ctx, root)
	if err != nil {
		t.Fatalf("point %s: %v", pointID, err)
	}
	for i := 0; ; i++ {
		var e diskEntry
		if err := m.Next(&e); err != nil {
			if i != len(blocks) {
				t.Fatalf("point %s: %d entries, want %d (%v)", pointID, i, len(blocks), err)
			}
			return
		}
		data, err := r.LoadChunk(ctx, e.Chunks[0].ID)
		if err != nil {
			t.Fatalf("point %s block %s: %v", pointID, e.Path, err)
		}
		if !bytes.Equal(data, block(blocks[i], 16<<10)) {
			t.Fatalf("point %s block %s: content differs", pointID, e.Path)
		}
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func countChunks(t testing.TB, env *repotest.Env) int {
	var n int
	if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM repo_chunks WHERE repo_id = $1`, env.RepoID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func packFiles(t testing.TB, dir string) []string {
	var out []string
	filepath.Walk(filepath.Join(dir, "packs"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() && !strings.Contains(filepath.Base(p), ".tmp") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestDedupAcrossPoints(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 64 << 10})
	writePoint(t, env.Repo, "a", "", seq(0, 40))
	before := countChunks(t, env)
	writePoint(t, env.Repo, "b", "a", seq(20, 60))
	// 20 new data chunks, plus at most a few new tree chunks and a root.
	if added := countChunks(t, env) - before; added < 20 || added > 25 {
		t.Fatalf("second point added %d chunks, want about 20", added)
	}
	checkPoint(t, env.Repo, "a", seq(0, 40))
	checkPoint(t, env.Repo, "b", seq(20, 60))
}

func TestGCReclaimsWhatOnlyExpiredPointsNeed(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 64 << 10})
	env.Repo.Index().SetTouchGranularity(0)
	ctx := context.Background()
	writePoint(t, env.Repo, "old", "", seq(0, 60))
	writePoint(t, env.Repo, "new", "", seq(50, 70))
	packsBefore := len(packFiles(t, env.StoreDir))
	if err := env.Repo.DeletePoint(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	opts := repo.GCOptions{Grace: 200 * time.Millisecond}
	rep, err := env.Repo.GC(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Blocks 0..49 were only in "old", plus its tree chunks and root.
	if rep.SweptChunks < 50 {
		t.Fatalf("swept %d chunks, want at least 50: %+v", rep.SweptChunks, rep)
	}
	if rep.Repacked == 0 && rep.RetiredPacks == 0 {
		t.Fatalf("no pack was repacked or retired: %+v", rep)
	}
	checkPoint(t, env.Repo, "new", seq(50, 70))
	time.Sleep(300 * time.Millisecond)
	rep2, err := env.Repo.GC(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.DeletedPacks == 0 || rep2.FreedBytes == 0 {
		t.Fatalf("retired packs were not deleted after the grace period: %+v", rep2)
	}
	if after := len(packFiles(t, env.StoreDir)); after >= packsBefore {
		t.Fatalf("%d packs before GC, %d after", packsBefore, after)
	}
	checkPoint(t, env.Repo, "new", seq(50, 70))
	if v, err := env.Repo.Verify(ctx, nil); err != nil || !v.OK() {
		t.Fatalf("verify after GC: %v %+v", err, v)
	}
}

func TestGCNeedsGraceAboveTouchGranularity(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	if _, err := env.Repo.GC(context.Background(), repo.GCOptions{Grace: time.Minute}); err == nil {
		t.Fatal("a grace below the touch granularity must be refused")
	}
}

// TestGCConcurrentWithBackups runs backups that deduplicate against the
// chunks of a deleted point while GC runs over and over with a tiny grace.
// Every committed point must restore completely.
func TestGCConcurrentWithBackups(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 32 << 10})
	env.Repo.Index().SetTouchGranularity(0)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	writePoint(t, env.Repo, "seed", "", seq(0, 80))
	if err := env.Repo.DeletePoint(context.Background(), "seed"); err != nil {
		t.Fatal(err)
	}
	var committed sync.Map
	var gcRuns, swept atomic.Int64
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := env.Open(t, repo.Options{PackSize: 32 << 10})
			r.Index().SetTouchGranularity(0)
			for i := 0; ctx.Err() == nil; i++ {
				// Reuse most of the deleted point's blocks and add a few.
				blocks := append(seq(i%40, i%40+30), seq(1000+w*10000+i*3, 1000+w*10000+i*3+3)...)
				id := fmt.Sprintf("w%d-%d", w, i)
				writePoint(t, r, id, "", blocks)
				committed.Store(id, blocks)
				if i%3 == 0 {
					r.DeletePoint(context.Background(), id)
					committed.Delete(id)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := env.Open(t, repo.Options{PackSize: 32 << 10})
		r.Index().SetTouchGranularity(0)
		for ctx.Err() == nil {
			rep, err := r.GC(context.Background(), repo.GCOptions{Grace: 5 * time.Millisecond})
			if errors.Is(err, index.ErrGCRunning) {
				continue
			}
			if err != nil {
				t.Errorf("gc: %v", err)
				return
			}
			gcRuns.Add(1)
			swept.Add(rep.SweptChunks)
		}
	}()
	wg.Wait()
	if gcRuns.Load() < 3 || swept.Load() == 0 {
		t.Fatalf("GC ran %d times and swept %d chunks: the race was not exercised", gcRuns.Load(), swept.Load())
	}
	n := 0
	committed.Range(func(k, v any) bool {
		checkPoint(t, env.Repo, k.(string), v.([]int))
		n++
		return true
	})
	t.Logf("%d GC runs swept %d chunks; %d live points all restore", gcRuns.Load(), swept.Load(), n)
}

const childEnv = "HAVEN_TEST_CHILD_WRITER"

// runChildWriter is the body of the process the crash test kills: it
// stores blocks forever into small packs and never commits.
func runChildWriter() int {
	parts := strings.Split(os.Getenv(childEnv), "|")
	ctx := context.Background()
	pool, err := pgxpoolNew(ctx, parts[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st, _ := fsstoreNew(parts[1])
	raw, _ := os.ReadFile(parts[2])
	mk, _ := keys.New(raw)
	r, err := repo.Open(ctx, st, index.New(pool, parts[3]), mk, repo.Options{PackSize: 32 << 10})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	w, err := r.NewWriter(ctx, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for n := 0; ; n++ {
		data := block(n%400, 16<<10)
		if err := w.Save(ctx, format.Data, []format.ID{r.Hash(data)}, [][]byte{data}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
}

// TestKillDuringUpload kills a writer process mid-upload and checks that
// no index entry points at a missing pack, and that a rerun completes.
func TestKillDuringUpload(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 32 << 10})
	keyFile := filepath.Join(t.TempDir(), "master.key")
	os.WriteFile(keyFile, env.MasterRaw, 0o600)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join([]string{env.DBURL, env.StoreDir, keyFile, env.RepoID}, "|"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(packFiles(t, env.StoreDir)) < 8 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if len(packFiles(t, env.StoreDir)) < 8 {
		t.Fatalf("child stored too little before the kill: %s", stderr.String())
	}

	ctx := context.Background()
	rows, err := env.Pool.Query(ctx, `SELECT DISTINCT pack_id FROM repo_chunks WHERE repo_id = $1`, env.RepoID)
	if err != nil {
		t.Fatal(err)
	}
	var packs []format.ID
	for rows.Next() {
		var b []byte
		rows.Scan(&b)
		var id format.ID
		copy(id[:], b)
		packs = append(packs, id)
	}
	rows.Close()
	if len(packs) == 0 {
		t.Fatal("the child indexed nothing before it was killed")
	}
	for _, p := range packs {
		if _, err := env.Store.Stat(ctx, repo.PackName(p)); err != nil {
			t.Fatalf("index points at pack %s: %v", p.Short(), err)
		}
	}
	// A rerun deduplicates against what the killed run indexed and completes.
	r := env.Open(t, repo.Options{PackSize: 32 << 10})
	writePoint(t, r, "rerun", "", seq(0, 400))
	checkPoint(t, r, "rerun", seq(0, 400))
	if v, err := r.Verify(ctx, []string{"rerun"}); err != nil || !v.OK() {
		t.Fatalf("verify: %v %+v", err, v)
	}
}

func TestCorruptionIsNamedByVerify(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 64 << 10})
	writePoint(t, env.Repo, "p", "", seq(0, 30))
	ctx := context.Background()
	// Flip one byte in the middle of a data blob.
	locs, err := env.Repo.Index().Locate(ctx, []format.ID{env.Repo.Hash(block(7, 16<<10))})
	if err != nil || len(locs) != 1 {
		t.Fatal(err)
	}
	var loc index.Location
	var victim format.ID
	for id, l := range locs {
		victim, loc = id, l
	}
	path := ""
	for _, p := range packFiles(t, env.StoreDir) {
		if filepath.Base(p) == loc.Pack.String() {
			path = p
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, loc.Offset+loc.Length/2)
	b[0] ^= 0x40
	f.WriteAt(b, loc.Offset+loc.Length/2)
	f.Close()

	v, err := env.Repo.Verify(ctx, []string{"p"})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Damaged) != 1 || v.Damaged[0].Chunk != victim || len(v.Damaged[0].Points) != 1 || v.Damaged[0].Points[0] != "p" ||
		len(v.Damaged[0].Files) != 1 || v.Damaged[0].Files[0] != "p:block-7" {
		t.Fatalf("verify report: %+v", v.Damaged)
	}
	if _, err := env.Repo.LoadChunk(ctx, victim); !errors.Is(err, format.ErrCorrupt) || !strings.Contains(err.Error(), victim.String()) {
		t.Fatalf("reading the damaged chunk: %v", err)
	}
}

func TestMasterKeyRotationRewrapsWithoutTouchingData(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	writePoint(t, env.Repo, "p", "", seq(0, 5))
	ctx := context.Background()
	packsBefore := packFiles(t, env.StoreDir)
	raw := make([]byte, 32)
	rand.Read(raw)
	newKey, _ := keys.New(raw)
	if err := repo.RewrapKeys(ctx, env.Store, env.RepoID, env.Master, newKey); err != nil {
		t.Fatal(err)
	}
	if packsAfter := packFiles(t, env.StoreDir); strings.Join(packsAfter, ",") != strings.Join(packsBefore, ",") {
		t.Fatal("rotation rewrote packs")
	}
	r, err := repo.Open(ctx, env.Store, index.New(env.Pool, env.RepoID), newKey, repo.Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkPoint(t, r, "p", seq(0, 5))
	if _, err := repo.Open(ctx, env.Store, index.New(env.Pool, env.RepoID), env.Master, repo.Options{}); err == nil ||
		!strings.Contains(err.Error(), newKey.ID()) {
		t.Fatalf("the old key must be refused, naming the new one: %v", err)
	}
}

// TestGCKeepsNestedManifests: a point whose root lists other manifests (a VM
// point lists one per disk) keeps every chunk of them through GC, and
// verify traces them.
func TestGCKeepsNestedManifests(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 64 << 10})
	env.Repo.Index().SetTouchGranularity(0)
	ctx := context.Background()
	w, err := env.Repo.NewWriter(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	inner := w.NewManifest("test")
	for _, n := range seq(0, 30) {
		data := block(n, 16<<10)
		id := env.Repo.Hash(data)
		if err := w.Save(ctx, format.Data, []format.ID{id}, [][]byte{data}); err != nil {
			t.Fatal(err)
		}
		e := diskEntry{Path: fmt.Sprintf("block-%d", n)}
		e.Chunks = append(e.Chunks, struct {
			ID  format.ID `json:"id"`
			Len int64     `json:"len"`
		}{id, int64(len(data))})
		if err := inner.Add(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	innerRoot, err := inner.Close(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	outer := w.NewManifest("vm")
	if err := outer.Add(ctx, map[string]any{"path": "disk-2000", "manifest": innerRoot}); err != nil {
		t.Fatal(err)
	}
	root, err := outer.Close(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx, "vm", root); err != nil {
		t.Fatal(err)
	}
	before := countChunks(t, env)
	time.Sleep(300 * time.Millisecond)
	rep, err := env.Repo.GC(ctx, repo.GCOptions{Grace: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.SweptChunks != 0 || countChunks(t, env) != before {
		t.Fatalf("GC swept %d chunks of a live point's nested manifest: %+v", rep.SweptChunks, rep)
	}
	for _, n := range seq(0, 30) {
		if _, err := env.Repo.LoadChunk(ctx, env.Repo.Hash(block(n, 16<<10))); err != nil {
			t.Fatalf("block %d after GC: %v", n, err)
		}
	}
	if v, err := env.Repo.Verify(ctx, nil); err != nil || !v.OK() || v.Chunks < 30 {
		t.Fatalf("verify: %v %+v", err, v)
	}
}
