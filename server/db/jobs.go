package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
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
	// RequestKey is the request's Idempotency-Key, if it has one, and
	// Caller the token that sent it: the key's scope.
	RequestKey, Caller string
}

// RequestKeyTTL is how long an Idempotency-Key names the job its first
// request made; clients retry within seconds, so a day is ample.
const RequestKeyTTL = 24 * time.Hour

// ErrKeyReused is an Idempotency-Key sent again with a different request.
var ErrKeyReused = errors.New("the Idempotency-Key was used for a different request")

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// InsertJob records a job; q must be a transaction. It makes no new job
// (ok=false) and returns the one that stands for the request instead when:
//   - the request's Idempotency-Key already made a job (a retry);
//   - it is an on-demand backup of an asset that has a backup queued or
//     running: one "backup now" makes one job;
//   - it is an import of a storage that has an import queued or running:
//     one storage is never imported by two jobs at once;
//   - it is a scheduled backup for a slot that already has one: that is
//     what makes scheduling on several replicas run each slot once.
//
// The first three are decided under transaction-scoped advisory locks (the
// key's, then the asset's or storage's), so simultaneous requests cannot
// both insert.
func (d *DB) InsertJob(ctx context.Context, q Querier, n NewJob) (j api.Job, ok bool, err error) {
	params, err := json.Marshal(n.Params)
	if err != nil {
		return j, false, err
	}
	request := strings.Join([]string{n.Kind, n.AssetID, n.StorageID, n.PointID, string(params)}, "|")
	if n.RequestKey != "" {
		if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('haven-request:' || $1 || ':' || $2, 0))`, n.Caller, n.RequestKey); err != nil {
			return j, false, err
		}
		var first, jobID string
		err := q.QueryRow(ctx, `SELECT request, job_id::text FROM job_requests WHERE caller = $1 AND key = $2 AND created_at > now() - $3::interval`,
			n.Caller, n.RequestKey, RequestKeyTTL).Scan(&first, &jobID)
		switch {
		case err == nil && first != request:
			return j, false, ErrKeyReused
		case err == nil:
			j, err = scanJob(q.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE id = $1`, jobID))
			return j, false, err
		case !errors.Is(err, pgx.ErrNoRows):
			return j, false, err
		}
	}
	j, ok, err = d.insertJob(ctx, q, n, params)
	if err != nil || n.RequestKey == "" || j.ID == "" {
		return j, ok, err
	}
	_, err = q.Exec(ctx, `WITH expired AS (DELETE FROM job_requests WHERE created_at <= now() - $5::interval)
		INSERT INTO job_requests (caller, key, request, job_id) VALUES ($1, $2, $3, $4)
		ON CONFLICT (caller, key) DO UPDATE SET request = excluded.request, job_id = excluded.job_id, created_at = now()`,
		n.Caller, n.RequestKey, request, j.ID, RequestKeyTTL)
	return j, ok, err
}

// oneJobPer names, for the kinds of job that run one at a time per
// object, the parameter that names the object.
var oneJobPer = map[string]string{api.JobDRReplicate: "plan_id", api.JobDRCleanup: "run_id", api.JobDRFailback: "run_id"}

