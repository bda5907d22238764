package vcsimlab

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	mathrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
	"github.com/vmware/govmomi/vmdk"
)

// cbtDisk is one disk's change log: every write gets the next sequence
// number, and a change id names a point in that sequence.
type cbtDisk struct {
	prefix string
	size   int64
	seq    int64
	writes []cbtWrite
	// put is held while the extent's file is rewritten (a /folder PUT, a
	// big FillDisk, a resize), so each rewrite is compared with what the
	// one before it left. Taken before diskLock.
	put sync.Mutex
}

type cbtWrite struct {
	seq       int64
	off, size int64
}

func (d *cbtDisk) changeID(seq int64) string { return fmt.Sprintf("%s/%d", d.prefix, seq) }

func (d *cbtDisk) record(off, size int64) {
	d.seq++
	d.writes = append(d.writes, cbtWrite{seq: d.seq, off: off, size: size})
}

// frozenDisk is a disk as captured by a snapshot.
type frozenDisk struct {
	live      string // live descriptor datastore path
	file      string // local path of the frozen flat extent
	desc      string // local path of the frozen descriptor
	seq       int64
	capacity  int64
	cbtActive bool
	err       error // the copy failed; the snapshot cannot be read
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
func (l *Lab) httpClient() *http.Client { return &l.Client.Client.Client.Client }

// folderURL is the /folder URL of a "[ds] path" datastore path.
func (l *Lab) folderURL(dsPath string) *url.URL {
	var p object.DatastorePath
	p.FromString(dsPath)
	u, _ := url.Parse(l.URL)
	return object.NewDatastoreURL(*u, l.Datacenter, p.Datastore, p.Path)
}

// putFile PUTs a file through /folder; token, if not empty, names the
// writes the lab declared for it (see declare).
func (l *Lab) putFile(ctx context.Context, dsPath string, data []byte, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, l.folderURL(dsPath).String(), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.ContentLength = int64(len(data))
	if token != "" {
		req.Header.Set(labWriteHeader, token)
	}
	res, err := l.httpClient().Do(req)
	if err != nil {
		return fmt.Errorf("vcsimlab: PUT %s: %w", dsPath, err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("vcsimlab: PUT %s: %s", dsPath, res.Status)
	}
	return nil
}

func (l *Lab) getFile(ctx context.Context, dsPath string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.folderURL(dsPath).String(), nil)
	if err != nil {
		return nil, err
	}
	res, err := l.httpClient().Do(req)
	if err != nil {
		return nil, fmt.Errorf("vcsimlab: GET %s: %w", dsPath, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("vcsimlab: GET %s: %s", dsPath, res.Status)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("vcsimlab: GET %s: %w", dsPath, err)
	}
	return b, nil
}

// DiskFile returns the live descriptor datastore path of a VM's disk,
// counting the VM's disks as they are now (including disks attached by
// clients after the lab created it).
func (l *Lab) DiskFile(vmName string, diskIndex int) (string, error) {
	vm, err := l.SimulatorVM(vmName)
	if err != nil {
		return "", err
	}
	var ds object.VirtualDeviceList
	l.simContext().WithLock(vm, func() {
		ds = object.VirtualDeviceList(vm.Config.Hardware.Device).SelectByType((*types.VirtualDisk)(nil))
	})
	if diskIndex < 0 || diskIndex >= len(ds) {
		return "", fmt.Errorf("vcsimlab: VM %s has %d disks, not a disk %d", vmName, len(ds), diskIndex)
	}
	return ds[diskIndex].(*types.VirtualDisk).Backing.(types.BaseVirtualDeviceFileBackingInfo).GetVirtualDeviceFileBackingInfo().FileName, nil
}

// labDisk returns a lab disk's descriptor path, change log and size.
func (l *Lab) labDisk(vmName string, diskIndex int) (string, *cbtDisk, int64, error) {
	// DiskFile locks the VM, so it runs before diskLock is taken: a
	// snapshot task holds the VM's lock while PutObject takes diskLock.
	live, err := l.DiskFile(vmName, diskIndex)
	if err != nil {
		return "", nil, 0, err
	}
	l.diskLock.Lock()
	defer l.diskLock.Unlock()
	d := l.disks[live]
	if d == nil {
		return "", nil, 0, fmt.Errorf("vcsimlab: %s of VM %s is not a lab disk (only VMs made by CreateVM have them)", live, vmName)
	}
	return live, d, d.size, nil
}

// WriteDisk writes data at offset into a VM's disk, as the guest would,
// through the datastore /folder API. The lab's /folder endpoint records
// the write, byte for byte, in the disk's change log for
// QueryChangedDiskAreas.
func (l *Lab) WriteDisk(ctx context.Context, vmName string, diskIndex int, offset int64, data []byte) error {
	return l.WriteDiskAt(ctx, vmName, diskIndex, map[int64][]byte{offset: data})
}

// WriteDiskAt is WriteDisk for several writes with one round trip. vcsim's
// /folder PUT replaces whole files, so this reads the extent, patches it
// and puts it back; it suits disks of tens of MiB (see FillDisk for more).
func (l *Lab) WriteDiskAt(ctx context.Context, vmName string, diskIndex int, writes map[int64][]byte) error {
	l.labWrites.Lock()
	defer l.labWrites.Unlock()
	live, _, _, err := l.labDisk(vmName, diskIndex)
	if err != nil {
		return err
	}
	img, err := l.getFile(ctx, flatPath(live))
	if err != nil {
		return err
	}
	offs := make([]int64, 0, len(writes))
	for off, data := range writes {
		if off < 0 || off+int64(len(data)) > int64(len(img)) {
			return fmt.Errorf("vcsimlab: write of %d bytes at %d is outside the %d-byte disk", len(data), off, len(img))
		}
		offs = append(offs, off)
	}
	img = patch(img, writes, offs)
	declared := make([]cbtWrite, len(offs))
	for i, off := range offs {
		declared[i] = cbtWrite{off: off, size: int64(len(writes[off]))}
	}
	token := l.declare(live, declared)
	defer l.undeclare(token)
	return l.putFile(ctx, flatPath(live), img, token)
}

func patch(img []byte, writes map[int64][]byte, offs []int64) []byte {
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	for _, off := range offs {
		copy(img[off:], writes[off])
	}
	return img
}

// DiskBytes reads a VM's whole live disk through /folder.
func (l *Lab) DiskBytes(ctx context.Context, vmName string, diskIndex int) ([]byte, error) {
	live, err := l.DiskFile(vmName, diskIndex)
	if err != nil {
		return nil, err
	}
	return l.getFile(ctx, flatPath(live))
}

// ChangeID is the disk's current change id, as vSphere would report it.
func (l *Lab) ChangeID(vmName string, diskIndex int) (string, error) {
	_, d, _, err := l.labDisk(vmName, diskIndex)
	if err != nil {
		return "", err
	}
	l.diskLock.Lock()
	defer l.diskLock.Unlock()
	return d.changeID(d.seq), nil
}

// fillRun is the size of FillDisk's writes.
const fillRun = 1 << 20

// folderFillLimit is the largest disk FillDisk writes through /folder,
// whose PUT carries the whole extent.
const folderFillLimit = 64 << 20

// FillDisk writes pseudo-random data (determined by seed) over about
// allocatedFraction of a lab disk, in 1 MiB runs spread evenly over it, as
// a guest that has used part of its disk would have. Disks up to 64 MiB
// are written through /folder, whose endpoint records the runs as it does
// WriteDisk's; bigger ones through the datastore's local file, which
// /folder serves, recording the runs here. It returns the number of bytes
// written.
func (l *Lab) FillDisk(ctx context.Context, vmName string, diskIndex int, seed uint64, allocatedFraction float64) (int64, error) {
	if allocatedFraction < 0 || allocatedFraction > 1 || math.IsNaN(allocatedFraction) {
		return 0, fmt.Errorf("vcsimlab: allocated fraction %v is not between 0 and 1", allocatedFraction)
	}
	live, d, size, err := l.labDisk(vmName, diskIndex)
	if err != nil {
		return 0, err
	}
	slots := (size + fillRun - 1) / fillRun
	runs := int64(math.Round(allocatedFraction * float64(slots)))
	offs := make([]int64, 0, runs)
	for i := range runs {
		offs = append(offs, i*slots/runs*fillRun)
	}
	// run fills b (reused when large enough) with the bytes of the run at
	// off. Writing straight to the file reuses one buffer: a buffer per run
	// was gigabytes of garbage for the benchmark's disk, and the peak RSS
	// that make bench reports for the process.
	run := func(off int64, b []byte) []byte {
		n := int(min(fillRun, size-off))
		if cap(b) < n {
			b = make([]byte, n)
		}
		b = b[:n]
		rng := mathrand.New(mathrand.NewPCG(seed, uint64(off)))
		for i := 0; i < len(b); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < len(b); j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		return b
	}
	var written int64
	if size <= folderFillLimit {
		w := make(map[int64][]byte, len(offs))
		for _, off := range offs {
			w[off] = run(off, nil)
			written += int64(len(w[off]))
		}
		return written, l.WriteDiskAt(ctx, vmName, diskIndex, w)
	}

	defer l.lockRewrite(d)()
	f, err := os.OpenFile(l.localPath(flatPath(live)), os.O_WRONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("vcsimlab: filling %s: %w", live, err)
	}
	defer f.Close()
	var b []byte
	for _, off := range offs {
		if err := ctx.Err(); err != nil {
			return written, err
		}
		b = run(off, b)
		if _, err := f.WriteAt(b, off); err != nil {
			return written, fmt.Errorf("vcsimlab: filling %s: %w", live, err)
		}
		d.record(off, int64(len(b)))
		written += int64(len(b))
	}
	return written, nil
}

// ResizeDisk extends a lab disk to newSize bytes (a multiple of 1 KiB)
// with ReconfigVM_Task, as an administrator would, and makes its flat
// extent and descriptor that long. Like vSphere it refuses to shrink a
// disk or to extend one of a VM that has snapshots.
func (l *Lab) ResizeDisk(ctx context.Context, vmName string, diskIndex int, newSize int64) error {
	live, d, cur, err := l.labDisk(vmName, diskIndex)
	if err != nil {
		return err
	}
	if newSize%1024 != 0 || newSize < cur {
		return fmt.Errorf("vcsimlab: cannot resize %s from %d to %d bytes: disks only grow, in whole KiB", live, cur, newSize)
	}
	if newSize == cur {
		return nil
	}
	ref, err := l.VMRef(vmName)
	if err != nil {
		return err
	}
	vm := object.NewVirtualMachine(l.Client.Client, ref)
	var props mo.VirtualMachine
	if err := vm.Properties(ctx, ref, []string{"snapshot", "config.hardware.device"}, &props); err != nil {
		return fmt.Errorf("vcsimlab: resizing %s: %w", live, err)
	}
	if props.Snapshot != nil && props.Snapshot.CurrentSnapshot != nil {
		return fmt.Errorf("vcsimlab: cannot resize %s: VM %s has snapshots", live, vmName)
	}
	var disk *types.VirtualDisk
	for _, dev := range object.VirtualDeviceList(props.Config.Hardware.Device).SelectByType((*types.VirtualDisk)(nil)) {
		if b, ok := dev.(*types.VirtualDisk).Backing.(types.BaseVirtualDeviceFileBackingInfo); ok &&
			b.GetVirtualDeviceFileBackingInfo().FileName == live {
			disk = dev.(*types.VirtualDisk)
		}
	}
	if disk == nil {
		return fmt.Errorf("vcsimlab: VM %s has no disk backed by %s", vmName, live)
	}
	disk.CapacityInBytes = newSize
	disk.CapacityInKB = newSize / 1024
	task, err := vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{DeviceChange: []types.BaseVirtualDeviceConfigSpec{
		&types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationEdit, Device: disk},
	}})
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return fmt.Errorf("vcsimlab: resizing %s: %w", live, err)
	}
	l.keepDevicePlace(vmName, props.Config.Hardware.Device, disk.Key)

	defer l.lockRewrite(d)()
	if err := os.Truncate(l.localPath(flatPath(live)), newSize); err != nil {
		return fmt.Errorf("vcsimlab: resizing %s: %w", live, err)
	}
	// vcsim leaves an existing descriptor alone on an edit; vSphere's
	// describes the new extent.
	descPath := l.localPath(live)
	desc := vmdk.NewDescriptor(vmdk.Extent{Size: newSize / vmdk.SectorSize, Info: filepath.Base(flatPath(live))})
	if raw, err := os.ReadFile(descPath); err == nil {
		if old, err := vmdk.ParseDescriptor(bytes.NewReader(raw)); err == nil && len(old.Extent) == 1 {
			old.Extent[0].Size = newSize / vmdk.SectorSize
			desc = old
		}
	}
	if err := writeDescriptor(descPath, desc); err != nil {
		return fmt.Errorf("vcsimlab: resizing %s: %w", live, err)
	}
	d.size = newSize
	return nil
}

