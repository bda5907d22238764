package server

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/dr"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/executors"
	"github.com/havenbackup/terraform-provider-haven/server/jobs"
	"github.com/havenbackup/terraform-provider-haven/server/reconcile"
	"github.com/havenbackup/terraform-provider-haven/server/repos"
)

// This file gives the reconcilers of package reconcile what they depend
// on: adapters over the catalog, the driver registry, the repository
// cache, the vCenter connector and the queue.

// reconcilers are the engine's reconcilers but the janitor (the drivers'
// cleanup).
type reconcilers struct {
	schedule  *reconcile.Schedule
	selection *reconcile.Selection
	retention *reconcile.Retention
	dr        *reconcile.DR
}

func newReconcilers(js *jobs.Service, drivers *driver.Registry, rc *repos.Cache, master *keys.MasterKey, log *slog.Logger) reconcilers {
	d := js.DB()
	assets := registryAssets{drivers: drivers, db: d}
	points := pointCatalog{d}
	return reconcilers{
		schedule:  &reconcile.Schedule{Assets: assets, Marks: points, Jobs: js, Logs: d, Log: log, Now: js.Now},
		selection: &reconcile.Selection{Objects: d, Points: d, Inventory: vcenterInventory{db: d, master: master}, Log: log},
		retention: &reconcile.Retention{Assets: assets, Points: points, Repos: repositories{rc}, GC: gcQueue{js},
			Log: log, Now: js.Now},
		dr: &reconcile.DR{Plans: drPlanStates{d}, Cleanups: d, Queue: drQueue{js}, Log: log, Now: js.Now},
	}
}

// registryAssets lists the assets of every table a driver registered, and
// loads them, live or retired, through the registry.
type registryAssets struct {
	drivers *driver.Registry
	db      *db.DB
}

func (a registryAssets) EachAsset(ctx context.Context, fn func(id string) error) error {
	for _, t := range a.drivers.Tables() {
		if err := a.db.Each(ctx, t, func(o db.Object) error { return fn(o.ID) }); err != nil {
			return err
		}
	}
	return nil
}

func (a registryAssets) Asset(ctx context.Context, id string) (reconcile.Asset, error) {
	as, err := a.drivers.Load(ctx, id)
	if err != nil {
		return reconcile.Asset{}, err
	}
	return reconcile.Asset{ID: as.ID, StorageID: as.StorageID, Policy: as.Policy.PolicySpec, Scheduled: as.Scheduled(), TakesLogs: as.TakesLogs}, nil
}

// pointCatalog is the catalog with its writes on its own pool, as
// reconcile.PointCatalog and reconcile.ScheduleMarks want it.
type pointCatalog struct{ *db.DB }

func (c pointCatalog) SetRetention(ctx context.Context, id, tier string, expires *time.Time, reasons []string, next *time.Time) error {
	return c.DB.SetRetention(ctx, c.Pool, id, tier, expires, reasons, next)
}

func (c pointCatalog) ExpirePoint(ctx context.Context, id string) error {
	return c.DB.ExpirePoint(ctx, c.Pool, id)
}

func (c pointCatalog) SetScheduleMark(ctx context.Context, assetID string, until time.Time) error {
	return c.DB.SetScheduleMark(ctx, c.Pool, assetID, until)
}

// repositories opens repositories through the cache, without an upload
// cap (retention only deletes roots and moves packs).
type repositories struct{ rc *repos.Cache }

func (r repositories) Repository(ctx context.Context, storageID string) (reconcile.Repository, error) {
	return r.rc.Open(ctx, storageID, nil)
}

// gcQueue queues a scheduled GC job.
type gcQueue struct{ js *jobs.Service }

func (q gcQueue) QueueGC(ctx context.Context, storageID string) error {
	_, _, err := q.js.Enqueue(ctx, db.NewJob{Kind: api.JobGC, StorageID: storageID, Trigger: api.TriggerScheduled,
		Params: executors.MaintenanceParams{StorageID: storageID}})
	return err
}

