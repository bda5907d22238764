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
	return fileStat{
		uid: st.Uid, gid: st.Gid,
		atimeNs: st.Atim.Nano(), mtimeNs: st.Mtim.Nano(), ctimeNs: st.Ctim.Nano(),
		inode: st.Ino, device: uint64(st.Dev), nlink: uint64(st.Nlink),
		devMajor: unix.Major(uint64(st.Rdev)), devMinor: unix.Minor(uint64(st.Rdev)),
	}, true
}
