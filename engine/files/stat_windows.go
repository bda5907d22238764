package files

import (
	"io/fs"
	"syscall"
)

// statOf reads what Windows reports without opening the file: times and
// attributes. There is no inode, link count or change time here, so an
// incremental backup reuses a file by size and modification time, and
// hardlinks are backed up as separate files (their content deduplicates).
func statOf(info fs.FileInfo) (fileStat, bool) {
	d, ok := info.Sys().(*syscall.Win32FileAttributeData)
	if !ok {
		return fileStat{}, false
	}
	return fileStat{
		atimeNs: d.LastAccessTime.Nanoseconds(), mtimeNs: d.LastWriteTime.Nanoseconds(),
		nlink: 1, winAttrs: d.FileAttributes,
	}, true
}
