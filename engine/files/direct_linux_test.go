package files_test

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
)

// TestWindowsAskForHugePages: a direct I/O window is one mapping, aligned
// for direct I/O, that asks the kernel for huge pages (VmFlags "hg" in
// /proc/self/smaps), since touching fresh 4 KiB pages cost a restore more
// than its writes. The kernel may still refuse them (transparent huge
// pages "never"); the request is what Haven controls.
func TestWindowsAskForHugePages(t *testing.T) {
	b, err := files.AlignedBuffer(files.DirectWindowBytes)
	if err != nil {
		t.Fatal(err)
	}
	defer files.FreeAligned(b)
	start := uintptr(unsafe.Pointer(&b[0]))
	if start%4096 != 0 {
		t.Fatalf("window at %#x is not page-aligned", start)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 { // a mapping's first line
			in = lo <= start && start < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			if !strings.Contains(" "+strings.TrimPrefix(line, "VmFlags:")+" ", " hg ") {
				t.Fatalf("the window's mapping does not ask for huge pages: %s", line)
			}
			return
		}
	}
	t.Fatalf("no mapping in /proc/self/smaps holds the window at %#x", start)
}
