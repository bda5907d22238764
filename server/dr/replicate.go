// Package dr runs disaster recovery to AWS on the server's side: DR is
// not a workload (it consumes VM recovery points), so it has its own job
// (dr_replicate, Replicator.Run) and its own reconciler (package
// reconcile's DR, fed by Due). The data plane is engine/dr.
package dr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ebs"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/havenbackup/terraform-provider-haven/engine/disk"
	engdr "github.com/havenbackup/terraform-provider-haven/engine/dr"
	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/vmimage"
	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/jobs"
	"github.com/havenbackup/terraform-provider-haven/server/repos"
)

// ReplicateParams name the plan a dr_replicate job copies.
type ReplicateParams struct {
	PlanID string `json:"plan_id"`
}

// Result keys of a dr_replicate job (counts in decimal).
const (
	ResultVMsCopied     = "vms_copied"
	ResultDisksCopied   = "disks_copied"
	ResultBlocksChanged = "blocks_changed"
	ResultBlocksPut     = "blocks_put"
	ResultZeroBlocks    = "zero_blocks_put"
	ResultBytesPut      = "bytes_put"
	ResultDeleted       = "snapshots_deleted"
)

// Replicator runs dr_replicate jobs.
type Replicator struct {
	DB     *db.DB
	Jobs   *jobs.Service
	Repos  *repos.Cache
	Master *keys.MasterKey
	Log    *slog.Logger
	// CompleteTimeout bounds the wait for AWS to report a snapshot
	// completed (zero: an hour).
	CompleteTimeout time.Duration
	// AfterStep, when set, is called after each step of a disk's copy
	// ("started" once the copy is written and completed, "recorded",
	// "deleted"), with the disk's key: tests stop the server there.
	AfterStep func(step string, vmID string, diskKey int32)
}

// clients are the AWS clients of one job.
type clients struct {
	ebs *ebs.Client
	ec2 *ec2.Client
}

type tally struct {
	vms, disks, changed, put, zeros, bytes, deleted int64
}

