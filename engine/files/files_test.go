package files_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testparts.StopSharedPostgres()
	os.Exit(code)
}

// smallParams make multi-chunk files out of small test data.
var smallParams = chunker.Params{Min: 2 << 10, Avg: 8 << 10, Max: 32 << 10}

// makeTree writes a random tree: nested dirs, files from empty to a few
// hundred KiB (some duplicated, some sparse, some compressible), symlinks
// and hardlinks, odd modes and exact timestamps.
func makeTree(t *testing.T, dir string, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed*7+1))
	var contents [][]byte
	dirs := []string{dir}
	for i := range 60 {
		parent := dirs[rng.IntN(len(dirs))]
		switch k := rng.IntN(10); {
		case k < 2:
			d := filepath.Join(parent, fmt.Sprintf("dir-%d", i))
			must(t, os.Mkdir(d, 0o750))
			dirs = append(dirs, d)
		case k < 8:
			var data []byte
			switch {
			case len(contents) > 0 && rng.IntN(4) == 0:
				data = contents[rng.IntN(len(contents))] // duplicate of another file
			case rng.IntN(3) == 0:
				data = bytes.Repeat([]byte(fmt.Sprintf("line %d of text\n", i)), rng.IntN(20000))
			default:
				data = make([]byte, rng.IntN(300<<10))
				for j := range data {
					data[j] = byte(rng.Uint32())
				}
			}
			contents = append(contents, data)
			p := filepath.Join(parent, fmt.Sprintf("file-%d.bin", i))
			must(t, os.WriteFile(p, data, 0o640))
			if rng.IntN(5) == 0 {
				must(t, os.Chmod(p, 0o4755))
			}
		case k == 8:
			must(t, os.Symlink(fmt.Sprintf("../target-%d", i), filepath.Join(parent, fmt.Sprintf("link-%d", i))))
		default:
			// A sparse file: data, a hole, data.
			p := filepath.Join(parent, fmt.Sprintf("sparse-%d.img", i))
			f, err := os.Create(p)
			must(t, err)
			f.WriteAt([]byte("head"), 0)
			f.WriteAt([]byte("tail"), 5<<20)
			f.Close()
		}
	}
	// A hardlink pair and an empty file.
	must(t, os.WriteFile(filepath.Join(dir, "linked"), []byte("shared inode"), 0o600))
	must(t, os.Link(filepath.Join(dir, "linked"), filepath.Join(dirs[len(dirs)-1], "linked-again")))
	must(t, os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644))
	// Exact, distinct timestamps everywhere (directories last).
	var paths []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return nil
	})
	for i := len(paths) - 1; i >= 0; i-- {
		ts := time.Unix(1_600_000_000+int64(i)*3600, int64(rng.IntN(1e9)))
		if fi, _ := os.Lstat(paths[i]); fi.Mode()&fs.ModeSymlink == 0 {
			must(t, os.Chtimes(paths[i], ts, ts))
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fingerprint describes every entry of a tree: type, mode, size, mtime,
// content hash, symlink target, and which paths share an inode.
func fingerprint(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	inodes := map[uint64]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %o", fi.Mode().Type(), fi.Mode().Perm()|fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %d %x mtime=%d", len(data), sha256.Sum256(data), fi.ModTime().UnixNano())
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					desc += " hardlink=" + first
				} else {
					inodes[st.Ino] = rel
				}
			}
		case fi.IsDir() && rel != ".":
			desc += fmt.Sprintf(" mtime=%d", fi.ModTime().UnixNano())
		}
		out[rel] = desc
		return nil
	})
	must(t, err)
	return out
}

func diffFingerprints(t *testing.T, want, got map[string]string) {
	t.Helper()
	for p, w := range want {
		if g, ok := got[p]; !ok {
			t.Errorf("%s: missing after restore", p)
		} else if g != w {
			t.Errorf("%s:\n  want %s\n  got  %s", p, w, g)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: restored but not in the source", p)
		}
	}
}

func backup(t *testing.T, r *repo.Repository, src string, parentPoint string, parent format.ID, pointID string) (format.ID, files.CaptureStats) {
	t.Helper()
	ctx := context.Background()
	w, err := r.NewWriter(ctx, parentPoint)
	must(t, err)
	root, stats, err := files.Capture(ctx, w, r, files.CaptureOptions{Paths: []string{src}, Parent: parent, Params: smallParams,
		Warn: func(p string, err error) { t.Errorf("warning on %s: %v", p, err) }})
	if err != nil {
		w.Abort(ctx)
		t.Fatal(err)
	}
	must(t, w.Commit(ctx, pointID, root))
	return root, stats
}

