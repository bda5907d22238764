package vcsimlab

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// nextData is the offset of the first byte at or after off that the file
// system holds data for, skipping holes without reading them, as VMFS
// answers "*" from its allocation map; ok is false past the last data.
func nextData(f *os.File, off int64) (next int64, ok bool) {
	n, err := unix.Seek(int(f.Fd()), off, unix.SEEK_DATA)
	if errors.Is(err, unix.ENXIO) {
		return 0, false
	}
	if err != nil {
		return off, true // no SEEK_DATA here: read everything
	}
	return n, true
}
