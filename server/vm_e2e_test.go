package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/servertest"
)

// vmFixture is a server with a registered vCenter (the simulator), a
// storage and a CBT policy.
type vmFixture struct {
	t       *testing.T
	sim     *testparts.VCSimEnv
	srv     *servertest.Server
	vc      *api.VCenter
	storage *api.Storage
	policy  *api.Policy
	c       *vmware.Client
}

func newVMFixture(t *testing.T, policy func(*api.PolicySpec), cfg ...func(*server.Config)) *vmFixture {
	t.Helper()
	ctx := context.Background()
	f := &vmFixture{t: t, sim: testparts.VCSim(t)}
	f.srv = servertest.StartWith(t, func(c *server.Config) {
		for _, fn := range cfg {
			fn(c)
		}
	})
	var err error
	f.storage, err = f.srv.Client.Storages().Create(ctx, api.StorageRequest{StorageSpec: api.StorageSpec{Name: "vms", Kind: "filesystem", Path: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	spec := api.PolicySpec{Name: "vm-daily", Timezone: "UTC", Full: api.FullSchedule{DaysOfWeek: []string{"sun"}, At: "01:00"},
		Retention: api.Retention{DailyDays: 7}}
	if policy != nil {
		policy(&spec)
	}
	f.policy, err = f.srv.Client.Policies().Create(ctx, api.PolicyRequest{PolicySpec: spec})
	if err != nil {
		t.Fatal(err)
	}
	f.vc, err = f.srv.Client.VCenters().Create(ctx, api.VCenterRequest{VCenterSpec: api.VCenterSpec{Name: "sim", URL: f.sim.URL,
		Username: f.sim.Username, Password: f.sim.Password, Thumbprint: f.sim.Thumbprint}})
	if err != nil {
		t.Fatal(err)
	}
	f.c, err = vmware.Connect(ctx, vmware.Config{URL: f.sim.URL, Username: f.sim.Username, Password: f.sim.Password, Thumbprint: f.sim.Thumbprint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.c.Logout(context.Background()) })
	return f
}

func (f *vmFixture) vm(name string) vmware.VM {
	f.t.Helper()
	vm, err := f.c.VMByName(context.Background(), name)
	if err != nil {
		f.t.Fatal(err)
	}
	return vm
}

// setPower switches a VM on or off through the vSphere API, as its owner would.
func (f *vmFixture) setPower(name string, on bool) { f.sim.SetPower(f.t, name, on) }

func (f *vmFixture) protect(name string, mod func(*api.ProtectedVMSpec)) *api.ProtectedVM {
	f.t.Helper()
	spec := api.ProtectedVMSpec{VCenterID: f.vc.ID, InstanceUUID: f.vm(name).InstanceUUID, PolicyID: f.policy.ID, StorageID: f.storage.ID}
	if mod != nil {
		mod(&spec)
	}
	pv, err := f.srv.Client.ProtectedVMs().Create(context.Background(), api.ProtectedVMRequest{ProtectedVMSpec: spec})
	if err != nil {
		f.t.Fatal(err)
	}
	return pv
}

func (f *vmFixture) backup(pv *api.ProtectedVM) *api.Job {
	f.t.Helper()
	j, err := f.srv.Client.BackupNow(context.Background(), pv.ID)
	if err != nil {
		f.t.Fatal(err)
	}
	return waitJob(f.t, f.srv, j.ID)
}

// snapshots lists the Haven snapshots left in the simulator.
func (f *vmFixture) snapshots() []vmware.OrphanSnapshot {
	f.t.Helper()
	s, err := f.c.HavenSnapshots(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *vmFixture) restore(req api.RestoreRequest) *api.Job {
	f.t.Helper()
	j, err := f.srv.Client.Restore(context.Background(), req)
	if err != nil {
		f.t.Fatal(err)
	}
	return waitJob(f.t, f.srv, j.ID)
}

// TestVMBackupIncrementalAndRestoreAsNewVM: a full and an incremental of a
// two-disk VM through the job engine, each restored as a new VM whose disks
// equal the source's at that time; no snapshot is left behind.
func TestVMBackupIncrementalAndRestoreAsNewVM(t *testing.T) {
	f := newVMFixture(t, nil)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(6, 6))
	f.sim.WriteDiskAt(t, "db-01", 0, testparts.RandomBlocks(rng, testparts.VCSimDiskSize, 2<<20, 1<<20))
	f.sim.WriteDiskAt(t, "db-01", 1, testparts.RandomBlocks(rng, testparts.VCSimDiskSize/2, 2<<20, 1<<20))
	pv := f.protect("db-01", nil)
	if pv.Name != "db-01" || pv.Status != api.VMActive {
		t.Fatalf("protected VM: %+v", pv)
	}
	before := [][]byte{f.sim.DiskBytes(t, "db-01", 0), f.sim.DiskBytes(t, "db-01", 1)}

	j1 := f.backup(pv)
	if j1.State != api.JobSucceeded || j1.BackupType != "" && j1.BackupType != api.BackupFull {
		t.Fatalf("first backup: %+v", j1)
	}
	if !strings.Contains(strings.Join(j1.Warnings, "\n"), "changed block tracking was enabled") {
		t.Errorf("the first backup should say it enabled CBT: %q", j1.Warnings)
	}
	// 1% of the first disk: two 64 KiB writes.
	f.sim.WriteDiskAt(t, "db-01", 0, map[int64][]byte{5 << 20: bytes.Repeat([]byte{1}, 64<<10), 11<<20 + 4096: bytes.Repeat([]byte{2}, 64<<10)})
	after := [][]byte{f.sim.DiskBytes(t, "db-01", 0), f.sim.DiskBytes(t, "db-01", 1)}
	j2 := f.backup(pv)
	if j2.State != api.JobSucceeded || len(j2.Warnings) != 0 {
		t.Fatalf("incremental backup: %+v", j2)
	}
	if left := f.snapshots(); len(left) != 0 {
		t.Fatalf("snapshots left behind: %+v", left)
	}
	pts, err := f.srv.Client.ListPoints(ctx, pv.ID, "", 0)
	if err != nil || len(pts.Items) != 2 {
		t.Fatalf("points: %+v %v", pts, err)
	}
	p2, p1 := pts.Items[0], pts.Items[1]
	if p1.Kind != api.BackupFull || p2.Kind != api.BackupIncremental || p2.Files != 2 {
		t.Fatalf("point kinds: %+v / %+v", p1, p2)
	}
	// The incremental stored about the changed blocks, not the disks again.
	if p2.NewBytes > 4<<20 {
		t.Errorf("the incremental added %d new bytes for 128 KiB changed", p2.NewBytes)
	}

	for i, tc := range []struct {
		point api.Point
		want  [][]byte
	}{{p1, before}, {p2, after}} {
		name := []string{"db-01-full", "db-01-incr"}[i]
		j := f.restore(api.RestoreRequest{PointID: tc.point.ID, VM: &api.VMRestore{Name: name, Folder: "/DC0/vm"}})
		if j.State != api.JobSucceeded || j.Result["vm_name"] != name || j.Result["vm_instance_uuid"] == "" {
			t.Fatalf("restore of %s: %+v", tc.point.Kind, j)
		}
		for d := range tc.want {
			if got := f.sim.DiskBytes(t, name, d); !bytes.Equal(got, tc.want[d]) {
				t.Fatalf("restored %s disk %d differs from the source at that point", name, d)
			}
		}
	}
	// The storage and policy hold the VM's protection: not deletable.
	for _, del := range []func() error{
		func() error { return f.srv.Client.Storages().Delete(ctx, f.storage.ID) },
		func() error { return f.srv.Client.Policies().Delete(ctx, f.policy.ID) },
	} {
		var e *api.Error
		if err := del(); !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Message, `protected VM "db-01"`) {
			t.Fatalf("deleting what a protected VM uses: %v", err)
		}
	}
	// The name is taken now: refused before anything is queued.
	var e *api.Error
	_, err = f.srv.Client.Restore(ctx, api.RestoreRequest{PointID: p1.ID, VM: &api.VMRestore{Name: "db-01-full", Folder: "/DC0/vm"}})
	if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || e.Field != "vm.name" {
		t.Fatalf("restore onto a taken name: %v", err)
	}
}

// TestVMRestoreOverOriginalAndSingleDisk: over the original only when it is
// powered off and overwrite is given; a single disk attaches to another VM.
func TestVMRestoreOverOriginalAndSingleDisk(t *testing.T) {
	f := newVMFixture(t, nil)
	ctx := context.Background()
	f.sim.WriteDisk(t, "app-01", 0, 1<<20, bytes.Repeat([]byte("original"), 8192))
	want := f.sim.DiskBytes(t, "app-01", 0)
	pv := f.protect("app-01", nil)
	if j := f.backup(pv); j.State != api.JobSucceeded {
		t.Fatalf("backup: %+v", j)
	}
	pts, _ := f.srv.Client.ListPoints(ctx, pv.ID, "", 0)
	point := pts.Items[0].ID
	f.sim.WriteDisk(t, "app-01", 0, 1<<20, bytes.Repeat([]byte("damaged!"), 8192))

	var e *api.Error
	_, err := f.srv.Client.Restore(ctx, api.RestoreRequest{PointID: point, VM: &api.VMRestore{Mode: api.VMRestoreOriginal}})
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Field != "vm.overwrite" {
		t.Fatalf("over the original without overwrite: %v", err)
	}
	vm := f.vm("app-01")
	f.setPower("app-01", true)
	_, err = f.srv.Client.Restore(ctx, api.RestoreRequest{PointID: point, VM: &api.VMRestore{Mode: api.VMRestoreOriginal, Overwrite: true}})
	if !errors.As(err, &e) || e.Status != http.StatusUnprocessableEntity || !strings.Contains(e.Message, "power it off") {
		t.Fatalf("over a running original: %v", err)
	}
	f.setPower("app-01", false)
	j := f.restore(api.RestoreRequest{PointID: point, VM: &api.VMRestore{Mode: api.VMRestoreOriginal, Overwrite: true}})
	if j.State != api.JobSucceeded {
		t.Fatalf("restore over the original: %+v", j)
	}
	if got := f.sim.DiskBytes(t, "app-01", 0); !bytes.Equal(got, want) {
		t.Fatal("the original's disk does not hold the point's bytes after the restore")
	}

	target := f.vm("db-01")
	j = f.restore(api.RestoreRequest{PointID: point, VM: &api.VMRestore{Mode: api.VMRestoreDisk, DiskKey: vm.Disks[0].Key, TargetInstanceUUID: target.InstanceUUID}})
	if j.State != api.JobSucceeded || j.Result["disk_file"] == "" {
		t.Fatalf("single-disk restore: %+v", j)
	}
	if got := f.vm("db-01"); len(got.Disks) != len(target.Disks)+1 {
		t.Fatalf("db-01 has %d disks after the attach, want %d", len(got.Disks), len(target.Disks)+1)
	}
	if got := f.sim.DiskBytes(t, "db-01", len(target.Disks)); !bytes.Equal(got, want) {
		t.Fatal("the attached disk does not hold the point's bytes")
	}
}

// TestResizedDiskIsReadInFull: after a disk grows, the next backup reads it
// whole (allocated areas), says why, and the point restores to the new size.
func TestResizedDiskIsReadInFull(t *testing.T) {
	f := newVMFixture(t, nil)
	f.sim.WriteDisk(t, "db-01", 0, 2<<20, bytes.Repeat([]byte{9}, 1<<20))
	pv := f.protect("db-01", nil)
	if j := f.backup(pv); j.State != api.JobSucceeded {
		t.Fatalf("first backup: %+v", j)
	}
	f.sim.ResizeDisk(t, "db-01", 1, testparts.VCSimDiskSize)
	f.sim.WriteDisk(t, "db-01", 1, testparts.VCSimDiskSize-(1<<20), bytes.Repeat([]byte{7}, 1<<20))
	want := f.sim.DiskBytes(t, "db-01", 1)
	j := f.backup(pv)
	warn := strings.Join(j.Warnings, "\n")
	if j.State != api.JobSucceeded || !strings.Contains(warn, "resized from") || strings.Contains(warn, "disk "+fmt.Sprint(f.vm("db-01").Disks[0].Key)+" ") {
		t.Fatalf("backup after the resize should read only the resized disk in full, and say why: %+v", j)
	}
	pts, _ := f.srv.Client.ListPoints(context.Background(), pv.ID, "", 0)
	r := f.restore(api.RestoreRequest{PointID: pts.Items[0].ID, VM: &api.VMRestore{Name: "db-01-grown", Folder: "/DC0/vm"}})
	if r.State != api.JobSucceeded {
		t.Fatalf("restore: %+v", r)
	}
	if got := f.sim.DiskBytes(t, "db-01-grown", 1); !bytes.Equal(got, want) {
		t.Fatalf("the resized disk restored as %d bytes, differing from the %d-byte source", len(got), len(want))
	}
}