func (d *DB) insertJob(ctx context.Context, q Querier, n NewJob, params []byte) (j api.Job, ok bool, err error) {
	if n.Kind == api.JobBackup && n.AssetID != "" {
		// Every backup insert of the asset serializes here, so an on-demand
		// one sees any backup inserted before it, committed.
		if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('haven-backup-job:' || $1, 0))`, n.AssetID); err != nil {
			return j, false, err
		}
		if n.Slot == nil {
			j, err = scanJob(q.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE asset_id = $1 AND kind = 'backup'
				AND state IN ('queued', 'running') ORDER BY created_at LIMIT 1`, n.AssetID))
			if err == nil {
				return j, false, nil
			}
			if !errors.Is(err, ErrNotFound) {
				return j, false, err
			}
		}
	}
	if by, ok := oneJobPer[n.Kind]; ok {
		// One replication of a plan, and one cleanup of a DR run, at a
		// time: a request while one is queued or running gets that one.
		var ref map[string]any
		if err := json.Unmarshal(params, &ref); err != nil {
			return j, false, err
		}
		key, _ := ref[by].(string)
		if key == "" {
			return j, false, fmt.Errorf("a %s job needs its %s", n.Kind, by)
		}
		if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('haven-one-job:' || $1 || ':' || $2, 0))`, n.Kind, key); err != nil {
			return j, false, err
		}
		j, err = scanJob(q.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE kind = $1 AND params->>$2 = $3
			AND state IN ('queued', 'running') ORDER BY created_at LIMIT 1`, n.Kind, by, key))
		if err == nil {
			return j, false, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return j, false, err
		}
	}
	if n.Kind == api.JobImport {
		if _, err := q.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('haven-import-job:' || $1, 0))`, n.StorageID); err != nil {
			return j, false, err
		}
		j, err = d.activeImport(ctx, q, n.StorageID)
		if err == nil {
			return j, false, nil
		}
		if !errors.Is(err, ErrNotFound) {
			return j, false, err
		}
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

// activeImport is the storage's import job that is queued or running.
func (d *DB) activeImport(ctx context.Context, q Querier, storageID string) (api.Job, error) {
	return scanJob(q.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE storage_id = $1 AND kind = 'import'
		AND state IN ('queued', 'running') ORDER BY created_at LIMIT 1`, storageID))
}

// LatestImport is the storage's newest import job, or ErrNotFound for a
// storage that was created, not imported.
func (d *DB) LatestImport(ctx context.Context, storageID string) (api.Job, error) {
	return scanJob(d.Pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM jobs WHERE storage_id = $1 AND kind = 'import'
		ORDER BY created_at DESC, id DESC LIMIT 1`, storageID))
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
	_, err := d.EndJob(ctx, q, id, state, errMsg, pointID)
	return err
}

// EndedJob is what EndJob ended: the job's kind, the state it left
// (queued or running) and when it first started (nil if it never did).
type EndedJob struct {
	Kind, From string
	StartedAt  *time.Time
}

// EndJob is FinishJob, telling what it ended: nil when the job had a
// final state already, and nothing was written.
func (d *DB) EndJob(ctx context.Context, q Querier, id, state, errMsg, pointID string) (*EndedJob, error) {
	var e EndedJob
	err := q.QueryRow(ctx, `WITH prev AS (SELECT id, state FROM jobs WHERE id = $1 AND state IN ('queued', 'running') FOR UPDATE)
		UPDATE jobs j SET state = $2, error = $3, point_id = coalesce($4::uuid, j.point_id), finished_at = now()
		FROM prev WHERE j.id = prev.id RETURNING j.kind, prev.state, j.started_at`,
		id, state, errMsg, nullable(pointID)).Scan(&e.Kind, &e.From, &e.StartedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &e, nil
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

// FinishPlanJob records a restore_plan job's plan and its success in one
// transaction, so a succeeded dry run always has its plan. A job already
// finished (canceled meanwhile) is left as it is: ok is false.
func (d *DB) FinishPlanJob(ctx context.Context, jobID string, plan api.RestorePlan) (ok bool, err error) {
	b, err := json.Marshal(plan)
	if err != nil {
		return false, err
	}
	tag, err := d.Pool.Exec(ctx, `UPDATE jobs SET plan = $2, state = 'succeeded', error = '', point_id = coalesce($3::uuid, point_id), finished_at = now()
		WHERE id = $1 AND state IN ('queued', 'running')`, jobID, b, nullable(plan.PointID))
	return tag.RowsAffected() == 1, err
}

// JobPlan reads the plan a restore_plan job recorded; ok is false while
// it has none.
func (d *DB) JobPlan(ctx context.Context, jobID string) (plan api.RestorePlan, ok bool, err error) {
	var raw []byte
	if err := d.Pool.QueryRow(ctx, `SELECT plan FROM jobs WHERE id = $1`, jobID).Scan(&raw); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return plan, false, ErrNotFound
		}
		return plan, false, err
	}
	if raw == nil {
		return plan, false, nil
	}
	return plan, true, json.Unmarshal(raw, &plan)
}