// Run copies each VM of the plan whose newest point is not its copy yet:
// every disk of the point to an EBS snapshot, incrementally from the
// disk's copy, which is deleted once the new one is recorded.
//
// Each step leaves a true state behind if the process dies after it: the
// snapshot's client token derives from the plan, VM, disk and point, so a
// rerun continues (or finds completed) the snapshot the dead attempt
// started; a copy is recorded only once AWS reports its snapshot
// completed, with the copy it replaces marked superseded in the same
// transaction; and a superseded copy's row goes only after its snapshot
// is deleted, which each run retries first.
func (r *Replicator) Run(ctx context.Context, j *api.Job) error {
	var params ReplicateParams
	if _, err := r.DB.JobParams(ctx, j.ID, &params); err != nil {
		return err
	}
	o, spec, release, err := holdPlan(ctx, r.DB, r.Jobs, params.PlanID)
	if err != nil {
		return err
	}
	defer release()
	c, _, err := targetClients(ctx, r.DB, r.Master, spec)
	if err != nil {
		return err
	}
	progress := r.Jobs.Progress(j.ID)
	var t tally
	// report is called from the copy's put goroutines too (while the
	// tally itself stays still): it only reads.
	report := func(extra int64, force bool) {
		progress.Report(ctx, api.JobProgress{FilesDone: t.disks, BytesDone: t.bytes + extra}, force)
	}
	// What a dead attempt superseded but did not delete goes first.
	if err := r.dropSuperseded(ctx, c, o.ID, &t); err != nil {
		return err
	}
	machines, err := PlanMachines(ctx, r.DB, spec)
	if err != nil {
		return err
	}
	for _, v := range machines {
		point, err := r.DB.LatestPoint(ctx, v.ProtectedVMID)
		if errors.Is(err, db.ErrNotFound) {
			continue // nothing to copy yet
		}
		if err != nil {
			return err
		}
		copied, err := r.replicateVM(ctx, c, o.ID, spec, v, point, &t, report, progress.Note)
		if err != nil {
			progress.Flush(ctx)
			return fmt.Errorf("VM %q: %w", v.Name, err)
		}
		if copied {
			t.vms++
		}
	}
	report(0, true)
	return r.DB.SetJobResult(context.WithoutCancel(ctx), r.DB.Pool, j.ID, map[string]string{
		ResultVMsCopied: itoa(t.vms), ResultDisksCopied: itoa(t.disks), ResultBlocksChanged: itoa(t.changed),
		ResultBlocksPut: itoa(t.put), ResultZeroBlocks: itoa(t.zeros), ResultBytesPut: itoa(t.bytes), ResultDeleted: itoa(t.deleted),
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// planLockWait is how long a DR job of a plan waits before trying again
// while another holds the plan.
const planLockWait = 3 * time.Second

// holdPlan reads a DR job's plan and holds it for the job (lockPlan); a
// plan deleted since the job was queued skips the job.
func holdPlan(ctx context.Context, d *db.DB, js *jobs.Service, planID string) (db.Object, api.DRPlanSpec, func(), error) {
	var spec api.DRPlanSpec
	o, err := d.Get(ctx, db.DRPlans, planID)
	if errors.Is(err, db.ErrNotFound) {
		return o, spec, nil, driver.Skipf("DR plan %s was deleted", planID)
	}
	if err != nil {
		return o, spec, nil, err
	}
	if err := json.Unmarshal(o.Spec, &spec); err != nil {
		return o, spec, nil, err
	}
	release, err := lockPlan(ctx, js, o.ID)
	return o, spec, release, err
}

// planLockName is the advisory lock of a plan's DR jobs.
func planLockName(planID string) string { return "haven-dr-plan:" + planID }

// lockPlan holds a plan for one DR job at a time: a replication deletes
// the snapshots that a launch registers images over, and two launches of
// a plan would race for its copies.
func lockPlan(ctx context.Context, js *jobs.Service, planID string) (func(), error) {
	release, ok, err := js.Locks().TryLock(ctx, planLockName(planID))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, driver.Wait{Reason: "another DR job of this plan is running", After: planLockWait}
	}
	return release, nil
}

// targetClients are the AWS clients of a plan's target.
func targetClients(ctx context.Context, d *db.DB, master *keys.MasterKey, spec api.DRPlanSpec) (clients, api.AWSTarget, error) {
	cfg, target, err := connect.StoredAWSTarget(ctx, d, master, spec.TargetID)
	if err != nil {
		return clients{}, target, driver.Failed{Err: fmt.Errorf("AWS target of DR plan %q: %w", spec.Name, err)}
	}
	cfg.Retryer = drRetryer
	return clients{ebs: ebs.NewFromConfig(cfg), ec2: ec2.NewFromConfig(cfg)}, target, nil
}

// drRetryer retries what AWS throttles (and its other retryable errors)
// longer than the SDK's default three attempts: a copy puts thousands of
// blocks in parallel, and EBS's direct APIs throttle by account. There is
// no client-side retry quota, which a long copy's throttled puts would
// exhaust and then fail on; attempts and backoff bound it instead.
func drRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = DRMaxAttempts
		o.MaxBackoff = retryMaxBackoff
		o.RateLimiter = ratelimit.None
	})
}

// DRMaxAttempts bounds the attempts of one AWS call of a DR job.
const DRMaxAttempts = 10

// retryMaxBackoff bounds the wait before one retry (tests shorten it).
var retryMaxBackoff = 20 * time.Second

// dropSuperseded deletes the snapshots of superseded copies, then their
// rows.
func (r *Replicator) dropSuperseded(ctx context.Context, c clients, planID string, t *tally) error {
	copies, err := r.DB.DRCopies(ctx, planID)
	if err != nil {
		return err
	}
	for _, cp := range copies {
		if !cp.Superseded {
			continue
		}
		if err := engdr.DeleteSnapshot(ctx, c.ec2, cp.SnapshotID); err != nil {
			return err
		}
		r.step("deleted", cp.ProtectedVMID, cp.DiskKey)
		if err := r.DB.DeleteDRCopy(ctx, cp); err != nil {
			return err
		}
		t.deleted++
	}
	return nil
}

func (r *Replicator) step(step, vmID string, disk int32) {
	if r.AfterStep != nil {
		r.AfterStep(step, vmID, disk)
	}
}

