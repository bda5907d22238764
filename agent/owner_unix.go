//go:build unix

package agent

import (
	"os"
	"syscall"
)

// ownerOf is the user and group that own path.
func ownerOf(path string) (uid, gid int, err error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, 0, err
	}
	return int(st.Uid), int(st.Gid), nil
}

// chown gives path to uid and gid when this process may (as root); an
// agent running as the cluster's owner owns what it makes already.
func chown(path string, uid, gid int) error {
	if os.Geteuid() != 0 {
		return nil
	}
	return os.Chown(path, uid, gid)
}
