package store

import "unsafe"

// DirectIOAlignment is the memory, length and file-offset alignment that
// direct I/O (O_DIRECT) needs on every filesystem Haven writes to: one
// page, which is also a multiple of every disk's logical block size.
const DirectIOAlignment = 4096

// AlignedBytes returns a slice of n zero bytes that starts on a
// DirectIOAlignment boundary, so that a filesystem store can hand it to
// direct I/O as it is instead of copying it into aligned memory first.
// Go allocates large objects page-aligned already, so this usually costs
// nothing; the padding is there because the language does not promise it.
func AlignedBytes(n int) []byte {
	b := make([]byte, n)
	if n == 0 || IsAligned(b) {
		return b
	}
	b = make([]byte, n+DirectIOAlignment-1)
	skip := (DirectIOAlignment - int(uintptr(unsafe.Pointer(unsafe.SliceData(b)))%DirectIOAlignment)) % DirectIOAlignment
	return b[skip : skip+n : skip+n]
}

// IsAligned reports whether b's memory (even when b is empty, if it has
// capacity) starts on a DirectIOAlignment boundary.
func IsAligned(b []byte) bool {
	return cap(b) > 0 && uintptr(unsafe.Pointer(unsafe.SliceData(b)))%DirectIOAlignment == 0
}
