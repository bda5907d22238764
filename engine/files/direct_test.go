package files_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// TestLargeFilesRestoreDirectly: a large file, restored in direct I/O
// windows, comes back byte for byte, with its hole still a hole and its
// unaligned tail in place, both when every window is assembled in memory
// and when the windows allowed are too few and most spill to the page
// cache (read back instead).
func TestLargeFilesRestoreDirectly(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("direct I/O restores are Linux's")
	}
	env := repotest.New(t, repo.Options{})
	src := t.TempDir()
	const hole, zeros = 10 << 20, 3 << 20
	size := sparseLargeFile(t, filepath.Join(src, "big.img"), hole, zeros)
	randomFile(t, filepath.Join(src, "small.txt"), 4<<10, 9, 0o644, time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC))
	want := fingerprint(t, src)
	root, _ := backup(t, env.Repo, src, "", format.ID{}, "p")

	for _, windows := range []int{8, 1} {
		t.Run(fmt.Sprintf("%d windows", windows), func(t *testing.T) {
			var written, spilled atomic.Int64
			defer files.SetDirectWindows(windows, func(w bool) {
				if w {
					written.Add(1)
				} else {
					spilled.Add(1)
				}
			})()
			dst := t.TempDir()
			st, err := files.Restore(context.Background(), env.Repo, root, files.RestoreOptions{Target: dst})
			must(t, err)
			if st.Files != 2 {
				t.Fatalf("restored %d files, want 2", st.Files)
			}
			got := fingerprint(t, filepath.Join(dst, src))
			for name, w := range want {
				if got[name] != w {
					t.Errorf("%s:\n got %s\nwant %s", name, got[name], w)
				}
			}
			if written.Load() == 0 {
				t.Error("no window of big.img was written directly")
			}
			if windows == 1 && spilled.Load() == 0 {
				t.Error("with one window allowed, none spilled")
			}
			fi, err := os.Stat(filepath.Join(dst, src, "big.img"))
			must(t, err)
			if fi.Size() != size {
				t.Errorf("big.img is %d bytes, want %d", fi.Size(), size)
			}
			if used := fi.Sys().(*syscall.Stat_t).Blocks * 512; used > size-hole-zeros+1<<20 {
				t.Errorf("big.img takes %d bytes on disk: its %d-byte hole or its %d bytes of zeros were written", used, hole, zeros)
			}
		})
	}
}

// sparseLargeFile writes random data, a hole, zeros written out (stored as
// zero chunks), and random data again, ending off a block boundary; it
// returns the size.
func sparseLargeFile(t *testing.T, path string, hole int64, zeros int) int64 {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	var off int64
	for _, part := range [][]byte{random(13<<20 + 17), nil, make([]byte, zeros), random(19<<20 + 1234)} {
		if part == nil {
			off += hole
			continue
		}
		_, err := f.WriteAt(part, off)
		must(t, err)
		off += int64(len(part))
	}
	must(t, f.Close())
	mtime := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	must(t, os.Chtimes(path, mtime, mtime))
	return off
}
