package db

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// A dr_runs row holds a run as the API shows it: the columns the server
// queries by (plan, kind, state, clean_after), the resources created
// (appended one by one as they come to exist) and the rest in doc.

const drRunColumns = `id::text, plan_id::text, kind, state, clean_after, created, doc, created_at`

func scanDRRun(row pgx.Row) (api.DRRun, error) {
	var r api.DRRun
	var created, doc []byte
	var cleanAfter *time.Time
	var id, plan, kind, state string
	var createdAt time.Time
	if err := row.Scan(&id, &plan, &kind, &state, &cleanAfter, &created, &doc, &createdAt); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return r, ErrNotFound
		}
		return r, err
	}
	if err := json.Unmarshal(doc, &r); err != nil {
		return r, err
	}
	r.ID, r.PlanID, r.Kind, r.State, r.CleanAfter, r.CreatedAt = id, plan, kind, state, cleanAfter, createdAt
	if err := json.Unmarshal(created, &r.Created); err != nil {
		return r, err
	}
	if r.Machines == nil {
		r.Machines = []api.DRRunMachine{}
	}
	if r.Steps == nil {
		r.Steps = []api.DRRunStep{}
	}
	return r, nil
}

// docOf is what doc stores of a run: all but its columns.
func docOf(r api.DRRun) ([]byte, error) {
	r.ID, r.PlanID, r.Kind, r.State, r.CleanAfter, r.Created = "", "", "", "", nil, nil
	return json.Marshal(r)
}

// StartDRRun records a run as launching; a run already recorded (a rerun
// of its job after a crash) keeps what it has, and is returned.
func (d *DB) StartDRRun(ctx context.Context, r api.DRRun) (api.DRRun, error) {
	doc, err := docOf(r)
	if err != nil {
		return r, err
	}
	if _, err := d.Pool.Exec(ctx, `INSERT INTO dr_runs (id, plan_id, kind, state, doc) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = now()`, r.ID, r.PlanID, r.Kind, api.DRRunLaunching, doc); err != nil {
		return r, err
	}
	return d.DRRun(ctx, r.ID)
}

// PendingDRRun records a run whose job is queued: a new run as pending,
// while one recorded already (continued by a new job) only learns its
// newest job. It returns the run.
func (d *DB) PendingDRRun(ctx context.Context, r api.DRRun) (api.DRRun, error) {
	doc, err := docOf(r)
	if err != nil {
		return r, err
	}
	if _, err := d.Pool.Exec(ctx, `INSERT INTO dr_runs (id, plan_id, kind, state, doc) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET doc = jsonb_set(dr_runs.doc, '{job_id}', to_jsonb($6::text)), updated_at = now()`,
		r.ID, r.PlanID, r.Kind, api.DRRunPending, doc, r.JobID); err != nil {
		return r, err
	}
	return d.DRRun(ctx, r.ID)
}

// DRRun reads one run, or ErrNotFound.
func (d *DB) DRRun(ctx context.Context, id string) (api.DRRun, error) {
	if !looksLikeUUID(id) {
		return api.DRRun{}, ErrNotFound
	}
	return scanDRRun(d.Pool.QueryRow(ctx, `SELECT `+drRunColumns+` FROM dr_runs WHERE id = $1`, id))
}

// DRRuns lists runs, newest first: of one plan and kind when they are
// not empty.
func (d *DB) DRRuns(ctx context.Context, planID, kind string, limit int) ([]api.DRRun, error) {
	rows, err := d.Pool.Query(ctx, `SELECT `+drRunColumns+` FROM dr_runs
		WHERE ($1 = '' OR plan_id::text = $1) AND ($2 = '' OR kind = $2) ORDER BY created_at DESC, id DESC LIMIT $3`, planID, kind, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (api.DRRun, error) { return scanDRRun(r) })
}

// LastDRRun is a plan's newest run of a kind, or ErrNotFound.
func (d *DB) LastDRRun(ctx context.Context, planID, kind string) (api.DRRun, error) {
	return scanDRRun(d.Pool.QueryRow(ctx, `SELECT `+drRunColumns+` FROM dr_runs WHERE plan_id = $1 AND kind = $2
		ORDER BY created_at DESC, id DESC LIMIT 1`, planID, kind))
}

