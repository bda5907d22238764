package dr

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/internal/freelist"
)

// SnapshotReaderAPI is the part of the EBS direct API client a failback
// reads through (*ebs.Client is one).
type SnapshotReaderAPI interface {
	ListSnapshotBlocks(ctx context.Context, in *ebs.ListSnapshotBlocksInput, opts ...func(*ebs.Options)) (*ebs.ListSnapshotBlocksOutput, error)
	ListChangedBlocks(ctx context.Context, in *ebs.ListChangedBlocksInput, opts ...func(*ebs.Options)) (*ebs.ListChangedBlocksOutput, error)
	GetSnapshotBlock(ctx context.Context, in *ebs.GetSnapshotBlockInput, opts ...func(*ebs.Options)) (*ebs.GetSnapshotBlockOutput, error)
}

// Snapshot reads an EBS snapshot (of a failed-over instance's volume)
// with the EBS direct APIs, as the disk a failback captures: a failback
// backs the snapshot up into the repository as a disk point (disk.Capture
// with Snapshot as its source and Extents as the areas to read), then
// restores that point to vCenter through the VM restore path. Its second
// pass, after the instances stop, captures a later snapshot with the
// previous point as parent and only the blocks ListChangedBlocks names
// (Changed), so the cut-over reads little.
type Snapshot struct {
	ctx       context.Context // reads run under it (io.ReaderAt takes none)
	api       SnapshotReaderAPI
	id        string
	blockSize int64
	size      int64
	tokens    map[int32]string // the blocks the snapshot holds, by index
	// reads, when set, counts the blocks read.
	reads *atomic.Int64
}

// OpenSnapshot lists snapshot id's blocks; the snapshot's reads run under
// ctx.
func OpenSnapshot(ctx context.Context, api SnapshotReaderAPI, id string) (*Snapshot, error) {
	s := &Snapshot{ctx: ctx, api: api, id: id, tokens: map[int32]string{}}
	var next *string
	for {
		page, err := api.ListSnapshotBlocks(ctx, &ebs.ListSnapshotBlocksInput{SnapshotId: aws.String(id), NextToken: next})
		if err != nil {
			return nil, fmt.Errorf("listing the blocks of snapshot %s: %w", id, err)
		}
		s.blockSize = int64(aws.ToInt32(page.BlockSize))
		s.size = aws.ToInt64(page.VolumeSize) << 30
		for _, b := range page.Blocks {
			s.tokens[aws.ToInt32(b.BlockIndex)] = aws.ToString(b.BlockToken)
		}
		if next = page.NextToken; next == nil {
			break
		}
	}
	if s.blockSize <= 0 {
		return nil, fmt.Errorf("snapshot %s: no block size in the answer", id)
	}
	return s, nil
}

// Size is the volume's size in bytes.
func (s *Snapshot) Size() int64 { return s.size }

// BlockSize is the snapshot's block size.
func (s *Snapshot) BlockSize() int64 { return s.blockSize }

// Extents are the areas the snapshot holds data in (every other block
// reads as zeros): what a first failback pass reads.
func (s *Snapshot) Extents() []chunker.Extent {
	idx := make([]int, 0, len(s.tokens))
	for i := range s.tokens {
		idx = append(idx, int(i))
	}
	sort.Ints(idx)
	return s.merge(idx)
}

func (s *Snapshot) merge(idx []int) []chunker.Extent {
	var out []chunker.Extent
	for _, i := range idx {
		off := int64(i) * s.blockSize
		if n := len(out); n > 0 && out[n-1].End() == off {
			out[n-1].Length += s.blockSize
			continue
		}
		out = append(out, chunker.Extent{Offset: off, Length: s.blockSize})
	}
	return out
}

// Changed lists the areas that differ between snapshot first (an earlier
// snapshot of the same volume) and this one.
func (s *Snapshot) Changed(ctx context.Context, first string) ([]chunker.Extent, error) {
	var idx []int
	var next *string
	for {
		page, err := s.api.ListChangedBlocks(ctx, &ebs.ListChangedBlocksInput{FirstSnapshotId: aws.String(first), SecondSnapshotId: aws.String(s.id), NextToken: next})
		if err != nil {
			return nil, fmt.Errorf("listing the blocks changed between %s and %s: %w", first, s.id, err)
		}
		for _, b := range page.ChangedBlocks {
			idx = append(idx, int(aws.ToInt32(b.BlockIndex)))
		}
		if next = page.NextToken; next == nil {
			break
		}
	}
	sort.Ints(idx)
	return s.merge(slices.Compact(idx)), nil
}

