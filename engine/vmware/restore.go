package vmware

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vmdk"
)

var (
	// ErrPoweredOn: restoring over a VM needs it powered off.
	ErrPoweredOn = errors.New("vsphere: the VM is not powered off")
	// ErrHasSnapshots: restoring over a VM needs it without snapshots.
	ErrHasSnapshots = errors.New("vsphere: the VM has snapshots")
	// ErrAlreadyExists: a restore would take a name, file or unit that
	// something else has.
	ErrAlreadyExists = errors.New("vsphere: already exists")
)

// Placement says where a restore creates a VM. Paths are inventory paths
// ("/DC0/vm/restored"); a relative Folder is taken under the datacenter's
// VM folder, relative pool and host paths under its host folder. Empty
// fields default to the VMConfig's Location, except that a restore into
// another datacenter gets that datacenter's VM folder, its default pool
// and its default datastore, and that a Host or ResourcePool given alone
// stops the other from defaulting to the original (the original pool need
// not contain the new host).
type Placement struct {
	Name         string // defaults to VMConfig.Name
	Datacenter   string
	Folder       string
	ResourcePool string
	Host         string
	Datastore    string // the .vmx and every restored disk go here
	// NetworkMap maps the name of a network in the VMConfig to the
	// network to connect to instead; unmapped networks keep their name.
	// Entries for networks this VM does not use are ignored, so one map
	// can serve a whole recovery plan.
	NetworkMap map[string]string
	PowerOn    bool
}

// RestorePlan is where a restore as a new VM writes its disks.
type RestorePlan struct {
	Name       string
	Datacenter string // for UploadDisk
	Datastore  string
	Folder     string // inventory path the VM will be created in
	// Disks maps each VMConfig disk key to the descriptor path its
	// content is uploaded to, then given to CreateVM.
	Disks map[int32]string
}

// PlanRestore checks, before any data moves, that a restore of cfg at p
// can be created: the datacenter, folder, pool, host, datastore and every
// (mapped) network exist, no object of that name is in the folder
// (ErrAlreadyExists), and no file is at the disks' paths, which
// RestoredDiskPath lays out. UploadDisk overwrites, so this last check is
// what keeps a restore named like an existing VM from writing over its
// disks.
func (c *Client) PlanRestore(ctx context.Context, cfg VMConfig, p Placement) (RestorePlan, error) {
	t, err := c.resolve(ctx, cfg, p)
	if err != nil {
		return RestorePlan{}, err
	}
	plan := RestorePlan{Name: t.name, Datacenter: t.dcPath, Datastore: t.datastore, Folder: t.folder.InventoryPath, Disks: map[int32]string{}}
	files := []string{t.vmxPath()}
	for i, d := range cfg.Disks {
		plan.Disks[d.Key] = RestoredDiskPath(t.datastore, t.name, i)
		files = append(files, plan.Disks[d.Key], flatName(plan.Disks[d.Key]))
	}
	for _, f := range files {
		var dp object.DatastorePath
		dp.FromString(f)
		there, err := c.fileExists(ctx, t.dcPath, dp)
		if err != nil {
			return RestorePlan{}, err
		}
		if there {
			return RestorePlan{}, fmt.Errorf("%w: %s (choose another name or datastore, or remove what is there)", ErrAlreadyExists, f)
		}
	}
	return plan, nil
}

