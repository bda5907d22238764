// Package jobs runs Haven's engine work as durable jobs: each job is a row
// users see (server/db jobs) executed through River, which gives retries
// with backoff, cancellation across replicas, rescue of jobs whose process
// died, and leader election for the periodic schedule reconciler.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/havenbackup/terraform-provider-haven/engine/confine"
	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// Config tunes the job service.
type Config struct {
	// Workers bounds jobs running at once on this replica.
	Workers int
	// ScheduleEvery is how often the schedule reconciler runs (on the leader).
	ScheduleEvery time.Duration
	// Now is the clock the scheduler uses (tests run it fast).
	Now func() time.Time
	// RescueAfter is how long a job may look stuck (its process gone)
	// before River hands it to another worker.
	RescueAfter time.Duration
	// SelectionEvery is how often selection rules are matched against the
	// inventory (zero: every 5 minutes).
	SelectionEvery time.Duration
	// JanitorEvery is how often orphaned VM snapshots are looked for
	// (zero: every 15 minutes).
	JanitorEvery time.Duration
	// VCenterConcurrency bounds the VM backups that run at once against
	// one vCenter, over all replicas (zero: 4).
	VCenterConcurrency int
	// MaxAttempts bounds retries of a failing job.
	MaxAttempts int
	// NoWork makes this replica schedule and enqueue but never execute
	// (an API-only node).
	NoWork bool
	// AgentOfflineAfter is how long an agent may be silent and still count
	// as online (zero: db.AgentOfflineAfter).
	AgentOfflineAfter time.Duration
	// RetentionEvery is how often retention runs over every asset (it also
	// runs for an asset after each of its backups and policy changes).
	RetentionEvery time.Duration
	// GCGrace and TouchGranularity tune the repository's GC protocol
	// (zero: the engine's defaults); tests shorten both.
	GCGrace          time.Duration
	TouchGranularity time.Duration
	// LocalRoots confine backups and restores on the server's own host
	// (file servers of location "server"); nil allows nothing there.
	LocalRoots *confine.Roots
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.ScheduleEvery <= 0 {
		c.ScheduleEvery = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.RescueAfter <= 0 {
		c.RescueAfter = 10 * time.Minute
	}
	if c.SelectionEvery <= 0 {
		c.SelectionEvery = 5 * time.Minute
	}
	if c.JanitorEvery <= 0 {
		c.JanitorEvery = 15 * time.Minute
	}
	if c.VCenterConcurrency <= 0 {
		c.VCenterConcurrency = 4
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.RetentionEvery <= 0 {
		c.RetentionEvery = time.Hour
	}
	if c.LocalRoots == nil {
		c.LocalRoots, _ = confine.New(nil, nil, "")
	}
}

// Service owns the River client and the executors.
type Service struct {
	cfg  Config
	db   *db.DB
	pool *pgxpool.Pool
	// locks holds the session advisory locks jobs keep for their whole
	// length (asset locks, vCenter slots), apart from the pool jobs and
	// River query with: see poolSizes.
	locks  *pgxpool.Pool
	master *keys.MasterKey
	log    *slog.Logger
	river  *river.Client[pgx.Tx]
	agents *AgentHub

	reposMu sync.Mutex
	repos   map[repoKey]*repo.Repository
	// limiters are the policies' shared upload caps.
	limiters policyLimiters
	// reconcilers turn desired state into work (see reconcilers.go).
	reconcilers reconcilers
}

// riverMigrationLock serializes River's schema migration across replicas.
const riverMigrationLock = 0x68617665_6e5f7276 // "haven_rv"

// riverConns is what River itself may hold of the job pool at once: its
// LISTEN connection, the producer's fetches, the completer and the
// leader's maintenance services.
const riverConns = 4

// poolSizes is the job service's connection budget, worked out so that no
// kind of work can wait forever on another:
//   - a job holds at most two session advisory locks at once (its asset's
//     and, for a VM backup, a vCenter slot), each pinning a connection of
//     the lock pool, which therefore has two per worker: taking a lock
//     never waits for a connection;
//   - a job pins at most one connection of the job pool for its length
//     (GC's mark set) and needs at most one more at a time for its
//     queries, and River needs riverConns of its own.
//
// The API has a pool of its own (db.Open), so neither can starve requests
// or agents' heartbeats. A replica that runs no jobs only enqueues and
// serves agents' calls.
func (c *Config) poolSizes() (jobConns, lockConns int32) {
	if c.NoWork {
		return db.MinAPIConns, 1
	}
	return int32(2*c.Workers + riverConns), int32(2 * c.Workers)
}

// New opens the job service's own connection pools on databaseURL,
// migrates River's schema and builds the service; Start runs it. d is the
// server's catalog (its schema already migrated).
func New(ctx context.Context, databaseURL string, master *keys.MasterKey, log *slog.Logger, cfg Config) (_ *Service, err error) {
	cfg.defaults()
	jobConns, lockConns := cfg.poolSizes()
	pool, err := db.Connect(ctx, databaseURL, jobConns)
	if err != nil {
		return nil, err
	}
	locks, err := db.Connect(ctx, databaseURL, lockConns)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s := &Service{cfg: cfg, db: &db.DB{Pool: pool}, pool: pool, locks: locks, master: master, log: log, repos: map[repoKey]*repo.Repository{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.agents = newAgentHub(s)
	if err := migrateRiver(ctx, pool); err != nil {
		return nil, err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &worker[BackupArgs]{s: s, run: s.runBackup})
	river.AddWorker(workers, &worker[RestoreArgs]{s: s, run: s.runRestore})
	river.AddWorker(workers, &worker[VerifyArgs]{s: s, run: s.runVerify})
	river.AddWorker(workers, &worker[GCArgs]{s: s, run: s.runGC})
	s.reconcilers = s.newReconcilers()
	addReconciler(workers, s, func(ctx context.Context, _ *river.Job[ScheduleArgs]) error { return s.reconcilers.schedule.Run(ctx) })
	addReconciler(workers, s, func(ctx context.Context, _ *river.Job[SelectionArgs]) error { return s.reconcilers.selection.Run(ctx) })
	addReconciler(workers, s, func(ctx context.Context, _ *river.Job[JanitorArgs]) error { return s.removeOrphanSnapshots(ctx) })
	addReconciler(workers, s, func(ctx context.Context, j *river.Job[RetentionArgs]) error {
		return s.reconcilers.retention.Run(ctx, j.Args.AssetID)
	})
	addReconciler(workers, s, func(ctx context.Context, _ *river.Job[SettleArgs]) error { return s.settleOrphans(ctx) })
	rc := &river.Config{
		Workers: workers,
		// Attempts run as long as they need (backups of big VMs run for
		// hours; cancellation is explicit), yet one that stops beating is
		// rescued: see attemptTimeout.
		JobTimeout:           -1,
		RescueStuckJobsAfter: cfg.RescueAfter,
		MaxAttempts:          cfg.MaxAttempts,
		Logger:               log.With("component", "river"),
		PeriodicJobs: []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(cfg.ScheduleEvery), func() (river.JobArgs, *river.InsertOpts) {
				// Only the leader enqueues periodic jobs, and the reconciler is
				// idempotent, so no uniqueness is needed here.
				return ScheduleArgs{}, &river.InsertOpts{MaxAttempts: 1}
			}, &river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(cfg.SelectionEvery), func() (river.JobArgs, *river.InsertOpts) {
				return SelectionArgs{}, &river.InsertOpts{MaxAttempts: 1}
			}, &river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(cfg.JanitorEvery), func() (river.JobArgs, *river.InsertOpts) {
				return JanitorArgs{}, &river.InsertOpts{MaxAttempts: 1}
			}, &river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(cfg.RetentionEvery), func() (river.JobArgs, *river.InsertOpts) {
				return RetentionArgs{}, &river.InsertOpts{MaxAttempts: 1}
			}, &river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(min(cfg.RescueAfter, time.Minute)), func() (river.JobArgs, *river.InsertOpts) {
				return SettleArgs{}, &river.InsertOpts{MaxAttempts: 1}
			}, &river.PeriodicJobOpts{RunOnStart: true}),
		},
	}
	if !cfg.NoWork {
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}}
		rc.FetchPollInterval = 250 * time.Millisecond
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	s.river = client
	return s, nil
}

func migrateRiver(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(riverMigrationLock)); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, int64(riverMigrationLock))
	m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("job queue schema: %w", err)
	}
	return nil
}

