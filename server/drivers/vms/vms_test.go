package vms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/vmware/govmomi/object"

	"github.com/havenbackup/terraform-provider-haven/engine/vmimage"
	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/driver/drivertest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testparts.StopSharedPostgres()
	os.Exit(code)
}

// fixture is the VM driver over a real catalog, store and vCenter (the
// simulator), with the vCenter registered as the server registers it.
type fixture struct {
	t     *testing.T
	env   *drivertest.Env
	sim   *testparts.VCSimEnv
	c     *vmware.Client
	locks *drivertest.Locks
	reg   *driver.Registry
	drv   *Driver
	vcID  string
}

func newFixture(t *testing.T, concurrency int) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{t: t, env: drivertest.New(t), sim: testparts.VCSim(t), locks: &drivertest.Locks{}}
	// As the server stores a vCenter: the settings without the password,
	// which is sealed with the master key for its purpose.
	spec, err := json.Marshal(struct {
		api.VCenterSpec
		Status string `json:"status"`
	}{api.VCenterSpec{Name: "sim", URL: f.sim.URL, Username: f.sim.Username, Thumbprint: f.sim.Thumbprint}, "connected"})
	if err != nil {
		t.Fatal(err)
	}
	o, _, err := f.env.DB.Create(ctx, db.VCenters, "sim", spec, f.env.Master.Seal([]byte(f.sim.Password), connect.VCenterSecretContext), "")
	if err != nil {
		t.Fatal(err)
	}
	f.vcID = o.ID
	f.c, err = vmware.Connect(ctx, vmware.Config{URL: f.sim.URL, Username: f.sim.Username, Password: f.sim.Password, Thumbprint: f.sim.Thumbprint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.c.Logout(context.Background()) })
	f.drv = New(f.env.DB, f.env.Master, f.locks, f.env.Repos, slog.New(slog.DiscardHandler), concurrency)
	f.reg = driver.NewRegistry(f.env.DB)
	f.reg.Register(f.drv)
	f.reg.RegisterDecoder(Decoder{})
	return f
}

func (f *fixture) vm(name string) vmware.VM {
	f.t.Helper()
	vm, err := f.c.VMByName(context.Background(), name)
	if err != nil {
		f.t.Fatal(err)
	}
	return vm
}

// protect stores a protected VM as the server does (the spec with the
// server-maintained name, moref and status) and loads it as the engine
// does, through the registry.
func (f *fixture) protect(name, status string) *driver.Asset {
	f.t.Helper()
	vm := f.vm(name)
	spec := api.ProtectedVMSpec{VCenterID: f.vcID, InstanceUUID: strings.ToLower(vm.InstanceUUID), PolicyID: f.env.PolicyID, StorageID: f.env.StorageID}
	id := f.env.Create(f.t, db.ProtectedVMs, api.ProtectedVMObjectName(f.vcID, spec.InstanceUUID), struct {
		api.ProtectedVMSpec
		Name   string `json:"name"`
		MoRef  string `json:"moref,omitempty"`
		Status string `json:"status"`
	}{spec, vm.Name, vm.MoRef, status})
	return f.load(id)
}

