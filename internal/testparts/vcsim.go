package testparts

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vmdk"
)

// Credentials the simulator accepts; anything else is InvalidLogin.
const (
	VCSimUser     = "administrator@vsphere.local"
	VCSimPassword = "Haven-vcsim-1!"
)

// VCSimDiskSize is the capacity of the disks of the Haven test VMs: small
// enough to read whole in a test, large enough for many blocks.
const VCSimDiskSize = 16 << 20

// cbtWindow is how much of a disk one QueryChangedDiskAreas answer covers.
// vSphere also answers in windows; a small one makes clients page.
const cbtWindow = 4 << 20

// VCSimEnv is a running in-process vCenter simulator (govmomi vcsim, VPX
// model) with Haven's extensions: disks holding real bytes, changed block
// tracking answered from the actual writes, and snapshots that freeze
// their disks' contents.
type VCSimEnv struct {
	URL        string // https://127.0.0.1:PORT/sdk, without credentials
	Username   string
	Password   string
	Thumbprint string // SHA-256, govmomi format (AA:BB:...)
	SHA1       string
	CAFile     string // PEM of the server certificate
	Datacenter string
	Datastore  string
	// VMs are the test VMs with small, readable disks: "app-01" in
	// /DC0/vm/prod (one disk) and "db-01" in /DC0/vm (two disks). The
	// model's stock VMs (10 GiB disks with empty backing) also exist.
	VMs []string

	Model  *simulator.Model
	Server *simulator.Server
	Client *govmomi.Client

	mu    sync.Mutex
	disks map[string]*cbtDisk              // live descriptor datastore path
	snaps map[string]map[int32]*frozenDisk // snapshot moref, disk key
}

// cbtDisk is one disk's change log: every WriteDisk gets the next sequence
// number, and a change id names a point in that sequence.
type cbtDisk struct {
	prefix string
	seq    int64
	writes []cbtWrite
}

type cbtWrite struct {
	seq       int64
	off, size int64
}

func (d *cbtDisk) changeID(seq int64) string { return fmt.Sprintf("%s/%d", d.prefix, seq) }

// frozenDisk is a disk as captured by a snapshot.
type frozenDisk struct {
	live      string // live descriptor datastore path
	file      string // local path of the frozen flat extent
	desc      string // local path of the frozen descriptor
	seq       int64
	capacity  int64
	cbtActive bool
}

// VCSim starts a simulator for the test and stops it at cleanup.
func VCSim(t testing.TB) *VCSimEnv {
	t.Helper()
	ctx := context.Background()
	m := simulator.VPX()
	m.Machine = 1
	if err := m.Create(); err != nil {
		t.Fatalf("vcsim: creating the model: %v", err)
	}
	t.Cleanup(m.Remove)
	m.Service.TLS = new(tls.Config)
	m.Service.Listen = &url.URL{User: url.UserPassword(VCSimUser, VCSimPassword)}
	s := m.Service.NewServer()
	t.Cleanup(s.Close)

	e := &VCSimEnv{
		Username: VCSimUser, Password: VCSimPassword,
		Datacenter: "DC0", Datastore: "LocalDS_0",
		Model: m, Server: s,
		disks: map[string]*cbtDisk{},
		snaps: map[string]map[int32]*frozenDisk{},
	}
	u := *s.URL
	u.User = nil
	e.URL = u.String()
	cert := s.Certificate()
	e.Thumbprint = soap.ThumbprintSHA256(cert)
	e.SHA1 = soap.ThumbprintSHA1(cert)
	ca, err := s.CertificateFile()
	if err != nil {
		t.Fatalf("vcsim: certificate file: %v", err)
	}
	e.CAFile = ca

	m.Map().Handler = e.dispatch
	m.Map().AddHandler(e)

	cu := u
	cu.User = url.UserPassword(VCSimUser, VCSimPassword)
	c, err := govmomi.NewClient(ctx, &cu, true)
	if err != nil {
		t.Fatalf("vcsim: connecting the setup client: %v", err)
	}
	e.Client = c
	e.createVM(t, "prod", "app-01", 1)
	e.createVM(t, "", "db-01", 2)
	e.VMs = []string{"app-01", "db-01"}
	return e
}

