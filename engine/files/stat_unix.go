//go:build linux || darwin || freebsd

package files

import (
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

func statOf(info fs.FileInfo) (fileStat, bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fileStat{}, false
	}
	atime, mtime, ctime := statTimes(st)
	return fileStat{
		uid: st.Uid, gid: st.Gid,
		atimeNs: atime.Nano(), mtimeNs: mtime.Nano(), ctimeNs: ctime.Nano(),
		inode: uint64(st.Ino), device: uint64(st.Dev), nlink: uint64(st.Nlink),
		devMajor: unix.Major(uint64(st.Rdev)), devMinor: unix.Minor(uint64(st.Rdev)),
	}, true
}
