package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// pointColumns selects a point with its asset's display name: the spec's
// name in whichever asset table holds the asset (a protected VM's row name
// is its vCenter and instance, its spec name the VM's), else the name
// recorded when the asset was retired.
func (d *DB) pointColumns() string {
	names := make([]string, 0, len(d.AssetTables())+1)
	for _, t := range d.AssetTables() {
		names = append(names, fmt.Sprintf(`(SELECT coalesce(a.spec->>'name', a.name) FROM %s a WHERE a.id = points.asset_id)`, t))
	}
	names = append(names, `(SELECT r.name FROM retired_assets r WHERE r.id = points.asset_id)`)
	return `id::text, asset_id::text, storage_id::text, kind, coalesce(parent_id::text, ''), started_at, completed_at,
	logical_bytes, new_bytes, stored_bytes, files, coalesce(job_id::text, ''), deleted_at,
	tier, expires_at, reasons, legal_hold, log_start, log_end, database,
	coalesce(` + strings.Join(names, ", ") + `, ''),
	EXISTS (SELECT 1 FROM retired_assets r WHERE r.id = points.asset_id)`
}

func scanPoint(row pgx.Row) (api.Point, error) {
	var p api.Point
	err := row.Scan(&p.ID, &p.AssetID, &p.StorageID, &p.Kind, &p.ParentID, &p.StartedAt, &p.CompletedAt,
		&p.LogicalBytes, &p.NewBytes, &p.StoredBytes, &p.Files, &p.JobID, &p.DeletedAt,
		&p.Tier, &p.RestorableUntil, &p.Reasons, &p.LegalHold, &p.LogStart, &p.LogEnd, &p.Database, &p.AssetName, &p.AssetDeleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrNotFound
	}
	if len(p.Reasons) == 0 {
		p.Reasons = nil
	}
	return p, err
}

// InsertPoint adds a recovery point to the catalog. Call it inside the
// transaction that commits the point's root, so the catalog row and the
// data become visible together.
func (d *DB) InsertPoint(ctx context.Context, q Querier, p api.Point) error {
	var completed *time.Time
	if !p.CompletedAt.IsZero() {
		completed = &p.CompletedAt
	}
	_, err := q.Exec(ctx, `INSERT INTO points (id, asset_id, storage_id, kind, parent_id, started_at, logical_bytes, new_bytes, stored_bytes, files, job_id, completed_at,
			log_start, log_end, database)
		VALUES ($1, $2, $3, $4, $5::uuid, $6, $7, $8, $9, $10, $11::uuid, coalesce($12, now()), $13, $14, $15)`,
		p.ID, p.AssetID, p.StorageID, p.Kind, nullable(p.ParentID), p.StartedAt, p.LogicalBytes, p.NewBytes, p.StoredBytes, p.Files, nullable(p.JobID), completed,
		p.LogStart, p.LogEnd, p.Database)
	return err
}

// GetPoint reads a point.
func (d *DB) GetPoint(ctx context.Context, id string) (api.Point, error) {
	if !looksLikeUUID(id) {
		return api.Point{}, ErrNotFound
	}
	return scanPoint(d.Pool.QueryRow(ctx, `SELECT `+d.pointColumns()+` FROM points WHERE id = $1`, id))
}

// LatestPoint is an asset's newest live point.
func (d *DB) LatestPoint(ctx context.Context, assetID string) (api.Point, error) {
	return scanPoint(d.Pool.QueryRow(ctx, `SELECT `+d.pointColumns()+` FROM points
		WHERE asset_id = $1 AND deleted_at IS NULL ORDER BY completed_at DESC LIMIT 1`, assetID))
}

// ListPoints lists live points newest first, paged by (completion time,
// id) so points completed at the same instant are neither skipped nor
// repeated across pages.
func (d *DB) ListPoints(ctx context.Context, f api.PointFilter, before *time.Time, beforeID string, limit int) ([]api.Point, error) {
	rows, err := d.Pool.Query(ctx, `SELECT `+d.pointColumns()+` FROM points
		WHERE deleted_at IS NULL AND ($1 = '' OR asset_id::text = $1) AND ($2 = '' OR kind = $2) AND ($3 = '' OR tier = $3)
		AND ($4::timestamptz IS NULL OR completed_at > $4) AND ($5::timestamptz IS NULL OR completed_at < $5)
		AND ($6::timestamptz IS NULL OR (completed_at, id) < ($6, $7::uuid))
		ORDER BY completed_at DESC, id DESC LIMIT $8`, f.AssetID, f.Kind, f.Tier, f.CreatedAfter, f.CreatedBefore, before, nullableUUID(beforeID), limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.Point, error) { return scanPoint(r) })
}

// AssetPoints lists every live point of an asset, oldest first (what the
// retention planner needs).
func (d *DB) AssetPoints(ctx context.Context, assetID string) ([]api.Point, error) {
	rows, err := d.Pool.Query(ctx, `SELECT `+d.pointColumns()+` FROM points WHERE asset_id = $1 AND deleted_at IS NULL ORDER BY completed_at`, assetID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.Point, error) { return scanPoint(r) })
}

// SetLegalHold sets or clears a point's legal hold.
func (d *DB) SetLegalHold(ctx context.Context, id string, hold bool) (api.Point, error) {
	if !looksLikeUUID(id) {
		return api.Point{}, ErrNotFound
	}
	return scanPoint(d.Pool.QueryRow(ctx, `UPDATE points SET legal_hold = $2 WHERE id = $1 AND deleted_at IS NULL RETURNING `+d.pointColumns(), id, hold))
}

