//go:build !windows

package fsstore

import (
	"errors"
	"syscall"
)

var errNotDir = syscall.ENOTDIR

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

func isReadOnly(err error) bool {
	return errors.Is(err, syscall.EROFS)
}

// isTransientErrno lists the failures that can clear up by themselves: I/O
// hiccups and timeouts of network filesystems (NFS, SMB), interrupted or
// would-block calls, and exhausted process or kernel resources.
func isTransientErrno(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EIO, syscall.EINTR, syscall.EAGAIN, syscall.EBUSY, syscall.ETIMEDOUT,
		syscall.ESTALE, syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.ENOLCK:
		return true
	}
	return false
}
