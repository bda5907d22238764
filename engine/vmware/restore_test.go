package vmware_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

func createFolder(t *testing.T, env *testparts.VCSimEnv, name string) {
	t.Helper()
	ctx := context.Background()
	dc, err := find.NewFinder(env.Client.Client, true).Datacenter(ctx, env.Datacenter)
	if err != nil {
		t.Fatal(err)
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := folders.VmFolder.CreateFolder(ctx, name); err != nil {
		t.Fatal(err)
	}
}

func nicsOf(t *testing.T, c *vmware.Client, vm vmware.VM) []vmware.NICConfig {
	t.Helper()
	cfg, err := c.SnapshotConfig(context.Background(), vm, "")
	if err != nil {
		t.Fatal(err)
	}
	return cfg.NICs
}

// TestRestoreAsNewVM backs db-01 up the way the engine does (a snapshot,
// its configuration, its disks read over /folder), restores it next to
// the original under another name, in another folder and on another
// network, then, after the original is gone, in its original place.
func TestRestoreAsNewVM(t *testing.T) {
	env := testparts.VCSim(t)
	c := connect(t, env)
	ctx := context.Background()
	const manualMAC = "00:50:56:3a:bc:de"
	addNIC(t, env, "db-01", "VM Network", &types.VirtualVmxnet3{}, manualMAC)
	db, err := c.VMByName(ctx, "db-01")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(7, 8))
	var imgs [][]byte
	for i, d := range db.Disks {
		img := make([]byte, d.CapacityBytes)
		w := map[int64][]byte{0: randBytes(rng, 8192), d.CapacityBytes / 3: randBytes(rng, 100_000), d.CapacityBytes - 513: randBytes(rng, 513)}
		env.WriteDiskAt(t, "db-01", i, w)
		apply(img, w)
		imgs = append(imgs, img)
	}
	snap, err := c.CreateSnapshot(ctx, db, vmware.SnapshotPrefix+"r1", false)
	if err != nil {
		t.Fatal(err)
	}
	// Not part of the point: must not reach the restore.
	env.WriteDisk(t, "db-01", 0, 0, bytes.Repeat([]byte{0xee}, 4096))
	cfg, err := c.SnapshotConfig(ctx, db, snap)
	if err != nil {
		t.Fatal(err)
	}

	createFolder(t, env, "restored")
	// A host alone: the VM goes to that host's cluster's pool, not to the
	// original pool, which does not contain it.
	p := vmware.Placement{Name: "db-01-restored", Folder: "restored", Host: "DC0_C0/DC0_C0_H1",
		NetworkMap: map[string]string{"VM Network": "DC0_DVPG0", "unused": "x"}, PowerOn: true}

	bad := p
	bad.NetworkMap = map[string]string{"VM Network": "no-such-net"}
	if _, err := c.PlanRestore(ctx, cfg, bad); !errors.Is(err, vmware.ErrNotFound) || !strings.Contains(err.Error(), "no-such-net") {
		t.Fatalf("missing network: %v", err)
	}
	bad = p
	bad.Folder = "/DC0/vm/nope"
	if _, err := c.PlanRestore(ctx, cfg, bad); !errors.Is(err, vmware.ErrNotFound) || !strings.Contains(err.Error(), "/DC0/vm/nope") {
		t.Fatalf("missing folder: %v", err)
	}

	plan, err := c.PlanRestore(ctx, cfg, p)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Folder != "/DC0/vm/restored" || plan.Datacenter != "DC0" || plan.Datastore != "LocalDS_0" || len(plan.Disks) != 2 ||
		plan.Disks[cfg.Disks[0].Key] != "[LocalDS_0] db-01-restored/db-01-restored.vmdk" ||
		plan.Disks[cfg.Disks[1].Key] != "[LocalDS_0] db-01-restored/db-01-restored_1.vmdk" {
		t.Fatalf("plan: %+v", plan)
	}
	restore := func(cfg vmware.VMConfig, plan vmware.RestorePlan) {
		t.Helper()
		for _, d := range cfg.Disks {
			src, size, err := c.OpenDisk(ctx, db, snap, vmware.Disk{Key: d.Key})
			if err != nil {
				t.Fatal(err)
			}
			// Large reads: each ReadAt is a ranged GET.
			content := bufio.NewReaderSize(io.NewSectionReader(src, 0, size), 4<<20)
			if err := c.UploadDisk(ctx, plan.Datacenter, plan.Disks[d.Key], size, content); err != nil {
				t.Fatal(err)
			}
		}
	}
	restore(cfg, plan)
	vm, err := c.CreateVM(ctx, cfg, p, plan.Disks)
	if err != nil {
		t.Fatal(err)
	}

	got, err := c.VMByName(ctx, "db-01-restored")
	if err != nil {
		t.Fatal(err)
	}
	if got.MoRef != vm.MoRef || got.InventoryPath != "/DC0/vm/restored/db-01-restored" || got.PowerState != "poweredOn" || len(got.Disks) != 2 {
		t.Fatalf("restored VM: %+v", got)
	}
	for i, d := range got.Disks {
		if d.CapacityBytes != cfg.Disks[i].CapacityBytes || d.FileName != plan.Disks[cfg.Disks[i].Key] {
			t.Fatalf("disk %d: %+v, want %d bytes at %s", i, d, cfg.Disks[i].CapacityBytes, plan.Disks[cfg.Disks[i].Key])
		}
		if !bytes.Equal(env.DiskBytes(t, "db-01-restored", i), imgs[i]) {
			t.Fatalf("disk %d does not hold the snapshot's bytes", i)
		}
	}
	rc, err := c.SnapshotConfig(ctx, got, "")
	if err != nil {
		t.Fatal(err)
	}
	if rc.GuestID != cfg.GuestID || rc.NumCPUs != cfg.NumCPUs || rc.MemoryMB != cfg.MemoryMB || rc.HardwareVersion != cfg.HardwareVersion ||
		rc.Disks[1].ControllerType != cfg.Disks[1].ControllerType || rc.Disks[1].UnitNumber != cfg.Disks[1].UnitNumber {
		t.Fatalf("restored hardware: %+v, want %+v", rc, cfg)
	}
	if want := (vmware.VMLocation{Datacenter: "DC0", Folder: "/DC0/vm/restored", ResourcePool: "/DC0/host/DC0_C0/Resources",
		Host: "/DC0/host/DC0_C0/DC0_C0_H1", Datastore: "LocalDS_0"}); rc.Location != want {
		t.Fatalf("restored location: %+v, want %+v", rc.Location, want)
	}
	// The original still has the manual MAC: the copy must not share it.
	if n := rc.NICs; len(n) != 1 || n[0].Network != "DC0_DVPG0" || n[0].AdapterType != "vmxnet3" || n[0].MACAddress == "" ||
		strings.EqualFold(n[0].MACAddress, manualMAC) || n[0].ManualMAC {
		t.Fatalf("restored NICs: %+v", n)
	}

	// Same name, same folder: refused before any data moves, and by CreateVM.
	if _, err := c.PlanRestore(ctx, cfg, p); !errors.Is(err, vmware.ErrAlreadyExists) {
		t.Fatalf("name clash in PlanRestore: %v", err)
	}
	if _, err := c.CreateVM(ctx, cfg, p, plan.Disks); !errors.Is(err, vmware.ErrAlreadyExists) {
		t.Fatalf("name clash in CreateVM: %v", err)
	}
	// Free in the folder, but its files would land on the first copy's.
	elsewhere := p
	elsewhere.Folder = ""
	if _, err := c.PlanRestore(ctx, cfg, elsewhere); !errors.Is(err, vmware.ErrAlreadyExists) || !strings.Contains(err.Error(), "db-01-restored/") {
		t.Fatalf("file clash: %v", err)
	}

	// Cleanup of a failed restore: the VM and its files go, twice over.
	if err := c.Destroy(ctx, got); err != nil {
		t.Fatal(err)
	}
	if err := c.Destroy(ctx, got); err != nil {
		t.Fatalf("second destroy: %v", err)
	}
	if _, err := c.VMByName(ctx, "db-01-restored"); !errors.Is(err, vmware.ErrNotFound) {
		t.Fatalf("destroyed VM: %v", err)
	}

	// Disaster recovery: the original is gone, so everything defaults to
	// where it was, and its manual MAC is free again. The disks come from
	// a producer that writes, as disk.RestoreTo does.
	if err := c.Destroy(ctx, db); err != nil {
		t.Fatal(err)
	}
	plan, err = c.PlanRestore(ctx, cfg, vmware.Placement{})
	if err != nil {
		t.Fatal(err)
	}
	if plan.Name != "db-01" || plan.Folder != "/DC0/vm" || plan.Disks[cfg.Disks[0].Key] != "[LocalDS_0] db-01/db-01.vmdk" {
		t.Fatalf("plan in place: %+v", plan)
	}
	for i, d := range cfg.Disks {
		err := c.UploadDiskFrom(ctx, plan.Datacenter, plan.Disks[d.Key], d.CapacityBytes, func(w io.Writer) error {
			_, err := io.Copy(w, bytes.NewReader(imgs[i]))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	back, err := c.CreateVM(ctx, cfg, vmware.Placement{}, plan.Disks)
	if err != nil {
		t.Fatal(err)
	}
	if back.InventoryPath != "/DC0/vm/db-01" || back.PowerState != "poweredOff" || len(back.Disks) != 2 {
		t.Fatalf("restored in place: %+v", back)
	}
	for i := range imgs {
		if !bytes.Equal(env.DiskBytes(t, "db-01", i), imgs[i]) {
			t.Fatalf("disk %d restored in place differs", i)
		}
	}
	if n := nicsOf(t, c, back); len(n) != 1 || n[0].Network != "VM Network" || !strings.EqualFold(n[0].MACAddress, manualMAC) || !n[0].ManualMAC {
		t.Fatalf("NICs restored in place: %+v", n)
	}
}

func TestUploadAndAttachDisk(t *testing.T) {
	env := testparts.VCSim(t)
	c := connect(t, env)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 10))
	const size = 64 << 10

	const path = "[LocalDS_0] app-01/extra.vmdk"
	if err := c.UploadDisk(ctx, "DC0", path, size+1, bytes.NewReader(make([]byte, size+1))); err == nil {
		t.Fatal("a disk that is not whole sectors was accepted")
	}
	if err := c.UploadDisk(ctx, "DC0", path, size, bytes.NewReader(make([]byte, size-1))); err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short content: %v", err)
	}
	if err := c.UploadDisk(ctx, "DC0", path, size, bytes.NewReader(make([]byte, size+1))); err == nil || !strings.Contains(err.Error(), "longer") {
		t.Fatalf("long content: %v", err)
	}
	boom := errors.New("the repository went away")
	if err := c.UploadDiskFrom(ctx, "DC0", path, size, func(w io.Writer) error {
		w.Write(make([]byte, 1000))
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("producer error: %v", err)
	}

	app, err := c.VMByName(ctx, "app-01")
	if err != nil {
		t.Fatal(err)
	}
	// app-01's pvscsi controller has 15 free units less the one its disk
	// takes; the 15th disk attached needs a second controller.
	var want [][]byte
	for i := range 15 {
		data := randBytes(rng, size)
		want = append(want, data)
		p := fmt.Sprintf("[LocalDS_0] app-01/extra%d.vmdk", i)
		if err := c.UploadDisk(ctx, "DC0", p, size, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		d, err := c.AttachDisk(ctx, app, p, 0) // capacity from the descriptor
		if err != nil {
			t.Fatalf("attaching disk %d: %v", i, err)
		}
		if d.FileName != p || d.CapacityBytes != size || d.Datastore != "LocalDS_0" || d.Key <= 0 {
			t.Fatalf("attached disk %d: %+v", i, d)
		}
	}
	if _, err := c.AttachDisk(ctx, app, "[LocalDS_0] app-01/extra0.vmdk", size); !errors.Is(err, vmware.ErrAlreadyExists) {
		t.Fatalf("attaching a disk twice: %v", err)
	}
	app, err = c.VMByName(ctx, "app-01")
	if err != nil || len(app.Disks) != 16 {
		t.Fatalf("app-01 after attaching: %d disks, %v", len(app.Disks), err)
	}
	for i, data := range want {
		if !bytes.Equal(env.DiskBytes(t, "app-01", i+1), data) {
			t.Fatalf("attached disk %d does not hold the uploaded bytes", i)
		}
	}
	cfg, err := c.SnapshotConfig(ctx, app, "")
	if err != nil {
		t.Fatal(err)
	}
	units := map[[2]int32]bool{}
	for _, d := range cfg.Disks {
		k := [2]int32{d.BusNumber, d.UnitNumber}
		if units[k] || d.ControllerType != "pvscsi" || d.UnitNumber == 7 {
			t.Fatalf("disk placement: %+v", cfg.Disks)
		}
		units[k] = true
	}
	if last := cfg.Disks[len(cfg.Disks)-1]; last.BusNumber != 1 || last.UnitNumber != 0 {
		t.Fatalf("the 16th disk should open SCSI bus 1: %+v", last)
	}

	// A disk uploaded for a VM that never came: DeleteDisk removes it.
	if err := c.DeleteDisk(ctx, "DC0", path); err != nil {
		t.Fatal(err)
	}
	if err := c.UploadDisk(ctx, "DC0", "[LocalDS_0] orphan/orphan.vmdk", size, bytes.NewReader(want[0])); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteDisk(ctx, "DC0", "[LocalDS_0] orphan/orphan.vmdk"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AttachDisk(ctx, app, "[LocalDS_0] orphan/orphan.vmdk", 0); err == nil {
		t.Fatal("a deleted disk could still be attached")
	}
}

func TestReplaceDisks(t *testing.T) {
	env := testparts.VCSim(t)
	c := connect(t, env)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(11, 12))
	db, err := c.VMByName(ctx, "db-01")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnableCBT(ctx, db); err != nil {
		t.Fatal(err)
	}
	env.WriteDisk(t, "db-01", 0, 0, randBytes(rng, 4096))
	before0 := env.DiskBytes(t, "db-01", 0)
	img := randBytes(rng, int(db.Disks[1].CapacityBytes))
	sources := map[int32]vmware.DiskSource{
		db.Disks[1].Key: func(_ context.Context, d vmware.Disk, w io.Writer) error {
			if d.CapacityBytes != int64(len(img)) {
				return fmt.Errorf("asked for %d bytes", d.CapacityBytes)
			}
			_, err := w.Write(img)
			return err
		},
	}

	if err := c.PowerOn(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := c.PowerOn(ctx, db); err != nil {
		t.Fatalf("powering on a VM that is on: %v", err)
	}
	if err := c.ReplaceDisks(ctx, db, sources); !errors.Is(err, vmware.ErrPoweredOn) {
		t.Fatalf("powered on: %v", err)
	}
	task, err := vcsimVM(t, env, "db-01").PowerOff(ctx)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	snap, err := c.CreateSnapshot(ctx, db, "before-upgrade", false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ReplaceDisks(ctx, db, sources); !errors.Is(err, vmware.ErrHasSnapshots) {
		t.Fatalf("with a snapshot: %v", err)
	}
	if err := c.RemoveSnapshot(ctx, db, snap); err != nil {
		t.Fatal(err)
	}
	if err := c.ReplaceDisks(ctx, db, map[int32]vmware.DiskSource{4242: sources[db.Disks[1].Key]}); !errors.Is(err, vmware.ErrNotFound) {
		t.Fatalf("unknown disk: %v", err)
	}
	short := map[int32]vmware.DiskSource{db.Disks[1].Key: func(_ context.Context, _ vmware.Disk, w io.Writer) error {
		_, err := w.Write(img[:1000])
		return err
	}}
	if err := c.ReplaceDisks(ctx, db, short); err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short content: %v", err)
	}

	if err := c.ReplaceDisks(ctx, db, sources); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(env.DiskBytes(t, "db-01", 1), img) {
		t.Fatal("disk 1 does not hold the restored bytes")
	}
	if !bytes.Equal(env.DiskBytes(t, "db-01", 0), before0) {
		t.Fatal("disk 0 was not in the restore but changed")
	}
	after, err := c.VMByName(ctx, "db-01")
	if err != nil {
		t.Fatal(err)
	}
	if !after.ChangeTrackingEnabled || len(after.Disks) != 2 || after.Disks[1].FileName != db.Disks[1].FileName || after.Disks[1].CapacityBytes != db.Disks[1].CapacityBytes {
		t.Fatalf("after the restore: %+v", after)
	}
	// The restored VM still reads back through the backup path.
	s, err := c.CreateSnapshot(ctx, after, vmware.SnapshotPrefix+"check", false)
	if err != nil {
		t.Fatal(err)
	}
	r, size, err := c.OpenDisk(ctx, after, s, after.Disks[1])
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, size)
	if _, err := r.ReadAt(got, 0); err != nil || !bytes.Equal(got, img) {
		t.Fatalf("reading the restored disk back: %v", err)
	}
}
