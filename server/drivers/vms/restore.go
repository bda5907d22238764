package vms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/vmimage"
	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// RestoreTargets names what a VM restore writes onto besides the VM it
// restores over: for a disk, the VM the disk is attached to (its group is
// that of the protected VM with its instance UUID, none if Haven does not
// protect it); and the vCenter, the one the request names or the point's
// own. Over the original VM, nothing else: its group is the asset's.
func (s *Driver) RestoreTargets(ctx context.Context, req api.RestoreRequest, a *driver.Asset) ([]driver.Target, error) {
	v := req.VM
	if v == nil || v.Mode == api.VMRestoreOriginal {
		return nil, nil // PrepareRestore refuses a VM point restored as files
	}
	var targets []driver.Target
	if v.Mode == api.VMRestoreDisk {
		group, err := s.protectedVMGroup(ctx, v.TargetInstanceUUID)
		if err != nil {
			return nil, err
		}
		targets = append(targets, driver.Target{Field: "vm.target_instance_uuid", Label: "VM", Name: v.TargetInstanceUUID, Group: group})
	}
	id := v.VCenterID
	if id == "" {
		id = VMOf(a).VCenterID
	}
	vc, err := driver.ObjectTarget(ctx, s.db, db.VCenters, id, "vm.vcenter_id", "vCenter")
	return append(targets, vc...), err
}

// protectedVMGroup is the group of the protected VM with this instance
// UUID; a VM Haven does not protect has no group.
func (s *Driver) protectedVMGroup(ctx context.Context, instanceUUID string) (string, error) {
	ids, err := s.db.AssetsUsing(ctx, "instance_uuid", instanceUUID)
	if err != nil || len(ids) == 0 {
		return "", err
	}
	_, o, err := s.db.AssetObject(ctx, ids[0])
	if err != nil {
		return "", err
	}
	var spec struct {
		Group string `json:"group"`
	}
	return spec.Group, json.Unmarshal(o.Spec, &spec)
}