func (f *fixture) load(id string) *driver.Asset {
	f.t.Helper()
	a, err := f.reg.Load(context.Background(), id)
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

// backup runs one backup of a; parent, when given, is the point an
// incremental builds on.
func (f *fixture) backup(a *driver.Asset, parent *api.Point) *drivertest.Backup {
	f.t.Helper()
	b := f.env.NewBackup(a)
	if parent != nil {
		b.Parent = *parent
	}
	if err := f.drv.Backup(context.Background(), b); err != nil {
		f.t.Fatalf("backup: %v", err)
	}
	if b.Committed == nil {
		f.t.Fatal("the backup committed no point")
	}
	return b
}

// snapshots lists the Haven snapshots in the simulator.
func (f *fixture) snapshots() []vmware.OrphanSnapshot {
	f.t.Helper()
	s, err := f.c.HavenSnapshots(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// restore prepares and runs a restore of the point b made, as the engine
// would: the prepared request is what the job stores.
func (f *fixture) restore(b *drivertest.Backup, v api.VMRestore) *drivertest.Restore {
	f.t.Helper()
	ctx := context.Background()
	params, err := f.drv.PrepareRestore(ctx, api.RestoreRequest{PointID: b.Committed.ID, VM: &v}, *b.Committed, b.AssetVal)
	if err != nil {
		f.t.Fatalf("prepare restore: %v", err)
	}
	r := f.env.NewRestore(b, *params)
	if err := f.drv.Restore(ctx, r); err != nil {
		f.t.Fatalf("restore: %v", err)
	}
	return r
}

// refused asserts a restore request is refused at once, naming field.
func (f *fixture) refused(b *drivertest.Backup, req api.RestoreRequest, field string) {
	f.t.Helper()
	req.PointID = b.Committed.ID
	_, err := f.drv.PrepareRestore(context.Background(), req, *b.Committed, b.AssetVal)
	var e *api.Error
	if !errors.As(err, &e) || e.Field != field {
		f.t.Fatalf("restore request %+v: got %v, want a refusal naming %s", req.VM, err, field)
	}
}

// TestDecoder: a live protected VM decodes as this driver's kind, inactive
// when its status is not active; once deleted it decodes from what
// retired_assets recorded, under the policy it was under.
func TestDecoder(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	a := f.protect("app-01", api.VMActive)
	pv := VMOf(a)
	if a.Kind != Kind || a.Name != "app-01" || !a.Scheduled() || a.Retired || pv.VCenterID != f.vcID ||
		a.StorageID != f.env.StorageID || a.Policy.ID != f.env.PolicyID || a.Policy.Name != "daily" || pv.ID != a.ID {
		t.Fatalf("live protected VM: %s", describe(a))
	}
	u := f.protect("db-01", api.VMUnselected)
	if u.Kind != Kind || u.Scheduled() || !strings.Contains(u.Inactive, api.VMUnselected) {
		t.Fatalf("unselected protected VM: %s", describe(u))
	}

	if err := f.env.DB.Delete(ctx, db.ProtectedVMs, a.ID, nil); err != nil {
		t.Fatal(err)
	}
	r := f.load(a.ID)
	if r.Kind != Kind || !r.Retired || r.Scheduled() || r.Name != "app-01" || r.Policy.Name != "daily" ||
		VMOf(r).InstanceUUID != pv.InstanceUUID || VMOf(r).ID != a.ID {
		t.Fatalf("retired protected VM: %s", describe(r))
	}
}

// describe says what a test checks of a decoded asset.
func describe(a *driver.Asset) string {
	pv := VMOf(a)
	return fmt.Sprintf("id %s kind %q name %q retired %v inactive %q storage %s policy %s (%q); VM id %s, vCenter %s, instance %s",
		a.ID, a.Kind, a.Name, a.Retired, a.Inactive, a.StorageID, a.Policy.ID, a.Policy.Name, pv.ID, pv.VCenterID, pv.InstanceUUID)
}

// TestCheckBackup: a scheduled backup of a VM no rule selects is skipped
// with its reason; an on-demand one, or one of an active VM, runs.
func TestCheckBackup(t *testing.T) {
	// The check reads only the asset and the job: no catalog or vCenter.
	var d Driver
	for _, tc := range []struct {
		status, trigger string
		skip            bool
	}{
		{api.VMUnselected, api.TriggerScheduled, true},
		{api.VMMissing, api.TriggerScheduled, true},
		{api.VMUnselected, api.TriggerOnDemand, false},
		{api.VMActive, api.TriggerScheduled, false},
	} {
		b := &drivertest.Backup{AssetVal: &driver.Asset{ID: uuid.NewString(), Kind: Kind, Spec: &api.ProtectedVM{Status: tc.status}},
			JobValue: api.Job{ID: uuid.NewString(), Kind: api.JobBackup, Trigger: tc.trigger, Attempt: 1}}
		err := d.CheckBackup(context.Background(), b)
		var skip driver.Skip
		if tc.skip != errors.As(err, &skip) || !tc.skip && err != nil || tc.skip && !strings.Contains(skip.Reason, tc.status) {
			t.Errorf("%s backup of a VM %s: %v", tc.trigger, tc.status, err)
		}
	}
}

// TestBackupFullIncrementalAndRestoreAsNewVM: a full backup of a two-disk
// VM records its disks and capacity and leaves no snapshot; an incremental
// on top reads only the changed areas; each point restores as a new VM
// whose disks equal the source's at that time; the name is then taken.
func TestBackupFullIncrementalAndRestoreAsNewVM(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(11, 11))
	f.sim.WriteDiskAt(t, "db-01", 0, testparts.RandomBlocks(rng, testparts.VCSimDiskSize, 2<<20, 1<<20))
	f.sim.WriteDiskAt(t, "db-01", 1, testparts.RandomBlocks(rng, testparts.VCSimDiskSize/2, 2<<20, 1<<20))
	a := f.protect("db-01", api.VMActive)
	var capacity int64
	for _, d := range f.vm("db-01").Disks {
		capacity += d.CapacityBytes
	}
	before := [][]byte{f.sim.DiskBytes(t, "db-01", 0), f.sim.DiskBytes(t, "db-01", 1)}

	full := f.backup(a, nil)
	if p := full.Committed; p.Kind != api.BackupFull || p.Files != 2 || p.LogicalBytes != capacity {
		t.Fatalf("full point: %+v, want 2 disks of %d bytes in all", p, capacity)
	}
	if !strings.Contains(strings.Join(full.Prog.Warnings, "\n"), "changed block tracking was enabled") {
		t.Errorf("the first backup should say it enabled CBT: %q", full.Prog.Warnings)
	}
	if left := f.snapshots(); len(left) != 0 {
		t.Fatalf("snapshots left behind by the full backup: %+v", left)
	}

	// Two 64 KiB writes to the first disk, none to the second.
	f.sim.WriteDiskAt(t, "db-01", 0, map[int64][]byte{5 << 20: bytes.Repeat([]byte{1}, 64<<10), 11<<20 + 4096: bytes.Repeat([]byte{2}, 64<<10)})
	after := [][]byte{f.sim.DiskBytes(t, "db-01", 0), f.sim.DiskBytes(t, "db-01", 1)}
	incr := f.backup(a, full.Committed)
	if p := incr.Committed; p.Kind != api.BackupIncremental || p.ParentID != full.Committed.ID || p.Files != 2 || p.LogicalBytes != capacity {
		t.Fatalf("incremental point: %+v", p)
	}
	if len(incr.Prog.Warnings) != 0 {
		t.Errorf("incremental backup warnings: %q", incr.Prog.Warnings)
	}
	if left := f.snapshots(); len(left) != 0 {
		t.Fatalf("snapshots left behind by the incremental: %+v", left)
	}
	disks, _, err := vmimage.ReadPoint(ctx, f.env.Repository(t), incr.Root)
	if err != nil {
		t.Fatal(err)
	}
	// The first disk's two writes fall in two of its read blocks (1 MiB);
	// the second disk is not read at all.
	for i, d := range disks {
		limit := []int64{2 << 20, 0}[i]
		if d.Read != vmimage.ReadChanged || d.ReadBytes > limit {
			t.Errorf("incremental disk %d: read %s, %d bytes; want only the changed areas (at most %d bytes)", d.Key, d.Read, d.ReadBytes, limit)
		}
	}

	for _, tc := range []struct {
		name  string
		point *drivertest.Backup
		want  [][]byte
	}{{"db-01-full", full, before}, {"db-01-incr", incr, after}} {
		r := f.restore(tc.point, api.VMRestore{Mode: api.VMRestoreNew, Name: tc.name, Folder: "/DC0/vm"})
		if r.Result["vm_name"] != tc.name || r.Result["vm_instance_uuid"] == "" {
			t.Fatalf("restore as %s: result %v", tc.name, r.Result)
		}
		for d := range tc.want {
			if got := f.sim.DiskBytes(t, tc.name, d); !bytes.Equal(got, tc.want[d]) {
				t.Fatalf("restored %s disk %d differs from the source at that point", tc.name, d)
			}
		}
	}
	f.refused(full, api.RestoreRequest{VM: &api.VMRestore{Mode: api.VMRestoreNew, Name: "db-01-full", Folder: "/DC0/vm"}}, "vm.name")
}

// TestPrepareRestoreRefusals: requests that cannot work are refused before
// anything is queued, naming the field to fix.
func TestPrepareRestoreRefusals(t *testing.T) {
	f := newFixture(t, 0)
	a := f.protect("app-01", api.VMActive)
	b := f.backup(a, nil)
	target := f.vm("db-01")

	// A files restore request on a VM point.
	f.refused(b, api.RestoreRequest{TargetPath: "/restore"}, "vm")
	// A disk the point does not have.
	f.refused(b, api.RestoreRequest{VM: &api.VMRestore{Mode: api.VMRestoreDisk, DiskKey: 2999, TargetInstanceUUID: target.InstanceUUID}}, "vm.disk_key")
	// Over the original while it runs.
	f.sim.SetPower(t, "app-01", true)
	f.refused(b, api.RestoreRequest{VM: &api.VMRestore{Mode: api.VMRestoreOriginal, Overwrite: true}}, "vm.overwrite")
	// Powered off, the same request is accepted.
	f.sim.SetPower(t, "app-01", false)
	if _, err := f.drv.PrepareRestore(context.Background(), api.RestoreRequest{PointID: b.Committed.ID,
		VM: &api.VMRestore{Mode: api.VMRestoreOriginal, Overwrite: true}}, *b.Committed, a); err != nil {
		t.Fatalf("restore over the powered-off original: %v", err)
	}
}

// TestBackupWaitsForVCenterSlot: with every backup slot of the vCenter
// taken, a backup waits in the queue and touches nothing on the vCenter.
func TestBackupWaitsForVCenterSlot(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	a := f.protect("app-01", api.VMActive)
	release, ok, err := f.locks.TryLock(ctx, "haven-vcenter-slot:"+f.vcID+":0")
	if err != nil || !ok {
		t.Fatalf("taking the slot: ok=%v %v", ok, err)
	}
	b := f.env.NewBackup(a)
	err = f.drv.Backup(ctx, b)
	var wait driver.Wait
	if !errors.As(err, &wait) || wait.After <= 0 || b.Committed != nil {
		t.Fatalf("backup with the only slot taken: %v (committed a point: %v)", err, b.Committed != nil)
	}
	if left := f.snapshots(); len(left) != 0 {
		t.Fatalf("a waiting backup took a snapshot: %+v", left)
	}
	release()
	f.backup(a, nil)
}

// TestCleanup: the janitor removes a Haven snapshot of a protected VM only
// while no backup holds the VM's asset lock, one of an unprotected VM at
// once, and never a snapshot Haven did not take.
func TestCleanup(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	a := f.protect("app-01", api.VMActive)
	protected, unprotected := f.vm("app-01"), f.vm("db-01")
	for _, s := range []struct {
		vm   vmware.VM
		name string
	}{
		{protected, snapshotName(&api.Job{ID: uuid.NewString(), Attempt: 1})},
		{protected, "before-upgrade"},
		{unprotected, snapshotName(&api.Job{ID: uuid.NewString(), Attempt: 2})},
	} {
		if _, err := f.c.CreateSnapshot(ctx, s.vm, s.name, false); err != nil {
			t.Fatal(err)
		}
	}
	havenOn := func() map[string]int {
		out := map[string]int{}
		for _, s := range f.snapshots() {
			out[s.VMName]++
		}
		return out
	}

	release, err := driver.LockAsset(ctx, f.locks, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.drv.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if got := havenOn(); got["app-01"] != 1 || got["db-01"] != 0 {
		t.Fatalf("while a backup holds app-01's lock, Haven snapshots left: %v; want app-01's kept, db-01's removed", got)
	}
	release()
	if err := f.drv.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if got := havenOn(); len(got) != 0 {
		t.Fatalf("with the lock free, Haven snapshots left: %v", got)
	}
	if !f.hasSnapshot("app-01", "before-upgrade") {
		t.Fatal("the janitor removed a snapshot Haven did not take")
	}
}

// hasSnapshot tells whether a VM has a snapshot of that name.
func (f *fixture) hasSnapshot(vmName, snapName string) bool {
	f.t.Helper()
	ref, err := f.sim.VMRef(vmName)
	if err != nil {
		f.t.Fatal(err)
	}
	_, err = object.NewVirtualMachine(f.sim.Client.Client, ref).FindSnapshot(context.Background(), snapName)
	return err == nil
}