// ReadAt reads the volume's bytes at off: blocks the snapshot holds are
// fetched and checked against the SHA-256 the API sends with them, the
// rest read as zeros. Safe for concurrent use.
func (s *Snapshot) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off+int64(n) < s.size {
		at := off + int64(n)
		idx := int32(at / s.blockSize)
		within := at % s.blockSize
		want := min(int64(len(p)-n), s.blockSize-within, s.size-at)
		dst := p[n : n+int(want)]
		token, ok := s.tokens[idx]
		if !ok {
			clear(dst)
		} else if err := s.readBlock(idx, token, within, dst); err != nil {
			return n, err
		}
		n += int(want)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

var blockBuffers = freelist.List[*[]byte]{New: func() *[]byte { return new([]byte) }, Max: 16}

func (s *Snapshot) readBlock(idx int32, token string, within int64, dst []byte) error {
	if s.reads != nil {
		s.reads.Add(1)
	}
	out, err := s.api.GetSnapshotBlock(s.ctx, &ebs.GetSnapshotBlockInput{SnapshotId: aws.String(s.id), BlockIndex: aws.Int32(idx), BlockToken: aws.String(token)})
	if err != nil {
		return fmt.Errorf("reading block %d of snapshot %s: %w", idx, s.id, err)
	}
	defer out.BlockData.Close()
	bp := blockBuffers.Get()
	defer blockBuffers.Put(bp)
	if int64(cap(*bp)) < s.blockSize {
		*bp = make([]byte, s.blockSize)
	}
	buf := (*bp)[:s.blockSize]
	if _, err := io.ReadFull(out.BlockData, buf); err != nil {
		return fmt.Errorf("reading block %d of snapshot %s: %w", idx, s.id, err)
	}
	if err := checkBlock(buf, aws.ToString(out.Checksum)); err != nil {
		return fmt.Errorf("block %d of snapshot %s: %w", idx, s.id, err)
	}
	copy(dst, buf[within:])
	return nil
}

// FailbackDisk is one volume of a failed-over instance, as a disk of the
// VM a failback writes: the disk's key and label in the VM's
// configuration, the EBS snapshot of the volume, and the disk's size.
type FailbackDisk struct {
	Key        int32
	Label      string
	SnapshotID string
	// CapacityBytes is the disk's size; zero takes the volume's.
	CapacityBytes int64
}

// FailbackSource reads the EBS snapshots of a failed-over instance's
// volumes as the disks of one VM snapshot, for vmimage.Capture. Each
// disk's change id is its snapshot's id: a capture whose parent is a
// point of an earlier pass asks for the blocks ListChangedBlocks names
// between the two snapshots, and reads nothing else. A first pass reads
// the blocks the snapshot holds (its "allocated" areas).
type FailbackSource struct {
	// Disks are the disks as sized (see NewFailbackSource).
	Disks     []FailbackDisk
	snapshots map[int32]*Snapshot
	blockSize int64
	read      atomic.Int64 // blocks read, over all disks
}

// NewFailbackSource opens each disk's snapshot once. A disk takes its
// volume's size when it asks for none or for more, and also when the
// snapshot holds data past the size asked for (the guest grew its volume
// in AWS, and cutting the disk would lose that data).
func NewFailbackSource(ctx context.Context, api SnapshotReaderAPI, disks []FailbackDisk) (*FailbackSource, error) {
	f := &FailbackSource{snapshots: map[int32]*Snapshot{}}
	for _, d := range disks {
		s, err := OpenSnapshot(ctx, api, d.SnapshotID)
		if err != nil {
			return nil, err
		}
		s.reads = &f.read
		if d.CapacityBytes <= 0 || d.CapacityBytes > s.size || s.dataBeyond(d.CapacityBytes) {
			d.CapacityBytes = s.size
		}
		f.snapshots[d.Key], f.blockSize = s, s.blockSize
		f.Disks = append(f.Disks, d)
	}
	return f, nil
}

// BlocksRead is how many EBS blocks the source has read.
func (f *FailbackSource) BlocksRead() int64 { return f.read.Load() }

// BlockSize is the snapshots' block size: captured in blocks of that
// size, a pass reads exactly the blocks that changed.
func (f *FailbackSource) BlockSize() int { return int(f.blockSize) }

func (f *FailbackSource) snapshot(key int32) (*Snapshot, FailbackDisk, error) {
	for _, d := range f.Disks {
		if d.Key == key {
			return f.snapshots[key], d, nil
		}
	}
	return nil, FailbackDisk{}, fmt.Errorf("no disk %d in the failback", key)
}

// SnapshotDisks lists the disks (the snapshot name is not used: the
// source is one snapshot).
func (f *FailbackSource) SnapshotDisks(ctx context.Context, _ string) ([]vmware.Disk, error) {
	out := make([]vmware.Disk, 0, len(f.Disks))
	for _, d := range f.Disks {
		out = append(out, vmware.Disk{Key: d.Key, Label: d.Label, CapacityBytes: d.CapacityBytes, ChangeID: d.SnapshotID})
	}
	return out, nil
}

// ChangedAreas lists the blocks of disk key that hold data ("*"), or that
// changed since the snapshot changeID, within the disk's size.
func (f *FailbackSource) ChangedAreas(ctx context.Context, _ vmware.VM, _ string, key int32, changeID string) ([]chunker.Extent, string, error) {
	s, d, err := f.snapshot(key)
	if err != nil {
		return nil, "", err
	}
	var areas []chunker.Extent
	if changeID == "*" {
		areas = s.Extents()
	} else if areas, err = s.Changed(ctx, changeID); err != nil {
		return nil, "", err
	}
	return clipExtents(areas, d.CapacityBytes), d.SnapshotID, nil
}

// OpenDisk reads disk d.
func (f *FailbackSource) OpenDisk(ctx context.Context, _ vmware.VM, _ string, d vmware.Disk) (io.ReaderAt, int64, error) {
	s, fd, err := f.snapshot(d.Key)
	if err != nil {
		return nil, 0, err
	}
	return s, fd.CapacityBytes, nil
}

// dataBeyond says whether the snapshot holds data at or past size: a
// disk cut to size would lose it.
func (s *Snapshot) dataBeyond(size int64) bool {
	for i := range s.tokens {
		if (int64(i)+1)*s.blockSize > size {
			return true
		}
	}
	return false
}

// clipExtents cuts es to [0, size). The answer is never nil: a nil list
// of changed areas means "read everything" to a capture.
func clipExtents(es []chunker.Extent, size int64) []chunker.Extent {
	out := make([]chunker.Extent, 0, len(es))
	for _, e := range es {
		if e.Offset >= size {
			break
		}
		if e.End() > size {
			e.Length = size - e.Offset
		}
		out = append(out, e)
	}
	return out
}