// Start begins working jobs (and, on the leader, scheduling). An API-only
// replica only enqueues: scheduling and execution happen on workers.
func (s *Service) Start(ctx context.Context) error {
	if s.cfg.NoWork {
		return nil
	}
	return s.river.Start(ctx)
}

// Stop stops taking jobs and cancels running ones; they are re-queued and
// resume on another replica or after restart. It closes the service's
// pools.
func (s *Service) Stop(ctx context.Context) error {
	defer s.Close()
	if s.cfg.NoWork {
		return nil
	}
	return s.river.StopAndCancel(ctx)
}

// Close closes the service's connection pools (Stop does it too).
func (s *Service) Close() {
	s.pool.Close()
	s.locks.Close()
}

// Agents is the hub that hands jobs to agents.
func (s *Service) Agents() *AgentHub { return s.agents }

// Job args: one River kind per Haven kind, each carrying only the job id.
type (
	BackupArgs struct {
		JobID string `json:"job_id"`
	}
	RestoreArgs struct {
		JobID string `json:"job_id"`
	}
	VerifyArgs struct {
		JobID string `json:"job_id"`
	}
	GCArgs struct {
		JobID string `json:"job_id"`
	}
	ScheduleArgs struct{}
)

func (BackupArgs) Kind() string   { return "haven.backup" }
func (RestoreArgs) Kind() string  { return "haven.restore" }
func (VerifyArgs) Kind() string   { return "haven.verify" }
func (GCArgs) Kind() string       { return "haven.gc" }
func (ScheduleArgs) Kind() string { return "haven.schedule" }

