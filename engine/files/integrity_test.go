package files_test

import (
	"context"
	"errors"
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
	k      int
	meddle func(data []byte) ([]byte, error)
}

func (m *meddlingSource) Load(ctx context.Context, ids []format.ID, fn func(int, []byte) error) error {
	var mu sync.Mutex
	n := 0
	return m.Source.Load(ctx, ids, func(i int, data []byte) error {
		mu.Lock()
		n++
		hit := n == m.k
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

// TestRestoreInterruptedMidFileIsFinishedUnderSkip stops a restore in the
// middle of a large file (the process gone, nothing cleaned up) and runs
// it again with Resume under the skip policy: the file the first run was
// writing is finished, byte for byte with its mode and mtime, while a file
// the user had at its destination before is still left alone.
func TestRestoreInterruptedMidFileIsFinishedUnderSkip(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	mtime := time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC)
	randomFile(t, filepath.Join(src, "disk.img"), 2<<20, 1, 0o640, mtime)
	randomFile(t, filepath.Join(src, "mine.txt"), 4<<10, 2, 0o644, mtime)
	want := fingerprint(t, src)
	root, _ := backup(t, env.Repo, src, "", format.ID{}, "p")

	dst := t.TempDir()
	out := filepath.Join(dst, src)
	must(t, os.MkdirAll(out, 0o755))
	must(t, os.WriteFile(filepath.Join(out, "mine.txt"), []byte("the user's own file"), 0o600))
	userFile := fingerprint(t, out)["mine.txt"]

	// The first run dies part way through disk.img (about 250 chunks).
	ctx, cancel := context.WithCancel(context.Background())
	killed := errors.New("killed")
	cut := &meddlingSource{Source: env.Repo, k: 100, meddle: func([]byte) ([]byte, error) { cancel(); return nil, killed }}
	first, err := files.Restore(ctx, cut, root, files.RestoreOptions{Target: dst, Conflict: files.ConflictSkip})
	if err == nil || first.Files != 0 {
		t.Fatalf("the first run was not cut short in disk.img: %v, %+v", err, first)
	}

	second, err := files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: dst, Conflict: files.ConflictSkip, Resume: true})
	must(t, err)
	if second.Files != 1 || second.Skipped != 1 {
		t.Errorf("second run: %+v, want disk.img restored and mine.txt skipped", second)
	}
	got := fingerprint(t, out)
	if got["mine.txt"] != userFile {
		t.Errorf("the user's file was replaced: %s", got["mine.txt"])
	}
	if got["disk.img"] != want["disk.img"] {
		t.Errorf("disk.img after the resumed restore:\n got %s\nwant %s", got["disk.img"], want["disk.img"])
	}
	if l := leftovers(dst); len(l) != 0 {
		t.Errorf("temporaries left behind: %v", l)
	}
}

// TestRestoreFailsForWrongBytes: bytes that change behind the restore's
// back after it wrote them (truncated), or that were not the chunk they
// were delivered as, fail the file, and it is not put in place; the rest
// of the tree is restored.
func TestRestoreFailsForWrongBytes(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	mtime := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	const victimSize = 1 << 20
	randomFile(t, filepath.Join(src, "victim.bin"), victimSize, 3, 0o644, mtime)
	randomFile(t, filepath.Join(src, "other.txt"), 1<<10, 4, 0o644, mtime)
	want := fingerprint(t, src)
	root, _ := backup(t, env.Repo, src, "", format.ID{}, "p")

	cases := map[string]func(dst string) func([]byte) ([]byte, error){
		"truncated after writing": func(dst string) func([]byte) ([]byte, error) {
			return func(data []byte) ([]byte, error) {
				// Whatever file of the victim's size is being written loses
				// all but its first byte; the later chunks still land.
				filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
					if fi, ierr := d.Info(); err == nil && ierr == nil && fi.Mode().IsRegular() && fi.Size() == victimSize {
						os.Truncate(p, 1)
					}
					return nil
				})
				return data, nil
			}
		},
		"delivered bytes are not the chunk": func(string) func([]byte) ([]byte, error) {
			return func(data []byte) ([]byte, error) {
				bad := append([]byte(nil), data...)
				bad[len(bad)/2] ^= 0x40
				return bad, nil
			}
		},
	}
	for name, meddle := range cases {
		t.Run(name, func(t *testing.T) {
			dst := t.TempDir()
			src2 := &meddlingSource{Source: env.Repo, k: 10, meddle: meddle(dst)}
			st, err := files.Restore(context.Background(), src2, root, files.RestoreOptions{Target: dst})
			if !errors.Is(err, files.ErrIncomplete) || len(st.Failed) != 1 || !strings.HasPrefix(st.Failed[0], relName(src, "victim.bin")+": ") ||
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
