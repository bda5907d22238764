package files_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// meddlingSource is a restore's source with something acting between
// deliveries: before the k-th chunk of every Load call reaches the
// restore, meddle runs (and may change the delivered bytes, or what the
// restore has written so far). A non-nil error from meddle ends the load.
type meddlingSource struct {
	files.Source
	k      int       // the k-th chunk delivered is meddled with,
	id     format.ID // or, when set, the chunk of this id
	meddle func(data []byte) ([]byte, error)
}

func (m *meddlingSource) Load(ctx context.Context, ids []format.ID, fn func(int, []byte) error) error {
	var mu sync.Mutex
	n := 0
	return m.Source.Load(ctx, ids, func(i int, data []byte) error {
		mu.Lock()
		n++
		hit := n == m.k
		if m.id != (format.ID{}) {
			hit = ids[i] == m.id
		}
		mu.Unlock()
		if hit {
			var err error
			if data, err = m.meddle(data); err != nil {
				return err
			}
		}
		return fn(i, data)
	})
}

func randomFile(t *testing.T, path string, size int, seed uint64, mode os.FileMode, mtime time.Time) {
	rng := rand.New(rand.NewPCG(seed, seed))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	must(t, os.WriteFile(path, data, mode))
	must(t, os.Chmod(path, mode))
	must(t, os.Chtimes(path, mtime, mtime))
}

// leftovers lists restore temporaries left in a tree.
func leftovers(dir string) []string {
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".haven-restore-") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

// TestRestoreInterruptedMidFileIsFinished stops a restore in the middle
// of a large file (the process gone, nothing cleaned up) and runs it again
// with Resume, under each conflict policy. The file the first run was
// writing is finished, byte for byte with its mode and mtime; a file the
// user had at its destination before is treated by the policy (under skip
// it is still left alone); and what the first run finished is neither
// fetched nor copied again (under rename, no second .restored-N).
func TestRestoreInterruptedMidFileIsFinished(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	mtime := time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC)
	// Walk order: a.txt, b.txt, then c.txt (a hardlink to b.txt, which
	// makes the restore finish a.txt and b.txt first), then disk.img.
	randomFile(t, filepath.Join(src, "a.txt"), 4<<10, 2, 0o644, mtime)
	randomFile(t, filepath.Join(src, "b.txt"), 4<<10, 3, 0o644, mtime)
	must(t, os.Link(filepath.Join(src, "b.txt"), filepath.Join(src, "c.txt")))
	randomFile(t, filepath.Join(src, "disk.img"), 2<<20, 1, 0o640, mtime)
	want := fingerprint(t, src)
	root, _ := backup(t, env.Repo, src, "", format.ID{}, "p")

	for _, policy := range []string{files.ConflictSkip, files.ConflictRename, files.ConflictOverwrite} {
		t.Run(policy, func(t *testing.T) {
			dst := t.TempDir()
			out := filepath.Join(dst, src)
			must(t, os.MkdirAll(out, 0o755))
			must(t, os.WriteFile(filepath.Join(out, "a.txt"), []byte("the user's own file"), 0o600))
			userFile := fingerprint(t, out)["a.txt"]

			// The first run dies part way through disk.img (about 250 chunks).
			ctx, cancel := context.WithCancel(context.Background())
			killed := errors.New("killed")
			cut := &meddlingSource{Source: env.Repo, k: 100, meddle: func([]byte) ([]byte, error) { cancel(); return nil, killed }}
			first, err := files.Restore(ctx, cut, root, files.RestoreOptions{Target: dst, Conflict: policy})
			if err == nil || first.Files >= 3 {
				t.Fatalf("the first run was not cut short in disk.img: %v, %+v", err, first)
			}
			if l := leftovers(dst); len(l) != 0 {
				t.Errorf("the canceled run left temporaries behind: %v", l)
			}

			second, err := files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: dst, Conflict: policy, Resume: true})
			must(t, err)
			if second.Fetched > 2<<20+64<<10 {
				t.Errorf("the resumed run fetched %d bytes: more than disk.img", second.Fetched)
			}
			got := fingerprint(t, out)
			if got["disk.img"] != want["disk.img"] {
				t.Errorf("disk.img after the resumed restore:\n got %s\nwant %s", got["disk.img"], want["disk.img"])
			}
			wantA, wantCopy := userFile, ""
			switch policy {
			case files.ConflictRename:
				wantCopy = want["a.txt"]
			case files.ConflictOverwrite:
				wantA = want["a.txt"]
			}
			if got["a.txt"] != wantA || got["a.txt.restored-1"] != wantCopy {
				t.Errorf("a.txt: %q and a copy %q, want %q and %q", got["a.txt"], got["a.txt.restored-1"], wantA, wantCopy)
			}
			if _, ok := got["a.txt.restored-2"]; ok {
				t.Error("the resumed run made a second copy of a file the first run had restored")
			}
			if l := leftovers(dst); len(l) != 0 {
				t.Errorf("temporaries left behind: %v", l)
			}
		})
	}
}

