//go:build !linux

package main

import "os"

// syncBatch ends a batch of restored files as engine/files does where
// there is no syncfs: an fsync of each.
func syncBatch(files []*os.File) error {
	for _, f := range files {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return nil
}

// dropCached does nothing where there is no posix_fadvise: the restores
// may then read their repositories from the page cache.
func dropCached(string) error { return nil }

// floorBlock is the floor's write buffer.
func floorBlock(size int) ([]byte, func(), error) { return make([]byte, size), func() {}, nil }

// floorOpenFlags writes the floor through the page cache: direct I/O is
// a Linux flag.
func floorOpenFlags(string) (flags int, how string) {
	return os.O_WRONLY | os.O_CREATE | os.O_TRUNC, "page cache"
}
