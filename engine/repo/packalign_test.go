package repo

import (
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// TestPackBuffersAreAligned: pack buffers, new or recycled, start on a
// page, so that a filesystem store writes them with direct I/O without
// copying them. Go happens to place large allocations on pages; the
// small pack sizes here (each larger than the last, so never served by a
// recycled buffer) come from its small-object classes, which it does not.
func TestPackBuffersAreAligned(t *testing.T) {
	for _, size := range []int{1000, 1500, 2100, 2900, 3700, 5000, 6100, 7300} {
		r := &Repository{opts: Options{PackSize: size}}
		for i := range 2 {
			p := r.newPack()
			if !store.IsAligned(p.Buffer()) {
				t.Fatalf("pack buffer %d for a pack size of %d is not aligned", i, size)
			}
			r.recyclePack(p)
		}
	}
}
