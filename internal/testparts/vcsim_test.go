package testparts

import (
	"bytes"
	"context"
	"testing"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/types"
)

// TestVCSim checks the simulator's extensions through the real SOAP API:
// disk bytes round-trip through /folder, snapshots freeze them, and
// QueryChangedDiskAreas answers from the writes (the write made after the
// snapshot, at offset 0, must not show).
func TestVCSim(t *testing.T) {
	e := VCSim(t)
	ctx := context.Background()
	data := bytes.Repeat([]byte("haven"), 1000)
	e.WriteDisk(t, "app-01", 0, 70000, data)
	if got := e.DiskBytes(t, "app-01", 0); len(got) != VCSimDiskSize || !bytes.Equal(got[70000:75000], data) {
		t.Fatal("disk bytes did not round-trip")
	}

	f := find.NewFinder(e.Client.Client, true)
	vm, err := f.VirtualMachine(ctx, "/DC0/vm/prod/app-01")
	if err != nil {
		t.Fatal(err)
	}
	task, _ := vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{ChangeTrackingEnabled: types.NewBool(true)})
	if err := task.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	task, _ = vm.CreateSnapshot(ctx, "s1", "", false, false)
	res, err := task.WaitForResult(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap := res.Result.(types.ManagedObjectReference)
	key := e.vm(t, "app-01").Config.Hardware.Device
	var diskKey int32
	for _, d := range key {
		if _, ok := d.(*types.VirtualDisk); ok {
			diskKey = d.GetVirtualDevice().Key
		}
	}
	e.WriteDisk(t, "app-01", 0, 0, []byte{1})

	q, err := methods.QueryChangedDiskAreas(ctx, e.Client.Client, &types.QueryChangedDiskAreas{This: vm.Reference(), Snapshot: &snap, DeviceKey: diskKey, ChangeId: "*"})
	if err != nil {
		t.Fatal(err)
	}
	got := q.Returnval
	if got.StartOffset != 0 || got.Length != cbtWindow || len(got.ChangedArea) != 1 ||
		got.ChangedArea[0] != (types.DiskChangeExtent{Start: 64 << 10, Length: 64 << 10}) {
		t.Fatalf("areas of the snapshot: %+v", got)
	}
	if _, err := methods.QueryChangedDiskAreas(ctx, e.Client.Client, &types.QueryChangedDiskAreas{This: vm.Reference(), Snapshot: &snap, DeviceKey: diskKey, ChangeId: "nonsense"}); err == nil {
		t.Fatal("a bad change id was accepted")
	}
}
