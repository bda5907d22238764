package vmware

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// VM is one virtual machine as Haven sees it.
type VM struct {
	Name          string
	InventoryPath string // "/DC0/vm/prod/app-01"
	InstanceUUID  string // config.instanceUuid: stable across vCenter restarts, unlike the moref
	MoRef         string // "vm-42"
	Folder        string // inventory path of the parent folder
	Datacenter    string // inventory path of the datacenter, without the leading "/"
	// Tags are "category:tag", sorted, from vCenter's vAPI tagging
	// service; empty (not nil) when the VM has none or the endpoint has no
	// tagging (ESXi).
	Tags                  []string
	PowerState            string
	ChangeTrackingEnabled bool
	Disks                 []Disk
}

// Disk is one virtual disk of a VM or of a snapshot's configuration.
type Disk struct {
	Key           int32
	Label         string
	FileName      string // datastore path of the descriptor: "[LocalDS_0] app-01/app-01.vmdk"
	Datastore     string
	CapacityBytes int64
	// ChangeID is the backing's CBT change id at that configuration's
	// point in time (empty when CBT is off).
	ChangeID string
}

var vmProps = []string{"name", "parent", "config.instanceUuid", "config.hardware.device",
	"config.changeTrackingEnabled", "runtime.powerState", "snapshot"}

// VMs lists every VM visible to the session. Templates are included.
func (c *Client) VMs(ctx context.Context) ([]VM, error) {
	vms, paths, dcs, err := c.inventory(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]VM, 0, len(vms))
	refs := make([]types.ManagedObjectReference, 0, len(vms))
	for _, m := range vms {
		out = append(out, toVM(m, paths, dcs))
		refs = append(refs, m.Self)
	}
	tags, err := c.vmTags(ctx, refs)
	if err != nil {
		return nil, err
	}
	for i := range out {
		if t := tags[out[i].MoRef]; len(t) > 0 {
			out[i].Tags = t
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].InventoryPath < out[j].InventoryPath })
	return out, nil
}

func (c *Client) inventory(ctx context.Context) ([]mo.VirtualMachine, map[types.ManagedObjectReference]string, map[types.ManagedObjectReference]string, error) {
	m := view.NewManager(c.vc)
	v, err := m.CreateContainerView(ctx, c.vc.ServiceContent.RootFolder, nil, true)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("vsphere: inventory view: %w", err)
	}
	defer v.Destroy(context.WithoutCancel(ctx))
	var ents []types.ObjectContent
	if err := v.Retrieve(ctx, []string{"ManagedEntity"}, []string{"name", "parent"}, &ents); err != nil {
		return nil, nil, nil, fmt.Errorf("vsphere: inventory: %w", err)
	}
	var vms []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, vmProps, &vms); err != nil {
		return nil, nil, nil, fmt.Errorf("vsphere: listing VMs: %w", err)
	}
	type node struct {
		name   string
		parent *types.ManagedObjectReference
	}
	nodes := map[types.ManagedObjectReference]node{}
	for _, oc := range ents {
		var n node
		for _, p := range oc.PropSet {
			switch p.Name {
			case "name":
				n.name, _ = p.Val.(string)
			case "parent":
				if r, ok := p.Val.(types.ManagedObjectReference); ok {
					n.parent = &r
				}
			}
		}
		nodes[oc.Obj] = n
	}
	// The root folder is outside the view and is not part of any path.
	paths := map[types.ManagedObjectReference]string{}
	dcs := map[types.ManagedObjectReference]string{}
	var resolve func(ref types.ManagedObjectReference) string
	resolve = func(ref types.ManagedObjectReference) string {
		if p, ok := paths[ref]; ok {
			return p
		}
		n, ok := nodes[ref]
		if !ok {
			return ""
		}
		parent := ""
		if n.parent != nil {
			parent = resolve(*n.parent)
		}
		p := parent + "/" + escapeName(n.name)
		paths[ref] = p
		return p
	}
	dcOf := func(ref types.ManagedObjectReference) string {
		for r := &ref; r != nil; r = nodes[*r].parent {
			if r.Type == "Datacenter" {
				return strings.TrimPrefix(resolve(*r), "/")
			}
		}
		return ""
	}
	for ref := range nodes {
		resolve(ref)
		if ref.Type == "VirtualMachine" {
			dcs[ref] = dcOf(ref)
		}
	}
	return vms, paths, dcs, nil
}

// escapeName escapes "/" in a name the way vSphere inventory paths do.
func escapeName(s string) string { return strings.ReplaceAll(s, "/", "%2f") }

