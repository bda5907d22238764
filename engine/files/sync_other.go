//go:build !linux

package files

import "os"

// syncFiles makes written files durable before they are renamed into
// place, one fsync per file.
func syncFiles(paths []string) error {
	for _, p := range paths {
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
