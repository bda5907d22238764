package files

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/freelist"
)

// Source is where a restore reads chunks from, and how it names them: a
// restore hashes what it wrote with Hash (the storage's keyed chunk id) and
// compares the result with the manifest before it reports a file restored.
// A local Repository is one; so is an agent's connection to the server.
//
// Load must hand fn only bytes that hash to their id: direct writes
// (direct.go) check the bytes they assembled against what arrived, not
// against the id again.
type Source interface {
	repo.Source
	Hash(data []byte) format.ID
}

// ErrWrongBytes means a restored file does not read back as the point
// holds it: something changed or lost its bytes after they were written,
// or the bytes handed to the restore were not the chunk they claimed to be.
var ErrWrongBytes = errors.New("restored bytes differ from the recovery point")

// tempName is where a file is written until it is complete, verified and
// has its metadata: a hidden name in the same directory, so the final
// rename is atomic, and the same on every attempt, so a resumed restore
// rewrites a torn file instead of leaving it behind. Nothing is ever at
// the final name unless it is whole, which is what lets a resumed restore
// under the skip policy tell a file it finished from one it was writing.
func tempName(dst string) string {
	return filepath.Join(filepath.Dir(dst), TempBase(filepath.Base(dst)))
}

// TempBase is the name a restore writes a file called base under until it
// is whole, in base's directory (restores of NAS shares use it too).
func TempBase(base string) string {
	sum := sha256.Sum256([]byte(base))
	return ".haven-restore-" + hex.EncodeToString(sum[:8])
}

var readBuffers = freelist.List[*[]byte]{New: func() *[]byte { return new([]byte) }, Max: 16}

// verifyParallelBytes is the size from which a file is read back on every
// core, a range of its chunks each: one file can be most of a restore (a
// database's 1 GiB segment files), and read back on one core it left the
// others idle at the end of its batch.
const verifyParallelBytes = 32 << 20

// verifyWritten reads a restored file back and checks it against its
// entry: its size, and the id of every stored chunk under the storage's
// id key, except those inMemory says were checked before they were
// written (nil: none were). Holes were never written (the file's size
// made them), so they are not read.
func verifyWritten(src Source, f *os.File, e *Entry, inMemory func(chunk int) bool) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != e.Size {
		return fmt.Errorf("%w: %d bytes on disk, the point holds %d", ErrWrongBytes, fi.Size(), e.Size)
	}
	var covered int64
	for _, c := range e.Chunks {
		covered += c.Len
	}
	if covered != e.Size {
		return fmt.Errorf("%w: the manifest's chunks cover %d bytes of %d", ErrWrongBytes, covered, e.Size)
	}
	parts := 1
	if e.Size >= verifyParallelBytes {
		parts = runtime.GOMAXPROCS(0)
	}
	if parts == 1 {
		return verifyChunks(src, f, e.Chunks, 0, 0, inMemory)
	}
	// Ranges of about equal bytes, each on its own goroutine.
	var g errgroup.Group
	per := e.Size/int64(parts) + 1
	first, off, rangeStart := 0, int64(0), int64(0)
	for i, c := range e.Chunks {
		off += c.Len
		if off-rangeStart >= per || i == len(e.Chunks)-1 {
			chunks, at, index := e.Chunks[first:i+1], rangeStart, first
			g.Go(func() error { return verifyChunks(src, f, chunks, at, index, inMemory) })
			first, rangeStart = i+1, off
		}
	}
	return g.Wait()
}

// verifyChunks checks chunks read back from f, the first (the entry's
// chunk number index) at offset off.
func verifyChunks(src Source, f *os.File, chunks []ChunkRef, off int64, index int, inMemory func(int) bool) error {
	bp := readBuffers.Get()
	defer readBuffers.Put(bp)
	for i, c := range chunks {
		if !c.Hole && (inMemory == nil || !inMemory(index+i)) {
			if int64(cap(*bp)) < c.Len {
				*bp = make([]byte, c.Len)
			}
			buf := (*bp)[:c.Len]
			if _, err := io.ReadFull(io.NewSectionReader(f, off, c.Len), buf); err != nil {
				return fmt.Errorf("reading back bytes %d-%d: %w", off, off+c.Len, err)
			}
			if err := checkChunk(src, buf, c, off); err != nil {
				return err
			}
		}
		off += c.Len
	}
	return nil
}

// checkChunk checks that data, the bytes at off, are chunk c.
func checkChunk(src Source, data []byte, c ChunkRef, off int64) error {
	if got := src.Hash(data); got != c.ID {
		return fmt.Errorf("%w: bytes %d-%d hash to %s, the point has chunk %s", ErrWrongBytes, off, off+c.Len, got.Short(), c.ID)
	}
	return nil
}

// verifyPath is verifyWritten for a file by name.
func verifyPath(src Source, path string, e *Entry) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return verifyWritten(src, f, e, nil)
}
