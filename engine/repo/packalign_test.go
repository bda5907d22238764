package repo

import (
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// TestPackBuffersAreAligned: pack buffers start on a page, so that a
// filesystem store writes them with direct I/O without copying them. Go
// happens to place large allocations on pages; the small capacities here
// come from its small-object classes, which it does not.
func TestPackBuffersAreAligned(t *testing.T) {
	for _, capacity := range []int{1000, 1500, 2100, 2900, 3700, 5000, 6100, 7300, 18 << 20} {
		if b := newPackBuffer(capacity); !store.IsAligned(b) || cap(b) != capacity || len(b) != 0 {
			t.Fatalf("pack buffer of capacity %d: aligned %v, len %d, cap %d", capacity, store.IsAligned(b), len(b), cap(b))
		}
	}
}