// PrepareRestore checks a restore of a VM point against the vCenter
// before it is queued: a name already taken, an original VM that is gone
// or running, a target VM that does not exist are refused at once (422).
func (s *Driver) PrepareRestore(ctx context.Context, req api.RestoreRequest, p api.Point, a *driver.Asset) (*driver.RestoreParams, error) {
	src := VMOf(a)
	if req.VM == nil {
		return nil, api.Unprocessable("vm", "the point is a VM point: say how to restore it with vm (mode new_vm, original or disk)")
	}
	if req.Database != nil {
		return nil, api.Unprocessable("database", "the point is a VM point, not a database point")
	}
	v := req.VM
	if v.VCenterID == "" {
		v.VCenterID = src.VCenterID
	}
	c, _, err := connect.StoredVCenter(ctx, s.db, s.master, v.VCenterID)
	if err != nil {
		if v.VCenterID == src.VCenterID && api.IsNotFound(err) {
			return nil, api.Unprocessable("vm.vcenter_id", "the point's vCenter was deleted: name the vCenter to restore the VM to")
		}
		return nil, api.Unprocessable("vm.vcenter_id", "%v", err)
	}
	defer c.Logout(context.WithoutCancel(ctx))
	r, err := s.repos.Open(ctx, p.StorageID, nil)
	if err != nil {
		return nil, err
	}
	root, err := r.Root(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	vp, err := openVMPoint(ctx, r, root)
	if err != nil {
		return nil, err
	}
	switch v.Mode {
	case api.VMRestoreNew:
		if _, err := c.PlanRestore(ctx, vp.cfg, Placement(v, vp.cfg)); err != nil {
			field := "vm"
			if errors.Is(err, vmware.ErrAlreadyExists) {
				field = "vm.name"
			}
			return nil, api.Unprocessable(field, "%v", err)
		}
	case api.VMRestoreOriginal:
		if v.VCenterID != src.VCenterID {
			return nil, api.Unprocessable("vm.vcenter_id", "a restore over the original VM happens in the VM's own vCenter")
		}
		vm, err := c.VMByInstanceUUID(ctx, src.InstanceUUID)
		if err != nil {
			return nil, api.Unprocessable("vm.mode", "the original VM (instance UUID %s) is not in the inventory any more; restore it as a new VM", src.InstanceUUID)
		}
		if vm.PowerState != "poweredOff" {
			return nil, api.Unprocessable("vm.overwrite", "the original VM %s is %s; power it off before restoring over it", vm.Name, vm.PowerState)
		}
	case api.VMRestoreDisk:
		if vp.disk(v.DiskKey) == nil {
			return nil, api.Unprocessable("vm.disk_key", "the point has no disk %d", v.DiskKey)
		}
		if _, err := c.VMByInstanceUUID(ctx, v.TargetInstanceUUID); err != nil {
			return nil, api.Unprocessable("vm.target_instance_uuid", "no VM with instance UUID %s in the vCenter", v.TargetInstanceUUID)
		}
	}
	return &driver.RestoreParams{RestoreRequest: req, TargetLocation: api.LocationServer}, nil
}

// vmPoint is a VM recovery point opened for a restore: its repository,
// its disks and the VM configuration stored with it.
type vmPoint struct {
	repo  *repo.Repository
	disks []vmimage.DiskEntry
	cfg   vmware.VMConfig
}

// openVMPoint opens a VM point: its repository, disks and configuration.
func openVMPoint(ctx context.Context, r *repo.Repository, root format.ID) (*vmPoint, error) {
	disks, meta, err := vmimage.ReadPoint(ctx, r, root)
	if err != nil {
		return nil, err
	}
	vp := &vmPoint{repo: r, disks: disks}
	if err := json.Unmarshal(meta.Config, &vp.cfg); err != nil {
		return nil, fmt.Errorf("the point's VM configuration: %w", err)
	}
	return vp, nil
}

// disk is the point's disk with that key, or nil.
func (vp *vmPoint) disk(key int32) *vmimage.DiskEntry {
	for i := range vp.disks {
		if vp.disks[i].Key == key {
			return &vp.disks[i]
		}
	}
	return nil
}

// Placement is where a restore as a new VM goes; empty fields default to
// the VM's original location.
func Placement(v *api.VMRestore, cfg vmware.VMConfig) vmware.Placement {
	return vmware.Placement{Name: v.Name, Datacenter: datacenterOf(v, cfg), Folder: v.Folder, ResourcePool: v.ResourcePool,
		Host: v.Host, Datastore: v.Datastore, NetworkMap: v.NetworkMap, PowerOn: v.PowerOn}
}

// Restore restores a VM point as the request says: as a new VM (the
// disks are uploaded, then the VM is built around them), over the original
// VM (powered off), or as one disk attached to another VM.
func (s *Driver) Restore(ctx context.Context, run driver.Restore) error {
	params, p := run.Params(), run.Point()
	v := params.VM
	r, err := run.Repository(ctx)
	if err != nil {
		return err
	}
	root, err := run.Root(ctx)
	if err != nil {
		return err
	}
	vp, err := openVMPoint(ctx, r, root)
	if err != nil {
		return err
	}
	c, _, err := connect.StoredVCenter(ctx, s.db, s.master, v.VCenterID)
	if err != nil {
		return err
	}
	defer c.Logout(context.WithoutCancel(ctx))
	rep := run.Progress()
	var total int64
	for _, d := range vp.disks {
		total += d.CapacityBytes
	}
	dw := diskWriter{vp: vp, c: c, progress: func(done int64) {
		rep.Report(ctx, api.JobProgress{BytesDone: done, BytesTotal: total}, false)
	}}
	content, upload := dw.content, func(dc, path string, d vmimage.DiskEntry) error { return dw.upload(ctx, dc, path, d) }

	var result map[string]string
	switch v.Mode {
	case api.VMRestoreNew:
		result, err = s.restoreNewVM(ctx, c, vp, v, upload)
	case api.VMRestoreOriginal:
		result, err = s.restoreOriginal(ctx, c, VMOf(run.Asset()), vp, content)
	case api.VMRestoreDisk:
		result, err = s.restoreDisk(ctx, c, vp, v, p, upload)
	default:
		err = fmt.Errorf("unknown VM restore mode %q", v.Mode)
	}
	if err != nil {
		return err
	}
	rep.Report(ctx, api.JobProgress{BytesDone: total, BytesTotal: total, FilesDone: int64(len(vp.disks)), FilesTotal: int64(len(vp.disks))}, true)
	return run.SetResult(ctx, result)
}

type uploadFunc func(datacenter, descriptorPath string, d vmimage.DiskEntry) error

// diskWriter writes a VM point's disks to vCenter through the disk-write
// path (uploads of whole flat disks), telling progress the bytes written
// so far.
type diskWriter struct {
	vp       *vmPoint
	c        *vmware.Client
	progress func(done int64)
	done     int64
}

// content streams one disk of the point.
func (dw *diskWriter) content(ctx context.Context, d vmimage.DiskEntry, w io.Writer) error {
	_, err := vmimage.RestoreDisk(ctx, dw.vp.repo, d, &countingWriter{w: w, n: func(n int64) {
		dw.done += n
		if dw.progress != nil {
			dw.progress(dw.done)
		}
	}})
	return err
}

// upload writes one disk of the point as a new flat disk at path.
func (dw *diskWriter) upload(ctx context.Context, dc, path string, d vmimage.DiskEntry) error {
	err := dw.c.UploadDiskFrom(ctx, dc, path, d.CapacityBytes, func(w io.Writer) error { return dw.content(ctx, d, w) })
	if err != nil {
		return fmt.Errorf("restoring disk %d (%s): %w", d.Key, d.Label, err)
	}
	return nil
}

// WriteNewVM builds a new VM at pl from the VM point at root: its disks
// are uploaded, then the VM is created around them from the point's
// configuration, as a restore as a new VM does (a failback from AWS
// writes its VMs this way). progress, if not nil, is told the bytes
// written so far.
func WriteNewVM(ctx context.Context, c *vmware.Client, r *repo.Repository, root format.ID, pl vmware.Placement, progress func(int64)) (vmware.VM, error) {
	vp, err := openVMPoint(ctx, r, root)
	if err != nil {
		return vmware.VM{}, err
	}
	dw := diskWriter{vp: vp, c: c, progress: progress}
	return writeNewVM(ctx, c, vp, pl, func(dc, path string, d vmimage.DiskEntry) error { return dw.upload(ctx, dc, path, d) })
}

// WriteOverVM writes the VM point at root over vm's disks in place (vm
// powered off), as a restore over the original VM does.
func WriteOverVM(ctx context.Context, c *vmware.Client, r *repo.Repository, root format.ID, vm vmware.VM, progress func(int64)) error {
	vp, err := openVMPoint(ctx, r, root)
	if err != nil {
		return err
	}
	dw := diskWriter{vp: vp, c: c, progress: progress}
	return writeOverVM(ctx, c, vm, vp, dw.content)
}

func vmResult(vm vmware.VM) map[string]string {
	return map[string]string{"vm_name": vm.Name, "vm_instance_uuid": vm.InstanceUUID, "vm_moref": vm.MoRef}
}

// datacenterOf picks the datacenter of a restore: the one the target folder
// or pool lies in, else the VM's own.
func datacenterOf(v *api.VMRestore, cfg vmware.VMConfig) string {
	for _, p := range []string{v.Folder, v.ResourcePool, v.Host} {
		if dc, _, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/"); ok && dc != "" {
			return dc
		}
	}
	return cfg.Location.Datacenter
}

