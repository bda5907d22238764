package files

import "syscall"

func statTimes(st *syscall.Stat_t) (atime, mtime, ctime syscall.Timespec) {
	return st.Atim, st.Mtim, st.Ctim
}
