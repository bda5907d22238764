// Package dr copies VM recovery points into AWS for disaster recovery:
// each disk of a point becomes an EBS snapshot, written with the EBS
// direct APIs, incrementally from the disk's previous copy.
package dr

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	ebstypes "github.com/aws/aws-sdk-go-v2/service/ebs/types"
	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/disk"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
)

// EBS is the part of the EBS direct API client replication uses
// (*ebs.Client is one).
type EBS interface {
	StartSnapshot(ctx context.Context, in *ebs.StartSnapshotInput, opts ...func(*ebs.Options)) (*ebs.StartSnapshotOutput, error)
	PutSnapshotBlock(ctx context.Context, in *ebs.PutSnapshotBlockInput, opts ...func(*ebs.Options)) (*ebs.PutSnapshotBlockOutput, error)
	CompleteSnapshot(ctx context.Context, in *ebs.CompleteSnapshotInput, opts ...func(*ebs.Options)) (*ebs.CompleteSnapshotOutput, error)
}

// DiskCopy is a disk point's copy in EBS.
type DiskCopy struct {
	SnapshotID string `json:"snapshot_id"`
	// Disk is the disk manifest the snapshot holds.
	Disk format.ID `json:"disk"`
	// VolumeGiB is the snapshot's volume size.
	VolumeGiB int64 `json:"volume_gib"`
	BlockSize int32 `json:"block_size"`
}

// ReplicateOptions describe one disk's copy.
type ReplicateOptions struct {
	// Disk is the disk point's manifest root (vmimage.DiskEntry.Manifest).
	Disk format.ID
	// Previous is the disk's last completed copy; nil makes a full copy.
	// A copy of a different size is not used as a parent.
	Previous *DiskCopy
	// ClientToken makes the copy idempotent: a second run with the same
	// token (after a crash) continues the snapshot the first one started
	// instead of starting a twin. It must be unique to this disk point and
	// attempt (AWS keeps a token for 24 hours).
	ClientToken string
	Description string
	Tags        map[string]string
	// Puts bounds the blocks put at once (zero: 8 per core).
	Puts int
	// Progress, when set, is told the blocks put so far.
	Progress func(put int64)
}

// ReplicateStats say what a copy wrote.
type ReplicateStats struct {
	// Blocks is the volume's EBS blocks; Changed those that differ from
	// the previous copy (all data blocks for a full copy); Put those
	// written (Changed less those that read as zeros where the previous
	// copy had zeros too); ZeroBlocks are blocks written as zeros because
	// they held data in the previous copy and are holes now.
	Blocks, Changed, Put, ZeroBlocks int64
	BytesPut                         int64
	// Resumed says an earlier run with the same client token had already
	// completed the snapshot, so nothing was put.
	Resumed bool
}

// ErrSnapshotFailed means AWS put a snapshot in the error state.
var ErrSnapshotFailed = errors.New("the EBS snapshot failed")

// blocksPerLoad is how many EBS blocks are read from the repository in one
// load (at 512 KiB blocks, 32 MiB).
const blocksPerLoad = 64