func (s *Driver) restoreNewVM(ctx context.Context, c *vmware.Client, vp *vmPoint, v *api.VMRestore, upload uploadFunc) (map[string]string, error) {
	vm, err := writeNewVM(ctx, c, vp, Placement(v, vp.cfg), upload)
	if err != nil {
		return nil, err
	}
	return vmResult(vm), nil
}

func writeNewVM(ctx context.Context, c *vmware.Client, vp *vmPoint, pl vmware.Placement, upload uploadFunc) (vmware.VM, error) {
	plan, err := c.PlanRestore(ctx, vp.cfg, pl)
	if err != nil {
		return vmware.VM{}, err
	}
	var uploaded []string
	cleanup := func() {
		for _, p := range uploaded {
			_ = c.DeleteDisk(context.WithoutCancel(ctx), plan.Datacenter, p)
		}
	}
	paths := map[int32]string{}
	for _, d := range vp.disks {
		path := plan.Disks[d.Key]
		if path == "" {
			cleanup()
			return vmware.VM{}, fmt.Errorf("the point's configuration has no disk %d", d.Key)
		}
		uploaded = append(uploaded, path)
		if err := upload(plan.Datacenter, path, d); err != nil {
			cleanup()
			return vmware.VM{}, err
		}
		paths[d.Key] = path
	}
	vm, err := c.CreateVM(ctx, vp.cfg, pl, paths)
	if err != nil {
		if vm.MoRef != "" {
			_ = c.Destroy(context.WithoutCancel(ctx), vm)
		}
		cleanup()
		return vmware.VM{}, err
	}
	return vm, nil
}

