package main

import (
	"os"

	"golang.org/x/sys/unix"
)

// syncBatch ends a batch of restored files as engine/files does on
// Linux: one syncfs of the filesystem they are on (one out directory).
func syncBatch(files []*os.File) error {
	rc, err := files[0].SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Syncfs(int(fd)) }); err != nil {
		return err
	}
	return serr
}
