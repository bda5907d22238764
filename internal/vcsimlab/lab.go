// Package vcsimlab runs an in-process vCenter: govmomi's simulator (vcsim,
// VPX model) with what Haven needs from a real one and vcsim lacks.
//
//   - Disks hold real bytes. Writes go through the datastore /folder API
//     (or, for big fills, straight to the datastore's local file) and are
//     recorded in a per-disk change log.
//   - QueryChangedDiskAreas answers from that change log, whoever wrote
//     the disk (see "External writers" below).
//   - Snapshots freeze their disks' contents, as vSphere's base disks do.
//   - Guest operations (temp dirs, file transfer, programs) run on the host,
//     inside a sandbox directory per VM, instead of in Docker containers.
//   - The vAPI endpoint (tags and categories) is served.
//
// The extensions are added through the simulator's own extension points
// (the registry's method hook and object handlers, extra HTTP handlers on
// the simulator's server), so clients exercise their real code paths.
//
// Tests use it through internal/testparts; `haven server --dev` starts one
// for demos.
//
// # External writers
//
// A lab disk's change log is kept by the lab's /folder endpoint, not by
// the lab's helpers, so a disk written by anything that speaks the
// datastore HTTP interface (a shell script with curl, another process, the
// engine restoring over a VM) is tracked as a guest's writes would be.
// vcsim's PUT replaces a whole file; the lab takes over PUT and POST on
// /folder/ (a method-specific pattern, which wins over vcsim's "/folder/")
// and, when the target is the flat extent of a disk the lab created,
// streams the body into a new file while comparing it with the old extent
// in 64 KiB chunks (ChangeGrain). Chunks that differ become changed areas;
// the new file then replaces the old one and the areas are appended to the
// disk's change log in one step under the lab's disk lock, so a snapshot
// sees either the old extent and the old change id or the new extent and
// its changes. PUTs to one extent are serialized: each is compared with
// what the one before it left.
//
// So an external writer changes a few blocks by GETting
// /folder/VM/diskN-flat.vmdk?dcPath=DC0&dsName=LocalDS_0, patching the
// bytes and PUTting the whole extent back; an incremental backup then sees
// the 64 KiB chunks it changed. A PUT must be exactly as long as the disk
// (400 otherwise): disks are resized with ReconfigVM_Task (ResizeDisk),
// not by uploading a longer extent. Bytes rewritten with what they held
// are not seen, as the comparison cannot tell them from bytes left alone;
// real CBT would report them, which only ever makes an incremental backup
// read more. Every other /folder request, and writes to other files (a
// descriptor, a disk the lab did not create, an extent deleted since),
// are vcsim's own.
//
// The lab's own writes (WriteDisk, WriteDiskAt, FillDisk up to 64 MiB)
// are PUTs like any other, recorded once, by that endpoint. They declare
// their write ranges in a header holding a one-time token only the lab
// process knows, and the endpoint records those ranges byte for byte, as
// vSphere reports a guest's writes, plus any 64 KiB chunk that changed
// outside them. FillDisk on a bigger disk writes the datastore's local
// file directly and records its runs itself.
//
// vcsim does not authenticate /folder: credentials are accepted and not
// checked. Clients should send what vSphere wants anyway, HTTP basic auth
// with the lab's user and password or the vmware_soap_session cookie of a
// /sdk login, so that they work against a real vCenter too.
package vcsimlab

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	// Registers the vAPI endpoint (/rest, /api) with the simulator.
	_ "github.com/vmware/govmomi/vapi/simulator"
)

// Credentials the simulator accepts by default; anything else is InvalidLogin.
const (
	DefaultUser     = "administrator@vsphere.local"
	DefaultPassword = "Haven-vcsim-1!"
)

// Guest credentials of lab VMs unless their VMSpec says otherwise.
const (
	DefaultGuestUser     = "root"
	DefaultGuestPassword = "Haven-guest-1!"
)

// DefaultDiskSize is the capacity of the default VMs' first disk: small
// enough to read whole in a test, large enough for many blocks.
const DefaultDiskSize = 16 << 20

// CBTWindow is how much of a disk one QueryChangedDiskAreas answer covers
// by default. vSphere also answers in windows; a small one makes clients
// page, which tests want to exercise.
const CBTWindow = 4 << 20