// replicateVM copies one point of a VM (its newest, or one a run asks
// for), unless it is the VM's copy already.
func (r *Replicator) replicateVM(ctx context.Context, c clients, planID string, spec api.DRPlanSpec, v api.DRPlanVM, point api.Point, t *tally, report func(int64, bool), warn func(string)) (bool, error) {
	copies, err := r.DB.DRCopies(ctx, planID)
	if err != nil {
		return false, err
	}
	current := map[int32]db.DRCopy{}
	for _, cp := range copies {
		if cp.ProtectedVMID == v.ProtectedVMID && !cp.Superseded {
			current[cp.DiskKey] = cp
		}
	}
	rp, err := r.Repos.Open(ctx, point.StorageID, nil)
	if err != nil {
		return false, err
	}
	root, err := rp.Root(ctx, point.ID)
	if err != nil {
		return false, fmt.Errorf("point %s: %w", point.ID, err)
	}
	disks, meta, err := vmimage.ReadPoint(ctx, rp, root)
	if err != nil {
		return false, fmt.Errorf("point %s: %w", point.ID, err)
	}
	cfg, cfgErr := vmConfig(meta)
	if v.InstanceType == api.InstanceTypeAuto {
		r.pickInstanceType(ctx, c, planID, v, cfg, cfgErr)
	}
	bootMode := ""
	if cfgErr == nil {
		bootMode = ec2BootMode(cfg)
	}
	copied := false
	for _, d := range disks {
		prev, has := current[d.Key]
		if has && prev.PointID == point.ID {
			continue // this disk point is copied already
		}
		var previous *engdr.DiskCopy
		if has {
			id, err := format.ParseID(prev.DiskManifest)
			if err != nil {
				return false, fmt.Errorf("disk %d's copy: %w", d.Key, err)
			}
			previous = &engdr.DiskCopy{SnapshotID: prev.SnapshotID, Disk: id, VolumeGiB: prev.VolumeGiB, BlockSize: prev.BlockSize}
			// The copy's point may have expired and its blocks been
			// collected since: then there is nothing to compare with, and
			// the disk is copied in full (under a token of its own).
			if _, _, err := disk.ReadBlocks(ctx, rp, id); err != nil {
				if ctx.Err() != nil {
					return false, ctx.Err()
				}
				warn(fmt.Sprintf("VM %s disk %d: the point of its copy (%s) is no longer readable (%v); copying the disk in full", v.Name, d.Key, prev.PointID, err))
				previous = nil
			}
		}
		failures, err := r.DB.DRSnapshotFailures(ctx, planID, v.ProtectedVMID, d.Key, point.ID)
		if err != nil {
			return false, err
		}
		token := clientToken(planID, v.ProtectedVMID, d.Key, point.ID, failures)
		if has && previous == nil {
			token = clientToken(planID, v.ProtectedVMID, d.Key, point.ID+"|full", failures)
		}
		cp, st, err := engdr.Replicate(ctx, rp, c.ebs, engdr.ReplicateOptions{
			Disk: d.Manifest, Previous: previous,
			ClientToken: token,
			Description: fmt.Sprintf("Haven DR plan %s, VM %s, disk %d, point %s", spec.Name, v.Name, d.Key, point.ID),
			Tags: map[string]string{"haven:plan": planID, "haven:protected-vm": v.ProtectedVMID, "haven:disk": strconv.Itoa(int(d.Key)),
				"haven:point": point.ID, "Name": fmt.Sprintf("%s/%s/disk-%d", spec.Name, v.Name, d.Key)},
			Progress: func(put int64) {
				// EBS blocks are 512 KiB.
				report(put*int64(max(prevBlockSize(previous), 512*1024)), false)
			},
		})
		if err == nil {
			err = engdr.WaitCompleted(ctx, c.ec2, cp.SnapshotID, r.completeTimeout())
		}
		if errors.Is(err, engdr.ErrSnapshotFailed) {
			// The next try starts a new snapshot with a new token.
			if ferr := r.DB.AddDRSnapshotFailure(context.WithoutCancel(ctx), planID, v.ProtectedVMID, d.Key, point.ID); ferr != nil {
				return false, ferr
			}
		}
		if err != nil {
			return false, fmt.Errorf("disk %d: %w", d.Key, err)
		}
		r.step("completed", v.ProtectedVMID, d.Key)
		if err := r.DB.RecordDRCopy(ctx, db.DRCopy{PlanID: planID, ProtectedVMID: v.ProtectedVMID, DiskKey: d.Key, SnapshotID: cp.SnapshotID,
			PointID: point.ID, PointTime: point.StartedAt, DiskManifest: cp.Disk.String(), VolumeGiB: cp.VolumeGiB, BlockSize: cp.BlockSize, BootMode: bootMode}); err != nil {
			return false, err
		}
		r.step("recorded", v.ProtectedVMID, d.Key)
		t.disks++
		t.changed += st.Changed
		t.put += st.Put
		t.zeros += st.ZeroBlocks
		t.bytes += st.BytesPut
		copied = true
		report(0, false)
		if has && prev.SnapshotID != cp.SnapshotID {
			if err := engdr.DeleteSnapshot(ctx, c.ec2, prev.SnapshotID); err != nil {
				return false, err
			}
			r.step("deleted", v.ProtectedVMID, d.Key)
			prev.Superseded = true
			if err := r.DB.DeleteDRCopy(ctx, prev); err != nil {
				return false, err
			}
			t.deleted++
		}
	}
	return copied, nil
}