func (a BackupArgs) jobID() string  { return a.JobID }
func (a RestoreArgs) jobID() string { return a.JobID }
func (a VerifyArgs) jobID() string  { return a.JobID }
func (a GCArgs) jobID() string      { return a.JobID }

func argsFor(kind, id string) river.JobArgs {
	switch kind {
	case api.JobBackup:
		return BackupArgs{JobID: id}
	case api.JobRestore:
		return RestoreArgs{JobID: id}
	case api.JobVerify:
		return VerifyArgs{JobID: id}
	}
	return GCArgs{JobID: id}
}

// Enqueue records a job and queues its execution in one transaction. A
// scheduled backup whose slot already has a job is not queued again
// (ok=false).
func (s *Service) Enqueue(ctx context.Context, n db.NewJob) (api.Job, bool, error) {
	var j api.Job
	var ok bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		j, ok, err = s.db.InsertJob(ctx, tx, n)
		if err != nil || !ok || j.State != api.JobQueued {
			return err
		}
		res, err := s.river.InsertTx(ctx, tx, argsFor(n.Kind, j.ID), &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}})
		if err != nil {
			return err
		}
		return s.db.SetRiverJob(ctx, tx, j.ID, res.Job.ID)
	})
	return j, ok, err
}

// Cancel stops a job: a queued one at once, a running one as soon as its
// worker (on any replica) sees its context canceled.
func (s *Service) Cancel(ctx context.Context, id string) (api.Job, error) {
	j, err := s.db.GetJob(ctx, id)
	if err != nil {
		return j, err
	}
	if j.Finished() {
		return j, nil
	}
	if err := s.db.FinishJob(ctx, s.pool, id, api.JobCanceled, "canceled by request", ""); err != nil {
		return j, err
	}
	var params struct{}
	if riverID, err := s.db.JobParams(ctx, id, &params); err == nil && riverID != 0 {
		if _, err := s.river.JobCancel(ctx, riverID); err != nil && !errors.Is(err, river.ErrNotFound) {
			s.log.Warn("canceling river job", "job_id", id, "error", err.Error())
		}
	}
	return s.db.GetJob(ctx, id)
}

// Outcomes an executor can return besides success and plain failure.
var (
	// errBusy: the asset is locked by another backup; try again shortly.
	errBusy = errors.New("another backup of this asset is running")
)

// skipError finishes a job as skipped with a reason.
type skipError struct{ reason string }

func (e skipError) Error() string { return e.reason }

// waitError puts a job back in the queue for a while (an offline agent).
type waitError struct {
	reason string
	after  time.Duration
}

func (e waitError) Error() string { return e.reason }

type idArgs interface {
	river.JobArgs
	jobID() string
}

