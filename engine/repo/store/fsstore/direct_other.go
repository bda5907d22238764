//go:build !linux

package fsstore

import (
	"errors"
	"os"
)

// setDirectIO refuses direct I/O outside Linux: every object is written
// through the page cache and then fsynced.
func setDirectIO(*os.File, bool) error { return errors.ErrUnsupported }
