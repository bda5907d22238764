package files

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// readXattrs returns a file's extended attributes, POSIX ACLs included
// (system.posix_acl_access and system.posix_acl_default are xattrs). A
// filesystem without xattr support yields none.
func readXattrs(path string, symlink bool) map[string][]byte {
	list, get := unix.Listxattr, unix.Getxattr
	if symlink {
		list, get = unix.Llistxattr, unix.Lgetxattr
	}
	size, err := list(path, nil)
	if err != nil || size <= 0 {
		return nil
	}
	buf := make([]byte, size)
	if size, err = list(path, buf); err != nil {
		return nil
	}
	out := map[string][]byte{}
	for _, name := range bytes.Split(buf[:size], []byte{0}) {
		if len(name) == 0 {
			continue
		}
		n, err := get(path, string(name), nil)
		if err != nil {
			continue
		}
		val := make([]byte, n)
		if n, err = get(path, string(name), val); err != nil {
			continue
		}
		out[string(name)] = val[:n]
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

func writeXattrs(path string, symlink bool, attrs map[string][]byte) error {
	set := unix.Setxattr
	if symlink {
		set = unix.Lsetxattr
	}
	var first error
	for name, val := range attrs {
		if err := set(path, name, val, 0); err != nil && first == nil {
			first = err
		}
	}
	return first
}