// worker adapts an executor to River and keeps the user-facing job row in
// step: running, then succeeded, failed (after the last attempt), canceled,
// skipped, or back to queued while it waits or retries.
type worker[T idArgs] struct {
	river.WorkerDefaults[T]
	s   *Service
	run func(ctx context.Context, j *api.Job) error
}

func (w *worker[T]) Work(ctx context.Context, rj *river.Job[T]) error {
	s := w.s
	id := rj.Args.jobID()
	j, started, err := s.db.StartJob(ctx, id)
	if err != nil {
		return err
	}
	if !started {
		return nil // canceled or finished meanwhile
	}
	log := s.log.With("job_id", id, "kind", j.Kind, "attempt", j.Attempt)
	log.Info("job started")
	defer s.keepAttemptAlive(ctx, rj.ID)()
	err = w.run(ctx, &j)
	var skip skipError
	var wait waitError
	switch {
	case err == nil:
		log.Info("job finished")
		return nil
	case errors.As(err, &skip):
		log.Info("job skipped", "reason", skip.reason)
		return s.finish(ctx, id, api.JobSkipped, skip.reason)
	case errors.Is(err, errBusy):
		_ = s.db.RequeueJob(context.WithoutCancel(ctx), id, "")
		return river.JobSnooze(2 * time.Second)
	case errors.As(err, &wait):
		_ = s.db.RequeueJob(context.WithoutCancel(ctx), id, wait.reason)
		return river.JobSnooze(wait.after)
	case ctx.Err() != nil:
		cur, gerr := s.db.GetJob(context.WithoutCancel(ctx), id)
		if gerr == nil && cur.State == api.JobCanceled {
			log.Info("job canceled")
			return river.JobCancel(err)
		}
		// The server is stopping: put the job back for another replica.
		_ = s.db.RequeueJob(context.WithoutCancel(ctx), id, "interrupted: "+err.Error())
		return err
	}
	log.Warn("job attempt failed", "error", err.Error())
	// A path outside the allowed roots stays outside: no retry.
	if rj.Attempt >= rj.MaxAttempts || errors.Is(err, confine.ErrOutside) {
		if ferr := s.finish(ctx, id, api.JobFailed, err.Error()); ferr != nil {
			// settleOrphans finishes the row from River's record.
			log.Error("recording the job's failure", "error", ferr.Error())
		}
		return river.JobCancel(err)
	}
	_ = s.db.RequeueJob(context.WithoutCancel(ctx), id, err.Error())
	return err
}

