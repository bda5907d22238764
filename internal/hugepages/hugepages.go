// Package hugepages asks the kernel to back large buffers of Haven's own
// mappings with huge pages: the restore's direct I/O windows.
//
// Why: the first touch of each fresh 4 KiB page is a page fault, and on
// the virtual machines Haven is measured on a fault costs about 12 µs,
// 3 ms per MiB. A 2 MiB huge page is one fault for 512 pages' worth: 128
// MiB took 7-10 ms to touch in huge pages a process had used before,
// against 390-420 ms in 4 KiB pages. Transparent huge pages are usually
// set to "madvise", so only memory that asks gets them.
//
// Buffers on the Go heap could ask too (the runtime leaves its heap's
// setting alone), and halved a full backup's faults; but a scale-2 full
// backup then took 10% more CPU in six alternated runs of six, and a
// restore was no faster, so Haven's heap buffers do not ask.
package hugepages

// Size is the huge page size Advise rounds to (2 MiB on x86-64 and on
// arm64 with 4 KiB pages).
const Size = 2 << 20
