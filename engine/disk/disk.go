// Package disk backs up and restores block devices and disk images: fixed,
// aligned blocks (so changed-block tracking maps onto them), all-zero blocks
// recorded as holes and never stored, unchanged blocks reused from the
// previous point, and sparse restores.
package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/freelist"
)

// Extent is one entry of a disk manifest: Len bytes at Offset, either a
// stored chunk (ID) or a hole. Consecutive holes are merged into one entry.
type Extent struct {
	Offset int64     `json:"offset"`
	Len    int64     `json:"len"`
	ID     format.ID `json:"id,omitzero"`
	Hole   bool      `json:"hole,omitempty"`
}

// Meta is stored in a disk manifest's root.
type Meta struct {
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	BlockSize int    `json:"block_size"`
	// ReadBytes is what this backup read from the source; Changed says
	// whether it read only changed areas.
	ReadBytes int64 `json:"read_bytes"`
	Changed   bool  `json:"changed_only"`
}

// CaptureOptions describe one disk backup.
type CaptureOptions struct {
	Name      string
	Source    io.ReaderAt
	Size      int64
	BlockSize int
	// Changed, when not nil, lists the only areas that may differ from
	// Parent (changed-block tracking); every other block is taken from
	// Parent without being read. Without a Parent, Changed lists the
	// allocated areas (CBT's "*"), and every other block is a hole. Nil
	// reads the whole disk.
	Changed []chunker.Extent
	// Parent is the previous point's root.
	Parent  format.ID
	Workers int
}

// segmentBlocks is how many blocks one worker takes at a time: large
// enough to amortize a dedup round trip, small enough to spread a disk
// over all cores. Each worker holds that many blocks (8 MiB at the default
// block size) for the whole capture: 16 cost 32 MiB more resident memory
// at four workers, and no CPU time measured.
const segmentBlocks = 8