// TestRestoreFailsForWrongBytes: bytes that change behind the restore's
// back after it wrote them (truncated while the file is written, or cut
// short and grown back to its size once it is), or that were not the
// chunk they were delivered as, fail the file, and it is not put in place;
// the rest of the tree is restored.
func TestRestoreFailsForWrongBytes(t *testing.T) {
	// The large victim is written with direct I/O in windows, its chunks
	// checked in memory and its written extents checked at the end.
	for _, victimSize := range []int64{1 << 20, 40 << 20} {
		t.Run(fmt.Sprintf("%d MiB", victimSize>>20), func(t *testing.T) { restoreFailsForWrongBytes(t, victimSize) })
	}
}

// wrongBytes is one way of getting a restored file's bytes wrong: a
// meddling with a delivered chunk, or a change made once a file's bytes
// are all written.
type wrongBytes struct {
	meddle  func(dst string) func([]byte) ([]byte, error)
	written func(tmp string)
	// assembled sees the parts of chunks copied into direct windows.
	assembled func(part []byte)
}

func restoreFailsForWrongBytes(t *testing.T, victimSize int64) {
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	mtime := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	randomFile(t, filepath.Join(src, "victim.bin"), int(victimSize), 3, 0o644, mtime)
	randomFile(t, filepath.Join(src, "other.txt"), 1<<10, 4, 0o644, mtime)
	want := fingerprint(t, src)
	root, _ := backup(t, env.Repo, src, "", format.ID{}, "p")
	// The chunk meddled with: in the large victim, the one at three
	// quarters of it.
	meddled := &meddlingSource{Source: env.Repo, k: 10}
	if victimSize > 1<<20 {
		e, err := files.Lookup(context.Background(), env.Repo, root, manifestPath(t, filepath.Join(src, "victim.bin")))
		must(t, err)
		var off int64
		for _, c := range e.Chunks {
			if off += c.Len; off > victimSize*3/4 {
				meddled.id = c.ID
				break
			}
		}
	}
	// isVictim: a file of the victim's size (40 MiB is a whole number of
	// blocks, so written directly it has that size too).
	isVictim := func(p string) bool {
		fi, err := os.Stat(p)
		return err == nil && fi.Mode().IsRegular() && fi.Size() == victimSize
	}
	unchanged := func(string) func([]byte) ([]byte, error) {
		return func(data []byte) ([]byte, error) { return data, nil }
	}
	cases := map[string]wrongBytes{
		"cut short and grown back after writing": {
			meddle: unchanged,
			written: func(tmp string) {
				if isVictim(tmp) {
					os.Truncate(tmp, 1)
					os.Truncate(tmp, victimSize)
				}
			},
		},
	}
	if victimSize <= 1<<20 {
		// A source hands over only bytes it checked against their ids
		// (Source's contract); the read-back of a file written through
		// the page cache still catches one that does not.
		cases["delivered bytes are not the chunk"] = wrongBytes{meddle: func(string) func([]byte) ([]byte, error) {
			return func(data []byte) ([]byte, error) {
				bad := append([]byte(nil), data...)
				bad[len(bad)/2] ^= 0x40
				return bad, nil
			}
		}}
	} else {
		// A window's bytes that change between arriving and being
		// written (a buffer reused too early) are caught before the
		// window is written.
		cases["window changed after the bytes arrived"] = wrongBytes{meddle: unchanged, assembled: func(part []byte) {
			part[len(part)/2] ^= 0x40
		}}
	}
	if victimSize <= 1<<20 {
		// Through the page cache, the chunks that land after the cut
		// leave the file its size, and the read-back finds the zeros.
		// (Written directly, nothing may have reached the file when the
		// cut comes, and then the restore is right to succeed.)
		cases["truncated while being written"] = wrongBytes{meddle: func(dst string) func([]byte) ([]byte, error) {
			return func(data []byte) ([]byte, error) {
				filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
					if err == nil && isVictim(p) {
						os.Truncate(p, 1)
					}
					return nil
				})
				return data, nil
			}
		}}
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			dst := t.TempDir()
			src2 := &meddlingSource{Source: env.Repo, k: meddled.k, id: meddled.id, meddle: c.meddle(dst)}
			if c.written != nil {
				defer files.SetHookWritten(c.written)()
			}
			if c.assembled != nil {
				defer files.SetHookAssembled(c.assembled)()
			}
			st, err := files.Restore(context.Background(), src2, root, files.RestoreOptions{Target: dst})
			if !errors.Is(err, files.ErrIncomplete) || len(st.Failed) != 1 || !strings.HasPrefix(st.Failed[0], "/"+relName(src, "victim.bin")+": ") ||
				!strings.Contains(st.Failed[0], files.ErrWrongBytes.Error()) {
				t.Fatalf("restore: %v, failed %v", err, st.Failed)
			}
			got := fingerprint(t, filepath.Join(dst, src))
			if _, ok := got["victim.bin"]; ok {
				t.Error("the file with wrong bytes was put in place")
			}
			if got["other.txt"] != want["other.txt"] {
				t.Errorf("other.txt: %s, want %s", got["other.txt"], want["other.txt"])
			}
			if l := leftovers(dst); len(l) != 0 {
				t.Errorf("temporaries left behind: %v", l)
			}
		})
	}
}

