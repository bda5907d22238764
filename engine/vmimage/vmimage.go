// Package vmimage backs up a VMware VM from a snapshot into the repository
// as one recovery point: a "vm" manifest holding the VM's configuration and
// one entry per disk, each entry naming that disk's own disk manifest
// (engine/disk: fixed, aligned blocks with holes). Disks are read through
// changed block tracking whenever a previous point allows it.
package vmimage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/disk"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
)

// ManifestKind is the root kind of a VM point.
const ManifestKind = "vm"

// How a disk was read.
const (
	ReadChanged   = "changed"   // only CBT's changed areas since the previous point
	ReadAllocated = "allocated" // CBT's allocated areas ("*"); the rest are holes
	ReadFull      = "full"      // every byte
)

// DiskEntry is one disk of a VM point (one manifest entry).
type DiskEntry struct {
	Path          string    `json:"path"` // "disk-2000", for verify reports
	Manifest      format.ID `json:"manifest"`
	Key           int32     `json:"key"`
	Label         string    `json:"label"`
	FileName      string    `json:"file_name"`
	CapacityBytes int64     `json:"capacity_bytes"`
	// ChangeID is the disk's CBT change id at the snapshot; the next
	// incremental asks for the areas changed since it.
	ChangeID  string `json:"change_id,omitempty"`
	Read      string `json:"read"`
	ReadBytes int64  `json:"read_bytes"`
	// Reason says why a disk that had a previous point was not read
	// incrementally (new, resized, change id invalid, CBT off).
	Reason string `json:"reason,omitempty"`
}

// Meta is stored in a VM point's root.
type Meta struct {
	Name         string `json:"name"`
	InstanceUUID string `json:"instance_uuid"`
	MoRef        string `json:"moref"`
	// Config is the VM's configuration at the snapshot (vmware.VMConfig),
	// what a restore needs to rebuild the VM.
	Config        json.RawMessage `json:"config,omitempty"`
	Disks         int             `json:"disks"`
	ExcludedDisks []int32         `json:"excluded_disks,omitempty"`
	CapacityBytes int64           `json:"capacity_bytes"`
	ReadBytes     int64           `json:"read_bytes"`
}

// Reader is the part of a vSphere session a capture reads through.
type Reader interface {
	SnapshotDisks(ctx context.Context, snapshot string) ([]vmware.Disk, error)
	ChangedAreas(ctx context.Context, vm vmware.VM, snapshot string, diskKey int32, changeID string) ([]chunker.Extent, string, error)
	OpenDisk(ctx context.Context, vm vmware.VM, snapshot string, d vmware.Disk) (io.ReaderAt, int64, error)
}

// DefaultReaders is how many ranged reads of one disk run at once unless
// Options.Readers says otherwise.
const DefaultReaders = 4

// Options describe one VM backup.
type Options struct {
	VM       vmware.VM
	Snapshot string
	// Config is stored with the point as is (a vmware.VMConfig).
	Config any
	// Parent is the previous point's root; zero for a first backup.
	Parent format.ID
	// Exclude lists disk keys not to back up.
	Exclude []int32
	// Readers bounds the parallel range reads of one disk (zero:
	// DefaultReaders).
	Readers int
	// BlockSize is the disks' block size (zero: the chunker's default). A
	// source read in blocks of its own (EBS snapshots) reads no more than
	// what changed when the two agree.
	BlockSize int
	// Progress, when set, is called after each disk with the bytes read so far.
	Progress func(disk DiskEntry)
}

// Capture backs up every disk of the snapshot (but the excluded) and writes
// the VM manifest; it returns the root and what it read.
func Capture(ctx context.Context, w repo.Sink, src repo.Source, vs Reader, o Options) (format.ID, Meta, []DiskEntry, error) {
	disks, err := vs.SnapshotDisks(ctx, o.Snapshot)
	if err != nil {
		return format.ID{}, Meta{}, nil, err
	}
	previous := map[int32]DiskEntry{}
	if !o.Parent.IsZero() {
		entries, _, err := ReadPoint(ctx, src, o.Parent)
		if err != nil {
			return format.ID{}, Meta{}, nil, fmt.Errorf("reading the previous point: %w", err)
		}
		for _, e := range entries {
			previous[e.Key] = e
		}
	}
	readers := o.Readers
	if readers <= 0 {
		readers = DefaultReaders
	}
	meta := Meta{Name: o.VM.Name, InstanceUUID: o.VM.InstanceUUID, MoRef: o.VM.MoRef}
	if o.Config != nil {
		if meta.Config, err = json.Marshal(o.Config); err != nil {
			return format.ID{}, Meta{}, nil, err
		}
	}
	var out []DiskEntry
	for _, d := range disks {
		if slices.Contains(o.Exclude, d.Key) {
			meta.ExcludedDisks = append(meta.ExcludedDisks, d.Key)
			continue
		}
		prev, hasPrev := previous[d.Key]
		e, err := captureDisk(ctx, w, src, vs, o, d, prev, hasPrev, readers)
		if err != nil {
			return format.ID{}, Meta{}, nil, fmt.Errorf("disk %d (%s): %w", d.Key, d.Label, err)
		}
		out = append(out, e)
		meta.Disks++
		meta.CapacityBytes += e.CapacityBytes
		meta.ReadBytes += e.ReadBytes
		if o.Progress != nil {
			o.Progress(e)
		}
	}
	mw := repo.NewManifest(w, ManifestKind)
	for _, e := range out {
		if err := mw.Add(ctx, e); err != nil {
			return format.ID{}, Meta{}, nil, err
		}
	}
	root, err := mw.Close(ctx, meta)
	return root, meta, out, err
}

