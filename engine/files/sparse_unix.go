//go:build linux || darwin || freebsd

package files

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// minHole is the smallest hole worth recording; smaller gaps are read as
// data (they cost less than an extra manifest entry).
const minHole = 64 << 10

// dataExtents maps a file's data and holes with SEEK_DATA/SEEK_HOLE, so a
// sparse file's holes are neither read nor stored. Filesystems without
// support report one data extent, which is always correct.
func dataExtents(f *os.File, size int64) ([]extent, error) {
	if size == 0 {
		return nil, nil
	}
	fd := int(f.Fd())
	var out []extent
	add := func(x extent) {
		if n := len(out); n > 0 && out[n-1].hole == x.hole {
			out[n-1].length += x.length
			return
		}
		out = append(out, x)
	}
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) { // only a hole remains
			data = size
		} else if err != nil {
			return []extent{{offset: 0, length: size}}, nil
		}
		data = min(data, size)
		if data > off {
			if data-off >= minHole {
				add(extent{offset: off, length: data - off, hole: true})
			} else {
				add(extent{offset: off, length: data - off})
			}
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return []extent{{offset: 0, length: size}}, nil
		}
		hole = min(hole, size)
		add(extent{offset: data, length: hole - data})
		off = hole
	}
	if _, err := f.Seek(0, 0); err != nil {
		return nil, err
	}
	return out, nil
}

// nextHole is where the first hole at or after off starts (the file's
// size when there is none, or on a filesystem that does not report holes).
func nextHole(f *os.File, off int64) (int64, error) {
	return unix.Seek(int(f.Fd()), off, unix.SEEK_HOLE)
}
