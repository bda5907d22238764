package dr

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	engdr "github.com/havenbackup/terraform-provider-haven/engine/dr"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/vmimage"
	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/vms"
)

// FailbackParams are a dr_failback job's parameters.
type FailbackParams struct {
	PlanID string `json:"plan_id"`
	RunID  string `json:"run_id"`
	api.DRFailbackRequest
}

// Result keys of a dr_failback job.
const (
	ResultVMsWritten = "vms_written"
	ResultBlocksRead = "blocks_read"
)

// Tags of a failback's EBS snapshots: the run and machine (as the
// failover's), the pass's job and the device, so that a rerun of the
// pass finds the snapshots it made instead of making more.
const (
	tagFailbackJob    = "haven:failback-job"
	tagFailbackDevice = "haven:device"
)

// Failback runs a dr_failback job: each failed-over instance's volumes
// are snapshotted (after the instance is stopped, on the final pass), the
// snapshots are read with the EBS direct APIs and captured into the
// repository as a recovery point of the machine's protected VM (after the
// first pass, only the blocks ListChangedBlocks names since the previous
// pass's snapshots), and the point is written to vCenter through the VM
// restore path: as a new VM, sized from the instance, on the first pass,
// over that VM's disks after it. The VM is powered on at the end of the
// final pass when asked.
func (r *Runner) Failback(ctx context.Context, j *api.Job) error {
	var params FailbackParams
	if _, err := r.DB.JobParams(ctx, j.ID, &params); err != nil {
		return err
	}
	run, err := r.DB.DRRun(ctx, params.RunID)
	if errors.Is(err, db.ErrNotFound) {
		return driver.Skipf("DR run %s does not exist", params.RunID)
	}
	if err != nil {
		return err
	}
	_, spec, release, err := holdPlan(ctx, r.DB, r.Jobs, run.PlanID)
	if err != nil {
		return err
	}
	defer release()
	c, _, err := targetClients(ctx, r.DB, r.Master, spec)
	if err != nil {
		return err
	}
	vc, _, err := connect.StoredVCenter(ctx, r.DB, r.Master, params.VCenterID)
	if err != nil {
		return driver.Failed{Err: fmt.Errorf("vcenter_id: %w", err)}
	}
	defer vc.Logout(context.WithoutCancel(ctx))
	fb := run.Failback
	if fb == nil {
		fb = &api.DRFailback{VMs: []api.DRFailbackVM{}}
		run.Failback = fb
	}
	fb.State, fb.JobID, fb.Error = api.DRFailbackSyncing, j.ID, ""
	if err := r.DB.SaveDRRun(ctx, run); err != nil {
		return err
	}
	progress := r.Jobs.Progress(j.ID)
	var blocks, written int64
	for _, m := range run.Machines {
		if m.InstanceID == "" {
			continue
		}
		i := slices.IndexFunc(fb.VMs, func(v api.DRFailbackVM) bool { return v.Machine == m.Name })
		if i < 0 {
			name := params.Names[m.Name]
			if name == "" {
				name = m.Name + "-failback"
			}
			fb.VMs = append(fb.VMs, api.DRFailbackVM{Machine: m.Name, VMName: name})
			i = len(fb.VMs) - 1
		}
		err := r.failbackMachine(ctx, j, c, vc, spec, params, m, &fb.VMs[i], func() error { return r.DB.SaveDRRun(ctx, run) })
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fb.State, fb.Error = api.DRFailbackFailed, fmt.Sprintf("%s: %v", m.Name, err)
			if serr := r.DB.SaveDRRun(context.WithoutCancel(ctx), run); serr != nil {
				return serr
			}
			return fmt.Errorf("machine %s: %w", m.Name, err)
		}
		blocks += fb.VMs[i].BlocksRead
		written++
		progress.Report(ctx, api.JobProgress{FilesDone: written, FilesTotal: int64(len(run.Machines))}, false)
	}
	fb.Passes++
	fb.State = api.DRFailbackSynced
	if params.Final {
		fb.State, run.State = api.DRFailbackCompleted, api.DRRunFailedBack
	}
	if err := r.DB.SaveDRRun(context.WithoutCancel(ctx), run); err != nil {
		return err
	}
	return r.DB.SetJobResult(context.WithoutCancel(ctx), r.DB.Pool, j.ID, map[string]string{
		ResultRunID: run.ID, ResultVMsWritten: strconv.FormatInt(written, 10), ResultBlocksRead: strconv.FormatInt(blocks, 10)})
}