// TestSkippedFirstNameOfHardlink: under skip, a file the user already has
// at the first name of a hardlinked inode is left alone, and the other
// name is restored with the point's content rather than failing or being
// linked to the user's file.
func TestSkippedFirstNameOfHardlink(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	mtime := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	randomFile(t, filepath.Join(src, "b.txt"), 4<<10, 3, 0o644, mtime)
	must(t, os.Link(filepath.Join(src, "b.txt"), filepath.Join(src, "c.txt")))
	want := fingerprint(t, src)
	root, _ := backup(t, env.Repo, src, "", format.ID{}, "p")

	dst := t.TempDir()
	out := filepath.Join(dst, src)
	must(t, os.MkdirAll(out, 0o755))
	must(t, os.WriteFile(filepath.Join(out, "b.txt"), []byte("the user's own file"), 0o600))
	userFile := fingerprint(t, out)["b.txt"]

	_, err := files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: dst, Conflict: files.ConflictSkip})
	must(t, err)
	got := fingerprint(t, out)
	if got["b.txt"] != userFile {
		t.Errorf("b.txt was changed under skip: %s", got["b.txt"])
	}
	// c.txt is its own file now (the inode's other name is the user's).
	wantC, _, _ := strings.Cut(want["c.txt"], " hardlink=")
	if got["c.txt"] != wantC {
		t.Errorf("c.txt:\n got %s\nwant %s", got["c.txt"], wantC)
	}
}
