//go:build linux || darwin || freebsd

package files

import (
	"errors"
	"fmt"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"
)

// readXattrs returns a file's extended attributes, POSIX ACLs included
// on Linux (system.posix_acl_access and system.posix_acl_default are
// xattrs). A filesystem without xattr support yields none.
func readXattrs(path string, symlink bool) map[string][]byte {
	list, get := xattr.List, xattr.Get
	if symlink {
		list, get = xattr.LList, xattr.LGet
	}
	names, err := list(path)
	if err != nil || len(names) == 0 {
		return nil
	}
	out := map[string][]byte{}
	for _, name := range names {
		if val, err := get(path, name); err == nil {
			out[name] = val
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func writeXattrs(path string, symlink bool, attrs map[string][]byte) error {
	set := xattr.Set
	if symlink {
		set = xattr.LSet
	}
	var first error
	for name, val := range attrs {
		if err := set(path, name, val); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// makeSpecial creates a FIFO or a device node.
func makeSpecial(dst string, e *Entry) error {
	if e.Type == TypeFIFO {
		return unix.Mkfifo(dst, 0o600)
	}
	mode := uint32(unix.S_IFBLK)
	if e.Type == TypeCharDev {
		mode = unix.S_IFCHR
	}
	err := mknod(dst, mode|0o600, unix.Mkdev(e.DevMajor, e.DevMinor))
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%w: creating device node %d,%d needs root: %v", errNotPermitted, e.DevMajor, e.DevMinor, err)
	}
	return err
}

// setModeAndTimes applies mode, then times (last: the mode changes
// ctime, and a symlink has no mode of its own to set).
func setModeAndTimes(dst string, e *Entry) error {
	if e.Type != TypeSymlink {
		if err := unix.Chmod(dst, e.Mode); err != nil {
			return fmt.Errorf("mode: %w", err)
		}
	}
	atime := e.AtimeNs
	if atime == 0 {
		atime = e.MtimeNs
	}
	ts := []unix.Timespec{unix.NsecToTimespec(atime), unix.NsecToTimespec(e.MtimeNs)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("times: %w", err)
	}
	return nil
}
