package hugepages

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Advise asks for huge pages under the whole huge pages of b's capacity
// (none, and no system call, when it holds none whole).
// Call it before b is first written (a page already touched stays small
// until the kernel's background collapse, if ever). It is only advice:
// any error (a kernel without transparent huge pages) is ignored.
func Advise(b []byte) {
	if begin, end := wholePages(b); begin < end {
		unix.Madvise(b[:cap(b)][begin:end], unix.MADV_HUGEPAGE) //nolint:errcheck // advice only
	}
}

// wholePages is where the whole huge pages of b's capacity begin and end,
// as offsets into it (begin >= end when it holds none).
func wholePages(b []byte) (begin, end int) {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	first := (p + Size - 1) &^ (Size - 1)
	last := (p + uintptr(cap(b))) &^ (Size - 1)
	return int(first - p), int(last - p)
}

// Advised reports whether the kernel holds the advice for the first whole
// huge page of b's capacity (its mapping's VmFlags in /proc/self/smaps
// include "hg"); false when b holds no whole huge page.
func Advised(b []byte) (bool, error) {
	first, end := wholePages(b)
	if first >= end {
		return false, nil
	}
	begin := uintptr(unsafe.Pointer(unsafe.SliceData(b))) + uintptr(first)
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		var lo, hi uintptr
		if n, _ := fmt.Sscanf(line, "%x-%x", &lo, &hi); n == 2 { // a mapping's first line
			in = lo <= begin && begin < hi
			continue
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return slices.Contains(strings.Fields(strings.TrimPrefix(line, "VmFlags:")), "hg"), nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, err
	}
	return false, fmt.Errorf("no mapping in /proc/self/smaps holds %#x", begin)
}