// captureDisk chooses how to read one disk and reads it: changed areas
// when the previous point has the disk at the same size with a change id
// CBT still accepts; otherwise allocated areas (or all of it without CBT),
// with the reason recorded.
func captureDisk(ctx context.Context, w repo.Sink, src repo.Source, vs Reader, o Options, d vmware.Disk,
	prev DiskEntry, hasPrev bool, readers int) (DiskEntry, error) {
	e := DiskEntry{Path: fmt.Sprintf("disk-%d", d.Key), Key: d.Key, Label: d.Label, FileName: d.FileName,
		CapacityBytes: d.CapacityBytes, ChangeID: d.ChangeID}
	co := disk.CaptureOptions{Name: d.Label, Size: d.CapacityBytes, Workers: readers, BlockSize: o.BlockSize}
	switch {
	case !hasPrev && !o.Parent.IsZero():
		e.Reason = "new disk since the previous point"
	case hasPrev && prev.CapacityBytes != d.CapacityBytes:
		e.Reason = fmt.Sprintf("resized from %d to %d bytes since the previous point", prev.CapacityBytes, d.CapacityBytes)
	case hasPrev && d.ChangeID == "":
		e.Reason = "changed block tracking is off for this disk"
	case hasPrev && prev.ChangeID == "":
		e.Reason = "the previous point has no change id for this disk"
	case hasPrev:
		areas, _, err := vs.ChangedAreas(ctx, o.VM, o.Snapshot, d.Key, prev.ChangeID)
		if err == nil {
			co.Changed, co.Parent, e.Read = areas, prev.Manifest, ReadChanged
		} else if ctx.Err() != nil {
			return e, ctx.Err()
		} else {
			e.Reason = "the previous change id was not accepted: " + firstLine(err.Error())
		}
	}
	if e.Read == "" && d.ChangeID != "" {
		// A full read of a tracked disk needs only what is allocated.
		if areas, _, err := vs.ChangedAreas(ctx, o.VM, o.Snapshot, d.Key, "*"); err == nil {
			co.Changed, e.Read = areas, ReadAllocated
		} else if ctx.Err() != nil {
			return e, ctx.Err()
		}
	}
	if e.Read == "" {
		e.Read = ReadFull
	}
	r, size, err := vs.OpenDisk(ctx, o.VM, o.Snapshot, d)
	if err != nil {
		return e, err
	}
	co.Source, co.Size = r, size
	root, dm, err := disk.Capture(ctx, w, src, co)
	if errors.Is(err, disk.ErrGeometryChanged) {
		// The previous point's manifest disagrees with the recorded size.
		e.Reason = "the previous point's disk geometry differs"
		co.Changed, co.Parent, e.Read = nil, format.ID{}, ReadFull
		root, dm, err = disk.Capture(ctx, w, src, co)
	}
	if err != nil {
		return e, err
	}
	e.Manifest, e.ReadBytes = root, dm.ReadBytes
	return e, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// ReadPoint returns a VM point's disks and metadata.
func ReadPoint(ctx context.Context, src repo.Source, root format.ID) ([]DiskEntry, Meta, error) {
	m, err := repo.OpenManifest(ctx, src, root)
	if err != nil {
		return nil, Meta{}, err
	}
	if m.Root.Kind != ManifestKind {
		return nil, Meta{}, fmt.Errorf("recovery point is a %q point, not a VM point", m.Root.Kind)
	}
	var meta Meta
	if err := json.Unmarshal(m.Root.Meta, &meta); err != nil {
		return nil, Meta{}, err
	}
	var out []DiskEntry
	for {
		var e DiskEntry
		err := m.Next(&e)
		if err == io.EOF {
			return out, meta, nil
		}
		if err != nil {
			return nil, Meta{}, err
		}
		out = append(out, e)
	}
}

// RestoreDisk writes one disk of a VM point to w as a stream, holes as zeros.
func RestoreDisk(ctx context.Context, src repo.Source, e DiskEntry, w io.Writer) (disk.RestoreStats, error) {
	return disk.RestoreTo(ctx, src, e.Manifest, w)
}