// failbackMachine runs one pass for one machine; save records the run
// after each step that changes what a rerun must know.
func (r *Runner) failbackMachine(ctx context.Context, j *api.Job, c clients, vc *vmware.Client, spec api.DRPlanSpec, params FailbackParams,
	m api.DRRunMachine, st *api.DRFailbackVM, save func() error) error {
	if st.DoneJobID == j.ID {
		return nil // a rerun of this pass: the machine's part of it ended
	}
	inst, err := describeInstance(ctx, c.ec2, m.InstanceID)
	if err != nil {
		return err
	}
	if params.Final {
		if inst, err = stopInstance(ctx, c.ec2, inst, r.poll()); err != nil {
			return err
		}
	}
	// The point the machine launched from gives the VM's configuration
	// and which disk each volume is.
	origin, err := r.DB.GetPoint(ctx, m.PointID)
	if err != nil {
		return fmt.Errorf("the point the machine launched from (%s): %w", m.PointID, err)
	}
	rp, err := r.Replicator.Repos.Open(ctx, origin.StorageID, nil)
	if err != nil {
		return err
	}
	originRoot, err := rp.Root(ctx, origin.ID)
	if err != nil {
		return err
	}
	disks, meta, err := vmimage.ReadPoint(ctx, rp, originRoot)
	if err != nil {
		return err
	}
	cfg, err := vmConfig(meta)
	if err != nil {
		return fmt.Errorf("the point's VM configuration: %w", err)
	}
	slices.SortFunc(disks, func(a, b vmimage.DiskEntry) int { return int(a.Key - b.Key) })
	volumes := instanceVolumes(inst)
	if len(volumes) != len(disks) {
		return fmt.Errorf("the instance has %d volumes and the VM had %d disks: Haven fails back only the disks it failed over", len(volumes), len(disks))
	}
	snaps, err := r.failbackSnapshots(ctx, c, j.ID, m.Name, params.RunID, volumes)
	if err != nil {
		return err
	}
	fds := make([]engdr.FailbackDisk, len(disks))
	for i, d := range disks {
		fds[i] = engdr.FailbackDisk{Key: d.Key, Label: d.Label, SnapshotID: snaps[i], CapacityBytes: d.CapacityBytes}
	}
	src, err := engdr.NewFailbackSource(ctx, c.ebs, fds)
	if err != nil {
		return err
	}
	// The VM is sized from the instance: its type's CPUs and memory, and
	// the disks as read.
	if err := sizeFromInstance(ctx, c.ec2, inst, &cfg); err != nil {
		return err
	}
	for i := range cfg.Disks {
		for _, fd := range src.Disks {
			if cfg.Disks[i].Key == fd.Key && fd.CapacityBytes > cfg.Disks[i].CapacityBytes {
				cfg.Disks[i].CapacityBytes = fd.CapacityBytes
			}
		}
	}
	cfg.Name = st.VMName
	// A pass rerun after a crash that had committed its point already
	// does not capture it again (the point is found by its job even when
	// the crash came before the run recorded it).
	if st.PassJobID != j.ID {
		if id, err := r.DB.PointOfJob(ctx, j.ID, origin.AssetID); err == nil {
			st.PointID, st.PassJobID, st.Snapshots = id, j.ID, snaps
		} else if !errors.Is(err, db.ErrNotFound) {
			return err
		}
	}
	var root format.ID
	if st.PassJobID == j.ID && st.PointID != "" {
		if root, err = rp.Root(ctx, st.PointID); err != nil {
			return err
		}
	} else {
		if root, err = r.capturePass(ctx, j, rp, origin, src, cfg, st); err != nil {
			return err
		}
		st.Snapshots, st.PassJobID = snaps, j.ID
		now := time.Now()
		st.CopiedAt = &now
		if err := save(); err != nil {
			return err
		}
	}
	// The VM: made on the first pass, written over after it. Its name is
	// checked free and marked pending before it is made, so a pass that
	// died while making it takes over the VM it finds under that name.
	vm, err := r.failbackVM(ctx, vc, st, save)
	if err != nil {
		return err
	}
	if vm.MoRef == "" {
		pl := vms.Placement(&api.VMRestore{Name: st.VMName, Datastore: params.Datastore, ResourcePool: params.ResourcePool,
			Host: params.Host, Folder: params.Folder, NetworkMap: params.NetworkMap}, cfg)
		if vm, err = vms.WriteNewVM(ctx, vc, rp, root, pl, nil); err != nil {
			return fmt.Errorf("writing the VM: %w", err)
		}
	} else if err := vms.WriteOverVM(ctx, vc, rp, root, vm, nil); err != nil {
		return fmt.Errorf("writing the VM: %w", err)
	}
	st.VMMoRef, st.VMInstanceUUID, st.VMPending = vm.MoRef, vm.InstanceUUID, false
	if err := save(); err != nil {
		return err
	}
	// Snapshots of earlier passes (or of passes that died) are not needed
	// any more: this pass's are the base of the next. The final pass's
	// neither.
	keep := snaps
	if params.Final {
		keep, st.Snapshots = nil, nil
	}
	if err := dropFailbackSnapshots(ctx, c.ec2, params.RunID, m.Name, keep); err != nil {
		return err
	}
	if params.Final && params.PowerOn {
		vm, err := vc.VMByInstanceUUID(ctx, st.VMInstanceUUID)
		if err != nil {
			return err
		}
		if err := vc.PowerOn(ctx, vm); err != nil {
			return fmt.Errorf("powering the VM on: %w", err)
		}
		st.PoweredOn = true
	}
	st.DoneJobID = j.ID
	return save()
}