// CreateVM creates a VM with cfg's hardware at p and returns it. disks maps
// VMConfig disk keys to descriptor paths that already hold the disks'
// content (see PlanRestore and UploadDisk); they are attached as they are,
// and disks of cfg not in the map are left out. NICs connect to their
// networks through p.NetworkMap. A manually assigned MAC is kept unless
// another VM uses it (the original, in a restore next to it); every other
// NIC gets a fresh MAC. If the VM is created but does not power on, it is
// returned with the error, for the caller to keep or Destroy.
func (c *Client) CreateVM(ctx context.Context, cfg VMConfig, p Placement, disks map[int32]string) (VM, error) {
	t, err := c.resolve(ctx, cfg, p)
	if err != nil {
		return VM{}, err
	}
	var macs map[string]bool
	if slices.ContainsFunc(cfg.NICs, func(n NICConfig) bool { return n.ManualMAC }) {
		if macs, err = c.macsInUse(ctx); err != nil {
			return VM{}, err
		}
	}
	spec, err := createSpec(cfg, t, disks, macs)
	if err != nil {
		return VM{}, err
	}
	// vSphere would report a missing or wrong file as a bare FileNotFound
	// or, worse, grow a disk to a capacity the caller got wrong.
	for _, d := range cfg.Disks {
		file, ok := disks[d.Key]
		if !ok {
			continue
		}
		var dp object.DatastorePath
		if !dp.FromString(file) {
			return VM{}, fmt.Errorf("vsphere: disk %q: %q is not a datastore path", d.Label, file)
		}
		desc, err := c.readDescriptor(ctx, t.dcPath, dp)
		if err != nil {
			return VM{}, fmt.Errorf("vsphere: restoring disk %q of %s: %w", d.Label, t.name, err)
		}
		if desc.Capacity() != d.CapacityBytes {
			return VM{}, fmt.Errorf("vsphere: restoring disk %q of %s: %s holds %d bytes, the disk has %d", d.Label, t.name, file, desc.Capacity(), d.CapacityBytes)
		}
	}
	task, err := t.folder.CreateVM(ctx, spec, t.pool, t.host)
	if err != nil {
		return VM{}, fmt.Errorf("vsphere: creating VM %s in %s: %w", t.name, t.folder.InventoryPath, err)
	}
	res, err := task.WaitForResult(ctx)
	if err != nil {
		if fault.Is(err, &types.DuplicateName{}) || fault.Is(err, &types.FileAlreadyExists{}) {
			err = fmt.Errorf("%w: %v", ErrAlreadyExists, err)
		}
		return VM{}, fmt.Errorf("vsphere: creating VM %s in %s: %w", t.name, t.folder.InventoryPath, err)
	}
	ref, ok := res.Result.(types.ManagedObjectReference)
	if !ok {
		return VM{}, fmt.Errorf("vsphere: creating VM %s: unexpected task result %T", t.name, res.Result)
	}
	vm, err := c.VMByMoRef(ctx, ref.Value)
	if err != nil {
		return VM{}, err
	}
	if p.PowerOn {
		if err := c.PowerOn(ctx, vm); err != nil {
			return vm, err
		}
		vm.PowerState = string(types.VirtualMachinePowerStatePoweredOn)
	}
	return vm, nil
}

// target is a Placement resolved against the inventory.
type target struct {
	name      string
	dcPath    string
	datastore string
	folder    *object.Folder
	pool      *object.ResourcePool
	host      *object.HostSystem // nil: vSphere picks
	nics      []types.BaseVirtualDeviceBackingInfo
}

// vmxPath puts the .vmx in the directory RestoredDiskPath puts the disks in.
func (t *target) vmxPath() string { return vmFile(t.datastore, t.name, ".vmx") }

