//go:build !windows

package fsstore

import (
	"errors"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

func TestClassify(t *testing.T) {
	pathErr := func(errno syscall.Errno) error {
		return &fs.PathError{Op: "write", Path: "/repo/packs/x", Err: errno}
	}
	for _, tc := range []struct {
		err       error
		missing   bool
		notFound  bool
		transient bool
		text      string
	}{
		{err: pathErr(syscall.ENOENT), missing: true, notFound: true},
		{err: pathErr(syscall.ENOTDIR), missing: true, notFound: true},
		{err: pathErr(syscall.ENOENT)},
		{err: pathErr(syscall.ENOSPC), text: "file system is full"},
		{err: pathErr(syscall.EACCES), text: "permission denied"},
		{err: pathErr(syscall.EROFS), text: "read-write"},
		{err: pathErr(syscall.EIO), transient: true},
		{err: pathErr(syscall.ETIMEDOUT), transient: true},
		{err: pathErr(syscall.EMFILE), transient: true},
		{err: pathErr(syscall.EINVAL)},
	} {
		got := classify("fsstore: put \"packs/x\"", tc.err, tc.missing)
		if errors.Is(got, store.ErrNotFound) != tc.notFound || store.IsTransient(got) != tc.transient ||
			!tc.notFound && !errors.Is(got, tc.err) || !strings.Contains(got.Error(), tc.text) {
			t.Errorf("classify(%v, %v) = %v (transient %v)", tc.err, tc.missing, got, store.IsTransient(got))
		}
	}
}