// capturePass captures the machine's snapshots as a point of its
// protected VM: after the first pass, with the previous pass's point as
// parent, so that only what changed between the two passes' snapshots is
// read. It records the point and what was read on st.
func (r *Runner) capturePass(ctx context.Context, j *api.Job, rp *repo.Repository, origin api.Point, src *engdr.FailbackSource,
	cfg vmware.VMConfig, st *api.DRFailbackVM) (format.ID, error) {
	started := time.Now()
	plan := driver.Plan{Kind: api.BackupFull}
	var parent format.ID
	if st.PointID != "" {
		if root, err := rp.Root(ctx, st.PointID); err == nil {
			plan, parent = driver.Plan{Kind: api.BackupIncremental, ParentPoint: st.PointID}, root
		}
	}
	w, err := rp.NewWriter(ctx, plan.ParentPoint)
	if errors.Is(err, repo.ErrParentGone) {
		plan, parent = driver.Plan{Kind: api.BackupFull}, format.ID{}
		w, err = rp.NewWriter(ctx, "")
	}
	if err != nil {
		return format.ID{}, err
	}
	root, meta, _, err := vmimage.Capture(ctx, w, rp, src, vmimage.Options{VM: vmware.VM{Name: st.VMName}, Config: cfg, Parent: parent,
		// Blocks of EBS's size: a pass reads exactly the blocks that changed.
		BlockSize: src.BlockSize()})
	if err != nil {
		w.Abort(ctx)
		return format.ID{}, fmt.Errorf("reading the instance's snapshots: %w", err)
	}
	pointID, err := r.Jobs.CommitStep(ctx, j.ID, origin.AssetID, origin.StorageID, w, plan, root,
		driver.PointStats{LogicalBytes: meta.CapacityBytes, Files: int64(meta.Disks), Started: started})
	if err != nil {
		return format.ID{}, err
	}
	st.PointID, st.BlocksRead, st.BytesRead = pointID, src.BlocksRead(), meta.ReadBytes
	return root, nil
}

