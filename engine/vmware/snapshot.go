package vmware

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
)

// SnapshotPrefix starts the name of every snapshot Haven creates, so a
// janitor can find the ones a crashed job left behind without touching
// snapshots people took by hand.
const SnapshotPrefix = "haven-"

// EnableCBT turns on changed block tracking. vSphere starts tracking at
// the VM's next stun (a snapshot create or power cycle), so the first
// backup after this must read all allocated areas ("*").
func (c *Client) EnableCBT(ctx context.Context, vm VM) error {
	return c.reconfigure(ctx, vm, types.VirtualMachineConfigSpec{ChangeTrackingEnabled: types.NewBool(true)}, "enabling CBT on")
}

// CreateSnapshot takes a disk-only snapshot (no memory) and returns its
// moref. quiesce asks VMware Tools to flush the guest file systems first.
func (c *Client) CreateSnapshot(ctx context.Context, vm VM, name string, quiesce bool) (string, error) {
	task, err := object.NewVirtualMachine(c.vc, vmRef(vm)).CreateSnapshot(ctx, name, "Created by Haven for a backup", false, quiesce)
	if err != nil {
		return "", fmt.Errorf("vsphere: snapshot of %s: %w", vm.Name, err)
	}
	res, err := task.WaitForResult(ctx)
	if err != nil {
		return "", fmt.Errorf("vsphere: snapshot of %s: %w", vm.Name, err)
	}
	ref, ok := res.Result.(types.ManagedObjectReference)
	if !ok {
		return "", fmt.Errorf("vsphere: snapshot of %s: unexpected task result %T", vm.Name, res.Result)
	}
	return ref.Value, nil
}

func snapshotRef(s string) types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VirtualMachineSnapshot", Value: strings.TrimPrefix(s, "VirtualMachineSnapshot:")}
}

// RemoveSnapshot deletes one snapshot (not its children) and consolidates
// its delta disks back into the VM.
func (c *Client) RemoveSnapshot(ctx context.Context, vm VM, snapshot string) error {
	consolidate := true
	res, err := methods.RemoveSnapshot_Task(ctx, c.vc, &types.RemoveSnapshot_Task{
		This: snapshotRef(snapshot), RemoveChildren: false, Consolidate: &consolidate,
	})
	if err != nil {
		return fmt.Errorf("vsphere: removing snapshot %s of %s: %w", snapshot, vm.Name, err)
	}
	if err := object.NewTask(c.vc, res.Returnval).Wait(ctx); err != nil {
		return fmt.Errorf("vsphere: removing snapshot %s of %s: %w", snapshot, vm.Name, err)
	}
	return nil
}

// OrphanSnapshot is a Haven snapshot still present on a VM.
type OrphanSnapshot struct {
	VMName   string
	VMMoRef  string
	Snapshot string // moref
	Name     string
	Created  time.Time
}

// HavenSnapshots lists every snapshot whose name starts with
// SnapshotPrefix. A janitor removes those that no running job owns.
func (c *Client) HavenSnapshots(ctx context.Context) ([]OrphanSnapshot, error) {
	vms, _, _, err := c.inventory(ctx)
	if err != nil {
		return nil, err
	}
	var out []OrphanSnapshot
	var walk func(vm mo.VirtualMachine, tree []types.VirtualMachineSnapshotTree)
	walk = func(vm mo.VirtualMachine, tree []types.VirtualMachineSnapshotTree) {
		for _, s := range tree {
			if strings.HasPrefix(s.Name, SnapshotPrefix) {
				out = append(out, OrphanSnapshot{VMName: vm.Name, VMMoRef: vm.Self.Value, Snapshot: s.Snapshot.Value, Name: s.Name, Created: s.CreateTime})
			}
			walk(vm, s.ChildSnapshotList)
		}
	}
	for _, vm := range vms {
		if vm.Snapshot != nil {
			walk(vm, vm.Snapshot.RootSnapshotList)
		}
	}
	return out, nil
}

// SnapshotDisks returns the disks as they are in a snapshot: the files
// holding the frozen data and the change ids at snapshot time.
func (c *Client) SnapshotDisks(ctx context.Context, snapshot string) ([]Disk, error) {
	var s mo.VirtualMachineSnapshot
	if err := property.DefaultCollector(c.vc).RetrieveOne(ctx, snapshotRef(snapshot), []string{"config.hardware.device"}, &s); err != nil {
		return nil, fmt.Errorf("vsphere: reading snapshot %s: %w", snapshot, err)
	}
	return disks(s.Config.Hardware.Device), nil
}

func snapshotDisk(ctx context.Context, c *Client, snapshot string, key int32) (Disk, error) {
	ds, err := c.SnapshotDisks(ctx, snapshot)
	if err != nil {
		return Disk{}, err
	}
	for _, d := range ds {
		if d.Key == key {
			return d, nil
		}
	}
	return Disk{}, fmt.Errorf("%w: disk %d in snapshot %s", ErrNotFound, key, snapshot)
}

// ChangedAreas asks CBT which areas of a disk changed between changeID
// and the snapshot, and returns them with the snapshot's own change id,
// which the next incremental passes back. changeID "*" returns every
// allocated area, for a first (full) backup. An error here (for instance
// after CBT was reset) means the caller must fall back to a full read.
func (c *Client) ChangedAreas(ctx context.Context, vm VM, snapshot string, diskKey int32, changeID string) ([]chunker.Extent, string, error) {
	disk, err := snapshotDisk(ctx, c, snapshot, diskKey)
	if err != nil {
		return nil, "", err
	}
	snap := snapshotRef(snapshot)
	var out []chunker.Extent
	// The API answers for a window of the disk at a time; keep asking
	// from the end of the last window until the whole disk is covered.
	for off := int64(0); off < disk.CapacityBytes; {
		res, err := methods.QueryChangedDiskAreas(ctx, c.vc, &types.QueryChangedDiskAreas{
			This: vmRef(vm), Snapshot: &snap, DeviceKey: diskKey, StartOffset: off, ChangeId: changeID,
		})
		if err != nil {
			return nil, "", fmt.Errorf("vsphere: changed areas of %s disk %d since %q: %w", vm.Name, diskKey, changeID, err)
		}
		info := res.Returnval
		for _, a := range info.ChangedArea {
			if a.Length <= 0 {
				continue
			}
			e := chunker.Extent{Offset: a.Start, Length: min(a.Length, disk.CapacityBytes-a.Start)}
			if n := len(out); n > 0 && out[n-1].End() >= e.Offset {
				out[n-1].Length = max(out[n-1].End(), e.End()) - out[n-1].Offset
				continue
			}
			out = append(out, e)
		}
		next := info.StartOffset + info.Length
		if next <= off {
			return nil, "", fmt.Errorf("vsphere: changed areas of %s disk %d: the server made no progress at offset %d", vm.Name, diskKey, off)
		}
		off = next
	}
	if out == nil {
		// Not nil: nil means "read everything" to disk.Capture.
		out = []chunker.Extent{}
	}
	return out, disk.ChangeID, nil
}