func (e *VCSimEnv) createVM(t testing.TB, folder, name string, ndisks int) {
	t.Helper()
	ctx := context.Background()
	f := find.NewFinder(e.Client.Client, true)
	dc, err := f.Datacenter(ctx, e.Datacenter)
	if err != nil {
		t.Fatalf("vcsim: %v", err)
	}
	f.SetDatacenter(dc)
	folders, err := dc.Folders(ctx)
	if err != nil {
		t.Fatalf("vcsim: %v", err)
	}
	vmFolder := folders.VmFolder
	if folder != "" {
		if sub, err := f.Folder(ctx, path.Join(folders.VmFolder.InventoryPath, folder)); err == nil {
			vmFolder = sub
		} else if vmFolder, err = folders.VmFolder.CreateFolder(ctx, folder); err != nil {
			t.Fatalf("vcsim: creating folder %s: %v", folder, err)
		}
	}
	pool, err := f.ResourcePool(ctx, "/"+e.Datacenter+"/host/DC0_H0/Resources")
	if err != nil {
		t.Fatalf("vcsim: %v", err)
	}
	ds, err := f.Datastore(ctx, e.Datastore)
	if err != nil {
		t.Fatalf("vcsim: %v", err)
	}
	var devices object.VirtualDeviceList
	scsi, _ := devices.CreateSCSIController("pvscsi")
	devices = append(devices, scsi)
	for i := range ndisks {
		d := devices.CreateDisk(scsi.(types.BaseVirtualController), ds.Reference(),
			fmt.Sprintf("[%s] %s/disk%d.vmdk", e.Datastore, name, i+1))
		d.CapacityInKB = VCSimDiskSize / 1024 >> i
		d.CapacityInBytes = VCSimDiskSize >> i
		devices = append(devices, d)
	}
	changes, _ := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	spec := types.VirtualMachineConfigSpec{
		Name: name, GuestId: string(types.VirtualMachineGuestOsIdentifierOtherLinux64Guest),
		Files:        &types.VirtualMachineFileInfo{VmPathName: "[" + e.Datastore + "]"},
		DeviceChange: changes,
	}
	task, err := vmFolder.CreateVM(ctx, spec, pool, nil)
	if err != nil {
		t.Fatalf("vcsim: creating VM %s: %v", name, err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatalf("vcsim: creating VM %s: %v", name, err)
	}
	// A real flat extent is as long as the disk; vcsim creates it empty.
	for i := range ndisks {
		live := fmt.Sprintf("[%s] %s/disk%d.vmdk", e.Datastore, name, i+1)
		e.putFile(t, flatPath(live), make([]byte, VCSimDiskSize>>i))
		e.mu.Lock()
		e.disks[live] = &cbtDisk{prefix: randomChangePrefix()}
		e.mu.Unlock()
	}
}

// randomChangePrefix looks like vSphere's change ids ("52 1c ... 9e").
func randomChangePrefix() string {
	b := make([]byte, 16)
	rand.Read(b)
	b[0] = 0x52
	var s []string
	for _, x := range b {
		s = append(s, fmt.Sprintf("%02x", x))
	}
	return strings.Join(s[:8], " ") + "-" + strings.Join(s[8:], " ")
}

func flatPath(descriptor string) string {
	return strings.TrimSuffix(descriptor, ".vmdk") + "-flat.vmdk"
}

// httpClient carries the setup session's TLS settings and cookie.
func (e *VCSimEnv) httpClient() *http.Client { return &e.Client.Client.Client.Client }

// folderURL is the /folder URL of a "[ds] path" datastore path.
func (e *VCSimEnv) folderURL(dsPath string) *url.URL {
	var p object.DatastorePath
	p.FromString(dsPath)
	u, _ := url.Parse(e.URL)
	return object.NewDatastoreURL(*u, e.Datacenter, p.Datastore, p.Path)
}

func (e *VCSimEnv) putFile(t testing.TB, dsPath string, data []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, e.folderURL(dsPath).String(), bytes.NewReader(data))
	req.ContentLength = int64(len(data))
	res, err := e.httpClient().Do(req)
	if err != nil {
		t.Fatalf("vcsim: PUT %s: %v", dsPath, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("vcsim: PUT %s: %s", dsPath, res.Status)
	}
}

func (e *VCSimEnv) getFile(t testing.TB, dsPath string) []byte {
	t.Helper()
	res, err := e.httpClient().Get(e.folderURL(dsPath).String())
	if err != nil {
		t.Fatalf("vcsim: GET %s: %v", dsPath, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("vcsim: GET %s: %s %v", dsPath, res.Status, err)
	}
	return b
}

// vm returns the simulator's object for a VM name.
func (e *VCSimEnv) vm(t testing.TB, name string) *simulator.VirtualMachine {
	t.Helper()
	for _, o := range e.Model.Map().All("VirtualMachine") {
		if vm := o.(*simulator.VirtualMachine); vm.Name == name {
			return vm
		}
	}
	t.Fatalf("vcsim: no VM %q", name)
	return nil
}

// DiskFile returns the live descriptor datastore path of a VM's disk.
func (e *VCSimEnv) DiskFile(t testing.TB, vmName string, diskIndex int) string {
	t.Helper()
	vm := e.vm(t, vmName)
	ds := object.VirtualDeviceList(vm.Config.Hardware.Device).SelectByType((*types.VirtualDisk)(nil))
	if diskIndex < 0 || diskIndex >= len(ds) {
		t.Fatalf("vcsim: VM %s has %d disks, not a disk %d", vmName, len(ds), diskIndex)
	}
	return ds[diskIndex].(*types.VirtualDisk).Backing.(types.BaseVirtualDeviceFileBackingInfo).GetVirtualDeviceFileBackingInfo().FileName
}

// WriteDisk writes data at offset into a VM's disk, as the guest would,
// through the datastore /folder API. vcsim's /folder PUT replaces whole
// files, so this reads the extent, patches it and puts it back. The write
// is recorded in the disk's change log for QueryChangedDiskAreas.
func (e *VCSimEnv) WriteDisk(t testing.TB, vmName string, diskIndex int, offset int64, data []byte) {
	t.Helper()
	e.WriteDiskAt(t, vmName, diskIndex, map[int64][]byte{offset: data})
}

// WriteDiskAt is WriteDisk for several writes with one round trip.
func (e *VCSimEnv) WriteDiskAt(t testing.TB, vmName string, diskIndex int, writes map[int64][]byte) {
	t.Helper()
	live := e.DiskFile(t, vmName, diskIndex)
	e.mu.Lock()
	defer e.mu.Unlock()
	d := e.disks[live]
	if d == nil {
		t.Fatalf("vcsim: %s is not a Haven test disk (use one of %v)", live, e.VMs)
	}
	img := e.getFile(t, flatPath(live))
	offs := make([]int64, 0, len(writes))
	for off := range writes {
		offs = append(offs, off)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	for _, off := range offs {
		data := writes[off]
		if off < 0 || off+int64(len(data)) > int64(len(img)) {
			t.Fatalf("vcsim: write of %d bytes at %d is outside the %d-byte disk", len(data), off, len(img))
		}
		copy(img[off:], data)
		d.seq++
		d.writes = append(d.writes, cbtWrite{seq: d.seq, off: off, size: int64(len(data))})
	}
	e.putFile(t, flatPath(live), img)
}

// DiskBytes reads a VM's whole live disk through /folder.
func (e *VCSimEnv) DiskBytes(t testing.TB, vmName string, diskIndex int) []byte {
	t.Helper()
	return e.getFile(t, flatPath(e.DiskFile(t, vmName, diskIndex)))
}

// ChangeID is the disk's current change id, as vSphere would report it.
func (e *VCSimEnv) ChangeID(t testing.TB, vmName string, diskIndex int) string {
	t.Helper()
	live := e.DiskFile(t, vmName, diskIndex)
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.disks[live].changeID(e.disks[live].seq)
}

// dispatch is the registry's method hook, through which QueryChangedDiskAreas
// (which vcsim lacks) reaches cbtVM. vcsim lets a session's own registry
// override the global one after this hook runs, and its global registry
// must keep the plain *VirtualMachine (vcsim type-asserts it in many
// places), so the wrapper goes into the calling session's registry. There
// it forwards every other method and property to vcsim's VirtualMachine.
func (e *VCSimEnv) dispatch(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
	if m.Name != "QueryChangedDiskAreas" {
		return nil, nil
	}
	if w, ok := e.Model.Map().Get(m.This).(*simulator.VirtualMachine); ok {
		h := &cbtVM{VirtualMachine: w, env: e}
		if ctx.Session != nil {
			if _, done := ctx.Session.Registry.Get(m.This).(*cbtVM); !done {
				ctx.Session.Registry.Put(h)
			}
		}
		return h, nil
	}
	return nil, &types.ManagedObjectNotFound{Obj: m.This}
}

// The registry calls these for every object it adds, changes or removes;
// snapshots are the objects of interest.

func (e *VCSimEnv) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "HavenVCSimExtension", Value: "haven"}
}

// PutObject freezes a new snapshot's disks. vcsim's snapshots keep
// pointing at the live files; vSphere's point at the base disks, which
// stop changing when the snapshot is taken (the guest then writes to a
// delta). The copy gives the snapshot that point-in-time content, and its
// backing gets the change id of that moment, as vSphere's does.
func (e *VCSimEnv) PutObject(_ *simulator.Context, obj mo.Reference) {
	snap, ok := obj.(*simulator.VirtualMachineSnapshot)
	if !ok {
		return
	}
	vm, _ := e.Model.Map().Get(snap.Vm).(*simulator.VirtualMachine)
	cbtOn := vm != nil && vm.Config.ChangeTrackingEnabled != nil && *vm.Config.ChangeTrackingEnabled
	e.mu.Lock()
	defer e.mu.Unlock()
	frozen := map[int32]*frozenDisk{}
	for _, dev := range snap.Config.Hardware.Device {
		disk, ok := dev.(*types.VirtualDisk)
		if !ok {
			continue
		}
		b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok || e.disks[b.FileName] == nil {
			continue
		}
		d := e.disks[b.FileName]
		live := b.FileName
		snapName := strings.TrimSuffix(live, ".vmdk") + "-" + snap.Self.Value + ".vmdk"
		fd := &frozenDisk{live: live, file: e.localPath(flatPath(snapName)), desc: e.localPath(snapName),
			seq: d.seq, capacity: disk.CapacityInBytes, cbtActive: cbtOn}
		if err := copyFile(e.localPath(flatPath(live)), fd.file); err != nil {
			panic(fmt.Sprintf("vcsim: freezing %s: %v", live, err))
		}
		desc := vmdk.NewDescriptor(vmdk.Extent{Size: disk.CapacityInBytes / 512, Info: filepath.Base(fd.file)})
		var buf bytes.Buffer
		desc.Write(&buf)
		if err := os.WriteFile(fd.desc, buf.Bytes(), 0o600); err != nil {
			panic(fmt.Sprintf("vcsim: freezing %s: %v", live, err))
		}
		b.FileName = snapName
		b.ChangeId = ""
		if cbtOn {
			b.ChangeId = d.changeID(d.seq)
		}
		frozen[disk.Key] = fd
	}
	e.snaps[snap.Self.Value] = frozen
}

func (e *VCSimEnv) UpdateObject(*simulator.Context, mo.Reference, []types.PropertyChange) {}

// RemoveObject drops a removed snapshot's frozen disks, as consolidation
// would.
func (e *VCSimEnv) RemoveObject(_ *simulator.Context, ref types.ManagedObjectReference) {
	if ref.Type != "VirtualMachineSnapshot" {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, fd := range e.snaps[ref.Value] {
		os.Remove(fd.file)
		os.Remove(fd.desc)
	}
	delete(e.snaps, ref.Value)
}

// localPath is where the simulator keeps a "[ds] path" file.
func (e *VCSimEnv) localPath(dsPath string) string {
	var p object.DatastorePath
	p.FromString(dsPath)
	for _, o := range e.Model.Map().All("Datastore") {
		if ds := o.(*simulator.Datastore); ds.Name == p.Datastore {
			return filepath.Join(ds.Info.GetDatastoreInfo().Url, filepath.FromSlash(p.Path))
		}
	}
	return ""
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o600)
}

// cbtVM adds QueryChangedDiskAreas to vcsim's VirtualMachine.
type cbtVM struct {
	*simulator.VirtualMachine
	env *VCSimEnv
}

// QueryChangedDiskAreas answers from the disk's change log: "*" lists the
// non-zero areas of the snapshot's frozen bytes; a change id lists every
// area written after it and up to the snapshot. Each answer covers at most
// cbtWindow bytes from StartOffset.
func (vm *cbtVM) QueryChangedDiskAreas(ctx *simulator.Context, req *types.QueryChangedDiskAreas) soap.HasFault {
	body := &methods.QueryChangedDiskAreasBody{}
	fail := func(msg string, f types.BaseMethodFault) soap.HasFault {
		body.Fault_ = simulator.Fault(msg, f)
		return body
	}
	if vm.Config.ChangeTrackingEnabled == nil || !*vm.Config.ChangeTrackingEnabled {
		return fail("changed block tracking is not enabled", &types.FileFault{File: vm.Name})
	}
	if req.Snapshot == nil {
		return fail("a snapshot is required", &types.InvalidArgument{InvalidProperty: "snapshot"})
	}
	e := vm.env
	e.mu.Lock()
	defer e.mu.Unlock()
	fd := e.snaps[req.Snapshot.Value][req.DeviceKey]
	if fd == nil {
		return fail("no such disk in the snapshot", &types.InvalidArgument{InvalidProperty: "deviceKey"})
	}
	if !fd.cbtActive {
		return fail("changed block tracking was off when the snapshot was taken", &types.FileFault{File: fd.live})
	}
	if req.StartOffset < 0 || req.StartOffset >= fd.capacity {
		return fail("startOffset is outside the disk", &types.InvalidArgument{InvalidProperty: "startOffset"})
	}
	d := e.disks[fd.live]
	var areas []types.DiskChangeExtent
	if req.ChangeId == "*" {
		img, err := os.ReadFile(fd.file)
		if err != nil {
			return fail(err.Error(), &types.FileFault{File: fd.file})
		}
		areas = allocated(img)
	} else {
		prefix, n, ok := strings.Cut(req.ChangeId, "/")
		since, err := strconv.ParseInt(n, 10, 64)
		if !ok || err != nil || prefix != d.prefix || since > fd.seq {
			return fail("invalid change id "+req.ChangeId, &types.InvalidArgument{InvalidProperty: "changeId"})
		}
		for _, w := range d.writes {
			if w.seq > since && w.seq <= fd.seq {
				areas = append(areas, types.DiskChangeExtent{Start: w.off, Length: w.size})
			}
		}
		areas = mergeAreas(areas)
	}
	end := min(fd.capacity, req.StartOffset+cbtWindow)
	info := types.DiskChangeInfo{StartOffset: req.StartOffset, Length: end - req.StartOffset}
	for _, a := range areas {
		s, t := max(a.Start, req.StartOffset), min(a.Start+a.Length, end)
		if s < t {
			info.ChangedArea = append(info.ChangedArea, types.DiskChangeExtent{Start: s, Length: t - s})
		}
	}
	body.Res = &types.QueryChangedDiskAreasResponse{Returnval: info}
	return body
}

// allocatedGrain is the granularity of "*" answers, as VMFS allocates in
// blocks rather than bytes.
const allocatedGrain = 64 << 10

func allocated(img []byte) []types.DiskChangeExtent {
	var out []types.DiskChangeExtent
	for off := 0; off < len(img); off += allocatedGrain {
		g := img[off:min(len(img), off+allocatedGrain)]
		if bytes.Count(g, []byte{0}) == len(g) {
			continue
		}
		out = append(out, types.DiskChangeExtent{Start: int64(off), Length: int64(len(g))})
	}
	return mergeAreas(out)
}

func mergeAreas(a []types.DiskChangeExtent) []types.DiskChangeExtent {
	sort.Slice(a, func(i, j int) bool { return a[i].Start < a[j].Start })
	var out []types.DiskChangeExtent
	for _, x := range a {
		if n := len(out); n > 0 && out[n-1].Start+out[n-1].Length >= x.Start {
			out[n-1].Length = max(out[n-1].Start+out[n-1].Length, x.Start+x.Length) - out[n-1].Start
			continue
		}
		out = append(out, x)
	}
	return out
}