// dropFailbackSnapshots deletes the machine's failback snapshots of the
// run but those kept.
func dropFailbackSnapshots(ctx context.Context, client *ec2.Client, runID, machine string, keep []string) error {
	out, err := client.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: []ec2types.Filter{
		{Name: aws.String("tag:" + engdr.TagRun), Values: []string{runID}},
		{Name: aws.String("tag:" + engdr.TagMachine), Values: []string{machine}}}})
	if err != nil {
		return fmt.Errorf("listing the failback's snapshots: %w", err)
	}
	for _, sn := range out.Snapshots {
		if id := aws.ToString(sn.SnapshotId); !slices.Contains(keep, id) {
			if err := engdr.DeleteSnapshot(ctx, client, id); err != nil {
				return err
			}
		}
	}
	return nil
}

// failbackVM finds the machine's VM of an earlier pass (or of a pass that
// died making it), or marks its name pending and answers no VM (the pass
// makes it).
func (r *Runner) failbackVM(ctx context.Context, vc *vmware.Client, st *api.DRFailbackVM, save func() error) (vmware.VM, error) {
	if st.VMInstanceUUID != "" {
		vm, err := vc.VMByInstanceUUID(ctx, st.VMInstanceUUID)
		if err != nil {
			return vm, fmt.Errorf("the VM of the previous pass (%s): %w", st.VMName, err)
		}
		return vm, nil
	}
	existing, err := vc.VMByName(ctx, st.VMName)
	switch {
	case err == nil && st.VMPending:
		return existing, nil
	case err == nil:
		return vmware.VM{}, fmt.Errorf("a VM named %q exists already on the vCenter (%s): name the failback's VM otherwise (names)", st.VMName, existing.MoRef)
	case !errors.Is(err, vmware.ErrNotFound):
		return vmware.VM{}, err
	}
	st.VMPending = true
	return vmware.VM{}, save()
}

// describeInstance reads an instance that a failback can read from (not
// terminated).
func describeInstance(ctx context.Context, client *ec2.Client, id string) (ec2types.Instance, error) {
	out, err := client.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return ec2types.Instance{}, fmt.Errorf("describing instance %s: %w", id, err)
	}
	for _, res := range out.Reservations {
		for _, in := range res.Instances {
			if in.State != nil && (in.State.Name == ec2types.InstanceStateNameTerminated || in.State.Name == ec2types.InstanceStateNameShuttingDown) {
				return in, fmt.Errorf("instance %s is %s: there is nothing to fail back", id, in.State.Name)
			}
			return in, nil
		}
	}
	return ec2types.Instance{}, fmt.Errorf("instance %s does not exist", id)
}

