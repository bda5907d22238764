package fsstore

import (
	"bytes"
	"errors"
	"io"
	"os"
	"syscall"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/internal/freelist"
)

// Large objects (packs) are written with direct I/O where the filesystem
// takes it: written through the page cache, tens of MiB per pack went
// into dirty pages first, and the fsync then waited for the kernel's
// writeback of them, which on the disks measured ran at a quarter of the
// disk's speed, and erratically; a direct write goes to the disk at once
// and the fsync only has the metadata and the disk's cache left to flush.
// The crash-safety contract is the same on both paths: a temporary file,
// fsynced, renamed into place, and its directory fsynced.

// directMinSize is the smallest object written with direct I/O. Smaller
// ones (manifests, keys, the config) gain nothing from it.
const directMinSize = 1 << 20

// stageSize is the aligned buffer that data which is not in aligned
// memory (a stream, a wrapped reader) passes through on its way to a
// direct write.
const stageSize = 1 << 20

var stagePool = freelist.List[*[]byte]{New: func() *[]byte {
	b := store.AlignedBytes(stageSize)
	return &b
}, Max: 16}

// directIO is how a Store writes with direct I/O; tests change it to
// exercise the fallbacks.
type directIO struct {
	// minSize is the smallest object written directly; below it, or when
	// negative, every object goes through the page cache.
	minSize int64
	// align is the alignment of direct writes (store.DirectIOAlignment).
	align int
	// set turns direct I/O on or off for a file (setDirectIO).
	set func(f *os.File, on bool) error
}

func defaultDirectIO() directIO {
	return directIO{minSize: directMinSize, align: store.DirectIOAlignment, set: setDirectIO}
}

// writeDirect writes size bytes of src into f, a new empty file, with
// direct I/O. It reports ok false, having written nothing, when f's
// filesystem (or the platform) refuses direct I/O, and then the caller
// writes through the page cache. directBytes counts what went to the disk
// directly rather than through the page cache.
func (d directIO) writeDirect(f *os.File, src *sourceReader, size int64) (n, directBytes int64, ok bool, err error) {
	if d.minSize < 0 || size < d.minSize || d.set(f, true) != nil {
		return 0, 0, false, nil
	}
	stage := stagePool.Get()
	defer stagePool.Put(stage)
	w := &directWriter{f: f, d: d, direct: true, stage: (*stage)[:0]}
	// A *bytes.Reader (how the repository hands over a pack) gives its
	// bytes to WriteTo in one Write, so a pack in aligned memory goes to
	// the disk without being copied; anything else is read into the
	// aligned stage.
	if br, isBytes := src.r.(*bytes.Reader); isBytes && int64(br.Len()) == size {
		if err := src.ctx.Err(); err != nil {
			src.err = err
			return 0, 0, true, err
		}
		n, err = br.WriteTo(w)
	} else {
		n, err = w.ReadFrom(io.LimitReader(src, size))
	}
	if err == nil {
		err = w.finish()
	}
	return n, w.directBytes, true, err
}

// directWriter writes a file with O_DIRECT: whole aligned blocks straight
// from the caller's memory when it is aligned, through the aligned stage
// otherwise, and the last partial block through the page cache, after
// turning O_DIRECT off (direct writes must be whole blocks).
type directWriter struct {
	f           *os.File
	d           directIO
	direct      bool   // O_DIRECT is on
	stage       []byte // aligned; holds the bytes not yet written
	directBytes int64
}

func (w *directWriter) aligned(p []byte) bool {
	if w.d.align == store.DirectIOAlignment {
		return store.IsAligned(p)
	}
	return true // a test's alignment of 1
}

// Write implements io.Writer.
func (w *directWriter) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		rest := p[done:]
		if len(w.stage) == 0 && len(rest) >= w.d.align && w.aligned(rest) {
			whole := len(rest) - len(rest)%w.d.align
			if err := w.out(rest[:whole]); err != nil {
				return done, err
			}
			done += whole
			continue
		}
		k := copy(w.stage[len(w.stage):cap(w.stage)], rest)
		w.stage = w.stage[:len(w.stage)+k]
		done += k
		if len(w.stage) == cap(w.stage) {
			if err := w.out(w.stage); err != nil {
				return done, err
			}
			w.stage = w.stage[:0]
		}
	}
	return done, nil
}

// ReadFrom implements io.ReaderFrom, reading straight into the stage.
func (w *directWriter) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for {
		k, err := r.Read(w.stage[len(w.stage):cap(w.stage)])
		w.stage = w.stage[:len(w.stage)+k]
		total += int64(k)
		if len(w.stage) == cap(w.stage) {
			if err := w.out(w.stage); err != nil {
				return total, err
			}
			w.stage = w.stage[:0]
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// finish writes what the stage still holds: its whole blocks directly,
// and the partial last block through the page cache.
func (w *directWriter) finish() error {
	whole := len(w.stage) - len(w.stage)%w.d.align
	if whole > 0 {
		if err := w.out(w.stage[:whole]); err != nil {
			return err
		}
	}
	tail := w.stage[whole:]
	w.stage = w.stage[:0]
	if len(tail) == 0 {
		return nil
	}
	if err := w.buffered(); err != nil {
		return err
	}
	_, err := w.f.Write(tail)
	return err
}

// out writes whole blocks, directly unless direct I/O was given up. A
// filesystem that took O_DIRECT but refuses the write itself (EINVAL:
// an alignment it does not accept) gets the rest through the page cache.
func (w *directWriter) out(p []byte) error {
	if w.direct {
		k, err := w.f.Write(p)
		w.directBytes += int64(k)
		if err == nil || !errors.Is(err, syscall.EINVAL) {
			return err
		}
		if err := w.buffered(); err != nil {
			return err
		}
		p = p[k:]
	}
	_, err := w.f.Write(p)
	return err
}

// buffered turns O_DIRECT off for the rest of the file.
func (w *directWriter) buffered() error {
	if !w.direct {
		return nil
	}
	if err := w.d.set(w.f, false); err != nil {
		return err
	}
	w.direct = false
	return nil
}