// lockRewrite takes the locks under which the lab rewrites an extent in
// place, in the order WriteDiskAt and the /folder endpoint take them, and
// returns their release.
func (l *Lab) lockRewrite(d *cbtDisk) (unlock func()) {
	l.labWrites.Lock()
	d.put.Lock()
	l.diskLock.Lock()
	return func() {
		l.diskLock.Unlock()
		d.put.Unlock()
		l.labWrites.Unlock()
	}
}

func writeDescriptor(path string, desc *vmdk.Descriptor) error {
	var buf bytes.Buffer
	if err := desc.Write(&buf); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}

// keepDevicePlace puts an edited device back where it was in the VM's
// device list. vcsim re-appends a device it edits; vSphere keeps its
// place, and clients (and DiskFile) count disks in that order.
func (l *Lab) keepDevicePlace(vmName string, before []types.BaseVirtualDevice, key int32) {
	vm, err := l.SimulatorVM(vmName)
	if err != nil {
		return
	}
	to := slices.IndexFunc(before, func(d types.BaseVirtualDevice) bool { return d.GetVirtualDevice().Key == key })
	ctx := l.simContext()
	ctx.WithLock(vm, func() {
		devs := slices.Clone(vm.Config.Hardware.Device)
		from := slices.IndexFunc(devs, func(d types.BaseVirtualDevice) bool { return d.GetVirtualDevice().Key == key })
		if from < 0 || to < 0 || from == to || to >= len(devs) {
			return
		}
		d := devs[from]
		devs = slices.Insert(slices.Delete(devs, from, from+1), to, d)
		ctx.Update(vm, []types.PropertyChange{{Name: "config.hardware.device", Val: devs}})
	})
}