func (c *Client) resolve(ctx context.Context, cfg VMConfig, p Placement) (*target, error) {
	orig := cfg.Location
	t := &target{name: cmp.Or(p.Name, cfg.Name), dcPath: strings.Trim(cmp.Or(p.Datacenter, orig.Datacenter), "/")}
	if t.name == "" {
		return nil, errors.New("vsphere: the restored VM needs a name")
	}
	if t.dcPath == "" {
		return nil, errors.New("vsphere: the restore needs a datacenter")
	}
	same := t.dcPath == strings.Trim(orig.Datacenter, "/")
	f := find.NewFinder(c.vc, false)
	dc, err := f.Datacenter(ctx, t.dcPath)
	if err != nil {
		return nil, lookupError("datacenter", t.dcPath, err)
	}
	f.SetDatacenter(dc)

	folder := p.Folder
	if folder == "" && same {
		folder = orig.Folder
	}
	if folder == "" {
		folders, err := dc.Folders(ctx)
		if err != nil {
			return nil, fmt.Errorf("vsphere: folders of %s: %w", t.dcPath, err)
		}
		t.folder = folders.VmFolder
	} else {
		if !strings.HasPrefix(folder, "/") {
			folder = path.Join("/", t.dcPath, "vm", folder)
		}
		if t.folder, err = f.Folder(ctx, folder); err != nil {
			return nil, lookupError("folder", folder, err)
		}
	}

	host, pool := p.Host, p.ResourcePool
	if same && host == "" && pool == "" {
		host, pool = orig.Host, orig.ResourcePool
	}
	if host != "" {
		if t.host, err = f.HostSystem(ctx, host); err != nil {
			return nil, lookupError("host", host, err)
		}
	}
	switch {
	case pool != "":
		t.pool, err = f.ResourcePool(ctx, pool)
	case t.host != nil:
		t.pool, err = t.host.ResourcePool(ctx)
	default:
		t.pool, err = f.DefaultResourcePool(ctx)
	}
	if err != nil {
		return nil, lookupError("resource pool", pool, err)
	}

	ds := p.Datastore
	if ds == "" && same {
		ds = orig.Datastore
	}
	var dso *object.Datastore
	if ds == "" {
		dso, err = f.DefaultDatastore(ctx)
	} else {
		dso, err = f.Datastore(ctx, ds)
	}
	if err != nil {
		return nil, lookupError("datastore", ds, err)
	}
	t.datastore = dso.Name()

	child, err := object.NewSearchIndex(c.vc).FindChild(ctx, t.folder, t.name)
	if err != nil {
		return nil, fmt.Errorf("vsphere: looking for %s in %s: %w", t.name, t.folder.InventoryPath, err)
	}
	if child != nil {
		return nil, fmt.Errorf("%w: %s already has a %s named %q", ErrAlreadyExists, t.folder.InventoryPath, child.Reference().Type, t.name)
	}

	for _, nic := range cfg.NICs {
		name := nic.Network
		if m, ok := p.NetworkMap[name]; ok && m != "" {
			name = m
		}
		net, err := f.Network(ctx, name)
		if err != nil {
			what := fmt.Sprintf("network %q (for %s, on %q in the backup)", name, cmp.Or(nic.Label, "a NIC"), nic.Network)
			return nil, lookupError(what, "", err)
		}
		b, err := net.EthernetCardBackingInfo(ctx)
		if err != nil {
			return nil, fmt.Errorf("vsphere: network %q: %w", name, err)
		}
		t.nics = append(t.nics, b)
	}
	return t, nil
}

// lookupError names what a restore could not find, so that a missing
// folder or network reads as that, not as the finder's generic message.
func lookupError(kind, name string, err error) error {
	var nf *find.NotFoundError
	var dnf *find.DefaultNotFoundError
	var dmf find.DefaultMultipleFoundError
	var mf *find.MultipleFoundError
	switch {
	case errors.As(err, &nf), errors.As(err, &dnf):
		if name == "" {
			return fmt.Errorf("%w: %s", ErrNotFound, kind)
		}
		return fmt.Errorf("%w: %s %q", ErrNotFound, kind, name)
	case errors.As(err, &dmf):
		return fmt.Errorf("vsphere: there is more than one %s to choose from: set one", kind)
	case errors.As(err, &mf):
		return fmt.Errorf("%w: %s %q", ErrAmbiguous, kind, name)
	}
	return fmt.Errorf("vsphere: finding %s %q: %w", kind, name, err)
}

// macsInUse lists every MAC of every VM the session can see.
func (c *Client) macsInUse(ctx context.Context) (map[string]bool, error) {
	v, err := view.NewManager(c.vc).CreateContainerView(ctx, c.vc.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		return nil, fmt.Errorf("vsphere: VM view: %w", err)
	}
	defer v.Destroy(context.WithoutCancel(ctx))
	var vms []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, []string{"config.hardware.device"}, &vms); err != nil {
		return nil, fmt.Errorf("vsphere: listing MAC addresses: %w", err)
	}
	out := map[string]bool{}
	for _, vm := range vms {
		if vm.Config == nil {
			continue
		}
		for _, d := range object.VirtualDeviceList(vm.Config.Hardware.Device).SelectByType((*types.VirtualEthernetCard)(nil)) {
			if mac := d.(types.BaseVirtualEthernetCard).GetVirtualEthernetCard().MacAddress; mac != "" {
				out[strings.ToLower(mac)] = true
			}
		}
	}
	return out, nil
}

// Temporary keys of the devices a spec adds: vSphere replaces negative
// keys with real ones, and they must not collide within the spec.
const (
	tempControllerKey = -1000
	tempDiskKey       = -2000
	tempNICKey        = -3000
	// ideControllerKey is the key of IDE controller 0; every VM has IDE 0
	// and 1, so IDE disks go on those rather than on added controllers.
	ideControllerKey = 200
)

