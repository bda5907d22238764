//go:build !windows

package fsstore

import (
	"errors"
	"os"
	"syscall"
)

// syncDir makes a directory's entries (a renamed or created file) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		// Some filesystems (FUSE, CIFS) cannot fsync a directory; the rename is
		// then as durable as they make it, which is all that can be had.
		if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOTSUP) {
			return nil
		}
		return err
	}
	return nil
}