func prevBlockSize(p *engdr.DiskCopy) int {
	if p == nil {
		return 0
	}
	return int(p.BlockSize)
}

func (r *Replicator) completeTimeout() time.Duration {
	if r.CompleteTimeout > 0 {
		return r.CompleteTimeout
	}
	return time.Hour
}

// clientToken names one disk point's snapshot for StartSnapshot: the same
// on every attempt, so that a rerun continues the snapshot a dead attempt
// started, until AWS puts one in the error state (failures counts them).
func clientToken(planID, vmID string, disk int32, pointID string, failures int) string {
	s := fmt.Sprintf("haven-dr|%s|%s|%d|%s", planID, vmID, disk, pointID)
	if failures > 0 {
		s += "|" + strconv.Itoa(failures)
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:64]
}

// pickInstanceType resolves an auto instance type from the point's CPUs
// and memory and records it with the reason; a failure is recorded as the
// reason, and the copy goes on (the type matters at failover).
func (r *Replicator) pickInstanceType(ctx context.Context, c clients, planID string, v api.DRPlanVM, cfg vmware.VMConfig, cfgErr error) {
	if cfgErr != nil {
		_ = r.DB.SetDRInstanceType(ctx, planID, v.ProtectedVMID, db.DRInstanceType{Reason: "the point has no VM configuration: " + cfgErr.Error()})
		return
	}
	arch := "x86_64"
	name, reason, err := engdr.PickInstanceType(ctx, c.ec2, int(cfg.NumCPUs), cfg.MemoryMB, arch)
	if err != nil {
		r.Log.Warn("picking an instance type", "plan_id", planID, "vm", v.Name, "error", err.Error())
		_ = r.DB.SetDRInstanceType(ctx, planID, v.ProtectedVMID, db.DRInstanceType{Reason: err.Error()})
		return
	}
	_ = r.DB.SetDRInstanceType(ctx, planID, v.ProtectedVMID, db.DRInstanceType{Type: name, Reason: reason})
}

// ErrPlanBusy means a DR job of the plan is running.
var ErrPlanBusy = errors.New("a DR job of the plan is running")

// DeleteCopies deletes every EBS snapshot a plan's replications made,
// found by the plan's tag (so also one a crashed replication started and
// never recorded), for the plan's deletion. It holds the plan as a DR job
// does, and answers ErrPlanBusy when a job of the plan runs. It can run
// any number of times.
func DeleteCopies(ctx context.Context, d *db.DB, js *jobs.Service, master *keys.MasterKey, planID string) (int, error) {
	release, ok, err := js.Locks().TryLock(ctx, planLockName(planID))
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, ErrPlanBusy
	}
	defer release()
	o, err := d.Get(ctx, db.DRPlans, planID)
	if err != nil {
		return 0, err
	}
	var spec api.DRPlanSpec
	if err := json.Unmarshal(o.Spec, &spec); err != nil {
		return 0, err
	}
	c, _, err := targetClients(ctx, d, master, spec)
	if err != nil {
		return 0, err
	}
	out, err := c.ec2.DescribeSnapshots(ctx, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"},
		Filters: []ec2types.Filter{{Name: aws.String("tag:haven:plan"), Values: []string{planID}}}})
	if err != nil {
		return 0, fmt.Errorf("listing the plan's snapshots: %w", err)
	}
	for _, s := range out.Snapshots {
		if err := engdr.DeleteSnapshot(ctx, c.ec2, aws.ToString(s.SnapshotId)); err != nil {
			return 0, err
		}
	}
	return len(out.Snapshots), nil
}

// vmConfig is the VM configuration a VM point stores.
func vmConfig(meta vmimage.Meta) (vmware.VMConfig, error) {
	var cfg vmware.VMConfig
	err := json.Unmarshal(meta.Config, &cfg)
	return cfg, err
}

// ec2BootMode is the EC2 boot mode of a VM: uefi for EFI firmware.
func ec2BootMode(cfg vmware.VMConfig) string {
	if cfg.Firmware == "efi" {
		return "uefi"
	}
	return "legacy-bios"
}
