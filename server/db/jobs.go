package db

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

const jobColumns = `id::text, kind, state, coalesce(asset_id::text, ''), coalesce(storage_id::text, ''), coalesce(trigger, ''),
	coalesce(backup_type, ''), slot, progress, warnings, error, coalesce(point_id::text, ''), attempt, created_at, started_at, finished_at, result`

func scanJob(row pgx.Row) (api.Job, error) {
	var j api.Job
	var progress []byte
	err := row.Scan(&j.ID, &j.Kind, &j.State, &j.AssetID, &j.StorageID, &j.Trigger, &j.BackupType, &j.Slot,
		&progress, &j.Warnings, &j.Error, &j.PointID, &j.Attempt, &j.CreatedAt, &j.StartedAt, &j.FinishedAt, &j.Result)
	if errors.Is(err, pgx.ErrNoRows) {
		return j, ErrNotFound
	}
	if err != nil {
		return j, err
	}
	if len(j.Warnings) == 0 {
		j.Warnings = nil
	}
	return j, json.Unmarshal(progress, &j.Progress)
}

// NewJob is what creating a job records.
type NewJob struct {
	Kind, AssetID, StorageID, Trigger, BackupType, PointID string
	Slot                                                   *time.Time
	State                                                  string
	Error                                                  string
	Params                                                 any
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// InsertJob records a job. A scheduled backup for a slot that already has
// one is not inserted again (ok=false): that is what makes scheduling on
// several replicas run each slot once.
func (d *DB) InsertJob(ctx context.Context, q Querier, n NewJob) (j api.Job, ok bool, err error) {
	params, err := json.Marshal(n.Params)
	if err != nil {
		return j, false, err
	}
	state := n.State
	if state == "" {
		state = api.JobQueued
	}
	var finished *time.Time
	if state == api.JobSkipped || state == api.JobFailed {
		now := time.Now()
		finished = &now
	}
	j, err = scanJob(q.QueryRow(ctx, `INSERT INTO jobs (kind, state, asset_id, storage_id, trigger, backup_type, slot, params, point_id, error, finished_at)
		VALUES ($1, $2, $3::uuid, $4::uuid, $5, $6, $7, $8, $9::uuid, $10, $11)
		ON CONFLICT (asset_id, slot) WHERE kind = 'backup' AND slot IS NOT NULL DO NOTHING
		RETURNING `+jobColumns, n.Kind, state, nullable(n.AssetID), nullable(n.StorageID), nullable(n.Trigger), nullable(n.BackupType),
		n.Slot, params, nullable(n.PointID), n.Error, finished))
	if errors.Is(err, ErrNotFound) {
		return j, false, nil
	}
	return j, err == nil, err
}

// SetJobResult records what a job made besides a point.
func (d *DB) SetJobResult(ctx context.Context, q Querier, jobID string, result map[string]string) error {
	_, err := q.Exec(ctx, `UPDATE jobs SET result = $2 WHERE id = $1`, jobID, result)
	return err
}

// SetRiverJob links a job to the River row that executes it.
func (d *DB) SetRiverJob(ctx context.Context, q Querier, jobID string, riverID int64) error {
	_, err := q.Exec(ctx, `UPDATE jobs SET river_job_id = $2 WHERE id = $1`, jobID, riverID)
	return err
}

// GetJob reads a job.
func (d *DB) GetJob(ctx context.Context, id string) (api.Job, error) {
	if !looksLikeUUID(id) {
		return api.Job{}, ErrNotFound
	}
	return scanJob(d.Pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1`, id))
}

// JobParams decodes a job's parameters.
func (d *DB) JobParams(ctx context.Context, id string, into any) (riverID int64, err error) {
	var raw []byte
	var rid *int64
	if err := d.Pool.QueryRow(ctx, `SELECT params, river_job_id FROM jobs WHERE id = $1`, id).Scan(&raw, &rid); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, ErrNotFound
		}
		return 0, err
	}
	if rid != nil {
		riverID = *rid
	}
	return riverID, json.Unmarshal(raw, into)
}

// JobFilter narrows ListJobs.
type JobFilter struct {
	AssetID, Kind, State string
	// Before pages: jobs created strictly before this (created_at, id).
	BeforeCreated *time.Time
	BeforeID      string
}

// ListJobs lists jobs newest first.
func (d *DB) ListJobs(ctx context.Context, f JobFilter, limit int) ([]api.Job, error) {
	rows, err := d.Pool.Query(ctx, `SELECT `+jobColumns+` FROM jobs
		WHERE ($1 = '' OR asset_id::text = $1) AND ($2 = '' OR kind = $2) AND ($3 = '' OR state = $3)
		AND ($4::timestamptz IS NULL OR (created_at, id) < ($4, $5::uuid))
		ORDER BY created_at DESC, id DESC LIMIT $6`, f.AssetID, f.Kind, f.State, f.BeforeCreated, nullableUUID(f.BeforeID), limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.Job, error) { return scanJob(r) })
}

func nullableUUID(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// StartJob moves a job to running (if it is still queued) and counts the
// attempt. It returns the job as it is now; a job no longer queued (for
// example canceled) is returned unchanged with started=false.
func (d *DB) StartJob(ctx context.Context, id string) (j api.Job, started bool, err error) {
	j, err = scanJob(d.Pool.QueryRow(ctx, `UPDATE jobs SET state = 'running', attempt = attempt + 1,
		started_at = coalesce(started_at, now()), error = '' WHERE id = $1 AND state IN ('queued', 'running') RETURNING `+jobColumns, id))
	if errors.Is(err, ErrNotFound) {
		j, err = d.GetJob(ctx, id)
		return j, false, err
	}
	return j, err == nil, err
}

// RequeueJob puts a running job back in the queue (it waits for a lock, an
// agent, or a retry), keeping the error of the last attempt.
func (d *DB) RequeueJob(ctx context.Context, id, lastError string) error {
	_, err := d.Pool.Exec(ctx, `UPDATE jobs SET state = 'queued', error = $2 WHERE id = $1 AND state = 'running'`, id, lastError)
	return err
}

// FinishJob records a final state. It does not overwrite another final
// state (a cancel that won the race stays a cancel).
func (d *DB) FinishJob(ctx context.Context, q Querier, id, state, errMsg, pointID string) error {
	_, err := q.Exec(ctx, `UPDATE jobs SET state = $2, error = $3, point_id = coalesce($4::uuid, point_id), finished_at = now()
		WHERE id = $1 AND state IN ('queued', 'running')`, id, state, errMsg, nullable(pointID))
	return err
}

// SetProgress records a job's progress.
func (d *DB) SetProgress(ctx context.Context, id string, p api.JobProgress) error {
	b, _ := json.Marshal(p)
	_, err := d.Pool.Exec(ctx, `UPDATE jobs SET progress = $2 WHERE id = $1`, id, b)
	return err
}

// AddWarnings appends warnings to a job, keeping at most 1000.
func (d *DB) AddWarnings(ctx context.Context, id string, warnings []string) error {
	if len(warnings) == 0 {
		return nil
	}
	_, err := d.Pool.Exec(ctx, `UPDATE jobs SET warnings = (warnings || $2::text[])[1:1000] WHERE id = $1`, id, warnings)
	return err
}

// ActiveJobs counts an asset's unfinished jobs of a kind.
func (d *DB) ActiveJobs(ctx context.Context, assetID, kind string) (int, error) {
	var n int
	err := d.Pool.QueryRow(ctx, `SELECT count(*) FROM jobs WHERE asset_id = $1 AND kind = $2 AND state IN ('queued', 'running')`, assetID, kind).Scan(&n)
	return n, err
}

func looksLikeUUID(s string) bool { return uuidText.MatchString(s) }

var uuidText = regexp.MustCompile(`^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$`)
