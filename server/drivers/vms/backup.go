package vms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/vmimage"
	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// snapshotTimeout bounds the removal of a backup's snapshot once the job
// is over (or canceled), since the job's own context may be done by then.
const snapshotTimeout = 10 * time.Minute

// defaultScriptTimeout applies when the policy sets no script timeout.
const defaultScriptTimeout = 10 * time.Minute

// snapshotName names a job attempt's snapshot, so the janitor can tell
// whose it is: a snapshot of an attempt that is not the job's running one
// was orphaned by a crash.
func snapshotName(j *api.Job) string {
	return fmt.Sprintf("%s%s-%d", vmware.SnapshotPrefix, j.ID, j.Attempt)
}

// parseSnapshotName is the inverse of snapshotName.
func parseSnapshotName(name string) (jobID string, attempt int, ok bool) {
	rest, ok := strings.CutPrefix(name, vmware.SnapshotPrefix)
	if !ok {
		return "", 0, false
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(rest[i+1:])
	if err != nil {
		return "", 0, false
	}
	return rest[:i], n, true
}

// Backup backs up a protected VM, in this order: take a slot of the
// vCenter's concurrency limit; enable CBT when the policy asks; run the
// pre-freeze script (a failure stops the backup before any snapshot);
// snapshot (quiesced when app-consistent); run the post-thaw script
// ("thaw", or "freezeFail" when the snapshot failed); read the disks
// through CBT; commit the point. The snapshot is removed whatever happens.
func (s *Driver) Backup(ctx context.Context, b driver.Backup) error {
	j, a := b.Job(), b.Asset()
	pv := VMOf(a)
	release, err := s.vcenterSlot(ctx, pv.VCenterID)
	if err != nil {
		return err
	}
	defer release()
	c, _, err := connect.StoredVCenter(ctx, s.db, s.master, pv.VCenterID)
	if err != nil {
		return err
	}
	defer c.Logout(context.WithoutCancel(ctx))
	vm, err := c.VMByInstanceUUID(ctx, pv.InstanceUUID)
	if err != nil {
		return fmt.Errorf("VM %s (instance UUID %s): %w", pv.Name, pv.InstanceUUID, err)
	}
	// This backup holds the VM's asset lock: any Haven snapshot already on
	// the VM was left by a crashed attempt.
	s.removeOwnOrphans(ctx, c, vm)
	rep := b.Progress()
	defer rep.Flush(ctx)
	pol := &a.Policy.PolicySpec
	if (pol.CBT == nil || *pol.CBT) && !vm.ChangeTrackingEnabled {
		if err := c.EnableCBT(ctx, vm); err != nil {
			return err
		}
		rep.Note("changed block tracking was enabled on the VM; this backup reads every allocated area")
	}

	var guest vmware.GuestCredentials
	if pol.PreFreezeScript != "" || pol.PostThawScript != "" {
		if guest, err = s.guestCredentials(a); err != nil {
			return err
		}
	}
	scriptTimeout := defaultScriptTimeout
	if pol.ScriptTimeoutSeconds > 0 {
		scriptTimeout = time.Duration(pol.ScriptTimeoutSeconds) * time.Second
	}
	if pol.PreFreezeScript != "" {
		res, err := c.RunScript(ctx, vm, guest, pol.PreFreezeScript, []string{"freeze"}, scriptTimeout)
		if err != nil {
			return fmt.Errorf("pre-freeze script: %w", err)
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("pre-freeze script exited with %d; no snapshot was taken. Its output:\n%s", res.ExitCode, res.Output)
		}
	}
	quiesce := pol.AppConsistent
	if pv.AppConsistent != nil {
		quiesce = *pv.AppConsistent
	}
	snap, snapErr := c.CreateSnapshot(ctx, vm, snapshotName(j), quiesce)
	// The snapshot goes as soon as the disks are read, before the point
	// is committed, and on every way out before that (failure, cancel).
	removeSnapshot := sync.OnceFunc(func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), snapshotTimeout)
		defer cancel()
		if err := c.RemoveSnapshot(rctx, vm, snap); err != nil {
			s.log.Error("removing a backup snapshot; the janitor will retry", "job_id", j.ID, "vm", vm.Name, "error", err.Error())
		}
	})
	if snapErr == nil {
		defer removeSnapshot()
	}
	if pol.PostThawScript != "" {
		arg := "thaw"
		if snapErr != nil {
			arg = "freezeFail"
		}
		res, err := c.RunScript(ctx, vm, guest, pol.PostThawScript, []string{arg}, scriptTimeout)
		switch {
		case err != nil:
			rep.Note(fmt.Sprintf("post-thaw script (%s): %v", arg, err))
		case res.ExitCode != 0:
			rep.Note(fmt.Sprintf("post-thaw script (%s) exited with %d: %s", arg, res.ExitCode, res.Output))
		}
	}
	if snapErr != nil {
		return snapErr
	}
	cfg, err := c.SnapshotConfig(ctx, vm, snap)
	if err != nil {
		return err
	}

	r, err := b.Repository(ctx)
	if err != nil {
		return err
	}
	w, plan, err := b.Writer(ctx)
	if err != nil {
		return err
	}
	started := b.Now()
	var total, ndisks int64
	for _, d := range vm.Disks {
		if !slices.Contains(pv.ExcludeDisks, d.Key) {
			total += d.CapacityBytes
			ndisks++
		}
	}
	var done, disksDone int64
	root, meta, disks, err := vmimage.Capture(ctx, w, r, c, vmimage.Options{
		VM: vm, Snapshot: snap, Config: cfg, Parent: plan.ParentRoot, Exclude: pv.ExcludeDisks,
		Progress: func(e vmimage.DiskEntry) {
			done += e.CapacityBytes
			disksDone++
			rep.Report(ctx, api.JobProgress{BytesDone: done, BytesTotal: total, FilesDone: disksDone, FilesTotal: ndisks}, false)
		},
	})
	if err != nil {
		w.Abort(ctx)
		return err
	}
	removeSnapshot()
	for _, d := range disks {
		if d.Reason != "" {
			rep.Note(fmt.Sprintf("disk %d (%s) was read in %s, not incrementally: %s", d.Key, d.Label, d.Read, d.Reason))
		}
	}
	// A VM point's "files" are its disks.
	return b.Commit(ctx, w, plan, root, driver.PointStats{LogicalBytes: meta.CapacityBytes, Files: int64(meta.Disks), Started: started})
}

