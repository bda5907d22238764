package files_test

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

type dirMeta struct {
	mode     os.FileMode
	mtime    time.Time
	uid, gid uint32
}

func statDir(t *testing.T, p string) dirMeta {
	t.Helper()
	fi, err := os.Lstat(p)
	must(t, err)
	st := fi.Sys().(*syscall.Stat_t)
	return dirMeta{fi.Mode(), fi.ModTime(), st.Uid, st.Gid}
}

// TestRestoreLeavesTargetAlone restores into an existing drwx------
// directory: it keeps its own owner, mode and times, and so does an
// existing directory above a selected path; what the restore creates or
// was asked for gets the point's metadata.
func TestRestoreLeavesTargetAlone(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "a", "b"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "a", "b", "one"), []byte("one"), 0o644))
	must(t, os.Chmod(filepath.Join(src, "a"), 0o751))
	old := time.Unix(1_500_000_000, 0)
	must(t, os.Chtimes(filepath.Join(src, "a"), old, old))
	root, _ := backup(t, env.Repo, src, "", format.ID{}, "p")

	ctx := context.Background()
	target := filepath.Join(t.TempDir(), "target")
	must(t, os.Mkdir(target, 0o700))
	when := time.Unix(1_700_000_000, 0)
	if os.Geteuid() == 0 {
		must(t, os.Chown(target, 4242, 4343))
	}
	must(t, os.Chtimes(target, when, when))
	before := statDir(t, target)

	_, err := files.Restore(ctx, env.Repo, root, files.RestoreOptions{Target: target, Owner: os.Geteuid() == 0})
	must(t, err)
	if after := statDir(t, target); after != before {
		t.Errorf("the target directory changed: %+v, was %+v", after, before)
	}
	if got := statDir(t, filepath.Join(target, src, "a")); got.mode.Perm() != 0o751 || !got.mtime.Equal(old) {
		t.Errorf("restored directory a: %+v, want mode 751 and mtime %v", got, old)
	}

	// An existing directory above a selected path is not restored either.
	a := filepath.Join(target, src, "a")
	must(t, os.RemoveAll(filepath.Join(a, "b")))
	must(t, os.Chmod(a, 0o700))
	must(t, os.Chtimes(a, when, when))
	aBefore := statDir(t, a)
	_, err = files.Restore(ctx, env.Repo, root, files.RestoreOptions{Target: target, Paths: []string{filepath.Join(src, "a", "b")}})
	must(t, err)
	if got := statDir(t, a); got != aBefore {
		t.Errorf("directory above the selection changed: %+v, was %+v", got, aBefore)
	}
	if b, err := os.ReadFile(filepath.Join(a, "b", "one")); err != nil || string(b) != "one" {
		t.Errorf("selected file: %q, %v", b, err)
	}
	if got := statDir(t, target); got != before {
		t.Errorf("the target directory changed on the selective restore: %+v, was %+v", got, before)
	}
}
