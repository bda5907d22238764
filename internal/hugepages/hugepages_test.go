//go:build linux

package hugepages_test

import (
	"testing"

	"github.com/havenbackup/terraform-provider-haven/internal/hugepages"
)

// TestMakeAsksForHugePages: a buffer from Make holding a whole huge page
// carries the advice in the kernel's record of its memory, and Make's
// length and capacity are make's; a buffer too small for a whole huge page
// is left alone.
func TestMakeAsksForHugePages(t *testing.T) {
	b := hugepages.Make(10, 8<<20)
	if len(b) != 10 || cap(b) != 8<<20 {
		t.Fatalf("Make(10, 8 MiB) gave len %d cap %d", len(b), cap(b))
	}
	advised, err := hugepages.Advised(b)
	if err != nil {
		t.Fatal(err)
	}
	if !advised {
		t.Error("an 8 MiB buffer from Make is not advised to be huge pages")
	}
	if advised, err := hugepages.Advised(make([]byte, 64<<10)); err != nil || advised {
		t.Errorf("a 64 KiB buffer: advised %v, %v; want false, no error", advised, err)
	}
}
