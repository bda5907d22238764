//go:build !linux

package files

import (
	"errors"
	"os"
)

// openDirect: direct I/O is used on Linux only; elsewhere every file is
// written through the page cache and read back.
func openDirect(string) *os.File { return nil }

func alignedBuffer(int) ([]byte, error) { return nil, errors.New("no direct I/O on this platform") }

func freeAligned([]byte) {}