// Options configure a lab.
type Options struct {
	// VMs are created at start. Nil means DefaultVMs(); an empty, non-nil
	// slice means none.
	VMs []VMSpec
	// Username and Password are what the simulator accepts (default
	// DefaultUser, DefaultPassword).
	Username, Password string
	// Listen is the simulator's host:port (default 127.0.0.1 on a free port).
	Listen string
	// Dir holds the guest sandboxes. Default: a temporary directory that
	// Close removes. A given Dir is left in place (its sandboxes are removed).
	Dir string
	// NoTagging leaves the vAPI endpoint out, as on a plain ESXi host.
	NoTagging bool
	// CBTWindow overrides how much of a disk one QueryChangedDiskAreas
	// answer covers (default CBTWindow). ESXi covers far more than 4 MiB
	// of a lightly changed disk per answer; benchmarks of big disks set a
	// larger window so paging does not dominate.
	CBTWindow int64
}

// VMSpec describes a lab VM.
type VMSpec struct {
	// Folder is the VM's folder below the datacenter's VM folder ("prod",
	// "apps/web"); missing folders are created. Empty is the VM folder itself.
	Folder string
	Name   string
	// DiskSizes are the capacities of the VM's disks in bytes, each a
	// multiple of 1 KiB. The flat extents are created that long (sparse).
	DiskSizes []int64
	// Tags are "category:tag"; missing categories and tags are created.
	Tags    []string
	PowerOn bool
	// GuestUser and GuestPassword are what guest operations accept
	// (default DefaultGuestUser, DefaultGuestPassword).
	GuestUser, GuestPassword string
}

// DefaultVMs are the VMs a lab has unless Options.VMs says otherwise:
// "app-01" in folder prod with one 16 MiB disk, and "db-01" in the VM
// folder with a 16 MiB and an 8 MiB disk, both powered off and untagged.
func DefaultVMs() []VMSpec {
	return []VMSpec{
		{Folder: "prod", Name: "app-01", DiskSizes: []int64{DefaultDiskSize}},
		{Name: "db-01", DiskSizes: []int64{DefaultDiskSize, DefaultDiskSize / 2}},
	}
}

// Lab is a running simulator with Haven's extensions.
type Lab struct {
	URL        string // https://127.0.0.1:PORT/sdk, without credentials
	Username   string
	Password   string
	Thumbprint string // SHA-256, govmomi format (AA:BB:...)
	SHA1       string
	CAFile     string // PEM of the server certificate
	Datacenter string
	Datastore  string
	// VMs are the names of the lab's VMs (those made by CreateVM), in
	// creation order. The model's stock VMs (10 GiB disks with empty
	// backing, no guest operations) also exist but are not listed.
	VMs []string

	Model  *simulator.Model
	Server *simulator.Server
	// Client is the lab's own session, used for setup.
	Client *govmomi.Client

	dir    string // parent of the guest sandboxes
	ownDir bool
	vapi   bool
	// cbtWindow is the reach of one QueryChangedDiskAreas answer.
	cbtWindow int64
	closed    sync.Once
	vmMu      sync.Mutex
	vms       map[string]*labVM // by name
	vmByRef   map[string]*labVM // by moref value
	diskLock  sync.Mutex        // disks, snaps and declared
	disks     map[string]*cbtDisk
	snaps     map[string]map[int32]*frozenDisk
	declared  map[string]*declaredWrites // by token
	// labWrites serializes the lab's own read-modify-write cycles (GET,
	// patch, PUT), which must not hold diskLock: the PUT needs it.
	labWrites sync.Mutex
	guest     guestState
	tagMu     sync.Mutex
}

// labVM is what the lab knows of a VM it created.
type labVM struct {
	name, moref   string
	guestUser     string
	guestPassword string
	sandbox       string // symlink-free absolute path
}

