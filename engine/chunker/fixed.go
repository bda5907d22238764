package chunker

import (
	"bytes"
	"cmp"
	"fmt"
	"io"
	"slices"
)

// DefaultBlockSize is the block size of fixed-size chunking for block devices
// and VM disks. 1 MiB gives disks the same index density as files chunked
// with DefaultParams (about one row per MiB stored). Smaller blocks store
// less per small write but multiply index rows; larger ones miss zero ranges
// that are not block-sized. The package documentation has the measurement.
const DefaultBlockSize = 1 << 20

// Bounds of a fixed block size. 4 KiB is the sector/page size below which
// block-level tracking does not go; the upper bound keeps one block's buffer
// reasonable.
const (
	MinBlockSize = 4 << 10
	MaxBlockSize = 64 << 20
)

// ValidateBlockSize reports whether bs can be used for fixed-size chunking:
// a power of two between MinBlockSize and MaxBlockSize.
func ValidateBlockSize(bs int) error {
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return fmt.Errorf("chunker: block size %d must be a power of two between %d and %d", bs, MinBlockSize, MaxBlockSize)
	}
	return nil
}

// Extent is the byte range [Offset, Offset+Length) of a device, as reported by
// changed-block tracking.
type Extent struct {
	Offset int64
	Length int64
}

// End returns the offset just past the extent.
func (e Extent) End() int64 { return e.Offset + e.Length }

// AlignExtents rounds every extent out to multiples of blockSize, clips it to
// a device of size bytes (the last block may be partial), and merges extents
// that overlap or touch. The result is sorted and disjoint, so every block is
// read once. Empty extents and extents wholly past the end are dropped, since
// there is nothing to read there; negative offsets or lengths are an error.
func AlignExtents(extents []Extent, size int64, blockSize int) ([]Extent, error) {
	if err := ValidateBlockSize(blockSize); err != nil {
		return nil, err
	}
	if size < 0 {
		return nil, fmt.Errorf("chunker: negative device size %d", size)
	}
	bs := int64(blockSize)
	out := make([]Extent, 0, len(extents))
	for _, e := range extents {
		if e.Offset < 0 || e.Length < 0 {
			return nil, fmt.Errorf("chunker: invalid extent [%d, +%d)", e.Offset, e.Length)
		}
		if e.Length == 0 || e.Offset >= size {
			continue
		}
		end := size // also when Offset+Length would overflow
		if e.Length < size-e.Offset {
			end = min((e.End()+bs-1)/bs*bs, size)
		}
		start := e.Offset / bs * bs
		out = append(out, Extent{Offset: start, Length: end - start})
	}
	slices.SortFunc(out, func(a, b Extent) int { return cmp.Compare(a.Offset, b.Offset) })
	merged := out[:0]
	for _, e := range out {
		if n := len(merged); n > 0 && e.Offset <= merged[n-1].End() {
			last := &merged[n-1]
			last.Length = max(last.End(), e.End()) - last.Offset
			continue
		}
		merged = append(merged, e)
	}
	return merged, nil
}

// Fixed splits a device or disk image into blocks aligned to multiples of the
// block size, so that a block's identity depends on its position and
// changed-block tracking ranges map directly onto blocks. All-zero blocks
// come back as holes. A Fixed is not safe for concurrent use.
type Fixed struct {
	r       io.ReaderAt
	size    int64
	bs      int64
	extents []Extent // remaining work, aligned and merged
	pos     int64    // next offset inside extents[0]
	buf     []byte
	err     error
}

// NewFixed chunks all of r, which holds size bytes.
func NewFixed(r io.ReaderAt, size int64, blockSize int) (*Fixed, error) {
	return NewFixedExtents(r, size, blockSize, []Extent{{Offset: 0, Length: size}})
}

// NewFixedExtents chunks only the blocks of r that overlap extents (see
// AlignExtents), in ascending offset order. Blocks outside them are not read.
func NewFixedExtents(r io.ReaderAt, size int64, blockSize int, extents []Extent) (*Fixed, error) {
	ex, err := AlignExtents(extents, size, blockSize)
	if err != nil {
		return nil, err
	}
	f := &Fixed{r: r, size: size, bs: int64(blockSize), extents: ex}
	if len(ex) > 0 {
		f.pos = ex[0].Offset
	}
	return f, nil
}

// Next returns the next block, or io.EOF after the last one. Data is valid
// until the next call. A device shorter than its declared size gives
// io.ErrUnexpectedEOF; read errors are returned as is, and again on every
// later call.
func (f *Fixed) Next() (Chunk, error) {
	if f.buf == nil && f.err == nil && len(f.extents) > 0 {
		f.buf = make([]byte, min(f.bs, f.size))
	}
	return f.next(f.buf)
}

// NextIn is Next reading the block into buf, which must hold a whole
// block, instead of into the Fixed's own buffer: a caller that keeps
// several blocks (to look their ids up at once) reads each where it stays,
// without a copy. Data is buf's first bytes.
func (f *Fixed) NextIn(buf []byte) (Chunk, error) {
	if int64(len(buf)) < f.bs && f.err == nil && len(f.extents) > 0 {
		return Chunk{}, fmt.Errorf("chunker: a buffer of %d bytes cannot hold a block of %d", len(buf), f.bs)
	}
	return f.next(buf)
}

func (f *Fixed) next(buf []byte) (Chunk, error) {
	if f.err != nil {
		return Chunk{}, f.err
	}
	if len(f.extents) == 0 {
		return Chunk{}, io.EOF
	}
	off := f.pos
	n := int(min(f.bs, f.extents[0].End()-off))
	b := buf[:n:n]
	got, err := f.r.ReadAt(b, off)
	if got < n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		f.err = fmt.Errorf("chunker: reading block at %d: %w", off, err)
		return Chunk{}, f.err
	}
	// ReaderAt may report io.EOF alongside a full read of the last block;
	// any other error with a full read is ignored too, as the bytes are there.
	f.pos += int64(n)
	if f.pos >= f.extents[0].End() {
		f.extents = f.extents[1:]
		if len(f.extents) > 0 {
			f.pos = f.extents[0].Offset
		}
	}
	if IsZero(b) {
		return Chunk{Offset: off, Length: n, Hole: true}, nil
	}
	return Chunk{Offset: off, Length: n, Data: b}, nil
}

// zeroBlock is compared against in pieces. It is small enough to stay in cache
// next to the block being checked, and as a zero-initialised global it costs
// no memory until touched.
var zeroBlock [16 << 10]byte

// IsZero reports whether b contains only zero bytes. Data blocks usually differ
// from zero within the first few bytes, so the common non-zero case returns
// almost at once; a zero block is checked with the runtime's vectorised
// memory comparison.
func IsZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroBlock))
		if !bytes.Equal(b[:n], zeroBlock[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