// SetRetention records the planner's decision for a point.
func (d *DB) SetRetention(ctx context.Context, q Querier, id, tier string, expires *time.Time, reasons []string, next *time.Time) error {
	if reasons == nil {
		reasons = []string{}
	}
	_, err := q.Exec(ctx, `UPDATE points SET tier = $2, expires_at = $3, reasons = $4, next_review = $5 WHERE id = $1`, id, tier, expires, reasons, next)
	return err
}

// ExpirePoint removes a point from the catalog (it stays as a row with
// deleted_at, for the record).
func (d *DB) ExpirePoint(ctx context.Context, q Querier, id string) error {
	_, err := q.Exec(ctx, `UPDATE points SET deleted_at = now(), reasons = '{}' WHERE id = $1 AND deleted_at IS NULL AND NOT legal_hold`, id)
	return err
}

// AssetsWithPoints lists the assets that have live points.
func (d *DB) AssetsWithPoints(ctx context.Context) ([]string, error) {
	rows, err := d.Pool.Query(ctx, `SELECT DISTINCT asset_id::text FROM points WHERE deleted_at IS NULL`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// ScheduleMark is how far the scheduler has evaluated an asset.
func (d *DB) ScheduleMark(ctx context.Context, assetID string) (time.Time, bool, error) {
	var t time.Time
	err := d.Pool.QueryRow(ctx, `SELECT evaluated_until FROM schedule_marks WHERE asset_id = $1`, assetID).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, false, nil
	}
	return t, err == nil, err
}

// SetScheduleMark records how far the scheduler has evaluated an asset.
func (d *DB) SetScheduleMark(ctx context.Context, q Querier, assetID string, until time.Time) error {
	_, err := q.Exec(ctx, `INSERT INTO schedule_marks (asset_id, evaluated_until) VALUES ($1, $2)
		ON CONFLICT (asset_id) DO UPDATE SET evaluated_until = greatest(schedule_marks.evaluated_until, EXCLUDED.evaluated_until)`, assetID, until)
	return err
}

// PointsByTier lists a storage's live points by recorded tier.
func (d *DB) PointsByTier(ctx context.Context, storageID string) (warm, cold []string, err error) {
	rows, err := d.Pool.Query(ctx, `SELECT id::text, tier FROM points WHERE storage_id = $1 AND deleted_at IS NULL`, storageID)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id, tier string
		if err := rows.Scan(&id, &tier); err != nil {
			return nil, nil, err
		}
		if tier == "cold" {
			cold = append(cold, id)
		} else {
			warm = append(warm, id)
		}
	}
	return warm, cold, rows.Err()
}

// SetPointVerification records the check of a database point restored
// into a scratch cluster.
func (d *DB) SetPointVerification(ctx context.Context, id string, v api.DatabaseVerification) error {
	_, err := d.Pool.Exec(ctx, `UPDATE points SET database = jsonb_set(coalesce(database, '{}'), '{verified}', $2::jsonb) WHERE id = $1`, id, v)
	return err
}

// LatestPointOf is an asset's newest live point of one of kinds.
func (d *DB) LatestPointOf(ctx context.Context, assetID string, kinds ...string) (api.Point, error) {
	return scanPoint(d.Pool.QueryRow(ctx, `SELECT `+d.pointColumns()+` FROM points
		WHERE asset_id = $1 AND deleted_at IS NULL AND kind = ANY($2) ORDER BY completed_at DESC LIMIT 1`, assetID, kinds))
}

// PointsSince lists an asset's live points of kind completed after since,
// oldest first.
func (d *DB) PointsSince(ctx context.Context, assetID, kind string, since time.Time) ([]api.Point, error) {
	rows, err := d.Pool.Query(ctx, `SELECT `+d.pointColumns()+` FROM points
		WHERE asset_id = $1 AND deleted_at IS NULL AND kind = $2 AND completed_at > $3 ORDER BY completed_at, id`, assetID, kind, since)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.Point, error) { return scanPoint(r) })
}

// FullFailedSince tells whether a backup of the asset that asked for a
// full failed after since.
func (d *DB) FullFailedSince(ctx context.Context, assetID string, since time.Time) (bool, error) {
	var failed bool
	err := d.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM jobs WHERE asset_id = $1 AND kind = 'backup' AND backup_type = 'full'
		AND state = 'failed' AND finished_at > $2)`, assetID, since).Scan(&failed)
	return failed, err
}

// LogSchedule is what the log schedule needs of an asset: when its last
// full completed (zero: none yet), when its last log backup started
// (zero: none), and whether a backup of it is queued or running.
type LogSchedule struct {
	LastFull, LastLogStarted time.Time
	Busy                     bool
}

// LogScheduleOf reads an asset's LogSchedule.
func (d *DB) LogScheduleOf(ctx context.Context, assetID string) (LogSchedule, error) {
	var s LogSchedule
	var full, log *time.Time
	err := d.Pool.QueryRow(ctx, `SELECT
		(SELECT max(completed_at) FROM points WHERE asset_id = $1 AND kind = 'full' AND deleted_at IS NULL),
		(SELECT max(coalesce(started_at, created_at)) FROM jobs WHERE asset_id = $1 AND kind = 'backup' AND backup_type = 'log' AND state <> 'skipped'),
		EXISTS (SELECT 1 FROM jobs WHERE asset_id = $1 AND kind = 'backup' AND state IN ('queued', 'running'))`, assetID).Scan(&full, &log, &s.Busy)
	if full != nil {
		s.LastFull = *full
	}
	if log != nil {
		s.LastLogStarted = *log
	}
	return s, err
}