func TestTreeRoundTrip(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 256 << 10})
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			src := t.TempDir()
			makeTree(t, src, seed)
			want := fingerprint(t, src)
			root, stats := backup(t, env.Repo, src, "", format.ID{}, fmt.Sprint("p", seed))
			if stats.Files == 0 || stats.Repo.NewChunks == 0 {
				t.Fatalf("nothing captured: %+v", stats)
			}
			dst := t.TempDir()
			rs, err := files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: dst, Owner: os.Geteuid() == 0})
			must(t, err)
			if rs.Files != stats.Files {
				t.Errorf("restored %d files, captured %d", rs.Files, stats.Files)
			}
			diffFingerprints(t, want, fingerprint(t, filepath.Join(dst, src)))
			// Holes stay holes: the 5 MiB sparse files take a few blocks.
			filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
				if err == nil && strings.HasPrefix(d.Name(), "sparse-") {
					fi, _ := os.Stat(p)
					if blocks := fi.Sys().(*syscall.Stat_t).Blocks * 512; blocks > 1<<20 {
						t.Errorf("%s occupies %d bytes: holes were written out", p, blocks)
					}
				}
				return nil
			})
		})
	}
}

func TestNothingInTheStoreIsPlaintext(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 256 << 10})
	src := t.TempDir()
	marker := []byte("HAVEN-PLAINTEXT-MARKER-0123456789")
	must(t, os.WriteFile(filepath.Join(src, "secret.txt"), bytes.Repeat(marker, 5000), 0o600))
	must(t, os.WriteFile(filepath.Join(src, "name-marker-HAVEN-PLAINTEXT-MARKER.txt"), []byte("x"), 0o600))
	backup(t, env.Repo, src, "", format.ID{}, "p1")
	filepath.WalkDir(env.StoreDir, func(p string, d fs.DirEntry, err error) error {
		if d.IsDir() {
			return nil
		}
		data, _ := os.ReadFile(p)
		if bytes.Contains(data, marker[:16]) || bytes.Contains(data, []byte("secret.txt")) {
			t.Errorf("%s holds plaintext", p)
		}
		return nil
	})
}

func TestIncrementalReusesUnchangedFiles(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 256 << 10})
	src := t.TempDir()
	makeTree(t, src, 42)
	before := fingerprint(t, src)
	root1, s1 := backup(t, env.Repo, src, "", format.ID{}, "full")

	// Change one file in the middle, append to another, add one, delete one.
	var regular []string
	filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if d.Type().IsRegular() && strings.HasPrefix(d.Name(), "file-") {
			regular = append(regular, p)
		}
		return nil
	})
	if len(regular) < 4 {
		t.Fatalf("tree too small: %d files", len(regular))
	}
	f, _ := os.OpenFile(regular[0], os.O_WRONLY, 0)
	f.WriteAt([]byte("changed"), 100)
	f.Close()
	f, _ = os.OpenFile(regular[1], os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("appended"))
	f.Close()
	must(t, os.WriteFile(filepath.Join(src, "new-file"), []byte("brand new"), 0o644))
	must(t, os.Remove(regular[2]))
	after := fingerprint(t, src)

	root2, s2 := backup(t, env.Repo, src, "full", root1, "incr")
	if want := s1.Files - 2; s2.Reused != want-1 && s2.Reused != want {
		// Every file but the two changed, the deleted and the new one is reused
		// (a hardlinked file may be counted once).
		t.Errorf("reused %d files, want about %d", s2.Reused, want-1)
	}
	if s2.Repo.NewBytes >= s1.Repo.NewBytes/4 {
		t.Errorf("incremental stored %d new bytes, full stored %d: changes should cost far less", s2.Repo.NewBytes, s1.Repo.NewBytes)
	}
	for _, c := range []struct {
		root format.ID
		want map[string]string
	}{{root1, before}, {root2, after}} {
		dst := t.TempDir()
		_, err := files.Restore(context.Background(), env.Repo, c.root, files.RestoreOptions{Target: dst})
		must(t, err)
		diffFingerprints(t, c.want, fingerprint(t, filepath.Join(dst, src)))
	}
}

