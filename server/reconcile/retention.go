package reconcile

import (
	"context"
	"log/slog"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/retention"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// PointCatalog is the part of the points catalog retention reads and
// writes.
type PointCatalog interface {
	// AssetsWithPoints lists the assets (live or retired) with live points.
	AssetsWithPoints(ctx context.Context) ([]string, error)
	// AssetsUsing lists the live assets whose spec field refers to id.
	AssetsUsing(ctx context.Context, field, id string) ([]string, error)
	// AssetPoints lists an asset's live points.
	AssetPoints(ctx context.Context, assetID string) ([]api.Point, error)
	GetPoint(ctx context.Context, id string) (api.Point, error)
	// SetRetention records the planner's decision for a point.
	SetRetention(ctx context.Context, id, tier string, expires *time.Time, reasons []string, next *time.Time) error
	// ExpirePoint removes a point from the catalog, unless it is on legal
	// hold.
	ExpirePoint(ctx context.Context, id string) error
	// PointsByTier lists a storage's live points by recorded tier.
	PointsByTier(ctx context.Context, storageID string) (warm, cold []string, err error)
}

// Repository is what retention does to a storage's repository
// (*repo.Repository has it).
type Repository interface {
	// DeletePoint drops a point's root; GC reclaims what only it used.
	DeletePoint(ctx context.Context, pointID string) error
	// ApplyTiers moves packs that only cold points use to the cold class.
	ApplyTiers(ctx context.Context, warmPoints, coldPoints []string) (repo.TierReport, error)
}

// Repositories open a storage's repository.
type Repositories interface {
	Repository(ctx context.Context, storageID string) (Repository, error)
}

// GCQueue asks for garbage collection in a storage.
type GCQueue interface {
	QueueGC(ctx context.Context, storageID string) error
}

// Retention applies every asset's policy to its points: it expires what no
// rule keeps, records reasons, expiry and tier, moves packs to the cold
// class, and queues a GC for storages that lost points. A point on legal
// hold is never expired, even if the hold was set during the run.
type Retention struct {
	Assets AssetLoader
	Points PointCatalog
	Repos  Repositories
	GC     GCQueue
	Log    *slog.Logger
	Now    func() time.Time
}

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
// but themselves. A database's differential is restored with its full's
// log and a log point replayed onto what it follows: their parent is their
// base, kept while they are.
func planPoints(points []api.Point, pol retention.Policy, now time.Time) (map[string]retention.Decision, error) {
	in := make([]retention.Point, len(points))
	for i, p := range points {
		in[i] = retention.Point{ID: p.ID, Asset: p.AssetID, Kind: retention.Kind(p.Kind), Created: p.CompletedAt, LegalHold: p.LegalHold}
		if k := in[i].Kind; k == retention.KindDifferential || k == retention.KindLog {
			in[i].Base = p.ParentID
		}
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

// Run applies retention to one asset, or to every asset with points when
// onlyAsset is "". An asset that fails is logged and does not stop the
// others.
func (r *Retention) Run(ctx context.Context, onlyAsset string) error {
	assets := []string{onlyAsset}
	if onlyAsset == "" {
		var err error
		if assets, err = r.Points.AssetsWithPoints(ctx); err != nil {
			return err
		}
	}
	now := r.Now()
	gcStorages := map[string]bool{}
	tierStorages := map[string]bool{}
	for _, asset := range assets {
		expired, storageID, cold, err := r.retainAsset(ctx, asset, now)
		if err != nil {
			r.Log.Error("retention", "asset_id", asset, "error", err.Error())
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
		if err := r.applyTiers(ctx, st); err != nil {
			r.Log.Error("tier moves", "storage_id", st, "error", err.Error())
		}
	}
	for st := range gcStorages {
		if err := r.GC.QueueGC(ctx, st); err != nil {
			return err
		}
	}
	return nil
}

// retainAsset plans one asset and records the outcome. It reports how many
// points expired, the asset's storage, and whether any point is cold.
func (r *Retention) retainAsset(ctx context.Context, assetID string, now time.Time) (int, string, bool, error) {
	a, err := r.Assets.Asset(ctx, assetID)
	if err != nil {
		return 0, "", false, err
	}
	pol, err := policyFor(&a.Policy)
	if err != nil {
		return 0, "", false, err
	}
	points, err := r.Points.AssetPoints(ctx, assetID)
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
			if err := r.expirePoint(ctx, p); err != nil {
				return expired, a.StorageID, cold, err
			}
			expired++
			continue
		}
		if d.Tier == retention.TierCold {
			cold = true
		}
		if err := r.Points.SetRetention(ctx, p.ID, string(d.Tier), d.ExpiresAt, d.Reasons, d.NextTransition); err != nil {
			return expired, a.StorageID, cold, err
		}
	}
	return expired, a.StorageID, cold, nil
}

// expirePoint drops a point from the catalog and its root from the
// repository; GC reclaims what only it used. A legal hold set meanwhile wins.
func (r *Retention) expirePoint(ctx context.Context, p api.Point) error {
	cur, err := r.Points.GetPoint(ctx, p.ID)
	if err != nil || cur.LegalHold || cur.DeletedAt != nil {
		return err
	}
	rp, err := r.Repos.Repository(ctx, p.StorageID)
	if err != nil {
		return err
	}
	if err := rp.DeletePoint(ctx, p.ID); err != nil {
		return err
	}
	r.Log.Info("recovery point expired", "point_id", p.ID, "asset_id", p.AssetID, "completed_at", p.CompletedAt)
	return r.Points.ExpirePoint(ctx, p.ID)
}

// applyTiers moves a storage's packs to cold where every point using them is cold.
func (r *Retention) applyTiers(ctx context.Context, storageID string) error {
	warm, cold, err := r.Points.PointsByTier(ctx, storageID)
	if err != nil || len(cold) == 0 {
		return err
	}
	rp, err := r.Repos.Repository(ctx, storageID)
	if err != nil {
		return err
	}
	rep, err := rp.ApplyTiers(ctx, warm, cold)
	if err == nil && rep.ToCold > 0 {
		r.Log.Info("packs moved to cold", "storage_id", storageID, "packs", rep.ToCold)
	}
	return err
}

// Preview dry-runs a policy change: it plans every asset that uses the
// policy under the proposed spec, now, and counts what would expire or
// change tier. Nothing is written.
func (r *Retention) Preview(ctx context.Context, policyID string, spec api.PolicySpec) (*api.RetentionPreview, error) {
	pol, err := policyFor(&spec)
	if err != nil {
		return nil, api.FieldError("timezone", "%v", err)
	}
	assets, err := r.Points.AssetsUsing(ctx, "policy_id", policyID)
	if err != nil {
		return nil, err
	}
	now := r.Now()
	out := &api.RetentionPreview{}
	for _, asset := range assets {
		points, err := r.Points.AssetPoints(ctx, asset)
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