// Replicate writes one disk point to a new EBS snapshot and returns its
// copy. With a previous copy the snapshot is started from it (its parent)
// and only the EBS blocks whose Haven blocks differ between the two
// points are put: the points' manifests are compared, and nothing
// unchanged is read. Zero blocks are not put (unless they were data in
// the parent). The caller deletes the previous snapshot once it has
// recorded this one.
func Replicate(ctx context.Context, src repo.Source, client EBS, o ReplicateOptions) (DiskCopy, ReplicateStats, error) {
	var st ReplicateStats
	meta, cur, err := disk.ReadBlocks(ctx, src, o.Disk)
	if err != nil {
		return DiskCopy{}, st, fmt.Errorf("reading the disk point: %w", err)
	}
	const gib = 1 << 30
	volumeGiB := max(1, (meta.Size+gib-1)/gib)
	var prev []format.ID
	var prevBlockSize int
	parent := o.Previous
	if parent != nil && parent.VolumeGiB != volumeGiB {
		parent = nil // resized: a full copy
	}
	if parent != nil {
		pm, ids, err := disk.ReadBlocks(ctx, src, parent.Disk)
		if err != nil {
			return DiskCopy{}, st, fmt.Errorf("reading the previous copy's disk point: %w", err)
		}
		prev, prevBlockSize = ids, pm.BlockSize
	}
	in := &ebs.StartSnapshotInput{
		VolumeSize:  aws.Int64(volumeGiB),
		Description: aws.String(o.Description),
		Timeout:     aws.Int32(60), // minutes a pending snapshot may sit idle
	}
	if o.ClientToken != "" {
		in.ClientToken = aws.String(o.ClientToken)
	}
	if parent != nil {
		in.ParentSnapshotId = aws.String(parent.SnapshotID)
	}
	for k, v := range o.Tags {
		in.Tags = append(in.Tags, ebstypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	started, err := client.StartSnapshot(ctx, in)
	if err != nil {
		return DiskCopy{}, st, fmt.Errorf("starting the EBS snapshot: %w", err)
	}
	cp := DiskCopy{SnapshotID: aws.ToString(started.SnapshotId), Disk: o.Disk, VolumeGiB: volumeGiB, BlockSize: aws.ToInt32(started.BlockSize)}
	if cp.SnapshotID == "" || cp.BlockSize <= 0 {
		return DiskCopy{}, st, fmt.Errorf("starting the EBS snapshot: no snapshot id or block size in the answer")
	}
	switch started.Status {
	case ebstypes.StatusCompleted:
		// An earlier run with this token finished it.
		st.Resumed = true
		return cp, st, nil
	case ebstypes.StatusError:
		return DiskCopy{}, st, fmt.Errorf("snapshot %s: %w", cp.SnapshotID, ErrSnapshotFailed)
	}

	plan := planBlocks(meta, cur, prev, prevBlockSize, int64(cp.BlockSize))
	st.Blocks = plan.blocks
	st.Changed = int64(len(plan.changed))
	puts := o.Puts
	if puts <= 0 {
		puts = 8 * runtime.GOMAXPROCS(0)
	}
	var put, zeros, bytesPut atomic.Int64
	for start := 0; start < len(plan.changed); start += blocksPerLoad {
		batch := plan.changed[start:min(start+blocksPerLoad, len(plan.changed))]
		data, err := loadBlocks(ctx, src, meta, cur, batch, int64(cp.BlockSize))
		if err != nil {
			return DiskCopy{}, st, err
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(puts)
		for i, b := range batch {
			block := data[i]
			if chunker.IsZero(block) {
				if !b.wasData {
					continue // zeros where the parent has zeros (or there is no parent)
				}
				zeros.Add(1)
			}
			g.Go(func() error {
				if err := putBlock(gctx, client, cp.SnapshotID, b.index, block); err != nil {
					return err
				}
				bytesPut.Add(int64(len(block)))
				if n := put.Add(1); o.Progress != nil {
					o.Progress(n)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return DiskCopy{}, st, err
		}
	}
	st.Put, st.ZeroBlocks, st.BytesPut = put.Load(), zeros.Load(), bytesPut.Load()
	done, err := client.CompleteSnapshot(ctx, &ebs.CompleteSnapshotInput{SnapshotId: aws.String(cp.SnapshotID), ChangedBlocksCount: aws.Int32(int32(st.Put))})
	if err != nil {
		return DiskCopy{}, st, fmt.Errorf("completing snapshot %s: %w", cp.SnapshotID, err)
	}
	if done.Status == ebstypes.StatusError {
		return DiskCopy{}, st, fmt.Errorf("snapshot %s: %w", cp.SnapshotID, ErrSnapshotFailed)
	}
	return cp, st, nil
}

// blockChecksum is a block's checksum as the EBS direct APIs carry it:
// SHA-256, base64.
func blockChecksum(data []byte) string {
	sum := sha256.Sum256(data)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// ErrBadBlock means a block read from a snapshot does not match the
// checksum sent with it.
var ErrBadBlock = errors.New("block does not match its checksum")

func checkBlock(data []byte, checksum string) error {
	if got := blockChecksum(data); got != checksum {
		return fmt.Errorf("%w: %s, sent %s", ErrBadBlock, got, checksum)
	}
	return nil
}

// putBlock writes one block with its SHA-256, as the API requires.
func putBlock(ctx context.Context, client EBS, snapshot string, index int32, data []byte) error {
	_, err := client.PutSnapshotBlock(ctx, &ebs.PutSnapshotBlockInput{
		SnapshotId:        aws.String(snapshot),
		BlockIndex:        aws.Int32(index),
		BlockData:         bytes.NewReader(data),
		DataLength:        aws.Int32(int32(len(data))),
		Checksum:          aws.String(blockChecksum(data)),
		ChecksumAlgorithm: ebstypes.ChecksumAlgorithmChecksumAlgorithmSha256,
	})
	if err != nil {
		return fmt.Errorf("putting block %d of snapshot %s: %w", index, snapshot, err)
	}
	return nil
}

// changedBlock is an EBS block to consider putting.
type changedBlock struct {
	index int32
	// wasData: the parent holds data there, so zeros must be written.
	wasData bool
}

type blockPlan struct {
	blocks  int64
	changed []changedBlock
}

// planBlocks lists the EBS blocks of size ebsBlock whose Haven blocks
// differ between cur and prev (every block that holds data when there is
// no prev). Haven blocks and EBS blocks need not be the same size: an EBS
// block changes when any Haven block over it does.
func planBlocks(meta disk.Meta, cur, prev []format.ID, prevBlockSize int, ebsBlock int64) blockPlan {
	hb := int64(meta.BlockSize)
	blocks := (meta.Size + ebsBlock - 1) / ebsBlock
	p := blockPlan{blocks: blocks}
	sameBlocks := prev != nil && prevBlockSize == meta.BlockSize
	for b := int64(0); b < blocks; b++ {
		lo, hi := b*ebsBlock, min((b+1)*ebsBlock, meta.Size)
		var data, differs, wasData bool
		for h := lo / hb; h*hb < hi; h++ {
			var c, q format.ID
			if h < int64(len(cur)) {
				c = cur[h]
			}
			if sameBlocks && h < int64(len(prev)) {
				q = prev[h]
			}
			data = data || !c.IsZero()
			wasData = wasData || !q.IsZero()
			differs = differs || c != q
		}
		if prev != nil && !sameBlocks {
			// Another block size: compare nothing, write every data
			// block, and zeros wherever the parent may hold data.
			differs, wasData = true, true
		}
		if differs && (data || wasData) {
			p.changed = append(p.changed, changedBlock{index: int32(b), wasData: wasData})
		}
	}
	return p
}

// loadBlocks reads the bytes of EBS blocks from the repository: the Haven
// blocks over them, one load for the batch.
func loadBlocks(ctx context.Context, src repo.Source, meta disk.Meta, cur []format.ID, batch []changedBlock, ebsBlock int64) ([][]byte, error) {
	hb := int64(meta.BlockSize)
	out := make([][]byte, len(batch))
	var ids []format.ID
	type target struct {
		block int
		at    int64 // offset of the Haven block within the EBS block (negative: it starts before it)
	}
	var targets []target
	for i, b := range batch {
		out[i] = make([]byte, ebsBlock) // the last block is padded with zeros, as EBS holds it
		lo, hi := int64(b.index)*ebsBlock, min(int64(b.index+1)*ebsBlock, meta.Size)
		for h := lo / hb; h*hb < hi; h++ {
			if h < int64(len(cur)) && !cur[h].IsZero() {
				ids = append(ids, cur[h])
				targets = append(targets, target{block: i, at: h*hb - lo})
			}
		}
	}
	err := src.Load(ctx, ids, func(k int, data []byte) error {
		t := targets[k]
		dst := out[t.block]
		if t.at >= 0 {
			copy(dst[t.at:], data)
		} else {
			copy(dst, data[-t.at:])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the disk point's blocks: %w", err)
	}
	return out, nil
}