// Start creates the model, starts its server and creates the VMs.
func Start(ctx context.Context, opts Options) (lab *Lab, err error) {
	if opts.Username == "" {
		opts.Username, opts.Password = DefaultUser, DefaultPassword
	}
	if opts.VMs == nil {
		opts.VMs = DefaultVMs()
	}
	l := &Lab{
		Username: opts.Username, Password: opts.Password,
		Datacenter: "DC0", Datastore: "LocalDS_0",
		vapi: !opts.NoTagging, cbtWindow: cmp.Or(opts.CBTWindow, CBTWindow),
		vms: map[string]*labVM{}, vmByRef: map[string]*labVM{},
		disks:    map[string]*cbtDisk{},
		snaps:    map[string]map[int32]*frozenDisk{},
		declared: map[string]*declaredWrites{},
	}
	l.guest.init()
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if l.dir = opts.Dir; l.dir == "" {
		l.dir, err = os.MkdirTemp("", "vcsimlab-")
		l.ownDir = err == nil
	} else {
		err = os.MkdirAll(l.dir, 0o700)
	}
	// Sandbox checks compare resolved paths; /tmp is a symlink on some hosts.
	// l.dir keeps the unresolved path until then, for Close to remove.
	var root string
	if err == nil {
		root, err = filepath.EvalSymlinks(l.dir)
	}
	if err == nil {
		root, err = filepath.Abs(root)
	}
	if err != nil {
		return nil, fmt.Errorf("vcsimlab: sandbox directory: %w", err)
	}
	l.dir = root

	m := simulator.VPX()
	m.Machine = 1
	if err := m.Create(); err != nil {
		m.Remove()
		return nil, fmt.Errorf("vcsimlab: creating the model: %w", err)
	}
	l.Model = m
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{Host: opts.Listen, User: url.UserPassword(opts.Username, opts.Password)}
	m.Service.RegisterEndpoints = l.vapi
	m.Service.HandleFunc(transferPath, l.serveTransfer)
	m.Service.HandleFunc(http.MethodPut+" "+folderPrefix, l.serveFolderWrite)
	m.Service.HandleFunc(http.MethodPost+" "+folderPrefix, l.serveFolderWrite)
	if l.Server, err = newServer(m.Service); err != nil {
		return nil, err
	}

	u := *l.Server.URL
	u.User = nil
	l.URL = u.String()
	cert := l.Server.Certificate()
	l.Thumbprint = soap.ThumbprintSHA256(cert)
	l.SHA1 = soap.ThumbprintSHA1(cert)
	if l.CAFile, err = l.Server.CertificateFile(); err != nil {
		return nil, fmt.Errorf("vcsimlab: certificate file: %w", err)
	}

	m.Map().Handler = l.dispatch
	m.Map().AddHandler(l)

	cu := u
	cu.User = url.UserPassword(opts.Username, opts.Password)
	if l.Client, err = govmomi.NewClient(ctx, &cu, true); err != nil {
		return nil, fmt.Errorf("vcsimlab: connecting the setup client: %w", err)
	}
	for _, spec := range opts.VMs {
		if err := l.CreateVM(ctx, spec); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// newServer turns the simulator's panic on a busy listen address into an error.
func newServer(s *simulator.Service) (srv *simulator.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("vcsimlab: starting the server: %v", r)
		}
	}()
	return s.NewServer(), nil
}

// Close stops the guest programs and the server and removes the lab's files.
func (l *Lab) Close() {
	l.closed.Do(func() {
		l.guest.stopAll()
		if l.Client != nil {
			ctx, cancel := context.WithTimeout(context.Background(), shortTimeout)
			l.Client.Logout(ctx)
			cancel()
		}
		if l.Server != nil {
			l.Server.Close()
		}
		if l.Model != nil {
			l.Model.Remove()
		}
		l.vmMu.Lock()
		for _, vm := range l.vms {
			os.RemoveAll(vm.sandbox)
		}
		l.vmMu.Unlock()
		if l.ownDir {
			os.RemoveAll(l.dir)
		}
	})
}