// The registry calls these for every object it adds, changes or removes;
// snapshots are the objects of interest.

func (l *Lab) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "HavenVCSimLab", Value: "haven"}
}

// PutObject freezes a new snapshot's disks. vcsim's snapshots keep
// pointing at the live files; vSphere's point at the base disks, which
// stop changing when the snapshot is taken (the guest then writes to a
// delta). The copy gives the snapshot that point-in-time content, and its
// backing gets the change id of that moment, as vSphere's does.
func (l *Lab) PutObject(_ *simulator.Context, obj mo.Reference) {
	snap, ok := obj.(*simulator.VirtualMachineSnapshot)
	if !ok {
		return
	}
	vm, _ := l.Model.Map().Get(snap.Vm).(*simulator.VirtualMachine)
	cbtOn := vm != nil && vm.Config.ChangeTrackingEnabled != nil && *vm.Config.ChangeTrackingEnabled
	l.diskLock.Lock()
	defer l.diskLock.Unlock()
	frozen := map[int32]*frozenDisk{}
	for _, dev := range snap.Config.Hardware.Device {
		disk, ok := dev.(*types.VirtualDisk)
		if !ok {
			continue
		}
		b, ok := disk.Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		if !ok || l.disks[b.FileName] == nil {
			continue
		}
		live := b.FileName
		d := l.disks[live]
		snapName := strings.TrimSuffix(live, ".vmdk") + "-" + snap.Self.Value + ".vmdk"
		fd := &frozenDisk{live: live, file: l.localPath(flatPath(snapName)), desc: l.localPath(snapName),
			seq: d.seq, capacity: disk.CapacityInBytes, cbtActive: cbtOn}
		fd.err = copySparse(l.localPath(flatPath(live)), fd.file, disk.CapacityInBytes)
		if fd.err == nil {
			fd.err = writeDescriptor(fd.desc, vmdk.NewDescriptor(vmdk.Extent{Size: disk.CapacityInBytes / vmdk.SectorSize, Info: filepath.Base(fd.file)}))
		}
		if fd.err != nil {
			// A registry hook cannot fail the task; the snapshot's disk
			// then reads as missing and CBT answers a fault.
			log.Printf("vcsimlab: freezing %s for snapshot %s: %v", live, snap.Self.Value, fd.err)
		}
		b.FileName = snapName
		b.ChangeId = ""
		if cbtOn {
			b.ChangeId = d.changeID(d.seq)
		}
		frozen[disk.Key] = fd
	}
	l.snaps[snap.Self.Value] = frozen
}