// stopInstance stops the instance and waits until it is stopped.
func stopInstance(ctx context.Context, client *ec2.Client, in ec2types.Instance, poll time.Duration) (ec2types.Instance, error) {
	id := aws.ToString(in.InstanceId)
	if in.State == nil || in.State.Name != ec2types.InstanceStateNameStopped {
		if _, err := client.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{id}}); err != nil {
			return in, fmt.Errorf("stopping instance %s: %w", id, err)
		}
	}
	deadline := time.Now().Add(30 * time.Minute)
	for {
		cur, err := describeInstance(ctx, client, id)
		if err != nil {
			return cur, err
		}
		if cur.State != nil && cur.State.Name == ec2types.InstanceStateNameStopped {
			return cur, nil
		}
		if time.Now().After(deadline) {
			return cur, fmt.Errorf("instance %s did not stop in 30 minutes", id)
		}
		select {
		case <-ctx.Done():
			return cur, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// instanceVolumes are the instance's EBS volumes, the root device first,
// then by device name (as a failover attaches a VM's disks in key order).
func instanceVolumes(in ec2types.Instance) []ec2types.InstanceBlockDeviceMapping {
	var out []ec2types.InstanceBlockDeviceMapping
	for _, m := range in.BlockDeviceMappings {
		if m.Ebs != nil && m.Ebs.VolumeId != nil {
			out = append(out, m)
		}
	}
	root := aws.ToString(in.RootDeviceName)
	slices.SortFunc(out, func(a, b ec2types.InstanceBlockDeviceMapping) int {
		an, bn := aws.ToString(a.DeviceName), aws.ToString(b.DeviceName)
		switch {
		case an == root:
			return -1
		case bn == root:
			return 1
		case len(an) != len(bn):
			return len(an) - len(bn)
		}
		if an < bn {
			return -1
		}
		return 1
	})
	return out
}

// failbackSnapshots snapshots each volume for this pass (job), or finds
// the snapshots an earlier attempt of the pass made, and waits until they
// are completed.
func (r *Runner) failbackSnapshots(ctx context.Context, c clients, jobID, machine, runID string, volumes []ec2types.InstanceBlockDeviceMapping) ([]string, error) {
	out := make([]string, len(volumes))
	for i, v := range volumes {
		device := aws.ToString(v.DeviceName)
		found, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: []ec2types.Filter{
			{Name: aws.String("tag:" + tagFailbackJob), Values: []string{jobID}},
			{Name: aws.String("tag:" + engdr.TagMachine), Values: []string{machine}},
			{Name: aws.String("tag:" + tagFailbackDevice), Values: []string{device}}}})
		if err != nil {
			return nil, fmt.Errorf("looking for the failback's snapshots: %w", err)
		}
		for _, s := range found.Snapshots {
			if s.State != ec2types.SnapshotStateError {
				out[i] = aws.ToString(s.SnapshotId)
			}
		}
		if out[i] == "" {
			tag := func(k, v string) ec2types.Tag { return ec2types.Tag{Key: aws.String(k), Value: aws.String(v)} }
			s, err := c.ec2.CreateSnapshot(ctx, &ec2.CreateSnapshotInput{VolumeId: v.Ebs.VolumeId,
				Description: aws.String(fmt.Sprintf("Haven failback of %s (%s), run %s", machine, device, runID)),
				TagSpecifications: []ec2types.TagSpecification{{ResourceType: ec2types.ResourceTypeSnapshot, Tags: []ec2types.Tag{
					tag(engdr.TagRun, runID), tag(engdr.TagMachine, machine), tag(tagFailbackJob, jobID), tag(tagFailbackDevice, device)}}}})
			if err != nil {
				return nil, fmt.Errorf("snapshotting %s (%s): %w", aws.ToString(v.Ebs.VolumeId), device, err)
			}
			out[i] = aws.ToString(s.SnapshotId)
		}
		if err := engdr.WaitCompleted(ctx, c.ec2, out[i], time.Hour); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// sizeFromInstance sets the VM's CPUs and memory to the instance type's.
func sizeFromInstance(ctx context.Context, client *ec2.Client, in ec2types.Instance, cfg *vmware.VMConfig) error {
	out, err := client.DescribeInstanceTypes(ctx, &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{in.InstanceType}})
	if err != nil {
		return fmt.Errorf("describing instance type %s: %w", in.InstanceType, err)
	}
	if len(out.InstanceTypes) != 1 {
		return fmt.Errorf("instance type %s is unknown to the region", in.InstanceType)
	}
	t := out.InstanceTypes[0]
	if t.VCpuInfo != nil && t.VCpuInfo.DefaultVCpus != nil {
		cfg.NumCPUs = aws.ToInt32(t.VCpuInfo.DefaultVCpus)
		if cfg.CoresPerSocket > 0 && cfg.NumCPUs%cfg.CoresPerSocket != 0 {
			cfg.CoresPerSocket = 0
		}
	}
	if t.MemoryInfo != nil && t.MemoryInfo.SizeInMiB != nil {
		cfg.MemoryMB = aws.ToInt64(t.MemoryInfo.SizeInMiB)
	}
	return nil
}

func (r *Runner) poll() time.Duration {
	if r.Poll > 0 {
		return r.Poll
	}
	return 5 * time.Second
}