// CreateVM creates a VM through the API (CreateVM_Task), gives its disks
// flat extents of their full size, tags it, powers it on if asked, and
// gives it a guest sandbox.
func (l *Lab) CreateVM(ctx context.Context, spec VMSpec) error {
	if spec.Name == "" {
		return errors.New("vcsimlab: a VM needs a name")
	}
	for _, size := range spec.DiskSizes {
		if size <= 0 || size%1024 != 0 {
			return fmt.Errorf("vcsimlab: VM %s: disk size %d is not a positive multiple of 1 KiB", spec.Name, size)
		}
	}
	if spec.GuestUser == "" {
		spec.GuestUser = DefaultGuestUser
	}
	if spec.GuestPassword == "" {
		spec.GuestPassword = DefaultGuestPassword
	}
	l.vmMu.Lock()
	_, dup := l.vms[spec.Name]
	l.vmMu.Unlock()
	if dup {
		return fmt.Errorf("vcsimlab: the lab already has a VM %s", spec.Name)
	}
	fail := func(err error) error { return fmt.Errorf("vcsimlab: creating VM %s: %w", spec.Name, err) }

	f := find.NewFinder(l.Client.Client, true)
	dc, err := f.Datacenter(ctx, l.Datacenter)
	if err != nil {
		return fail(err)
	}
	f.SetDatacenter(dc)
	folders, err := dc.Folders(ctx)
	if err != nil {
		return fail(err)
	}
	vmFolder := folders.VmFolder
	for part := range strings.SplitSeq(strings.Trim(spec.Folder, "/"), "/") {
		if part == "" {
			continue
		}
		p := path.Join(vmFolder.InventoryPath, part)
		sub, err := f.Folder(ctx, p)
		if err != nil {
			if sub, err = vmFolder.CreateFolder(ctx, part); err != nil {
				return fail(fmt.Errorf("creating folder %s: %w", p, err))
			}
			sub.InventoryPath = p
		}
		vmFolder = sub
	}
	pool, err := f.ResourcePool(ctx, "/"+l.Datacenter+"/host/DC0_H0/Resources")
	if err != nil {
		return fail(err)
	}
	ds, err := f.Datastore(ctx, l.Datastore)
	if err != nil {
		return fail(err)
	}

	var devices object.VirtualDeviceList
	scsi, err := devices.CreateSCSIController("pvscsi")
	if err != nil {
		return fail(err)
	}
	devices = append(devices, scsi)
	files := make([]string, len(spec.DiskSizes))
	for i, size := range spec.DiskSizes {
		files[i] = fmt.Sprintf("[%s] %s/disk%d.vmdk", l.Datastore, spec.Name, i+1)
		d := devices.CreateDisk(scsi.(types.BaseVirtualController), ds.Reference(), files[i])
		d.CapacityInKB = size / 1024
		d.CapacityInBytes = size
		devices = append(devices, d)
	}
	changes, err := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	if err != nil {
		return fail(err)
	}
	cs := types.VirtualMachineConfigSpec{
		Name: spec.Name, GuestId: string(types.VirtualMachineGuestOsIdentifierOtherLinux64Guest),
		Files:        &types.VirtualMachineFileInfo{VmPathName: "[" + l.Datastore + "]"},
		DeviceChange: changes,
	}
	task, err := vmFolder.CreateVM(ctx, cs, pool, nil)
	if err != nil {
		return fail(err)
	}
	res, err := task.WaitForResult(ctx)
	if err != nil {
		return fail(err)
	}
	ref := res.Result.(types.ManagedObjectReference)

	// A real flat extent is as long as the disk; vcsim creates it empty.
	// Sparse zeros are what a new thin or lazily zeroed disk reads as.
	l.diskLock.Lock()
	for i, file := range files {
		if err := os.Truncate(l.localPath(flatPath(file)), spec.DiskSizes[i]); err != nil {
			l.diskLock.Unlock()
			return fail(err)
		}
		l.disks[file] = &cbtDisk{prefix: randomChangePrefix(), size: spec.DiskSizes[i]}
	}
	l.diskLock.Unlock()

	sandbox := filepath.Join(l.dir, ref.Value)
	if err := os.MkdirAll(filepath.Join(sandbox, guestTmp), 0o700); err != nil {
		return fail(err)
	}
	vm := &labVM{name: spec.Name, moref: ref.Value, guestUser: spec.GuestUser, guestPassword: spec.GuestPassword,
		sandbox: sandbox}
	l.vmMu.Lock()
	l.vms[vm.name] = vm
	l.vmByRef[vm.moref] = vm
	l.VMs = append(l.VMs, vm.name)
	l.vmMu.Unlock()

	for _, tag := range spec.Tags {
		if err := l.TagVM(ctx, spec.Name, tag); err != nil {
			return err
		}
	}
	if spec.PowerOn {
		if err := l.SetPower(ctx, spec.Name, true); err != nil {
			return fail(err)
		}
	}
	return nil
}

// SetPower powers a VM on or off through the vSphere API, as its owner would.
func (l *Lab) SetPower(ctx context.Context, name string, on bool) error {
	ref, err := l.VMRef(name)
	if err != nil {
		return err
	}
	vm := object.NewVirtualMachine(l.Client.Client, ref)
	var task *object.Task
	if on {
		task, err = vm.PowerOn(ctx)
	} else {
		task, err = vm.PowerOff(ctx)
	}
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("vcsimlab: power %s on=%v: %w", name, on, err)
	}
	return nil
}