// keepAttemptAlive keeps a running attempt from looking stuck. River
// re-runs a job whose attempt started more than RescueAfter ago, taking it
// for one whose process died; backups of big VMs run for hours, so a live
// attempt moves its start forward as it goes. A dead one stops doing so and
// is rescued as River intends. The returned function stops the beat.
func (s *Service) keepAttemptAlive(ctx context.Context, riverID int64) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(s.cfg.RescueAfter / 4)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if _, err := s.pool.Exec(ctx, `UPDATE river_job SET attempted_at = now() WHERE id = $1 AND state = 'running'`, riverID); err != nil && ctx.Err() == nil {
					s.log.Warn("keeping a job attempt alive", "river_job_id", riverID, "error", err.Error())
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// attemptTimeout is an attempt's timeout as River sees it, made of the
// beat keepAttemptAlive gives: River's executor asks as the attempt
// starts and gets none (-1), so an attempt runs as long as it needs;
// River's rescuer asks about an attempt whose last beat (attempted_at) is
// older than RescueAfter, and gets RescueAfter: that attempt has timed out
// with its process, and is retried, or discarded after the last attempt
// (settleOrphans then fails its job). A timeout of -1 for every attempt,
// as before, made the rescuer leave such jobs running for good.
func (s *Service) attemptTimeout(j *rivertype.JobRow) time.Duration {
	if j.AttemptedAt == nil || time.Since(*j.AttemptedAt) < s.cfg.RescueAfter {
		return -1
	}
	return s.cfg.RescueAfter
}

func (w *worker[T]) Timeout(j *river.Job[T]) time.Duration { return w.s.attemptTimeout(j.JobRow) }

// reconciler runs a reconciler's job with the same beat and timeout as
// the user-facing jobs.
type reconciler[T river.JobArgs] struct {
	river.WorkerDefaults[T]
	s   *Service
	run func(context.Context, *river.Job[T]) error
}

func addReconciler[T river.JobArgs](ws *river.Workers, s *Service, run func(context.Context, *river.Job[T]) error) {
	river.AddWorker(ws, &reconciler[T]{s: s, run: run})
}

func (r *reconciler[T]) Work(ctx context.Context, j *river.Job[T]) error {
	defer r.s.keepAttemptAlive(ctx, j.ID)()
	return r.run(ctx, j)
}

func (r *reconciler[T]) Timeout(j *river.Job[T]) time.Duration { return r.s.attemptTimeout(j.JobRow) }

// finish records a job's final state, retrying for a while: a job whose
// outcome is known must not show running because one write failed. What
// still fails is settled later from River's record (settleOrphans).
func (s *Service) finish(ctx context.Context, id, state, msg string) error {
	ctx = context.WithoutCancel(ctx)
	wait := 100 * time.Millisecond
	for try := 1; ; try++ {
		err := s.db.FinishJob(ctx, s.pool, id, state, msg, "")
		if err == nil || try == 5 {
			return err
		}
		time.Sleep(wait)
		wait *= 2
	}
}

// SettleArgs runs settleOrphans.
type SettleArgs struct{}

func (SettleArgs) Kind() string { return "haven.settle" }

// settleOrphans finishes the jobs whose River execution has ended without
// them: the worker could not record the outcome (finish gave up), or the
// rescuer discarded the last attempt of a job whose process died. Such a
// job would otherwise show queued or running for good. River keeps its
// finished rows for a day and more, and a job whose row is gone is
// settled too.
func (s *Service) settleOrphans(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT j.id::text, coalesce(r.state::text, 'deleted'),
			coalesce(r.errors[array_upper(r.errors, 1)]->>'error', '')
		FROM jobs j LEFT JOIN river_job r ON r.id = j.river_job_id
		WHERE j.state IN ('queued', 'running') AND j.river_job_id IS NOT NULL
		AND (r.id IS NULL OR r.state IN ('completed', 'discarded', 'cancelled'))`)
	if err != nil {
		return err
	}
	type orphan struct{ id, riverState, lastError string }
	orphans, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (o orphan, err error) {
		return o, r.Scan(&o.id, &o.riverState, &o.lastError)
	})
	if err != nil {
		return err
	}
	for _, o := range orphans {
		msg := o.lastError
		if msg == "" || o.riverState == "discarded" {
			msg = strings.TrimSuffix(fmt.Sprintf("the job's execution ended (%s) without recording an outcome: %s", o.riverState, msg), ": ")
		}
		s.log.Warn("settling a job whose execution ended", "job_id", o.id, "river_state", o.riverState, "error", o.lastError)
		if err := s.db.FinishJob(ctx, s.pool, o.id, api.JobFailed, msg, ""); err != nil {
			return err
		}
	}
	return nil
}

// assetLock takes the per-asset backup lock, held for the whole backup:
// never two backups of one asset at once, on any replica. Restores do not
// take it.
func (s *Service) assetLock(ctx context.Context, assetID string) (release func(), err error) {
	release, ok, err := s.tryLock(ctx, "haven-backup:"+assetID)
	if err == nil && !ok {
		err = errBusy
	}
	return release, err
}

// tryLock takes a session advisory lock named name on a connection of the
// lock pool, without waiting for it. The connection stays pinned until
// release, so the lock dies with this process (or its connection) and
// never with a job's passing queries; the pool is sized so that pinning
// never waits (poolSizes).
func (s *Service) tryLock(ctx context.Context, name string) (release func(), ok bool, err error) {
	conn, err := s.locks.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	key := int64(h.Sum64())
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil || !ok {
		conn.Release()
		return nil, false, err
	}
	return func() {
		_, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, key)
		conn.Release()
	}, true, nil
}

// QueueRetention asks for a retention run over the given assets soon.
func (s *Service) QueueRetention(ctx context.Context, assetIDs ...string) {
	for _, a := range assetIDs {
		if _, err := s.river.Insert(ctx, RetentionArgs{AssetID: a}, &river.InsertOpts{MaxAttempts: 3}); err != nil {
			s.log.Warn("queueing retention", "asset_id", a, "error", err.Error())
		}
	}
}
