package vms

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// Cleanup removes the Haven snapshots that no running backup owns. A backup holds its asset's lock (a PostgreSQL session lock) from
// before its snapshot until after the snapshot is removed, and a process
// that dies loses its locks with its connection. So a snapshot is an
// orphan exactly when the janitor can take its VM's asset lock: while it
// holds the lock no backup of the VM can be running. Snapshots on VMs no
// longer protected are orphans too.
func (s *Driver) Cleanup(ctx context.Context) error {
	protected, err := s.protectedByVCenter(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for vcID, byUUID := range protected {
		if err := s.cleanVCenter(ctx, vcID, byUUID); err != nil {
			s.log.Warn("snapshot janitor", "vcenter_id", vcID, "error", err.Error())
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// protectedByVCenter maps every vCenter to its protected VMs' asset ids by
// instance UUID (lower case); a vCenter with none is present with an empty map.
func (s *Driver) protectedByVCenter(ctx context.Context) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	if err := s.db.Each(ctx, db.VCenters, func(o db.Object) error {
		out[o.ID] = map[string]string{}
		return nil
	}); err != nil {
		return nil, err
	}
	err := s.db.Each(ctx, db.ProtectedVMs, func(o db.Object) error {
		var pv api.ProtectedVM
		if err := json.Unmarshal(o.Spec, &pv); err != nil {
			return err
		}
		if m := out[pv.VCenterID]; m != nil {
			m[strings.ToLower(pv.InstanceUUID)] = o.ID
		}
		return nil
	})
	return out, err
}

func (s *Driver) cleanVCenter(ctx context.Context, vcID string, byUUID map[string]string) error {
	c, _, err := connect.StoredVCenter(ctx, s.db, s.master, vcID)
	if err != nil {
		return err
	}
	defer c.Logout(context.WithoutCancel(ctx))
	snaps, err := c.HavenSnapshots(ctx)
	if err != nil {
		return err
	}
	byVM := map[string][]vmware.OrphanSnapshot{}
	for _, sn := range snaps {
		byVM[sn.VMMoRef] = append(byVM[sn.VMMoRef], sn)
	}
	for moref, list := range byVM {
		vm, err := c.VMByMoRef(ctx, moref)
		if err != nil {
			continue // gone meanwhile, snapshots with it
		}
		if assetID := byUUID[strings.ToLower(vm.InstanceUUID)]; assetID != "" {
			release, err := driver.LockAsset(ctx, s.locks, assetID)
			if errors.Is(err, driver.ErrBusy) {
				continue // a backup runs; it cleans up after itself
			}
			if err != nil {
				return err
			}
			s.removeSnapshots(ctx, c, vm, list)
			release()
			continue
		}
		s.removeSnapshots(ctx, c, vm, list)
	}
	return nil
}

// removeSnapshots removes orphaned Haven snapshots of one VM.
func (s *Driver) removeSnapshots(ctx context.Context, c *vmware.Client, vm vmware.VM, list []vmware.OrphanSnapshot) {
	for _, sn := range list {
		jobID, attempt, _ := parseSnapshotName(sn.Name)
		if err := c.RemoveSnapshot(ctx, vm, sn.Snapshot); err != nil {
			s.log.Warn("removing an orphaned snapshot", "vm", vm.Name, "snapshot", sn.Name, "error", err.Error())
			continue
		}
		s.log.Info("removed an orphaned snapshot", "vm", vm.Name, "snapshot", sn.Name, "job_id", jobID, "attempt", attempt, "created", sn.Created)
	}
}

// removeOwnOrphans runs at the start of a VM backup, which holds the VM's
// asset lock: every Haven snapshot already on the VM is an orphan.
func (s *Driver) removeOwnOrphans(ctx context.Context, c *vmware.Client, vm vmware.VM) {
	snaps, err := c.HavenSnapshots(ctx)
	if err != nil {
		s.log.Warn("listing snapshots", "vm", vm.Name, "error", err.Error())
		return
	}
	var mine []vmware.OrphanSnapshot
	for _, sn := range snaps {
		if sn.VMMoRef == vm.MoRef {
			mine = append(mine, sn)
		}
	}
	s.removeSnapshots(ctx, c, vm, mine)
}