// AddDRRunResource records a resource a run created (once).
func (d *DB) AddDRRunResource(ctx context.Context, runID string, res api.DRResource) error {
	b, err := json.Marshal([]api.DRResource{res})
	if err != nil {
		return err
	}
	_, err = d.Pool.Exec(ctx, `UPDATE dr_runs SET created = created || $2::jsonb, updated_at = now()
		WHERE id = $1 AND NOT created @> $2::jsonb`, runID, b)
	return err
}

// SaveDRRun stores a run's state, clean_after and document (not its
// created resources, which only AddDRRunResource adds to).
func (d *DB) SaveDRRun(ctx context.Context, r api.DRRun) error {
	doc, err := docOf(r)
	if err != nil {
		return err
	}
	_, err = d.Pool.Exec(ctx, `UPDATE dr_runs SET state = $2, clean_after = $3, doc = $4, updated_at = now() WHERE id = $1`,
		r.ID, r.State, r.CleanAfter, doc)
	return err
}

// DueDRCleanups lists the kept tests whose time is up.
func (d *DB) DueDRCleanups(ctx context.Context, now time.Time) ([]string, error) {
	rows, err := d.Pool.Query(ctx, `SELECT id::text FROM dr_runs WHERE clean_after <= $1 AND state = $2 ORDER BY clean_after`, now, api.DRRunReady)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// LiveDRRuns counts a plan's runs that may still have resources in AWS
// (anything not cleaned), and names the newest.
func (d *DB) LiveDRRuns(ctx context.Context, planID string) (n int, newest api.DRRun, err error) {
	newest, err = scanDRRun(d.Pool.QueryRow(ctx, `SELECT `+drRunColumns+` FROM dr_runs WHERE plan_id = $1 AND state <> $2
		ORDER BY created_at DESC LIMIT 1`, planID, api.DRRunCleaned))
	if errors.Is(err, ErrNotFound) {
		return 0, newest, nil
	}
	if err != nil {
		return 0, newest, err
	}
	err = d.Pool.QueryRow(ctx, `SELECT count(*) FROM dr_runs WHERE plan_id = $1 AND state <> $2`, planID, api.DRRunCleaned).Scan(&n)
	return n, newest, err
}

// RuleProtectedVM is a protected VM a VM protection rule made.
type RuleProtectedVM struct{ ID, Name string }

// RuleProtectedVMs lists the active protected VMs a rule protects, by
// name.
func (d *DB) RuleProtectedVMs(ctx context.Context, ruleID string) ([]RuleProtectedVM, error) {
	rows, err := d.Pool.Query(ctx, `SELECT id::text, spec->>'name' FROM protected_vms WHERE spec->>'rule_id' = $1 AND spec->>'status' = $2
		ORDER BY spec->>'name', id`, ruleID, api.VMActive)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (RuleProtectedVM, error) {
		var v RuleProtectedVM
		err := r.Scan(&v.ID, &v.Name)
		return v, err
	})
}

// PointOfJob is the point a job committed for an asset (a failback pass
// commits one per protected VM), or ErrNotFound.
func (d *DB) PointOfJob(ctx context.Context, jobID, assetID string) (string, error) {
	var id string
	err := d.Pool.QueryRow(ctx, `SELECT id::text FROM points WHERE job_id = $1 AND asset_id = $2 AND deleted_at IS NULL
		ORDER BY completed_at DESC LIMIT 1`, jobID, assetID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	return id, err
}

// LiveFailover is a plan's newest failover run, other than except, that
// holds or may still make instances in AWS: neither cleaned nor failed
// back, and, if still pending, with its job queued or running (a pending
// run whose job is gone never launched anything). ErrNotFound if none.
func (d *DB) LiveFailover(ctx context.Context, planID, except string) (api.DRRun, error) {
	return scanDRRun(d.Pool.QueryRow(ctx, `SELECT `+drRunColumns+` FROM dr_runs r
		WHERE plan_id = $1 AND kind = $2 AND id::text <> $3 AND state NOT IN ($4, $5)
		AND (state <> $6 OR EXISTS (SELECT 1 FROM jobs j WHERE j.id::text = r.doc->>'job_id' AND j.state IN ($7, $8)))
		ORDER BY created_at DESC, id DESC LIMIT 1`,
		planID, api.DRRunFailover, except, api.DRRunCleaned, api.DRRunFailedBack, api.DRRunPending, api.JobQueued, api.JobRunning))
}
