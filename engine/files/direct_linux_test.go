package files_test

import (
	"testing"
	"unsafe"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/internal/hugepages"
)

// TestWindowsAskForHugePages: a direct I/O window is page-aligned memory
// that asks the kernel for huge pages, since touching fresh 4 KiB pages
// cost a restore more than its writes. The kernel may still refuse them
// (transparent huge pages "never"); the request is what Haven controls.
func TestWindowsAskForHugePages(t *testing.T) {
	b, err := files.AlignedBuffer(files.DirectWindowBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer files.FreeAligned(b)
	if start := uintptr(unsafe.Pointer(&b[0])); start%4096 != 0 {
		t.Fatalf("window at %#x is not page-aligned", start)
	}
	advised, err := hugepages.Advised(b)
	if err != nil {
		t.Fatal(err)
	}
	if !advised {
		t.Error("the window's memory is not advised to be huge pages")
	}
}
