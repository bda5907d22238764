package nas_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/nas"
	"github.com/havenbackup/terraform-provider-haven/engine/nas/nfs"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func nfsDialer(n *testparts.NFS, export string) nas.Dialer {
	return func(ctx context.Context) (nas.Share, error) {
		return nfs.Dial(ctx, nfs.Config{Address: n.Address, Export: export, UID: uint32(os.Getuid()), GID: uint32(os.Getgid())})
	}
}

// localEntry is what NFS keeps of a file, read on the server's disk.
type localEntry struct {
	mode     fs.FileMode
	uid, gid uint32
	mtimeNs  int64
	sum      [32]byte
	target   string
}

func localTree(t *testing.T, root string) map[string]localEntry {
	t.Helper()
	out := map[string]localEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if strings.HasPrefix(d.Name(), ".haven-restore-") {
			t.Errorf("%s: a restore's temporary file was left behind", rel)
		}
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		e := localEntry{mode: info.Mode(), uid: st.Uid, gid: st.Gid, mtimeNs: st.Mtim.Nano()}
		switch {
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.sum = sha256.Sum256(data)
		case info.Mode()&fs.ModeSymlink != 0:
			e.target, _ = os.Readlink(p)
		}
		out[rel] = e
		return nil
	})
	must(t, err)
	return out
}

func compareLocal(t *testing.T, want, got map[string]localEntry, owners bool) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			t.Errorf("%s: missing", p)
		case g.mode != w.mode:
			t.Errorf("%s: mode %v, want %v", p, g.mode, w.mode)
		case g.sum != w.sum || g.target != w.target:
			t.Errorf("%s: content differs", p)
		case g.mode&fs.ModeSymlink == 0 && g.mtimeNs != w.mtimeNs:
			t.Errorf("%s: mtime %d, want %d", p, g.mtimeNs, w.mtimeNs)
		case owners && (g.uid != w.uid || g.gid != w.gid):
			t.Errorf("%s: owner %d:%d, want %d:%d", p, g.uid, g.gid, w.uid, w.gid)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: restored but not in the source", p)
		}
	}
}

// nfsTree lays out a tree with the modes NFS must keep: sticky, set-id,
// odd permissions, nanosecond times, a symlink and, as root, other owners.
func nfsTree(t *testing.T, dir string) {
	t.Helper()
	mk := func(p string, mode fs.FileMode, data []byte) {
		p = filepath.Join(dir, p)
		must(t, os.WriteFile(p, data, 0o600))
		must(t, os.Chmod(p, mode))
	}
	must(t, os.MkdirAll(filepath.Join(dir, "tmp/sub"), 0o755))
	must(t, os.Chmod(filepath.Join(dir, "tmp"), 0o777|fs.ModeSticky))
	mk("tmp/setuid", 0o755|fs.ModeSetuid, []byte("#!/bin/sh\n"))
	mk("tmp/setgid", 0o750|fs.ModeSetgid, random(2, 70000))
	mk("tmp/sub/private", 0o600, random(3, 2<<20))
	mk("tmp/sub/empty", 0o644, nil)
	must(t, os.Symlink("sub/private", filepath.Join(dir, "tmp/link")))
	when := time.Date(2021, 7, 8, 9, 10, 11, 123456789, time.UTC)
	for i, p := range []string{"tmp/setuid", "tmp/setgid", "tmp/sub/private", "tmp/sub/empty", "tmp/sub", "tmp"} {
		at := when.Add(time.Duration(i) * time.Hour)
		must(t, os.Chtimes(filepath.Join(dir, p), at, at))
	}
	if os.Geteuid() == 0 {
		must(t, os.Lchown(filepath.Join(dir, "tmp/setgid"), 1234, 5678))
		must(t, os.Chmod(filepath.Join(dir, "tmp/setgid"), 0o750|fs.ModeSetgid)) // chown clears it
		must(t, os.Chtimes(filepath.Join(dir, "tmp/setgid"), when.Add(time.Hour), when.Add(time.Hour)))
	}
}