func (s *Driver) restoreOriginal(ctx context.Context, c *vmware.Client, pv *api.ProtectedVM, vp *vmPoint,
	content func(context.Context, vmimage.DiskEntry, io.Writer) error) (map[string]string, error) {
	vm, err := c.VMByInstanceUUID(ctx, pv.InstanceUUID)
	if err != nil {
		return nil, fmt.Errorf("the original VM: %w", err)
	}
	if err := writeOverVM(ctx, c, vm, vp, content); err != nil {
		return nil, err
	}
	return vmResult(vm), nil
}

func writeOverVM(ctx context.Context, c *vmware.Client, vm vmware.VM, vp *vmPoint, content func(context.Context, vmimage.DiskEntry, io.Writer) error) error {
	sources := map[int32]vmware.DiskSource{}
	for _, d := range vp.disks {
		sources[d.Key] = func(ctx context.Context, _ vmware.Disk, w io.Writer) error { return content(ctx, d, w) }
	}
	return c.ReplaceDisks(ctx, vm, sources)
}

func (s *Driver) restoreDisk(ctx context.Context, c *vmware.Client, vp *vmPoint, v *api.VMRestore, p api.Point,
	upload uploadFunc) (map[string]string, error) {
	d := vp.disk(v.DiskKey)
	if d == nil {
		return nil, driver.Skipf("the point has no disk %d", v.DiskKey)
	}
	target, err := c.VMByInstanceUUID(ctx, v.TargetInstanceUUID)
	if err != nil {
		return nil, err
	}
	// A file of its own in the directory of the target VM's first disk
	// (or one named after the VM on the chosen datastore), so it never
	// collides with the VM's disks or with another restore of this point.
	var dir string
	switch {
	case v.Datastore != "":
		dir = fmt.Sprintf("[%s] %s", v.Datastore, target.Name)
	case len(target.Disks) > 0 && strings.Contains(target.Disks[0].FileName, "/"):
		fn := target.Disks[0].FileName
		dir = fn[:strings.LastIndexByte(fn, '/')]
	default:
		return nil, driver.Skip{Reason: "the target VM has no disk to put the restored one next to; give vm.datastore"}
	}
	path := fmt.Sprintf("%s/%s-haven-%s-%d.vmdk", dir, target.Name, p.ID[:8], d.Key)
	if err := upload(target.Datacenter, path, *d); err != nil {
		return nil, err
	}
	added, err := c.AttachDisk(ctx, target, path, d.CapacityBytes)
	if err != nil {
		return nil, err
	}
	res := vmResult(target)
	res["disk_key"] = fmt.Sprint(added.Key)
	res["disk_file"] = path
	return res, nil
}

// countingWriter reports the bytes written through it.
type countingWriter struct {
	w io.Writer
	n func(int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n(int64(n))
	return n, err
}
