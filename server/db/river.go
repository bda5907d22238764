package db

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// The queries below read and touch River's own tables (river_job), which
// River's schema migration creates in the same database.

// TouchRiverAttempt moves a running River attempt's start to now: the
// beat that keeps a live attempt from looking stuck (see jobs).
func (d *DB) TouchRiverAttempt(ctx context.Context, riverID int64) error {
	_, err := d.Pool.Exec(ctx, `UPDATE river_job SET attempted_at = now() WHERE id = $1 AND state = 'running'`, riverID)
	return err
}

// UnsettledJob is a job still queued or running whose River execution
// has ended without it.
type UnsettledJob struct {
	ID string
	// RiverState is River's final state, or "deleted" when River's row is gone.
	RiverState string
	LastError  string
}

// Message is what the job's failure says.
func (u UnsettledJob) Message() string {
	if u.LastError != "" && u.RiverState != "discarded" {
		return u.LastError
	}
	return strings.TrimSuffix(fmt.Sprintf("the job's execution ended (%s) without recording an outcome: %s", u.RiverState, u.LastError), ": ")
}

// UnsettledJobs lists the jobs whose River execution has ended without
// them: the worker could not record the outcome, or the rescuer discarded
// the last attempt of a job whose process died. River keeps its finished
// rows for a day and more; a job whose row is gone is listed too.
func (d *DB) UnsettledJobs(ctx context.Context) ([]UnsettledJob, error) {
	rows, err := d.Pool.Query(ctx, `SELECT j.id::text, coalesce(r.state::text, 'deleted'),
			coalesce(r.errors[array_upper(r.errors, 1)]->>'error', '')
		FROM jobs j LEFT JOIN river_job r ON r.id = j.river_job_id
		WHERE j.state IN ('queued', 'running') AND j.river_job_id IS NOT NULL
		AND (r.id IS NULL OR r.state IN ('completed', 'discarded', 'cancelled'))`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (u UnsettledJob, err error) {
		return u, r.Scan(&u.ID, &u.RiverState, &u.LastError)
	})
}