func createSpec(cfg VMConfig, t *target, disks map[int32]string, macs map[string]bool) (types.VirtualMachineConfigSpec, error) {
	spec := types.VirtualMachineConfigSpec{
		Name:       t.name,
		GuestId:    cfg.GuestID,
		Firmware:   cfg.Firmware,
		NumCPUs:    cfg.NumCPUs,
		MemoryMB:   cfg.MemoryMB,
		Annotation: cfg.Annotation,
		Version:    cfg.HardwareVersion,
		Files:      &types.VirtualMachineFileInfo{VmPathName: t.vmxPath()},
	}
	if cfg.CoresPerSocket > 0 {
		spec.NumCoresPerSocket = types.NewInt32(cfg.CoresPerSocket)
	}
	if cfg.SecureBoot {
		spec.BootOptions = &types.VirtualMachineBootOptions{EfiSecureBootEnabled: types.NewBool(true)}
	}
	add := func(dev types.BaseVirtualDevice) { spec.DeviceChange = append(spec.DeviceChange, addDevice(dev)) }

	known := map[int32]bool{}
	for _, d := range cfg.Disks {
		known[d.Key] = true
	}
	for key := range disks {
		if !known[key] {
			return spec, fmt.Errorf("vsphere: restoring %s: the configuration has no disk %d", t.name, key)
		}
	}
	type bus struct {
		kind string
		num  int32
	}
	controllers := map[bus]int32{}
	for i, d := range cfg.Disks {
		file, ok := disks[d.Key]
		if !ok {
			continue
		}
		var ctlKey int32
		switch {
		case d.ControllerType == "ide":
			if d.BusNumber != 0 && d.BusNumber != 1 {
				return spec, fmt.Errorf("vsphere: disk %q is on IDE bus %d; VMs have buses 0 and 1", d.Label, d.BusNumber)
			}
			ctlKey = ideControllerKey + d.BusNumber
		default:
			b := bus{d.ControllerType, d.BusNumber}
			if k, ok := controllers[b]; ok {
				ctlKey = k
				break
			}
			ctlKey = tempControllerKey - int32(len(controllers))
			ctl, err := newController(d.ControllerType, d.BusNumber, ctlKey)
			if err != nil {
				return spec, err
			}
			controllers[b] = ctlKey
			add(ctl)
		}
		add(existingDisk(tempDiskKey-int32(i), ctlKey, d.UnitNumber, file, d.CapacityBytes))
	}

	for i, n := range cfg.NICs {
		card, err := newEthernetCard(n.AdapterType)
		if err != nil {
			return spec, err
		}
		e := card.GetVirtualEthernetCard()
		e.Key = tempNICKey - int32(i)
		e.Backing = t.nics[i]
		e.Connectable = &types.VirtualDeviceConnectInfo{StartConnected: n.StartConnected, AllowGuestControl: true}
		e.AddressType = string(types.VirtualEthernetCardMacTypeGenerated)
		if n.ManualMAC && n.MACAddress != "" && !macs[strings.ToLower(n.MACAddress)] {
			e.AddressType = string(types.VirtualEthernetCardMacTypeManual)
			e.MacAddress = n.MACAddress
		}
		add(card.(types.BaseVirtualDevice))
	}
	return spec, nil
}

func addDevice(dev types.BaseVirtualDevice) *types.VirtualDeviceConfigSpec {
	return &types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationAdd, Device: dev}
}

// existingDisk is a disk device for a file that already holds the disk.
// It has no FileOperation, since "create" would make a new, empty disk,
// and no provisioning, which vSphere reads from the file.
func existingDisk(key, ctlKey, unit int32, file string, capacity int64) *types.VirtualDisk {
	return &types.VirtualDisk{
		VirtualDevice: types.VirtualDevice{
			Key:           key,
			ControllerKey: ctlKey,
			UnitNumber:    types.NewInt32(unit),
			Backing: &types.VirtualDiskFlatVer2BackingInfo{
				VirtualDeviceFileBackingInfo: types.VirtualDeviceFileBackingInfo{FileName: file},
				DiskMode:                     string(types.VirtualDiskModePersistent),
			},
		},
		CapacityInBytes: capacity,
		CapacityInKB:    capacity / 1024,
	}
}