// SimulatorVM returns the simulator's object for a VM name (a lab VM or a
// stock one). Its fields belong to the simulator: read them, do not keep
// or change them.
func (l *Lab) SimulatorVM(name string) (*simulator.VirtualMachine, error) {
	for _, o := range l.Model.Map().All("VirtualMachine") {
		if vm := o.(*simulator.VirtualMachine); vm.Name == name {
			return vm, nil
		}
	}
	return nil, fmt.Errorf("vcsimlab: no VM %q", name)
}

// VMRef returns the managed object reference of a VM by name.
func (l *Lab) VMRef(name string) (types.ManagedObjectReference, error) {
	if vm, err := l.labVM(name); err == nil {
		return types.ManagedObjectReference{Type: "VirtualMachine", Value: vm.moref}, nil
	}
	vm, err := l.SimulatorVM(name)
	if err != nil {
		return types.ManagedObjectReference{}, err
	}
	return vm.Self, nil
}

// GuestDir is the host directory that is a lab VM's guest file system:
// guest paths handed out (temporary directories) are inside it, and guest
// operations refuse paths outside it.
func (l *Lab) GuestDir(vmName string) (string, error) {
	vm, err := l.labVM(vmName)
	if err != nil {
		return "", err
	}
	return vm.sandbox, nil
}

func (l *Lab) labVM(name string) (*labVM, error) {
	l.vmMu.Lock()
	defer l.vmMu.Unlock()
	vm := l.vms[name]
	if vm == nil {
		return nil, fmt.Errorf("vcsimlab: %q is not a lab VM (lab VMs: %v)", name, l.VMs)
	}
	return vm, nil
}

func (l *Lab) labVMByRef(moref string) *labVM {
	l.vmMu.Lock()
	defer l.vmMu.Unlock()
	return l.vmByRef[moref]
}

// simContext is a simulator context of the lab's own, for locking the
// simulator's objects while reading them outside a SOAP call.
func (l *Lab) simContext() *simulator.Context {
	return &simulator.Context{Context: context.Background(), Map: l.Model.Map()}
}

// localPath is where the simulator keeps a "[ds] path" file.
func (l *Lab) localPath(dsPath string) string {
	var p object.DatastorePath
	p.FromString(dsPath)
	for _, o := range l.Model.Map().All("Datastore") {
		if ds := o.(*simulator.Datastore); ds.Name == p.Datastore {
			return filepath.Join(ds.Info.GetDatastoreInfo().Url, filepath.FromSlash(p.Path))
		}
	}
	return ""
}

// dispatch is the registry's method hook: it routes the methods vcsim
// lacks or runs elsewhere (guest operations in Docker) to the lab.
func (l *Lab) dispatch(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
	switch m.This.Type {
	case "GuestFileManager":
		h, _ := inSession(ctx, func() mo.Reference {
			return &guestFiles{GuestFileManager: guestFileManager(m.This), lab: l}
		}, m.This).(*guestFiles)
		return h, nil
	case "GuestProcessManager":
		h, _ := inSession(ctx, func() mo.Reference {
			return &guestProcesses{GuestProcessManager: guestProcessManager(m.This), lab: l}
		}, m.This).(*guestProcesses)
		return h, nil
	}
	if m.Name == "QueryChangedDiskAreas" {
		return l.cbtHandler(ctx, m)
	}
	return nil, nil
}

// inSession returns the calling session's lab handler for ref, putting a
// new one there first. vcsim prefers an object in the session's registry
// over what this hook returns (it falls back to the global registry, which
// must keep vcsim's own objects), so that is where the lab's must be.
func inSession[T mo.Reference](ctx *simulator.Context, newHandler func() T, ref types.ManagedObjectReference) mo.Reference {
	if ctx.Session == nil {
		return newHandler()
	}
	if h, ok := ctx.Session.Registry.Get(ref).(T); ok {
		return h
	}
	h := newHandler()
	ctx.Session.Registry.Put(h)
	return h
}

// newToken is an unguessable name for a one-time grant (a transfer URL,
// declared writes), so that only the lab's own callers can use it.
func newToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}