// guestCredentials opens a protected VM's guest login for its scripts.
func (s *Driver) guestCredentials(a *driver.Asset) (vmware.GuestCredentials, error) {
	pv := VMOf(a)
	if pv.GuestUsername == "" {
		return vmware.GuestCredentials{}, errors.New("the policy runs guest scripts but the protected VM has no guest_username and guest_password")
	}
	var password []byte
	if a.Sealed != nil {
		var err error
		if password, err = s.master.Open(a.Sealed, connect.GuestPasswordContext); err != nil {
			return vmware.GuestCredentials{}, err
		}
	}
	return vmware.GuestCredentials{Username: pv.GuestUsername, Password: string(password)}, nil
}

// vcenterSlot takes one of the vCenter's concurrent-backup slots, held on
// a connection of its own for the whole backup, across every replica and
// worker node. With every slot taken, the job waits in the queue.
func (s *Driver) vcenterSlot(ctx context.Context, vcenterID string) (func(), error) {
	for i := range s.concurrency {
		release, ok, err := s.locks.TryLock(ctx, fmt.Sprintf("haven-vcenter-slot:%s:%d", vcenterID, i))
		if err != nil {
			return nil, err
		}
		if ok {
			return release, nil
		}
	}
	return nil, driver.Wait{Reason: fmt.Sprintf("waiting for one of the vCenter's %d backup slots", s.concurrency), After: 5 * time.Second}
}