// vcenterInventory lists a stored vCenter's VMs, one session per call.
type vcenterInventory struct {
	db     *db.DB
	master *keys.MasterKey
}

func (v vcenterInventory) VMs(ctx context.Context, vcenterID string) ([]api.VM, error) {
	c, _, err := connect.StoredVCenter(ctx, v.db, v.master, vcenterID)
	if err != nil {
		return nil, err
	}
	defer c.Logout(context.WithoutCancel(ctx))
	vms, err := c.VMs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]api.VM, len(vms))
	for i, vm := range vms {
		out[i] = connect.APIVM(vcenterID, vm)
	}
	return out, nil
}

// auditPruner deletes audit log entries older than the configured
// retention, as one of the janitor's cleaners: it is periodic, on the
// leader, and harmless to run twice.
type auditPruner struct {
	db   *db.DB
	keep time.Duration // zero keeps every entry
	now  func() time.Time
	log  *slog.Logger
}

func (a auditPruner) Kind() string { return "audit-log" }

func (a auditPruner) Cleanup(ctx context.Context) error {
	if a.keep <= 0 {
		return nil
	}
	n, err := a.db.PruneAudit(ctx, a.now().Add(-a.keep))
	if n > 0 {
		a.log.Info("audit log pruned", "deleted", n, "older_than", a.keep.String())
	}
	return err
}

// drPlanStates reads each DR plan's VMs' newest points and copies.
type drPlanStates struct{ db *db.DB }

func (s drPlanStates) DRPlans(ctx context.Context) ([]reconcile.DRPlan, error) {
	var out []reconcile.DRPlan
	err := s.db.Each(ctx, db.DRPlans, func(o db.Object) error {
		var spec api.DRPlanSpec
		if err := json.Unmarshal(o.Spec, &spec); err != nil {
			return err
		}
		copies, err := s.db.DRCopies(ctx, o.ID)
		if err != nil {
			return err
		}
		p := reconcile.DRPlan{ID: o.ID, Interval: time.Duration(spec.ReplicationIntervalMinutes) * time.Minute}
		machines, err := dr.PlanMachines(ctx, s.db, spec)
		if err != nil {
			return err
		}
		for _, v := range machines {
			vm := reconcile.DRVM{ProtectedVMID: v.ProtectedVMID}
			newest, err := s.db.LatestPoint(ctx, v.ProtectedVMID)
			if err == nil {
				vm.NewestPoint = newest.ID
			} else if !errors.Is(err, db.ErrNotFound) {
				return err
			}
			// A VM is as old as its oldest disk copy, and holds the
			// newest point only when every disk does.
			for _, c := range copies {
				if c.ProtectedVMID != v.ProtectedVMID || c.Superseded {
					continue
				}
				if vm.CopiedAt == nil || c.CopiedAt.Before(*vm.CopiedAt) {
					at := c.CopiedAt
					vm.CopiedAt = &at
				}
				if vm.CopyPoint == "" || c.PointID != vm.NewestPoint {
					vm.CopyPoint = c.PointID
				}
			}
			p.VMs = append(p.VMs, vm)
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

// drQueue queues a scheduled replication of a plan.
type drQueue struct{ js *jobs.Service }

func (q drQueue) QueueReplication(ctx context.Context, planID string) error {
	_, _, err := q.js.Enqueue(ctx, db.NewJob{Kind: api.JobDRReplicate, Trigger: api.TriggerScheduled, Params: dr.ReplicateParams{PlanID: planID}})
	return err
}

// QueueCleanup queues a scheduled cleanup of a DR run.
func (q drQueue) QueueCleanup(ctx context.Context, runID string) error {
	run, err := q.js.DB().DRRun(ctx, runID)
	if err != nil {
		return err
	}
	_, _, err = q.js.Enqueue(ctx, db.NewJob{Kind: api.JobDRCleanup, Trigger: api.TriggerScheduled, Params: dr.CleanupParams{PlanID: run.PlanID, RunID: runID}})
	return err
}