func TestRestoreConflictsAndSelection(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(src, "a", "b"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "a", "b", "one"), []byte("one"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "two"), []byte("two"), 0o644))
	root, _ := backup(t, env.Repo, src, "", format.ID{}, "p")

	dst := t.TempDir()
	_, err := files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: dst, Paths: []string{filepath.Join(src, "a/b")}})
	must(t, err)
	dst0 := dst
	dst = filepath.Join(dst0, src)
	if _, err := os.Stat(filepath.Join(dst, "two")); err == nil {
		t.Error("a path outside the selection was restored")
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "a", "b", "one")); string(b) != "one" {
		t.Errorf("selected file: %q", b)
	}

	must(t, os.WriteFile(filepath.Join(dst, "a", "b", "one"), []byte("local edit"), 0o644))
	rs, err := files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: dst0, Conflict: files.ConflictSkip})
	must(t, err)
	if b, _ := os.ReadFile(filepath.Join(dst, "a", "b", "one")); string(b) != "local edit" || rs.Skipped == 0 {
		t.Errorf("skip policy overwrote: %q (skipped %d)", b, rs.Skipped)
	}
	_, err = files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: dst0, Conflict: files.ConflictRename})
	must(t, err)
	if b, _ := os.ReadFile(filepath.Join(dst, "a", "b", "one.restored-1")); string(b) != "one" {
		t.Errorf("rename policy: %q", b)
	}
	_, err = files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: dst0, Conflict: files.ConflictOverwrite})
	must(t, err)
	if b, _ := os.ReadFile(filepath.Join(dst, "a", "b", "one")); string(b) != "one" {
		t.Errorf("overwrite policy: %q", b)
	}
}

// TestDamagedChunkFailsOnlyItsFile flips a byte in a pack: verify names the
// chunk and the file, the restore fails that file with a clear error, and
// every other file restores intact.
func TestDamagedChunkFailsOnlyItsFile(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 64 << 10})
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 5))
	for i := range 12 {
		data := make([]byte, 40<<10+i)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		must(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), data, 0o644))
	}
	want := fingerprint(t, src)
	root, _ := backup(t, env.Repo, src, "", format.ID{}, "p")
	ctx := context.Background()

	victimData, _ := os.ReadFile(filepath.Join(src, "f07"))
	cuts, _ := chunker.Cuts(victimData, smallParams)
	victim := env.Repo.Hash(victimData[:cuts[0]])
	locs, err := env.Repo.Index().Locate(ctx, []format.ID{victim})
	must(t, err)
	loc := locs[victim]
	var packPath string
	filepath.WalkDir(env.StoreDir, func(p string, d fs.DirEntry, err error) error {
		if d.Name() == loc.Pack.String() {
			packPath = p
		}
		return nil
	})
	f, err := os.OpenFile(packPath, os.O_RDWR, 0)
	must(t, err)
	b := []byte{0}
	f.ReadAt(b, loc.Offset+loc.Length/2)
	b[0] ^= 1
	f.WriteAt(b, loc.Offset+loc.Length/2)
	f.Close()

	v, err := env.Repo.Verify(ctx, []string{"p"})
	must(t, err)
	if len(v.Damaged) != 1 || v.Damaged[0].Chunk != victim || len(v.Damaged[0].Files) != 1 || v.Damaged[0].Files[0] != "p:"+relName(src, "f07") {
		t.Fatalf("verify: %+v", v.Damaged)
	}

	dst := t.TempDir()
	rs, err := files.Restore(ctx, env.Repo, root, files.RestoreOptions{Target: dst})
	if !errors.Is(err, files.ErrIncomplete) || len(rs.Failed) != 1 || !strings.HasPrefix(rs.Failed[0], "/"+relName(src, "f07")+": ") ||
		!strings.Contains(rs.Failed[0], victim.String()) {
		t.Fatalf("restore: %v, failed %v", err, rs.Failed)
	}
	got := fingerprint(t, filepath.Join(dst, src))
	if _, ok := got["f07"]; ok {
		t.Error("the damaged file was left behind half-restored")
	}
	delete(want, "f07")
	delete(want, ".")
	delete(got, ".")
	diffFingerprints(t, want, got)
}

// relName is a source file's name in a manifest: its absolute path without
// the leading slash.
func relName(dir, name string) string {
	return strings.TrimPrefix(filepath.Join(dir, name), "/")
}