// AttachDisk adds the existing disk at descriptorPath to vm, on a free
// unit of one of its SCSI controllers, or on a new SCSI controller (of the
// type of the VM's first one) when all are full. capacity is the disk's
// size in bytes; 0 reads it from the descriptor. It returns the disk as
// the VM now has it.
func (c *Client) AttachDisk(ctx context.Context, vm VM, descriptorPath string, capacity int64) (Disk, error) {
	var p object.DatastorePath
	if !p.FromString(descriptorPath) || p.Path == "" {
		return Disk{}, fmt.Errorf("vsphere: %q is not a datastore path", descriptorPath)
	}
	if capacity <= 0 {
		desc, err := c.readDescriptor(ctx, vm.Datacenter, p)
		if err != nil {
			return Disk{}, err
		}
		capacity = desc.Capacity()
	}
	devices, err := c.vmDevices(ctx, vm)
	if err != nil {
		return Disk{}, err
	}
	for _, d := range disks(devices) {
		if d.FileName == descriptorPath {
			return Disk{}, fmt.Errorf("%w: %s is already disk %q of %s", ErrAlreadyExists, descriptorPath, d.Label, vm.Name)
		}
	}

	spec := types.VirtualMachineConfigSpec{}
	scsi := devices.SelectByType((*types.VirtualSCSIController)(nil))
	slices.SortFunc(scsi, func(a, b types.BaseVirtualDevice) int {
		return cmp.Compare(a.(types.BaseVirtualController).GetVirtualController().BusNumber, b.(types.BaseVirtualController).GetVirtualController().BusNumber)
	})
	ctlKey, unit := int32(0), int32(-1)
	for _, dev := range scsi {
		if u := freeSCSIUnit(devices, dev.(types.BaseVirtualSCSIController).GetVirtualSCSIController()); u >= 0 {
			ctlKey, unit = dev.GetVirtualDevice().Key, u
			break
		}
	}
	if unit < 0 {
		kind := "pvscsi"
		used := map[int32]bool{}
		for i, dev := range scsi {
			if i == 0 {
				kind = controllerType(dev.(types.BaseVirtualController))
			}
			used[dev.(types.BaseVirtualController).GetVirtualController().BusNumber] = true
		}
		busNum := int32(-1)
		for b := range int32(4) {
			if !used[b] {
				busNum = b
				break
			}
		}
		if busNum < 0 {
			return Disk{}, fmt.Errorf("vsphere: %s has four full SCSI controllers; there is no room for another disk", vm.Name)
		}
		ctl, err := newController(kind, busNum, tempControllerKey)
		if err != nil {
			return Disk{}, err
		}
		spec.DeviceChange = append(spec.DeviceChange, addDevice(ctl))
		ctlKey, unit = tempControllerKey, 0
	}
	spec.DeviceChange = append(spec.DeviceChange, addDevice(existingDisk(tempDiskKey, ctlKey, unit, descriptorPath, capacity)))
	if err := c.reconfigure(ctx, vm, spec, "attaching "+descriptorPath+" to"); err != nil {
		return Disk{}, err
	}
	// The disk's key is vSphere's to choose, so only the VM can tell it.
	if devices, err = c.vmDevices(ctx, vm); err != nil {
		return Disk{}, err
	}
	for _, d := range disks(devices) {
		if d.FileName == descriptorPath {
			return d, nil
		}
	}
	return Disk{}, fmt.Errorf("vsphere: %s was attached to %s but is not among its disks", descriptorPath, vm.Name)
}

// freeSCSIUnit is the lowest unit of c no device uses, or -1. Units stop
// at 15, the limit of every SCSI type on every hardware version; unit 7
// is the controller's own.
func freeSCSIUnit(devices object.VirtualDeviceList, c *types.VirtualSCSIController) int32 {
	used := map[int32]bool{c.ScsiCtlrUnitNumber: true}
	for _, d := range devices {
		if v := d.GetVirtualDevice(); v.ControllerKey == c.Key && v.UnitNumber != nil {
			used[*v.UnitNumber] = true
		}
	}
	for u := range int32(16) {
		if !used[u] {
			return u
		}
	}
	return -1
}

func (c *Client) vmDevices(ctx context.Context, vm VM) (object.VirtualDeviceList, error) {
	var m mo.VirtualMachine
	if err := property.DefaultCollector(c.vc).RetrieveOne(ctx, vmRef(vm), []string{"config.hardware.device"}, &m); err != nil {
		return nil, fmt.Errorf("vsphere: reading the devices of %s: %w", vm.Name, err)
	}
	if m.Config == nil {
		return nil, fmt.Errorf("vsphere: %s has no configuration", vm.Name)
	}
	return m.Config.Hardware.Device, nil
}

