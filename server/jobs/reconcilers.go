package jobs

import (
	"context"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/reconcile"
)

// This file wires the reconcilers of server/reconcile to the service: the
// adapters below give them the catalog, the repository cache, the vCenter
// connector and the queue, and River runs them (see New).

// reconcilers are the service's reconcilers, built once by New.
type reconcilers struct {
	schedule  *reconcile.Schedule
	selection *reconcile.Selection
	retention *reconcile.Retention
}

func (s *Service) newReconcilers() reconcilers {
	assets := reconcileAssets{s}
	points := pointCatalog{s.db}
	return reconcilers{
		schedule: &reconcile.Schedule{Assets: assets, Marks: points, Jobs: s, Log: s.log, Now: s.cfg.Now},
		selection: &reconcile.Selection{Objects: s.db, Points: s.db, Inventory: vcenterInventory{s},
			Log: s.log},
		retention: &reconcile.Retention{Assets: assets, Points: points, Repos: repositories{s}, GC: gcQueue{s},
			Log: s.log, Now: s.cfg.Now},
	}
}

// SelectionArgs run the selection reconciler (periodically on the leader,
// and soon after a rule changes).
type SelectionArgs struct{}

func (SelectionArgs) Kind() string { return "haven.vm-selection" }

// QueueSelection asks for a selection run soon (after a rule changed).
func (s *Service) QueueSelection(ctx context.Context) {
	if _, err := s.river.Insert(ctx, SelectionArgs{}, nil); err != nil {
		s.log.Warn("queueing VM selection", "error", err.Error())
	}
}

// RetireRuleMade retires the protections a rule made whose spec field
// refers to id (see reconcile.Selection.RetireRuleMade).
func (s *Service) RetireRuleMade(ctx context.Context, field, id string) error {
	return s.reconcilers.selection.RetireRuleMade(ctx, field, id)
}

// RetentionArgs run the retention reconciler (periodically on the leader,
// and after each successful backup for its asset).
type RetentionArgs struct {
	AssetID string `json:"asset_id,omitempty"`
}

func (RetentionArgs) Kind() string { return "haven.retention" }

// PreviewRetention dry-runs a policy change (see reconcile.Retention.Preview).
func (s *Service) PreviewRetention(ctx context.Context, policyID string, spec api.PolicySpec) (*api.RetentionPreview, error) {
	return s.reconcilers.retention.Preview(ctx, policyID, spec)
}

// reconcileAssets lists and loads assets for the reconcilers.
type reconcileAssets struct{ s *Service }

func (a reconcileAssets) EachAsset(ctx context.Context, fn func(id string) error) error {
	for _, t := range db.AssetTables {
		if err := a.s.db.Each(ctx, t, func(o db.Object) error { return fn(o.ID) }); err != nil {
			return err
		}
	}
	return nil
}

func (a reconcileAssets) Asset(ctx context.Context, id string) (reconcile.Asset, error) {
	as, err := a.s.loadAsset(ctx, id)
	if err != nil {
		return reconcile.Asset{}, err
	}
	return reconcile.Asset{ID: as.id, StorageID: as.storageID, Policy: as.policy.PolicySpec,
		Scheduled: as.scheduled()}, nil
}

// pointCatalog is the catalog with its writes bound to the job pool, as
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

// repositories opens repositories through the service's cache, without
// an upload cap (retention only deletes roots and moves packs).
type repositories struct{ s *Service }

func (r repositories) Repository(ctx context.Context, storageID string) (reconcile.Repository, error) {
	return r.s.openRepo(ctx, storageID, nil)
}

// gcQueue queues a scheduled GC job.
type gcQueue struct{ s *Service }

func (q gcQueue) QueueGC(ctx context.Context, storageID string) error {
	_, _, err := q.s.Enqueue(ctx, db.NewJob{Kind: api.JobGC, StorageID: storageID, Trigger: api.TriggerScheduled,
		Params: MaintenanceParams{StorageID: storageID}})
	return err
}

// vcenterInventory lists a stored vCenter's VMs, one session per call.
type vcenterInventory struct{ s *Service }

func (v vcenterInventory) VMs(ctx context.Context, vcenterID string) ([]api.VM, error) {
	c, _, err := connect.StoredVCenter(ctx, v.s.db, v.s.master, vcenterID)
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