func TestNFSShareBackupIncrementalAndRestore(t *testing.T) {
	n := testparts.StartNFS(t)
	ctx := context.Background()
	nfsTree(t, n.Dir)
	want := localTree(t, n.Dir)
	src := dial(t, nfsDialer(n, n.Export))
	b := &backupRepo{env: repotest.New(t, repo.Options{PackSize: 1 << 20})}
	full, st, warnings := b.capture(t, src, format.ID{}, nas.CaptureOptions{Source: "nfs://test/data"})
	if len(warnings) > 0 || st.Files != 4 || st.Reused != 0 {
		t.Fatalf("full: %+v, warnings %q", st.Meta, warnings)
	}
	// A changed file is read again; the rest are reused.
	must(t, os.WriteFile(filepath.Join(n.Dir, "tmp/sub/empty"), []byte("not any more"), 0o644))
	incr, st, _ := b.capture(t, src, full, nas.CaptureOptions{Source: "nfs://test/data"})
	if st.Files != 4 || st.Reused != 3 {
		t.Fatalf("the incremental should re-read the one changed file: %+v", st.Meta)
	}
	want = localTree(t, n.Dir)

	rs, err := nas.Restore(ctx, b.env.Repo, incr, nas.RestoreOptions{Dial: nfsDialer(n, n.OtherExport), Alternate: true})
	must(t, err)
	if rs.Files != 4 || rs.Symlinks != 1 {
		t.Fatalf("restored %+v", rs)
	}
	got := localTree(t, n.OtherDir)
	if got["tmp"].mode&fs.ModeSticky == 0 || got["tmp/setuid"].mode&fs.ModeSetuid == 0 || got["tmp/setgid"].mode&fs.ModeSetgid == 0 {
		t.Errorf("sticky or set-id bits lost: %v %v %v", got["tmp"].mode, got["tmp/setuid"].mode, got["tmp/setgid"].mode)
	}
	compareLocal(t, want, got, os.Geteuid() == 0)

	// Over the original, after damage.
	must(t, os.WriteFile(filepath.Join(n.Dir, "tmp/sub/private"), []byte("damaged"), 0o666))
	must(t, os.Chmod(filepath.Join(n.Dir, "tmp"), 0o755))
	_, err = nas.Restore(ctx, b.env.Repo, incr, nas.RestoreOptions{Dial: nfsDialer(n, n.Export)})
	must(t, err)
	compareLocal(t, want, localTree(t, n.Dir), os.Geteuid() == 0)
}

func TestNFSRestoreSurvivesTheServerGoingAway(t *testing.T) {
	n := testparts.StartNFS(t)
	ctx := context.Background()
	for i := range 40 {
		must(t, os.WriteFile(filepath.Join(n.Dir, fmt.Sprintf("f%02d", i)), random(uint64(100+i), 1<<20), 0o640))
	}
	want := localTree(t, n.Dir)
	src := dial(t, nfsDialer(n, n.Export))
	b := &backupRepo{env: repotest.New(t, repo.Options{PackSize: 1 << 20})}
	root, _, _ := b.capture(t, src, format.ID{}, nas.CaptureOptions{Source: "nfs://test/data"})

	var (
		once    sync.Once
		stopped = make(chan struct{})
		mu      sync.Mutex
		notes   []string
	)
	done := make(chan error, 1)
	var rs nas.RestoreStats
	go func() {
		var err error
		rs, err = nas.Restore(ctx, b.env.Repo, root, nas.RestoreOptions{
			Dial: nfsDialer(n, n.OtherExport), Writers: 2, ReconnectFor: time.Minute,
			Warn: func(_ string, err error) { mu.Lock(); notes = append(notes, err.Error()); mu.Unlock() },
			Progress: func(files, _ int64) {
				if files == 10 {
					once.Do(func() { go func() { n.Stop(); close(stopped) }() })
				}
			},
		})
		done <- err
	}()
	<-stopped
	time.Sleep(time.Second)
	n.Start()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(2 * time.Minute):
		t.Fatal("the restore did not finish after the server came back")
	}
	if rs.Reconnects == 0 || rs.Files != 40 {
		t.Fatalf("restore %+v: no reconnection recorded", rs)
	}
	if !strings.Contains(strings.Join(notes, "\n"), "resumed") {
		t.Errorf("the restore did not say it resumed: %q", notes)
	}
	compareLocal(t, want, localTree(t, n.OtherDir), true)
}