// waitTask waits for the task a call started, or returns the error that
// kept the call from starting one.
func waitTask(ctx context.Context, task *object.Task, err error) error {
	if err != nil {
		return err
	}
	return task.Wait(ctx)
}

func (c *Client) reconfigure(ctx context.Context, vm VM, spec types.VirtualMachineConfigSpec, what string) error {
	task, err := object.NewVirtualMachine(c.vc, vmRef(vm)).Reconfigure(ctx, spec)
	if err := waitTask(ctx, task, err); err != nil {
		return fmt.Errorf("vsphere: %s %s: %w", what, vm.Name, err)
	}
	return nil
}

// DiskSource writes the content a disk is to hold, every byte from 0 to
// d.CapacityBytes, to w: disk.RestoreTo fits, and so does io.Copy from
// any reader.
type DiskSource func(ctx context.Context, d Disk, w io.Writer) error

// ReplaceDisks restores over vm in place: each disk whose key is in
// sources gets its content from it, through UploadDisk's /folder PUT to
// the disk's own files; other disks are left alone. The VM must be powered
// off (ErrPoweredOn otherwise, suspended included, since a suspended VM's
// memory image expects its disks as they were) and must have no snapshots
// (ErrHasSnapshots): with snapshots, the VM runs on delta disks over the
// base files, and rewriting a base under its deltas corrupts them. Every
// disk is checked before any is written. The disks are written one after
// the other, each in place: a VM restored over gives up a disk's current
// content with the first byte written, so after a failure the disk being
// written holds part of each, those before it the restored content and
// those after it the old. Calling ReplaceDisks again rewrites them all.
//
// If the VM tracks changed blocks, tracking is reset afterwards: the
// writes bypass the VM, so CBT has not seen them, and an incremental
// backup against an old change id would miss them. After the reset, old
// change ids fail and the next backup is a full one.
func (c *Client) ReplaceDisks(ctx context.Context, vm VM, sources map[int32]DiskSource) error {
	var m mo.VirtualMachine
	if err := property.DefaultCollector(c.vc).RetrieveOne(ctx, vmRef(vm),
		[]string{"runtime.powerState", "snapshot", "config.hardware.device", "config.changeTrackingEnabled"}, &m); err != nil {
		return fmt.Errorf("vsphere: reading %s: %w", vm.Name, err)
	}
	if m.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff {
		return fmt.Errorf("%w: %s is %s; power it off to restore over it", ErrPoweredOn, vm.Name, m.Runtime.PowerState)
	}
	if m.Snapshot != nil && len(m.Snapshot.RootSnapshotList) > 0 {
		return fmt.Errorf("%w: %s has snapshots; remove them to restore over it", ErrHasSnapshots, vm.Name)
	}
	if m.Config == nil {
		return fmt.Errorf("vsphere: %s has no configuration", vm.Name)
	}
	devices := object.VirtualDeviceList(m.Config.Hardware.Device)
	current := map[int32]Disk{}
	for _, d := range disks(devices) {
		current[d.Key] = d
	}

	type job struct {
		disk Disk
		path object.DatastorePath
		desc *vmdk.Descriptor
		src  DiskSource
	}
	var jobs []job
	keys := make([]int32, 0, len(sources))
	for k := range sources {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		d, ok := current[k]
		if !ok {
			return fmt.Errorf("%w: %s has no disk %d", ErrNotFound, vm.Name, k)
		}
		backing := devices.FindByKey(k).GetVirtualDevice().Backing
		if b, ok := backing.(*types.VirtualDiskFlatVer2BackingInfo); !ok || b.Parent != nil {
			return fmt.Errorf("vsphere: disk %q of %s is not a flat disk (%T); it cannot be rewritten over /folder", d.Label, vm.Name, backing)
		}
		var p object.DatastorePath
		if !p.FromString(d.FileName) {
			return fmt.Errorf("vsphere: disk %q of %s has no datastore file (%q)", d.Label, vm.Name, d.FileName)
		}
		desc, err := c.readDescriptor(ctx, vm.Datacenter, p)
		if err != nil {
			return err
		}
		switch {
		case !singleFlat(desc):
			return fmt.Errorf("vsphere: disk %s is not a single flat extent; it cannot be rewritten over /folder", d.FileName)
		case desc.EncryptionKeys != nil:
			return fmt.Errorf("vsphere: disk %s is encrypted; writing it over /folder would store plain text in it", d.FileName)
		case desc.Capacity() != d.CapacityBytes:
			return fmt.Errorf("vsphere: disk %s: its descriptor says %d bytes, the VM %d", d.FileName, desc.Capacity(), d.CapacityBytes)
		}
		// The descriptor is kept, uuid and all, since the guest may know
		// the disk by it; only the content id changes with the content.
		desc.CID = randomCID()
		jobs = append(jobs, job{disk: d, path: p, desc: desc, src: sources[k]})
	}

	for _, j := range jobs {
		err := pipeTo(func(r io.Reader) error {
			return c.putDisk(ctx, vm.Datacenter, j.path, j.desc, j.disk.CapacityBytes, r)
		}, func(w io.Writer) error { return j.src(ctx, j.disk, w) })
		if err != nil {
			return fmt.Errorf("vsphere: restoring disk %q of %s: %w", j.disk.Label, vm.Name, err)
		}
	}

	if m.Config.ChangeTrackingEnabled != nil && *m.Config.ChangeTrackingEnabled && len(jobs) > 0 {
		if err := c.reconfigure(ctx, vm, types.VirtualMachineConfigSpec{ChangeTrackingEnabled: types.NewBool(false)}, "resetting changed block tracking of"); err != nil {
			return err
		}
		if err := c.reconfigure(ctx, vm, types.VirtualMachineConfigSpec{ChangeTrackingEnabled: types.NewBool(true)}, "resetting changed block tracking of"); err != nil {
			return err
		}
	}
	return nil
}

