//go:build !linux

package hugepages

// Advise does nothing: transparent huge pages are Linux's.
func Advise([]byte) {}

// Advised is false: there is no advice to hold.
func Advised([]byte) (bool, error) { return false, nil }
