// Package hugepages asks the kernel to back large, long-lived buffers with
// huge pages.
//
// Why: the first touch of each fresh 4 KiB page is a page fault, and on
// the virtual machines Haven is measured on a fault costs about 12 µs,
// 3 ms per MiB: an 18 MiB pack buffer cost 50-75 ms before a byte of it
// held data, more than sealing those bytes. A 2 MiB huge page is one fault
// for 512 pages' worth, and the same buffer took 7-15 ms. Transparent huge
// pages are usually set to "madvise", so only memory that asks gets them.
//
// Advise works on memory from the Go heap, not only on mappings of its
// own: the runtime leaves its heap's huge-page setting alone (unless
// GODEBUG=disablethp=1), and the advice covers only whole huge pages
// inside the buffer, so no other object's memory is changed. When the
// buffer is freed, its memory keeps the advice for whatever the heap puts
// there next; the runtime's scavenger still returns it to the kernel
// (which splits a huge page to do so).
package hugepages

// Size is the huge page size Advise rounds to (2 MiB on x86-64 and on
// arm64 with 4 KiB pages).
const Size = 2 << 20

// Make is make([]byte, n, capacity) for a large buffer that is kept and
// reused (a pack, a chunker's window, a read run): its memory, untouched
// yet when it comes fresh from the kernel (the runtime zeroes by mapping,
// not by writing), is advised to be huge pages before anything writes it.
func Make(n, capacity int) []byte {
	b := make([]byte, n, capacity)
	Advise(b)
	return b
}
