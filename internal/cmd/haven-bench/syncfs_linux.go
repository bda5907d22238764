package main

import (
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// syncBatch ends a batch of restored files as engine/files does on
// Linux: one syncfs of the filesystem they are on (one out directory).
func syncBatch(files []*os.File) error {
	rc, err := files[0].SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Syncfs(int(fd)) }); err != nil {
		return err
	}
	return serr
}

// dropCached drops the files under dir from the page cache (their pages
// are clean once synced), so the next read of them goes to the disk.
func dropCached(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	})
}

// floorBlock is a page-aligned buffer (an anonymous mapping), as direct
// I/O needs, and how to release it.
func floorBlock(size int) ([]byte, func(), error) {
	buf, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return nil, nil, err
	}
	return buf, func() { unix.Munmap(buf) }, nil
}

// floorOpenFlags opens the floor's files for direct I/O (no page cache, so
// no copy and no writeback to wait for) where the filesystem under dir
// takes it, and through the page cache elsewhere, as how says.
func floorOpenFlags(dir string) (flags int, how string) {
	flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	probe := filepath.Join(dir, "probe")
	f, err := os.OpenFile(probe, flags|unix.O_DIRECT, 0o600)
	if err != nil {
		return flags, "page cache (no direct I/O here)"
	}
	f.Close()
	os.Remove(probe)
	return flags | unix.O_DIRECT, "direct I/O"
}