// Capture backs up a disk into w and returns its manifest root.
func Capture(ctx context.Context, w repo.Sink, r repo.Source, o CaptureOptions) (format.ID, Meta, error) {
	if o.BlockSize == 0 {
		o.BlockSize = chunker.DefaultBlockSize
	}
	if err := chunker.ValidateBlockSize(o.BlockSize); err != nil {
		return format.ID{}, Meta{}, err
	}
	workers := o.Workers
	if workers <= 0 {
		// Twice the cores: workers spend part of their time waiting on
		// dedup round trips and reads, and the spare ones fill that time.
		workers = 2 * runtime.GOMAXPROCS(0)
	}
	meta := Meta{Name: o.Name, Size: o.Size, BlockSize: o.BlockSize, Changed: o.Changed != nil}
	var parent *parentMap
	if o.Changed != nil && !o.Parent.IsZero() {
		var err error
		if parent, err = loadParent(ctx, r, o.Parent, o.BlockSize); err != nil {
			return format.ID{}, Meta{}, err
		}
		if parent.size != o.Size || parent.blockSize != o.BlockSize {
			return format.ID{}, Meta{}, ErrGeometryChanged
		}
	}
	changed, err := chunker.AlignExtents(orAll(o.Changed, o.Size), o.Size, o.BlockSize)
	if err != nil {
		return format.ID{}, Meta{}, err
	}

	bs := int64(o.BlockSize)
	nseg := (o.Size + bs*segmentBlocks - 1) / (bs * segmentBlocks)
	results := make([]chan []Extent, nseg)
	for i := range results {
		results[i] = make(chan []Extent, 1)
	}
	g, gctx := errgroup.WithContext(ctx)
	next := make(chan int64, workers)
	g.Go(func() error {
		defer close(next)
		for s := int64(0); s < nseg; s++ {
			select {
			case next <- s:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	var readBytes = make([]int64, nseg)
	for range workers {
		g.Go(func() error {
			seg := takeSegmentBuffer(o.BlockSize)
			defer segmentBuffers.Put(seg)
			for s := range next {
				start := s * bs * segmentBlocks
				end := min(o.Size, start+bs*segmentBlocks)
				exts, n, err := captureSegment(gctx, w, o.Source, o.Size, o.BlockSize, start, end, clip(changed, start, end), parent, *seg)
				if err != nil {
					return err
				}
				readBytes[s] = n
				results[s] <- exts
			}
			return nil
		})
	}
	mw := repo.NewManifest(w, "disk")
	g.Go(func() error {
		var pending *Extent
		for s := range results {
			var exts []Extent
			select {
			case exts = <-results[s]:
			case <-gctx.Done():
				return gctx.Err()
			}
			for _, e := range exts {
				if pending != nil && pending.Hole && e.Hole && pending.Offset+pending.Len == e.Offset {
					pending.Len += e.Len
					continue
				}
				if pending != nil {
					if err := mw.Add(gctx, pending); err != nil {
						return err
					}
				}
				pending = &e
			}
		}
		if pending != nil {
			return mw.Add(gctx, pending)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return format.ID{}, Meta{}, err
	}
	for _, n := range readBytes {
		meta.ReadBytes += n
	}
	root, err := mw.Close(ctx, meta)
	return root, meta, err
}

// ErrGeometryChanged means the disk's size or block size differs from the
// parent point's, so changed areas cannot be applied to it: read it whole.
var ErrGeometryChanged = errors.New("disk size or block size changed since the parent point; a full read is needed")

func orAll(x []chunker.Extent, size int64) []chunker.Extent {
	if x == nil {
		return []chunker.Extent{{Offset: 0, Length: size}}
	}
	return x
}

// clip returns the parts of aligned extents inside [start, end).
func clip(exts []chunker.Extent, start, end int64) []chunker.Extent {
	var out []chunker.Extent
	for _, e := range exts {
		s, t := max(e.Offset, start), min(e.End(), end)
		if s < t {
			out = append(out, chunker.Extent{Offset: s, Length: t - s})
		}
	}
	return out
}

// captureSegment reads the changed blocks of one segment and takes the
// others from the parent, returning the segment's extents in order. Data
// blocks are read straight into seg (room for segmentBlocks blocks), one
// after the other, and stay there until their dedup round trip: a hole
// read is overwritten by the next block.
func captureSegment(ctx context.Context, w repo.Sink, src io.ReaderAt, size int64, blockSize int, start, end int64,
	changed []chunker.Extent, parent *parentMap, seg []byte) ([]Extent, int64, error) {
	bs := int64(blockSize)
	var out []Extent
	var read int64
	var ids []format.ID
	var chunks [][]byte
	used := 0 // bytes of seg holding data blocks
	fixed, err := chunker.NewFixedExtents(src, size, blockSize, changed)
	if err != nil {
		return nil, 0, err
	}
	next, nerr := fixed.NextIn(seg[used:])
	for off := start; off < end; off += bs {
		n := min(bs, end-off)
		if nerr == nil && next.Offset == off {
			read += int64(next.Length)
			if next.Hole {
				out = append(out, Extent{Offset: off, Len: n, Hole: true})
			} else {
				used += len(next.Data)
				id := w.Hash(next.Data)
				ids = append(ids, id)
				chunks = append(chunks, next.Data)
				out = append(out, Extent{Offset: off, Len: n, ID: id})
			}
			next, nerr = fixed.NextIn(seg[used:])
			continue
		}
		if parent == nil {
			// Not allocated (Changed without a parent): never written, so zero.
			out = append(out, Extent{Offset: off, Len: n, Hole: true})
			continue
		}
		out = append(out, parent.block(off, n))
	}
	if nerr != nil && nerr != io.EOF {
		return nil, 0, nerr
	}
	if len(ids) > 0 {
		if err := w.Save(ctx, format.Data, ids, chunks); err != nil {
			return nil, 0, err
		}
	}
	return out, read, nil
}

// segmentBuffers keeps capture workers' segment buffers from one disk
// backup to the next. Each worker holds its own for the whole capture, so
// a GC during the backup cannot take it away to be allocated and touched
// again; nor can one between two backups (see package freelist).
var segmentBuffers = freelist.List[*[]byte]{New: func() *[]byte { return nil }, Max: 16}

// takeSegmentBuffer returns a worker's buffer for one segment of blocks of
// blockSize bytes.
func takeSegmentBuffer(blockSize int) *[]byte {
	want := segmentBlocks * blockSize
	if b := segmentBuffers.Get(); b != nil && len(*b) >= want {
		return b
	}
	b := make([]byte, want)
	return &b
}

// parentMap holds the parent point's block ids, one per block. For a 2 TiB
// disk with 1 MiB blocks that is 2 M entries (64 MiB), which bounds the
// memory of an incremental.
type parentMap struct {
	size      int64
	blockSize int
	ids       []format.ID // zero id: hole
}

func (p *parentMap) block(off, n int64) Extent {
	id := p.ids[off/int64(p.blockSize)]
	if id.IsZero() {
		return Extent{Offset: off, Len: n, Hole: true}
	}
	return Extent{Offset: off, Len: n, ID: id}
}

func loadParent(ctx context.Context, r repo.Source, root format.ID, blockSize int) (*parentMap, error) {
	meta, ids, err := ReadBlocks(ctx, r, root)
	if err != nil {
		return nil, fmt.Errorf("reading the parent point: %w", err)
	}
	p := &parentMap{size: meta.Size, blockSize: meta.BlockSize}
	if meta.BlockSize == blockSize {
		p.ids = ids
	}
	return p, nil
}

// ReadBlocks reads a disk point's manifest into one chunk id per block
// (the zero id for a hole), with its metadata: what an incremental backup
// compares with, and what replication compares two points by, without
// reading any data.
func ReadBlocks(ctx context.Context, r repo.Source, root format.ID) (Meta, []format.ID, error) {
	m, err := repo.OpenManifest(ctx, r, root)
	if err != nil {
		return Meta{}, nil, err
	}
	var meta Meta
	if err := jsonUnmarshal(m.Root.Meta, &meta); err != nil {
		return Meta{}, nil, err
	}
	if meta.BlockSize <= 0 {
		return Meta{}, nil, fmt.Errorf("disk point %s has block size %d: %w", root.Short(), meta.BlockSize, format.ErrCorrupt)
	}
	bs := int64(meta.BlockSize)
	ids := make([]format.ID, (meta.Size+bs-1)/bs)
	for {
		var e Extent
		err := m.Next(&e)
		if err == io.EOF {
			return meta, ids, nil
		}
		if err != nil {
			return Meta{}, nil, err
		}
		if e.Hole {
			continue
		}
		if e.Offset%bs != 0 || e.Offset/bs >= int64(len(ids)) {
			return Meta{}, nil, fmt.Errorf("disk point %s: a block at offset %d: %w", root.Short(), e.Offset, format.ErrCorrupt)
		}
		ids[e.Offset/bs] = e.ID
	}
}

// RestoreStats summarise a disk restore.
type RestoreStats struct {
	Bytes       int64
	WrittenData int64
}

// Restore writes a disk point to dst (a file or device opened for
// writing). A regular file is truncated to the disk's size first, so holes
// and zero blocks stay sparse.
func Restore(ctx context.Context, r repo.Source, root format.ID, dst *os.File) (RestoreStats, error) {
	m, err := repo.OpenManifest(ctx, r, root)
	if err != nil {
		return RestoreStats{}, err
	}
	var meta Meta
	if err := jsonUnmarshal(m.Root.Meta, &meta); err != nil {
		return RestoreStats{}, err
	}
	if info, err := dst.Stat(); err == nil && info.Mode().IsRegular() {
		if err := dst.Truncate(0); err != nil {
			return RestoreStats{}, err
		}
		if err := dst.Truncate(meta.Size); err != nil {
			return RestoreStats{}, err
		}
	}
	var st RestoreStats
	var ids []format.ID
	var offs []int64
	flush := func() error {
		err := r.Load(ctx, ids, func(i int, data []byte) error {
			if chunker.IsZero(data) {
				return nil
			}
			_, err := dst.WriteAt(data, offs[i])
			return err
		})
		ids, offs = ids[:0], offs[:0]
		return err
	}
	for {
		var e Extent
		err := m.Next(&e)
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, err
		}
		st.Bytes += e.Len
		if e.Hole {
			continue
		}
		st.WrittenData += e.Len
		ids = append(ids, e.ID)
		offs = append(offs, e.Offset)
		if len(ids) >= 4096 {
			if err := flush(); err != nil {
				return st, err
			}
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	return st, nil
}
