package db

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

const pointColumns = `id::text, asset_id::text, storage_id::text, kind, coalesce(parent_id::text, ''), started_at, completed_at,
	logical_bytes, new_bytes, stored_bytes, files, coalesce(job_id::text, ''), deleted_at`

func scanPoint(row pgx.Row) (api.Point, error) {
	var p api.Point
	err := row.Scan(&p.ID, &p.AssetID, &p.StorageID, &p.Kind, &p.ParentID, &p.StartedAt, &p.CompletedAt,
		&p.LogicalBytes, &p.NewBytes, &p.StoredBytes, &p.Files, &p.JobID, &p.DeletedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrNotFound
	}
	return p, err
}

// InsertPoint adds a recovery point to the catalog. Call it inside the
// transaction that commits the point's root, so the catalog row and the
// data become visible together.
func (d *DB) InsertPoint(ctx context.Context, q Querier, p api.Point) error {
	_, err := q.Exec(ctx, `INSERT INTO points (id, asset_id, storage_id, kind, parent_id, started_at, logical_bytes, new_bytes, stored_bytes, files, job_id)
		VALUES ($1, $2, $3, $4, $5::uuid, $6, $7, $8, $9, $10, $11::uuid)`,
		p.ID, p.AssetID, p.StorageID, p.Kind, nullable(p.ParentID), p.StartedAt, p.LogicalBytes, p.NewBytes, p.StoredBytes, p.Files, nullable(p.JobID))
	return err
}

// GetPoint reads a point.
func (d *DB) GetPoint(ctx context.Context, id string) (api.Point, error) {
	if !looksLikeUUID(id) {
		return api.Point{}, ErrNotFound
	}
	return scanPoint(d.Pool.QueryRow(ctx, `SELECT `+pointColumns+` FROM points WHERE id = $1`, id))
}

// LatestPoint is an asset's newest live point.
func (d *DB) LatestPoint(ctx context.Context, assetID string) (api.Point, error) {
	return scanPoint(d.Pool.QueryRow(ctx, `SELECT `+pointColumns+` FROM points
		WHERE asset_id = $1 AND deleted_at IS NULL ORDER BY completed_at DESC LIMIT 1`, assetID))
}

// ListPoints lists live points newest first, paged by completion time.
func (d *DB) ListPoints(ctx context.Context, assetID string, before *time.Time, limit int) ([]api.Point, error) {
	rows, err := d.Pool.Query(ctx, `SELECT `+pointColumns+` FROM points
		WHERE deleted_at IS NULL AND ($1 = '' OR asset_id::text = $1) AND ($2::timestamptz IS NULL OR completed_at < $2)
		ORDER BY completed_at DESC LIMIT $3`, assetID, before, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.Point, error) { return scanPoint(r) })
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
