package disk_test

import (
	"context"
	"encoding/binary"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/disk"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// noiseDisk is a disk image of pseudo-random bytes made up as they are
// read, so that a test can back up a large disk without holding or writing
// it: every 8-byte word is a hash of its offset and the seed.
type noiseDisk struct{ seed uint64 }

func (d noiseDisk) ReadAt(b []byte, off int64) (int, error) {
	var word [8]byte
	for i := range b {
		p := uint64(off) + uint64(i)
		if i == 0 || p%8 == 0 {
			z := d.seed ^ (p/8)*0x9e3779b97f4a7c15
			z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
			z = (z ^ z>>27) * 0x94d049bb133111eb
			binary.LittleEndian.PutUint64(word[:], z^z>>31)
		}
		b[i] = word[p%8]
	}
	return len(b), nil
}

// TestCaptureAllocationsDoNotGrowWithTheDisk backs up a small and a four
// times larger disk of new data and compares the bytes each capture
// allocated: buffers are the workers' own for the whole capture and blocks
// are read where they wait for their dedup round trip, so the larger disk
// may allocate only for its manifest and index rows, not for its blocks.
// The GC is off while the captures run, so pooled buffers stay pooled and
// the count is exact.
func TestCaptureAllocationsDoNotGrowWithTheDisk(t *testing.T) {
	// A budget of its own, which one writer spends whole (a pack filled,
	// one uploaded), so that no capture but the first allocates a pack
	// buffer.
	env := repotest.New(t, repo.Options{Uploads: 1, PackBuffers: 2})
	r := env.Repo
	ctx := context.Background()
	capture := func(seed uint64, size int64) uint64 {
		t.Helper()
		w, err := r.NewWriter(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort(ctx)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		if _, _, err := disk.Capture(ctx, w, r, disk.CaptureOptions{Name: "d", Source: noiseDisk{seed}, Size: size}); err != nil {
			t.Fatal(err)
		}
		runtime.ReadMemStats(&after)
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		return after.TotalAlloc - before.TotalAlloc
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	const small, large = 32 << 20, 128 << 20
	capture(1, small) // fills the pools
	// TotalAlloc is the whole process's: the database pool and other
	// background goroutines allocate now and then, more under load. The
	// least of three captures of each size is the capture's own.
	least := func(seed uint64, size int64) uint64 {
		m := capture(seed, size)
		for i := uint64(1); i < 3; i++ {
			m = min(m, capture(seed+10*i, size))
		}
		return m
	}
	a := least(2, small)
	b := least(3, large)
	perBlock := (float64(b) - float64(a)) / float64((large-small)/chunker.DefaultBlockSize)
	t.Logf("a %d MiB disk allocated %.1f MiB, a %d MiB disk %.1f MiB: %.0f bytes per extra block",
		small>>20, float64(a)/(1<<20), large>>20, float64(b)/(1<<20), perBlock)
	// A block's manifest entry, index row, ids and dedup query take some
	// KiB; a buffer per segment (8 blocks) takes 128 KiB per block, and a
	// copy or a buffer per block takes a whole block.
	const most = chunker.DefaultBlockSize / 32
	if perBlock > most {
		t.Errorf("%.0f bytes allocated per extra block of the larger disk, want at most %d", perBlock, most)
	}
}
