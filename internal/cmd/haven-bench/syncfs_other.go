//go:build !linux

package main

import "os"

// syncBatch ends a batch of restored files as engine/files does where
// there is no syncfs: an fsync of each.
func syncBatch(files []*os.File) error {
	for _, f := range files {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return nil
}
