package fsstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// setDirectIO turns O_DIRECT on or off for an open file. Linux lets
// fcntl(F_SETFL) change it at any time, and refuses to turn it on (EINVAL)
// on a filesystem that cannot do direct I/O.
func setDirectIO(f *os.File, on bool) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	err = rc.Control(func(fd uintptr) {
		flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		if err != nil {
			opErr = err
			return
		}
		if on {
			flags |= unix.O_DIRECT
		} else {
			flags &^= unix.O_DIRECT
		}
		_, opErr = unix.FcntlInt(fd, unix.F_SETFL, flags)
	})
	if err != nil {
		return err
	}
	return opErr
}
