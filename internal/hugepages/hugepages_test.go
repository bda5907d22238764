//go:build linux

package hugepages_test

import (
	"testing"

	"golang.org/x/sys/unix"

	"github.com/havenbackup/terraform-provider-haven/internal/hugepages"
)

// TestAdviseAsksForHugePages: a mapping advised by Advise carries the
// advice in the kernel's record of its memory; one too small to hold a
// whole huge page is left alone, and an unadvised one has none.
func TestAdviseAsksForHugePages(t *testing.T) {
	mapping := func(n int) []byte {
		b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Munmap(b) })
		return b
	}
	b := mapping(8 << 20)
	if advised, err := hugepages.Advised(b); err != nil || advised {
		t.Fatalf("a fresh mapping: advised %v, %v; want false, no error", advised, err)
	}
	hugepages.Advise(b)
	if advised, err := hugepages.Advised(b); err != nil || !advised {
		t.Errorf("an advised 8 MiB mapping: advised %v, %v; want true", advised, err)
	}
	small := mapping(64 << 10)
	hugepages.Advise(small)
	if advised, err := hugepages.Advised(small); err != nil || advised {
		t.Errorf("a 64 KiB mapping: advised %v, %v; want false, no error", advised, err)
	}
}
