package files_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/confine"
	enginefiles "github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/driver/drivertest"
)

// writeTree makes a small tree under dir: files at two depths, an empty
// directory and a symlink. It returns the regular files' total size and
// count.
func writeTree(t *testing.T, dir string) (size, count int64) {
	t.Helper()
	for name, data := range map[string][]byte{
		"a.txt":           []byte("alpha\n"),
		"sub/b.bin":       bytes.Repeat([]byte{0, 1, 2, 3, 250}, 40_000),
		"sub/deep/c.conf": []byte("key = value\n"),
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o640); err != nil {
			t.Fatal(err)
		}
		size += int64(len(data))
		count++
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/deep/c.conf", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	return size, count
}

// sameTree fails the test unless got holds what want holds: the same
// entries, file contents, modes and symlink targets.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	seen := 0
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		q := filepath.Join(got, rel)
		wi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		gi, err := os.Lstat(q)
		if err != nil {
			t.Errorf("restored tree lacks %s: %v", rel, err)
			return nil
		}
		seen++
		if wi.Mode() != gi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		switch {
		case wi.Mode()&fs.ModeSymlink != 0:
			wl, _ := os.Readlink(p)
			gl, _ := os.Readlink(q)
			if wl != gl {
				t.Errorf("%s: symlink to %q, want %q", rel, gl, wl)
			}
		case wi.Mode().IsRegular():
			wb, _ := os.ReadFile(p)
			gb, _ := os.ReadFile(q)
			if !bytes.Equal(wb, gb) {
				t.Errorf("%s: restored content differs (%d bytes, want %d)", rel, len(gb), len(wb))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 7 {
		t.Errorf("compared only %d entries", seen)
	}
}

// localFileset makes a fileset of src on the Haven host and loads it.
func (c *catalog) localFileset(t *testing.T, src string) *driver.Asset {
	t.Helper()
	host := c.fileServer(t, "haven-host", api.OSLinux, api.LocationServer)
	return c.asset(t, c.fileset(t, "data", host, src))
}

// manifestMeta reads the totals a capture recorded in its root.
func manifestMeta(t *testing.T, c *catalog, b *drivertest.Backup) enginefiles.Meta {
	t.Helper()
	root, err := c.Repository(t).ReadRoot(context.Background(), b.Root)
	if err != nil {
		t.Fatal(err)
	}
	var m enginefiles.Meta
	if err := json.Unmarshal(root.Meta, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// A local backup commits a point of the tree with its size and file
// count, reporting progress; an incremental one reuses its parent's
// unchanged files; a restore gives the tree back byte for byte.
func TestLocalBackupAndRestore(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	src := filepath.Join(base, "src")
	size, count := writeTree(t, src)
	c := newCatalog(t, base)
	a := c.localFileset(t, src)

	full := c.NewBackup(a)
	if err := c.Local.Backup(ctx, full); err != nil {
		t.Fatalf("backup: %v", err)
	}
	p := full.Committed
	if p == nil {
		t.Fatal("the backup committed no point")
	}
	if p.Kind != api.BackupFull || p.LogicalBytes != size || p.Files != count || p.AssetID != a.ID {
		t.Errorf("point is %s of %d bytes and %d files of asset %s; want full, %d bytes, %d files of %s",
			p.Kind, p.LogicalBytes, p.Files, p.AssetID, size, count, a.ID)
	}
	if full.Prog.Reports == 0 || full.Prog.Last.FilesDone != count || full.Prog.Last.BytesDone != size {
		t.Errorf("progress: %d reports, last %+v; want the whole tree (%d files, %d bytes)", full.Prog.Reports, full.Prog.Last, count, size)
	}

	// One file changes, one is added: the other three files come from the
	// parent.
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("alpha, changed\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "new.txt"), []byte("new\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	incr := c.NewBackup(a)
	incr.Parent = *p
	if err := c.Local.Backup(ctx, incr); err != nil {
		t.Fatalf("incremental backup: %v", err)
	}
	ip := incr.Committed
	if ip == nil || ip.Kind != api.BackupIncremental || ip.ParentID != p.ID || ip.Files != count+1 {
		t.Fatalf("incremental point %+v; want incremental on %s with %d files", ip, p.ID, count+1)
	}
	if m := manifestMeta(t, c, incr); m.Reused != count-1 {
		t.Errorf("the incremental reused %d files of its parent, want %d", m.Reused, count-1)
	}

	dst := filepath.Join(base, "restored")
	run := c.NewRestore(incr, driver.RestoreParams{RestoreRequest: api.RestoreRequest{TargetPath: dst}, TargetLocation: api.LocationServer})
	if err := c.Local.Restore(ctx, run); err != nil {
		t.Fatalf("restore: %v (warnings %v)", err, run.Prog.Warnings)
	}
	// The target stands for "/": the tree comes back under its full path.
	sameTree(t, src, filepath.Join(dst, src))
	if run.Prog.Last.FilesDone != count+1 || run.Prog.Last.FilesTotal != count+1 {
		t.Errorf("restore progress %+v; want %d of %d files", run.Prog.Last, count+1, count+1)
	}
}

// A fileset outside the Haven host's roots fails for good: a retry
// would fail again. Nothing is committed.
func TestLocalBackupOutsideRootsIsFinal(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	writeTree(t, src)
	c := newCatalog(t, t.TempDir())
	b := c.NewBackup(c.localFileset(t, src))
	err := c.Local.Backup(ctx, b)
	var failed driver.Failed
	if !errors.As(err, &failed) || !errors.Is(err, confine.ErrOutside) {
		t.Fatalf("want a final failure for a path outside the roots, got %v", err)
	}
	if b.Committed != nil {
		t.Errorf("a refused backup committed point %s", b.Committed.ID)
	}
}

// A restore whose target exists as a regular file is skipped with the
// reason; one outside the roots fails for good.
func TestLocalRestoreRefusesItsTarget(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	src := filepath.Join(base, "src")
	writeTree(t, src)
	c := newCatalog(t, base)
	b := c.NewBackup(c.localFileset(t, src))
	if err := c.Local.Backup(ctx, b); err != nil {
		t.Fatal(err)
	}

	file := filepath.Join(base, "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := c.Local.Restore(ctx, c.NewRestore(b, driver.RestoreParams{RestoreRequest: api.RestoreRequest{TargetPath: file}, TargetLocation: api.LocationServer}))
	var skip driver.Skip
	if !errors.As(err, &skip) {
		t.Fatalf("restoring onto a regular file: want a skip, got %v", err)
	}
	if got, _ := os.ReadFile(file); string(got) != "x" {
		t.Errorf("the skipped restore changed its target to %q", got)
	}

	outside := filepath.Join(t.TempDir(), "restored")
	err = c.Local.Restore(ctx, c.NewRestore(b, driver.RestoreParams{RestoreRequest: api.RestoreRequest{TargetPath: outside}, TargetLocation: api.LocationServer}))
	var failed driver.Failed
	if !errors.As(err, &failed) || !errors.Is(err, confine.ErrOutside) {
		t.Fatalf("restoring outside the roots: want a final failure, got %v", err)
	}
	if _, err := os.Lstat(outside); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the refused restore created %s", outside)
	}
}
