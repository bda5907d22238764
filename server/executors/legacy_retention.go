package executors

import (
	"context"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/retention"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// policyFor turns a backup policy into the planner's terms.
func policyFor(p *api.PolicySpec) (retention.Policy, error) {
	loc, err := time.LoadLocation(p.Timezone)
	if err != nil {
		return retention.Policy{}, err
	}
	return retention.Policy{
		Location: loc, DailyDays: p.Retention.DailyDays, WeeklyWeeks: p.Retention.WeeklyWeeks,
		MonthlyMonths: p.Retention.MonthlyMonths, YearlyYears: p.Retention.YearlyYears, LogDays: p.Retention.LogDays,
		WarmDays: p.Tiering.WarmDays, ColdAfterDays: p.Tiering.ColdAfterDays,
	}, nil
}

// planPoints runs the planner over one asset's catalog points. File
// points are self-contained (an incremental manifest lists every chunk, so
// it restores without its parent): they carry no base, and keep nothing
// but themselves.
func planPoints(points []api.Point, pol retention.Policy, now time.Time) (map[string]retention.Decision, error) {
	in := make([]retention.Point, len(points))
	for i, p := range points {
		in[i] = retention.Point{ID: p.ID, Asset: p.AssetID, Kind: retention.Kind(p.Kind), Created: p.CompletedAt, LegalHold: p.LegalHold}
	}
	decisions, err := retention.Plan(in, pol, now)
	if err != nil {
		return nil, err
	}
	out := make(map[string]retention.Decision, len(decisions))
	for i, d := range decisions {
		out[points[i].ID] = d
	}
	return out, nil
}

// reconcileRetention applies every asset's policy to its points: expires
// what no rule keeps, records reasons, expiry and tier, moves packs to the
// cold class, and queues a GC for storages that lost points.
func (s *Engine) ReconcileRetention(ctx context.Context, onlyAsset string) error {
	assets := []string{onlyAsset}
	if onlyAsset == "" {
		var err error
		if assets, err = s.db.AssetsWithPoints(ctx); err != nil {
			return err
		}
	}
	now := s.jobs.Now()
	gcStorages := map[string]bool{}
	tierStorages := map[string]bool{}
	for _, asset := range assets {
		expired, storageID, cold, err := s.retainAsset(ctx, asset, now)
		if err != nil {
			s.log.Error("retention", "asset_id", asset, "error", err.Error())
			continue
		}
		if expired > 0 {
			gcStorages[storageID] = true
		}
		if cold {
			tierStorages[storageID] = true
		}
	}
	for st := range tierStorages {
		if err := s.applyTiers(ctx, st); err != nil {
			s.log.Error("tier moves", "storage_id", st, "error", err.Error())
		}
	}
	for st := range gcStorages {
		if _, _, err := s.jobs.Enqueue(ctx, db.NewJob{Kind: api.JobGC, StorageID: st, Trigger: api.TriggerScheduled,
			Params: MaintenanceParams{StorageID: st}}); err != nil {
			return err
		}
	}
	return nil
}

// retainAsset plans one asset and records the outcome. It reports how many
// points expired, the asset's storage, and whether any point is cold.
func (s *Engine) retainAsset(ctx context.Context, assetID string, now time.Time) (int, string, bool, error) {
	a, err := s.drivers.Load(ctx, assetID)
	if err != nil {
		return 0, "", false, err
	}
	pol, err := policyFor(&a.Policy.PolicySpec)
	if err != nil {
		return 0, "", false, err
	}
	points, err := s.db.AssetPoints(ctx, assetID)
	if err != nil || len(points) == 0 {
		return 0, a.StorageID, false, err
	}
	plan, err := planPoints(points, pol, now)
	if err != nil {
		return 0, a.StorageID, false, err
	}
	expired, cold := 0, false
	for _, p := range points {
		d, ok := plan[p.ID]
		if !ok {
			continue
		}
		if !d.Keep {
			if err := s.expirePoint(ctx, p); err != nil {
				return expired, a.StorageID, cold, err
			}
			expired++
			continue
		}
		if d.Tier == retention.TierCold {
			cold = true
		}
		if err := s.db.SetRetention(ctx, s.db.Pool, p.ID, string(d.Tier), d.ExpiresAt, d.Reasons, d.NextTransition); err != nil {
			return expired, a.StorageID, cold, err
		}
	}
	return expired, a.StorageID, cold, nil
}

// expirePoint drops a point from the catalog and its root from the
// repository; GC reclaims what only it used. A legal hold set meanwhile wins.
func (s *Engine) expirePoint(ctx context.Context, p api.Point) error {
	cur, err := s.db.GetPoint(ctx, p.ID)
	if err != nil || cur.LegalHold || cur.DeletedAt != nil {
		return err
	}
	r, err := s.repos.Open(ctx, p.StorageID, nil)
	if err != nil {
		return err
	}
	if err := r.DeletePoint(ctx, p.ID); err != nil {
		return err
	}
	s.log.Info("recovery point expired", "point_id", p.ID, "asset_id", p.AssetID, "completed_at", p.CompletedAt)
	return s.db.ExpirePoint(ctx, s.db.Pool, p.ID)
}

// applyTiers moves a storage's packs to cold where every point using them is cold.
func (s *Engine) applyTiers(ctx context.Context, storageID string) error {
	warm, cold, err := s.db.PointsByTier(ctx, storageID)
	if err != nil || len(cold) == 0 {
		return err
	}
	r, err := s.repos.Open(ctx, storageID, nil)
	if err != nil {
		return err
	}
	rep, err := r.ApplyTiers(ctx, warm, cold)
	if err == nil && rep.ToCold > 0 {
		s.log.Info("packs moved to cold", "storage_id", storageID, "packs", rep.ToCold)
	}
	return err
}

// PreviewRetention dry-runs a policy change: it plans every asset that uses
// the policy under the proposed spec, now, and counts what would expire
// or change tier. Nothing is written.
func (s *Engine) PreviewRetention(ctx context.Context, policyID string, spec api.PolicySpec) (*api.RetentionPreview, error) {
	pol, err := policyFor(&spec)
	if err != nil {
		return nil, api.FieldError("timezone", "%v", err)
	}
	assets, err := s.db.AssetsUsing(ctx, "policy_id", policyID)
	if err != nil {
		return nil, err
	}
	now := s.jobs.Now()
	out := &api.RetentionPreview{}
	for _, asset := range assets {
		points, err := s.db.AssetPoints(ctx, asset)
		if err != nil {
			return nil, err
		}
		plan, err := planPoints(points, pol, now)
		if err != nil {
			return nil, err
		}
		hit := false
		for _, p := range points {
			d := plan[p.ID]
			switch {
			case !d.Keep:
				hit = true
				out.Expiring++
				if out.OldestExpiring == nil || p.CompletedAt.Before(*out.OldestExpiring) {
					t := p.CompletedAt
					out.OldestExpiring = &t
				}
				if len(out.PointIDs) < 1000 {
					out.PointIDs = append(out.PointIDs, p.ID)
				}
			case string(d.Tier) != p.Tier && d.Tier == retention.TierCold:
				out.ToCold++
			case string(d.Tier) != p.Tier:
				out.ToWarm++
			}
		}
		if hit {
			out.ExpiringAssets++
		}
	}
	return out, nil
}
