package vmware_test

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

// vcsimVM finds a VM through the harness's own session, for test setup
// that goes around the code under test.
func vcsimVM(t *testing.T, env *testparts.VCSimEnv, name string) *object.VirtualMachine {
	t.Helper()
	f := find.NewFinder(env.Client.Client, true)
	vms, err := f.VirtualMachineList(context.Background(), "/"+env.Datacenter+"/vm/...")
	if err != nil {
		t.Fatal(err)
	}
	for _, vm := range vms {
		if vm.Name() == name {
			return vm
		}
	}
	t.Fatalf("no VM %s", name)
	return nil
}

func reconfigureVM(t *testing.T, env *testparts.VCSimEnv, name string, spec types.VirtualMachineConfigSpec) {
	t.Helper()
	task, err := vcsimVM(t, env, name).Reconfigure(context.Background(), spec)
	if err == nil {
		err = task.Wait(context.Background())
	}
	if err != nil {
		t.Fatalf("reconfiguring %s: %v", name, err)
	}
}

// addNIC gives a VM a network adapter; mac "" lets vCenter generate one.
func addNIC(t *testing.T, env *testparts.VCSimEnv, vmName, network string, card types.BaseVirtualEthernetCard, mac string) {
	t.Helper()
	ctx := context.Background()
	f := find.NewFinder(env.Client.Client, true)
	dc, err := f.Datacenter(ctx, env.Datacenter)
	if err != nil {
		t.Fatal(err)
	}
	f.SetDatacenter(dc)
	net, err := f.Network(ctx, network)
	if err != nil {
		t.Fatal(err)
	}
	backing, err := net.EthernetCardBackingInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := card.GetVirtualEthernetCard()
	e.Key = -1
	e.Backing = backing
	e.Connectable = &types.VirtualDeviceConnectInfo{StartConnected: true}
	if mac != "" {
		e.AddressType = string(types.VirtualEthernetCardMacTypeManual)
		e.MacAddress = mac
	}
	reconfigureVM(t, env, vmName, types.VirtualMachineConfigSpec{DeviceChange: []types.BaseVirtualDeviceConfigSpec{
		&types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd, Device: card.(types.BaseVirtualDevice)},
	}})
}

func TestSnapshotConfig(t *testing.T) {
	env := testparts.VCSim(t)
	c := connect(t, env)
	ctx := context.Background()
	const manualMAC = "00:50:56:3f:12:34"
	addNIC(t, env, "app-01", "VM Network", &types.VirtualVmxnet3{}, manualMAC)
	addNIC(t, env, "app-01", "DC0_DVPG0", &types.VirtualE1000{}, "")
	reconfigureVM(t, env, "app-01", types.VirtualMachineConfigSpec{
		NumCPUs: 4, NumCoresPerSocket: types.NewInt32(2), MemoryMB: 2048, Annotation: "app server",
	})
	app, err := c.VMByName(ctx, "app-01")
	if err != nil {
		t.Fatal(err)
	}
	snap, err := c.CreateSnapshot(ctx, app, vmware.SnapshotPrefix+"cfg", false)
	if err != nil {
		t.Fatal(err)
	}
	// Changes after the snapshot belong to the VM, not to the point.
	reconfigureVM(t, env, "app-01", types.VirtualMachineConfigSpec{MemoryMB: 4096})

	cfg, err := c.SnapshotConfig(ctx, app, snap)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "app-01" || cfg.GuestID != string(types.VirtualMachineGuestOsIdentifierOtherLinux64Guest) || cfg.Firmware == "" ||
		cfg.NumCPUs != 4 || cfg.CoresPerSocket != 2 || cfg.MemoryMB != 2048 || cfg.Annotation != "app server" ||
		!strings.HasPrefix(cfg.HardwareVersion, "vmx-") {
		t.Fatalf("hardware: %+v", cfg)
	}
	snapDisks, err := c.SnapshotDisks(ctx, snap)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Disks) != 1 {
		t.Fatalf("disks: %+v", cfg.Disks)
	}
	d := cfg.Disks[0]
	if d.Key != app.Disks[0].Key || d.Label != app.Disks[0].Label || d.CapacityBytes != testparts.VCSimDiskSize ||
		d.ControllerType != "pvscsi" || d.BusNumber != 0 || d.UnitNumber != 0 || d.Provisioning != "thin" ||
		d.Datastore != "LocalDS_0" || d.FileName != snapDisks[0].FileName {
		t.Fatalf("disk: %+v (snapshot file %s)", d, snapDisks[0].FileName)
	}
	if len(cfg.NICs) != 2 {
		t.Fatalf("NICs: %+v", cfg.NICs)
	}
	n0, n1 := cfg.NICs[0], cfg.NICs[1]
	if n0.AdapterType != "vmxnet3" || n0.Network != "VM Network" || n0.MACAddress != manualMAC || !n0.ManualMAC || !n0.StartConnected || n0.Label == "" {
		t.Fatalf("NIC 0: %+v", n0)
	}
	if n1.AdapterType != "e1000" || n1.Network != "DC0_DVPG0" || n1.MACAddress == "" || n1.ManualMAC {
		t.Fatalf("NIC 1: %+v", n1)
	}
	host, err := vcsimVM(t, env, "app-01").HostSystem(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hostPath, err := find.InventoryPath(ctx, env.Client.Client, host.Reference())
	if err != nil {
		t.Fatal(err)
	}
	want := vmware.VMLocation{Datacenter: "DC0", Folder: "/DC0/vm/prod", ResourcePool: "/DC0/host/DC0_H0/Resources", Host: hostPath, Datastore: "LocalDS_0"}
	if cfg.Location != want {
		t.Fatalf("location: %+v, want %+v", cfg.Location, want)
	}

	// A recovery point stores it as JSON.
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var back vmware.VMConfig
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, cfg) {
		t.Fatalf("JSON round trip: %v\n%s", err, b)
	}

	// Without a snapshot: the VM as it is now.
	now, err := c.SnapshotConfig(ctx, app, "")
	if err != nil || now.MemoryMB != 4096 || now.Disks[0].FileName != "[LocalDS_0] app-01/disk1.vmdk" {
		t.Fatalf("current config: %+v %v", now, err)
	}

	db, err := c.VMByName(ctx, "db-01")
	if err != nil {
		t.Fatal(err)
	}
	dbc, err := c.SnapshotConfig(ctx, db, "")
	if err != nil || len(dbc.Disks) != 2 || dbc.Disks[1].CapacityBytes != testparts.VCSimDiskSize/2 || dbc.Disks[1].UnitNumber != 1 ||
		len(dbc.NICs) != 0 || dbc.Location.Folder != "/DC0/vm" {
		t.Fatalf("db-01: %+v %v", dbc, err)
	}
	if _, err := c.SnapshotConfig(ctx, db, snap); err == nil {
		t.Fatal("a snapshot of app-01 was read as one of db-01")
	}
}
