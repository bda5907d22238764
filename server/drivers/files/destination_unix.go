//go:build linux || darwin || freebsd

package files

import "golang.org/x/sys/unix"

// checkWritable asks whether this process may create entries in dir.
func checkWritable(dir string) error { return unix.Access(dir, unix.W_OK|unix.X_OK) }

// freeBytes is the space in dir's filesystem this process may use.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
