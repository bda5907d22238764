package files

import (
	"os"

	"golang.org/x/sys/windows"
)

// checkWritable creates and removes a probe file: Windows permissions are
// ACLs, which only the attempt itself evaluates.
func checkWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".haven-probe-*")
	if err != nil {
		return err
	}
	f.Close()
	return os.Remove(f.Name())
}

// freeBytes is the space on dir's volume this process may use.
func freeBytes(dir string) (int64, error) {
	name, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, err
	}
	var avail, total, free uint64
	if err := windows.GetDiskFreeSpaceEx(name, &avail, &total, &free); err != nil {
		return 0, err
	}
	return int64(avail), nil
}
