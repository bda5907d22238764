package files

import (
	"os"

	"golang.org/x/sys/unix"
)

// openDirect opens an existing file for direct I/O (O_DIRECT: no page
// cache), or returns nil where the filesystem does not take it (tmpfs,
// some network filesystems).
func openDirect(path string) *os.File {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return f
}

// alignedBuffer is page-aligned memory, as direct I/O needs: an anonymous
// mapping, outside the Go heap.
func alignedBuffer(size int) ([]byte, error) {
	return unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
}

func freeAligned(b []byte) { unix.Munmap(b) }
