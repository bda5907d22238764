package fsstore

import (
	"errors"
	"syscall"
)

var errNotDir = syscall.ENOTDIR

const (
	errorSharingViolation = syscall.Errno(32)
	errorLockViolation    = syscall.Errno(33)
	errorHandleDiskFull   = syscall.Errno(39)
	errorNetnameDeleted   = syscall.Errno(64)
	errorDiskFull         = syscall.Errno(112)
	errorSemTimeout       = syscall.Errno(121)
	errorWriteProtect     = syscall.Errno(19)
)

func isNoSpace(err error) bool {
	return errors.Is(err, errorDiskFull) || errors.Is(err, errorHandleDiskFull)
}

func isReadOnly(err error) bool {
	return errors.Is(err, errorWriteProtect)
}

// isTransientErrno lists the failures that can clear up by themselves: files
// briefly locked by another process (virus scanners, indexers) and dropped
// network shares.
func isTransientErrno(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case errorSharingViolation, errorLockViolation, errorNetnameDeleted, errorSemTimeout:
		return true
	}
	return false
}
