package files_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// overlapTree writes n small files, enough for several restore batches.
func overlapTree(t *testing.T, n int) string {
	t.Helper()
	src := t.TempDir()
	for i := range n {
		d := filepath.Join(src, fmt.Sprintf("d%d", i%5))
		must(t, os.MkdirAll(d, 0o755))
		must(t, os.WriteFile(filepath.Join(d, fmt.Sprintf("f%04d", i)), []byte(strings.Repeat(fmt.Sprintf("file %d ", i), 1+i%40)), 0o644))
	}
	return src
}

// TestRestoreBatchesOverlap restores 1,200 files (three batches) and checks
// that each full batch's sync runs in the background while the next batch
// loads, and that the tree comes back whole.
func TestRestoreBatchesOverlap(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := overlapTree(t, 1200)
	root, _ := backup(t, env.Repo, src, "", [32]byte{}, "p1")

	var loads, overlapped atomic.Int32
	defer files.SetRestoreBatchHooks(func() func() {
		// This batch is loaded and its sync about to start: the next
		// batch must start loading without waiting for the sync.
		seen := loads.Load()
		return func() {
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
				if loads.Load() > seen {
					overlapped.Add(1)
					return
				}
			}
		}
	}, func() { loads.Add(1) })()

	dst := t.TempDir()
	st, err := files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: dst})
	must(t, err)
	if st.Files != 1200 {
		t.Fatalf("restored %d files, want 1200", st.Files)
	}
	// Two full batches go to the background; the last is put in place at
	// once, as the restore ends.
	if n := overlapped.Load(); n != 2 {
		t.Fatalf("%d batch syncs overlapped the next batch's load, want 2", n)
	}
	diffFingerprints(t, fingerprint(t, src), fingerprint(t, filepath.Join(dst, src)))
}

// TestCanceledRestoreWithABatchInFlight cancels a restore while one batch
// is being synced in the background and the next is loaded: no temporary
// is left in the target, and every file at its final name is whole.
func TestCanceledRestoreWithABatchInFlight(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := overlapTree(t, 1200)
	root, _ := backup(t, env.Repo, src, "", [32]byte{}, "p1")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dst := t.TempDir()
	_, err := files.Restore(ctx, env.Repo, root, files.RestoreOptions{Target: dst, Progress: func(n, _ int64) {
		if n == 100 { // the first batch is being put in place, the second loaded
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("restore: %v, want canceled", err)
	}
	want := fingerprint(t, src)
	placed := 0
	must(t, filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".haven-restore") {
			t.Errorf("temporary left in the target: %s", p)
		}
		return err
	}))
	for rel, desc := range fingerprint(t, filepath.Join(dst, src)) {
		if fi, err := os.Lstat(filepath.Join(dst, src, rel)); err == nil && fi.Mode().IsRegular() {
			if desc != want[rel] {
				t.Errorf("%s: placed as %q, the source is %q", rel, desc, want[rel])
			}
			placed++
		}
	}
	if placed == 0 || placed >= 1200 {
		t.Fatalf("%d files placed, want some but not all", placed)
	}
}