func (l *Lab) UpdateObject(*simulator.Context, mo.Reference, []types.PropertyChange) {}

// RemoveObject drops a removed snapshot's frozen disks, as consolidation
// would.
func (l *Lab) RemoveObject(_ *simulator.Context, ref types.ManagedObjectReference) {
	if ref.Type != "VirtualMachineSnapshot" {
		return
	}
	l.diskLock.Lock()
	defer l.diskLock.Unlock()
	for _, fd := range l.snaps[ref.Value] {
		os.Remove(fd.file)
		os.Remove(fd.desc)
	}
	delete(l.snaps, ref.Value)
}

// copySparse copies a flat extent without writing its all-zero blocks, so
// that freezing a big, mostly empty disk costs what its data costs.
func copySparse(src, dst string, size int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, fillRun)
	for off := int64(0); ; {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 && !allZero(buf[:n]) {
			if _, err := out.WriteAt(buf[:n], off); err != nil {
				out.Close()
				return err
			}
		}
		off += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	if err := out.Truncate(size); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// cbtHandler routes QueryChangedDiskAreas to cbtVM. vcsim's global
// registry must keep the plain *VirtualMachine (vcsim type-asserts it in
// many places), so the wrapper lives in the calling session's registry,
// where it forwards every other method and property to vcsim's
// VirtualMachine.
func (l *Lab) cbtHandler(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
	w, ok := l.Model.Map().Get(m.This).(*simulator.VirtualMachine)
	if !ok {
		return nil, &types.ManagedObjectNotFound{Obj: m.This}
	}
	return inSession(ctx, func() *cbtVM { return &cbtVM{VirtualMachine: w, lab: l} }, m.This), nil
}

// cbtVM adds QueryChangedDiskAreas to vcsim's VirtualMachine.
type cbtVM struct {
	*simulator.VirtualMachine
	lab *Lab
}

// QueryChangedDiskAreas answers from the disk's change log: "*" lists the
// non-zero areas of the snapshot's frozen bytes; a change id lists every
// area written after it and up to the snapshot. Each answer covers at most
// the lab's CBT window from StartOffset.
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
	l := vm.lab
	l.diskLock.Lock()
	defer l.diskLock.Unlock()
	fd := l.snaps[req.Snapshot.Value][req.DeviceKey]
	if fd == nil {
		return fail("no such disk in the snapshot", &types.InvalidArgument{InvalidProperty: "deviceKey"})
	}
	if fd.err != nil {
		return fail(fd.err.Error(), &types.FileFault{File: fd.live})
	}
	if !fd.cbtActive {
		return fail("changed block tracking was off when the snapshot was taken", &types.FileFault{File: fd.live})
	}
	if req.StartOffset < 0 || req.StartOffset >= fd.capacity {
		return fail("startOffset is outside the disk", &types.InvalidArgument{InvalidProperty: "startOffset"})
	}
	end := min(fd.capacity, req.StartOffset+vm.lab.cbtWindow)
	d := l.disks[fd.live]
	var areas []types.DiskChangeExtent
	if req.ChangeId == "*" {
		var err error
		if areas, err = allocated(fd.file, req.StartOffset, end); err != nil {
			return fail(err.Error(), &types.FileFault{File: fd.file})
		}
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

// allocated lists the non-zero grains of an extent between start and end.
// Only that window is read: "*" answers page through a disk window by
// window, and a big disk must not be read whole for each.
func allocated(file string, start, end int64) ([]types.DiskChangeExtent, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []types.DiskChangeExtent
	first := start / allocatedGrain * allocatedGrain
	buf := make([]byte, allocatedGrain)
	for off := first; off < end; off += allocatedGrain {
		data, ok := nextData(f, off)
		if !ok {
			break
		}
		if data >= off+allocatedGrain {
			off = data/allocatedGrain*allocatedGrain - allocatedGrain
			continue
		}
		n, err := f.ReadAt(buf, off)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if n == 0 || allZero(buf[:n]) {
			continue
		}
		out = append(out, types.DiskChangeExtent{Start: off, Length: int64(n)})
	}
	return mergeAreas(out), nil
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

// folderPrefix is where vcsim serves the datastore HTTP interface.
const folderPrefix = "/folder/"

// ChangeGrain is the granularity at which a PUT's new extent is compared
// with the old one: the changed areas of an external write are whole
// 64 KiB chunks, aligned from the start of the disk, as CBT tracks blocks
// rather than bytes.
const ChangeGrain = 64 << 10

// labWriteHeader carries the token of writes the lab declared for a PUT.
const labWriteHeader = "X-Vcsimlab-Write"

// declaredWrites are the write ranges of one of the lab's own PUTs.
type declaredWrites struct {
	live   string
	writes []cbtWrite // by offset
}

// declare registers the write ranges of a PUT the lab is about to make to
// live's extent and returns the token that names them. The token is
// random, so a client outside the process cannot claim ranges.
func (l *Lab) declare(live string, writes []cbtWrite) string {
	token := newToken()
	slices.SortFunc(writes, func(a, b cbtWrite) int { return cmp.Compare(a.off, b.off) })
	l.diskLock.Lock()
	l.declared[token] = &declaredWrites{live: live, writes: writes}
	l.diskLock.Unlock()
	return token
}

// undeclare drops a token the endpoint did not take (the PUT failed
// before it got there).
func (l *Lab) undeclare(token string) {
	l.diskLock.Lock()
	delete(l.declared, token)
	l.diskLock.Unlock()
}

// takeDeclared returns, once, the writes a token declared for live's
// extent; the caller holds diskLock. ok is false for an unknown token.
func (l *Lab) takeDeclared(token, live string) (writes []cbtWrite, ok bool) {
	dw := l.declared[token]
	if token == "" || dw == nil || dw.live != live {
		return nil, false
	}
	delete(l.declared, token)
	return dw.writes, true
}

// serveFolderWrite is the lab's PUT and POST handler on /folder/. A PUT
// of a lab disk's flat extent is compared with the extent it replaces and
// its changes go to the disk's change log; every other request is served
// by vcsim, unchanged.
func (l *Lab) serveFolderWrite(w http.ResponseWriter, r *http.Request) {
	live, d := l.trackedExtent(r)
	if d == nil {
		l.Model.Service.ServeDatastore(w, r)
		return
	}
	d.put.Lock()
	defer d.put.Unlock()
	local := l.localPath(flatPath(live))
	// POST only creates, and a lab extent exists: vcsim answers 409. An
	// extent deleted since is no longer a lab disk's.
	if _, err := os.Stat(local); err != nil || r.Method != http.MethodPut {
		l.Model.Service.ServeDatastore(w, r)
		return
	}
	l.diskLock.Lock()
	size := d.size
	declared, _ := l.takeDeclared(r.Header.Get(labWriteHeader), live)
	l.diskLock.Unlock()
	if r.ContentLength >= 0 && r.ContentLength != size {
		http.Error(w, fmt.Sprintf("%s is a %d-byte disk and a PUT replaces it whole, not with %d bytes; resize disks with ReconfigVM_Task",
			flatPath(live), size, r.ContentLength), http.StatusBadRequest)
		return
	}
	tmp, areas, err := rewriteExtent(local, size, r.Body, declared)
	if err != nil {
		status := http.StatusInternalServerError
		if errors.Is(err, errExtentLength) {
			status = http.StatusBadRequest
		}
		log.Printf("vcsimlab: PUT %s: %v", flatPath(live), err)
		http.Error(w, err.Error(), status)
		return
	}
	// One step under diskLock: a snapshot freezes the old extent with the
	// old change id or the new one with its changes, never a mix.
	l.diskLock.Lock()
	err = os.Rename(tmp, local)
	if err == nil {
		for _, a := range areas {
			d.record(a.off, a.size)
		}
	}
	l.diskLock.Unlock()
	if err != nil {
		os.Remove(tmp)
		log.Printf("vcsimlab: PUT %s: %v", flatPath(live), err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

// trackedExtent returns the lab disk whose flat extent a /folder request
// names, resolving the datastore as vcsim does (dsName, or the only one).
func (l *Lab) trackedExtent(r *http.Request) (string, *cbtDisk) {
	rel, ok := strings.CutPrefix(r.URL.Path, folderPrefix)
	if !ok || strings.Contains(rel, "..") {
		return "", nil
	}
	name := r.URL.Query().Get("dsName")
	dss := l.Model.Map().All("Datastore")
	var root string
	for _, o := range dss {
		if ds := o.(*simulator.Datastore); ds.Name == name || (name == "" && len(dss) == 1) {
			root = ds.Info.GetDatastoreInfo().Url
		}
	}
	if root == "" {
		return "", nil
	}
	target := filepath.Join(root, filepath.FromSlash(rel))
	l.diskLock.Lock()
	defer l.diskLock.Unlock()
	for live, d := range l.disks {
		if l.localPath(flatPath(live)) == target {
			return live, d
		}
	}
	return "", nil
}

var errExtentLength = errors.New("the body is not as long as the disk")

// rewriteExtent streams body into a new file beside the extent at local
// and returns that file and the areas in which it differs from the
// extent: the declared writes as they are, plus every ChangeGrain chunk
// that differs outside them. Only a chunk of each is in memory at a time.
// All-zero chunks are left as holes, as in the lab's other extents.
func rewriteExtent(local string, size int64, body io.Reader, declared []cbtWrite) (tmp string, areas []cbtWrite, err error) {
	old, err := os.Open(local)
	if err != nil {
		return "", nil, err
	}
	defer old.Close()
	f, err := os.CreateTemp(filepath.Dir(local), "."+filepath.Base(local)+".put-*")
	if err != nil {
		return "", nil, err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			os.Remove(f.Name())
		}
	}()

	// One byte past the disk is enough to tell the body is too long.
	in := io.LimitReader(body, size+1)
	nb, ob := make([]byte, ChangeGrain), make([]byte, ChangeGrain)
	var extra []cbtWrite
	next := 0 // first declared write that may reach the current chunk
	var off int64
	for {
		n, rerr := io.ReadFull(in, nb)
		if off+int64(n) > size {
			return "", nil, fmt.Errorf("%w: more than %d bytes", errExtentLength, size)
		}
		if n > 0 {
			m, err := old.ReadAt(ob[:n], off)
			if err != nil && !errors.Is(err, io.EOF) {
				return "", nil, err
			}
			clear(ob[m:n])
			for next < len(declared) && declared[next].off+declared[next].size <= off {
				next++
			}
			if changedOutside(ob[:n], nb[:n], off, declared[next:]) {
				if k := len(extra); k > 0 && extra[k-1].off+extra[k-1].size == off {
					extra[k-1].size += int64(n)
				} else {
					extra = append(extra, cbtWrite{off: off, size: int64(n)})
				}
			}
			if !allZero(nb[:n]) {
				if _, err := f.WriteAt(nb[:n], off); err != nil {
					return "", nil, err
				}
			}
			off += int64(n)
		}
		if errors.Is(rerr, io.EOF) || errors.Is(rerr, io.ErrUnexpectedEOF) {
			break
		}
		if rerr != nil {
			return "", nil, fmt.Errorf("reading the body: %w", rerr)
		}
	}
	if off != size {
		return "", nil, fmt.Errorf("%w: %d of %d bytes", errExtentLength, off, size)
	}
	if err := f.Truncate(size); err != nil {
		return "", nil, err
	}
	areas = append(slices.Clone(declared), extra...)
	slices.SortStableFunc(areas, func(a, b cbtWrite) int { return cmp.Compare(a.off, b.off) })
	return f.Name(), areas, nil
}

// changedOutside reports whether the chunk at off differs between old and
// new anywhere the declared writes (by offset, those before the chunk
// skipped) do not cover.
func changedOutside(old, new []byte, off int64, declared []cbtWrite) bool {
	end := off + int64(len(new))
	pos := off
	for _, w := range declared {
		if w.off >= end {
			break
		}
		if w.off > pos && !bytes.Equal(old[pos-off:w.off-off], new[pos-off:w.off-off]) {
			return true
		}
		pos = max(pos, min(w.off+w.size, end))
	}
	return !bytes.Equal(old[pos-off:], new[pos-off:])
}