func TestIncludePathsAndExcludeGlobs(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	base := t.TempDir()
	for _, p := range []string{"etc/app/app.conf", "etc/app/cache/blob.tmp", "home/ann/notes.txt", "home/ann/.cache/x", "home/bob/b.txt", "var/log/syslog"} {
		must(t, os.MkdirAll(filepath.Join(base, filepath.Dir(p)), 0o755))
		must(t, os.WriteFile(filepath.Join(base, p), []byte(p), 0o644))
	}
	ctx := context.Background()
	w, err := env.Repo.NewWriter(ctx, "")
	must(t, err)
	root, stats, err := files.Capture(ctx, w, env.Repo, files.CaptureOptions{
		Paths:   []string{filepath.Join(base, "home"), filepath.Join(base, "etc/app"), filepath.Join(base, "home/ann")},
		Exclude: []string{"*.tmp", ".cache", filepath.Join(base, "home/bob")},
		Params:  smallParams,
	})
	must(t, err)
	must(t, w.Commit(ctx, "p", root))
	if stats.Files != 2 {
		t.Errorf("captured %d files, want app.conf and notes.txt", stats.Files)
	}
	dst := t.TempDir()
	_, err = files.Restore(ctx, env.Repo, root, files.RestoreOptions{Target: dst})
	must(t, err)
	var got []string
	filepath.WalkDir(filepath.Join(dst, base), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(filepath.Join(dst, base), p)
			got = append(got, rel)
		}
		return nil
	})
	if strings.Join(got, ",") != "etc/app/app.conf,home/ann/notes.txt" {
		t.Fatalf("restored %v", got)
	}
	// The directories above the include paths keep their modes.
	if fi, err := os.Stat(filepath.Join(dst, base, "etc")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("ancestor directory: %v %v", fi.Mode(), err)
	}
}

// TestInterruptedRestoreResumes stops a restore part way, runs it again
// with Resume, and checks that the second run fetches only what the first
// did not finish.
func TestInterruptedRestoreResumes(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 3))
	const n, size = 40, 256 << 10
	for i := range n {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		must(t, os.WriteFile(filepath.Join(src, fmt.Sprintf("f%02d", i)), data, 0o644))
	}
	want := fingerprint(t, src)
	root, _ := backup(t, env.Repo, src, "", format.ID{}, "p")
	dst := t.TempDir()

	ctx, cancel := context.WithCancel(context.Background())
	first, err := files.Restore(ctx, env.Repo, root, files.RestoreOptions{Target: dst, Progress: func(files, _ int64) {
		if files >= n/2 {
			cancel()
		}
	}})
	if err == nil || first.Files >= n {
		t.Fatalf("the first run was not interrupted: %v, %d files", err, first.Files)
	}
	second, err := files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: dst, Resume: true})
	must(t, err)
	if second.Resumed < first.Files-1 {
		t.Errorf("resumed %d files, the first run finished %d", second.Resumed, first.Files)
	}
	// Only the unfinished files (and at most one batch's worth of partial
	// work) are fetched again: well under the whole point.
	if refetched := second.Fetched; refetched > int64(n-int(first.Files)+1)*size {
		t.Errorf("second run fetched %d bytes; %d files were left, %d bytes", refetched, n-int(first.Files), int64(n-int(first.Files))*size)
	}
	t.Logf("first run: %d files; second: %d resumed, %d bytes fetched (whole point %d)", first.Files, second.Resumed, second.Fetched, n*size)
	diffFingerprints(t, want, fingerprint(t, filepath.Join(dst, src)))
}

// TestFileChangingWhileReadIsAWarning backs up a file that another process
// keeps appending to: the capture notices, retries once, then records a
// warning and leaves the file out rather than store a torn copy.
func TestFileChangingWhileReadIsAWarning(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	must(t, os.WriteFile(filepath.Join(src, "steady.txt"), []byte("steady"), 0o644))
	busy := filepath.Join(src, "busy.log")
	must(t, os.WriteFile(busy, bytes.Repeat([]byte("x"), 4<<20), 0o644))
	// A writer appends to busy.log after every read of it, before the
	// capture checks it: each attempt sees the file change under it.
	defer files.SetHookBeforeFinalStat(func(p string) {
		if p != busy {
			return
		}
		f, err := os.OpenFile(busy, os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			f.Write([]byte("more\n"))
			f.Close()
		}
	})()
	var warnings []string
	ctx := context.Background()
	w, err := env.Repo.NewWriter(ctx, "")
	must(t, err)
	root, stats, err := files.Capture(ctx, w, env.Repo, files.CaptureOptions{Paths: []string{src}, Params: smallParams,
		Warn: func(p string, err error) { warnings = append(warnings, p+": "+err.Error()) }})
	must(t, err)
	must(t, w.Commit(ctx, "p", root))
	if stats.Files != 1 || stats.Warnings != 1 || len(warnings) != 1 || !strings.Contains(warnings[0], "changed while it was read") {
		t.Fatalf("files %d, warnings %v", stats.Files, warnings)
	}
}