func toVM(m mo.VirtualMachine, paths, dcs map[types.ManagedObjectReference]string) VM {
	vm := VM{
		Name:          m.Name,
		MoRef:         m.Self.Value,
		InventoryPath: paths[m.Self],
		Datacenter:    dcs[m.Self],
		PowerState:    string(m.Runtime.PowerState),
		Tags:          []string{},
	}
	if m.Parent != nil {
		vm.Folder = paths[*m.Parent]
	}
	if vm.InventoryPath == "" {
		vm.InventoryPath = path.Join(vm.Folder, m.Name)
	}
	if m.Config != nil {
		vm.InstanceUUID = m.Config.InstanceUuid
		if m.Config.ChangeTrackingEnabled != nil {
			vm.ChangeTrackingEnabled = *m.Config.ChangeTrackingEnabled
		}
		vm.Disks = disks(m.Config.Hardware.Device)
	}
	return vm
}

func disks(devices []types.BaseVirtualDevice) []Disk {
	var out []Disk
	for _, dev := range object.VirtualDeviceList(devices).SelectByType((*types.VirtualDisk)(nil)) {
		out = append(out, diskOf(dev.(*types.VirtualDisk)))
	}
	return out
}

func diskOf(d *types.VirtualDisk) Disk {
	disk := Disk{Key: d.Key, CapacityBytes: d.CapacityInBytes}
	if disk.CapacityBytes == 0 {
		disk.CapacityBytes = d.CapacityInKB * 1024
	}
	if info := d.DeviceInfo; info != nil {
		disk.Label = info.GetDescription().Label
	}
	if b, ok := d.Backing.(types.BaseVirtualDeviceFileBackingInfo); ok {
		disk.FileName = b.GetVirtualDeviceFileBackingInfo().FileName
		var p object.DatastorePath
		if p.FromString(disk.FileName) {
			disk.Datastore = p.Datastore
		}
	}
	switch b := d.Backing.(type) {
	case *types.VirtualDiskFlatVer2BackingInfo:
		disk.ChangeID = b.ChangeId
	case *types.VirtualDiskSparseVer2BackingInfo:
		disk.ChangeID = b.ChangeId
	case *types.VirtualDiskRawDiskMappingVer1BackingInfo:
		disk.ChangeID = b.ChangeId
	case *types.VirtualDiskSeSparseBackingInfo:
		disk.ChangeID = b.ChangeId
	}
	return disk
}

// VMByName finds the one VM with that name; names are unique only per
// folder, so two matches are an error (use the path or UUID then).
func (c *Client) VMByName(ctx context.Context, name string) (VM, error) {
	return c.findVM(ctx, "name "+name, func(v VM) bool { return v.Name == name })
}

// VMByPath finds a VM by inventory path ("/DC0/vm/prod/app-01").
func (c *Client) VMByPath(ctx context.Context, p string) (VM, error) {
	p = "/" + strings.Trim(p, "/")
	return c.findVM(ctx, "path "+p, func(v VM) bool { return v.InventoryPath == p })
}

// VMByInstanceUUID finds a VM by config.instanceUuid.
func (c *Client) VMByInstanceUUID(ctx context.Context, id string) (VM, error) {
	return c.findVM(ctx, "instance UUID "+id, func(v VM) bool { return strings.EqualFold(v.InstanceUUID, id) })
}

// VMByMoRef finds a VM by managed object id ("vm-42").
func (c *Client) VMByMoRef(ctx context.Context, moref string) (VM, error) {
	moref = strings.TrimPrefix(moref, "VirtualMachine:")
	return c.findVM(ctx, "moref "+moref, func(v VM) bool { return v.MoRef == moref })
}

// findVM filters a full listing: one property-collector round trip,
// whatever the key, and the same VM shape as VMs.
func (c *Client) findVM(ctx context.Context, what string, match func(VM) bool) (VM, error) {
	vms, err := c.VMs(ctx)
	if err != nil {
		return VM{}, err
	}
	var found []VM
	for _, v := range vms {
		if match(v) {
			found = append(found, v)
		}
	}
	switch len(found) {
	case 0:
		return VM{}, fmt.Errorf("%w: VM with %s", ErrNotFound, what)
	case 1:
		return found[0], nil
	default:
		return VM{}, fmt.Errorf("%w: %d VMs with %s", ErrAmbiguous, len(found), what)
	}
}

func vmRef(vm VM) types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VirtualMachine", Value: vm.MoRef}
}