// PowerOn powers vm on; a VM already on is left as it is.
func (c *Client) PowerOn(ctx context.Context, vm VM) error {
	obj := object.NewVirtualMachine(c.vc, vmRef(vm))
	state, err := obj.PowerState(ctx)
	if err != nil {
		return fmt.Errorf("vsphere: power state of %s: %w", vm.Name, err)
	}
	if state == types.VirtualMachinePowerStatePoweredOn {
		return nil
	}
	task, err := obj.PowerOn(ctx)
	if err := waitTask(ctx, task, err); err != nil {
		return fmt.Errorf("vsphere: powering on %s: %w", vm.Name, err)
	}
	return nil
}

// Destroy powers vm off if needed and deletes it with its files, as the
// cleanup of a restore that failed half way. A VM that is already gone is
// not an error, so a retried cleanup succeeds.
func (c *Client) Destroy(ctx context.Context, vm VM) error {
	obj := object.NewVirtualMachine(c.vc, vmRef(vm))
	state, err := obj.PowerState(ctx)
	if fault.Is(err, &types.ManagedObjectNotFound{}) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("vsphere: power state of %s: %w", vm.Name, err)
	}
	if state != types.VirtualMachinePowerStatePoweredOff {
		task, err := obj.PowerOff(ctx)
		if err := waitTask(ctx, task, err); err != nil && !fault.Is(err, &types.InvalidPowerState{}) {
			return fmt.Errorf("vsphere: powering off %s: %w", vm.Name, err)
		}
	}
	task, err := obj.Destroy(ctx)
	if err := waitTask(ctx, task, err); err != nil && !fault.Is(err, &types.ManagedObjectNotFound{}) {
		return fmt.Errorf("vsphere: destroying %s: %w", vm.Name, err)
	}
	return nil
}

// DeleteDisk deletes a disk's descriptor and extents: the cleanup of a
// disk uploaded for a VM that was then not created. A disk that is not
// there is not an error.
func (c *Client) DeleteDisk(ctx context.Context, datacenter, descriptorPath string) error {
	dc, err := find.NewFinder(c.vc, false).Datacenter(ctx, datacenter)
	if err != nil {
		return lookupError("datacenter", datacenter, err)
	}
	task, err := object.NewVirtualDiskManager(c.vc).DeleteVirtualDisk(ctx, descriptorPath, dc)
	if err := waitTask(ctx, task, err); err != nil && !fault.Is(err, &types.FileNotFound{}) {
		return fmt.Errorf("vsphere: deleting %s: %w", descriptorPath, err)
	}
	return nil
}
