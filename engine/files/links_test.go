package files_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// linkedTree makes plain files and one hardlinked pair (b.txt, c.txt).
func linkedTree(t *testing.T, plain int) string {
	t.Helper()
	src := t.TempDir()
	mtime := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	for i := range plain {
		randomFile(t, filepath.Join(src, fmt.Sprintf("plain-%03d", i)), 100+i, uint64(i), 0o644, mtime)
	}
	randomFile(t, filepath.Join(src, "b.txt"), 4<<10, 3, 0o644, mtime)
	must(t, os.Link(filepath.Join(src, "b.txt"), filepath.Join(src, "c.txt")))
	return src
}

// restoreCountingRemembered restores root under a new directory and returns
// the restored copy of src and how many files the restore remembered for
// hardlinks.
func restoreCountingRemembered(t *testing.T, r *repo.Repository, root format.ID, src string) (string, int) {
	t.Helper()
	remembered := -1
	defer files.SetHookRestored(func(n int) { remembered = n })()
	dst := t.TempDir()
	if _, err := files.Restore(context.Background(), r, root, files.RestoreOptions{Target: dst}); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dst, src), remembered
}

func assertLinked(t *testing.T, out string) {
	t.Helper()
	b, err := os.Stat(filepath.Join(out, "b.txt"))
	must(t, err)
	c, err := os.Stat(filepath.Join(out, "c.txt"))
	must(t, err)
	if !os.SameFile(b, c) {
		t.Error("b.txt and c.txt were restored as two files, not one hardlinked inode")
	}
}

// TestRestoreRemembersOnlyLinkedFiles: a restore keeps the restored path of
// the files hardlinks may target, and of no other file, so its memory does
// not grow with the number of files it restores; the hardlink is restored
// as one.
func TestRestoreRemembersOnlyLinkedFiles(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := linkedTree(t, 50)
	root, _ := backup(t, env.Repo, src, "", format.ID{}, "p")
	out, remembered := restoreCountingRemembered(t, env.Repo, root, src)
	assertLinked(t, out)
	diffFingerprints(t, fingerprint(t, src), fingerprint(t, out))
	if remembered != 1 {
		t.Errorf("the restore remembered %d files for hardlinks, want 1 (b.txt)", remembered)
	}
}

// TestRestoreOfUnmarkedPointRemembersEveryFile: a point written before file
// entries carried their link count (no Links, no Meta.LinksMarked) still
// has its hardlinks restored as links: the restore remembers every file,
// as it did then.
func TestRestoreOfUnmarkedPointRemembersEveryFile(t *testing.T) {
	ctx := context.Background()
	env := repotest.New(t, repo.Options{})
	src := linkedTree(t, 5)
	marked, _ := backup(t, env.Repo, src, "", format.ID{}, "p")

	// The same point as an older capture wrote it.
	m, err := env.Repo.OpenManifest(ctx, marked)
	must(t, err)
	w, err := env.Repo.NewWriter(ctx, "")
	must(t, err)
	mw := repo.NewManifest(w, "files")
	for {
		var e files.Entry
		if err := m.Next(&e); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		e.Links = 0
		must(t, mw.Add(ctx, &e))
	}
	old, err := mw.Close(ctx, files.Meta{Source: src, Files: 6})
	must(t, err)
	must(t, w.Commit(ctx, "old", old))

	out, remembered := restoreCountingRemembered(t, env.Repo, old, src)
	assertLinked(t, out)
	// Every file entry: the five plain files and b.txt (c.txt is the
	// hardlink entry).
	if remembered != 6 {
		t.Errorf("the restore of an unmarked point remembered %d files, want all 6", remembered)
	}
}
