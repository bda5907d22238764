package postgres

import (
	"errors"
	"os"
	"os/exec"

	"golang.org/x/sys/windows"
)

// processAlive tells whether a process with this pid exists.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}

// freeBytes is the room the caller has on dir's volume.
func freeBytes(dir string) (int64, error) {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, err
	}
	var avail uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, nil, nil); err != nil {
		return 0, err
	}
	return int64(avail), nil
}

// fileOwner has no meaning here: Windows files carry security
// descriptors, not owning user and group numbers.
func fileOwner(path string) (uid, gid int, err error) {
	return 0, 0, errors.ErrUnsupported
}

// runAs leaves cmd as it is: Windows services run the cluster as their
// own account.
func runAs(*exec.Cmd, int, int) {}
