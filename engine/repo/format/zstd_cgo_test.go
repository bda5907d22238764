//go:build cgo

package format

import "testing"

// TestCgoBuildsUseLibzstd guards the speed of cgo builds: blobs must be
// compressed by libzstd there, not by the slower pure-Go fallback.
func TestCgoBuildsUseLibzstd(t *testing.T) {
	if _, ok := blobZstd.(cCodec); !ok {
		t.Fatalf("blobs are compressed by %T in a cgo build, want libzstd (cCodec)", blobZstd)
	}
}
