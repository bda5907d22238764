// Package jobs is Haven's job queue: each job is a row users see (server/db
// jobs) executed through River, which gives retries with backoff,
// cancellation across replicas, rescue of jobs whose process died, and
// leader election for the periodic reconcilers. It knows nothing about
// workloads: executors (server/executors) do each kind of job through the
// drivers, and reconcilers (server/reconcile) run on the leader. Besides the
// queue it holds the worker adapter that keeps a job's row in step, the
// progress reporter, and the one path that commits a recovery point.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/havenbackup/terraform-provider-haven/internal/broadcast"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
)

// Config tunes the job service.
type Config struct {
	// Workers bounds jobs running at once on this replica.
	Workers int
	// ScheduleEvery is how often the schedule reconciler runs (on the leader).
	ScheduleEvery time.Duration
	// Now is the engine's clock (tests run it fast).
	Now func() time.Time
	// RescueAfter is how long a job may look stuck (its process gone)
	// before River hands it to another worker.
	RescueAfter time.Duration
	// SelectionEvery is how often selection rules are matched against the
	// inventory (zero: every 5 minutes).
	SelectionEvery time.Duration
	// JanitorEvery is how often drivers clean up after crashed jobs
	// (zero: every 15 minutes).
	JanitorEvery time.Duration
	// MaxAttempts bounds retries of a failing job.
	MaxAttempts int
	// NoWork makes this replica schedule and enqueue but never execute
	// (an API-only node).
	NoWork bool
	// RetentionEvery is how often retention runs over every asset (it also
	// runs for an asset after each of its backups and policy changes).
	RetentionEvery time.Duration
	// DREvery is how often the DR reconciler looks for replications that
	// are due (zero: every minute).
	DREvery time.Duration
	// Observer hears what this replica's jobs did, for the server's
	// metrics; nil hears nothing. It keeps this package free of any
	// metrics library.
	Observer Observer
}

// Observer hears, on the replica where they happen, the outcomes the job
// service itself decides: a job reaching a final state, and a recovery
// point committed. Its methods must be quick and must not fail.
type Observer interface {
	// JobFinished reports a job of kind that ended in state (succeeded,
	// failed, canceled, skipped) took from its first start until now
	// (zero if it never started). Each job's end is reported once, on the
	// replica that settled it (see observeEnd).
	JobFinished(kind, state string, took time.Duration)
	// PointCommitted reports a backup's committed point: logical bytes
	// read from the source and bytes new to the repository it stored.
	PointCommitted(logicalBytes, newBytes int64)
}

type noObserver struct{}

func (noObserver) JobFinished(string, string, time.Duration) {}
func (noObserver) PointCommitted(int64, int64)               {}

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
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.RetentionEvery <= 0 {
		c.RetentionEvery = time.Hour
	}
	if c.DREvery <= 0 {
		c.DREvery = time.Minute
	}
	if c.Observer == nil {
		c.Observer = noObserver{}
	}
}

// Executor does the work of one kind of job. It returns nil when the job
// succeeded (the worker records it, unless the executor already finished
// the job, as a point commit does), or an outcome from package driver
// (Skip, Wait, ErrBusy, Failed), or any other error to retry.
type Executor func(ctx context.Context, j *api.Job) error

// Reconcilers are the periodic loops the queue runs on the leader. Each is
// idempotent and safe on N replicas at once.
type Reconcilers struct {
	Schedule  func(ctx context.Context) error
	Selection func(ctx context.Context) error
	Janitor   func(ctx context.Context) error
	// Retention runs over one asset, or every asset with points when
	// assetID is empty.
	Retention func(ctx context.Context, assetID string) error
	// DR queues the DR replications that are due (nil: none).
	DR func(ctx context.Context) error
}

// Service owns the River client: it queues jobs, runs them through their
// executors and the periodic reconcilers, and keeps each job's row in step.
type Service struct {
	cfg Config
	db  *db.DB
	// locks holds the session advisory locks jobs keep for their whole
	// length (asset locks, vCenter slots), apart from the pool jobs and
	// River query with: see poolSizes.
	locks *db.Locks
	log   *slog.Logger
	river *river.Client[pgx.Tx]

	// executors and reconcilers are set before Start (Handle, SetReconcilers).
	executors   map[string]Executor
	reconcilers Reconcilers

	// ended wakes the readers waiting for a job's end (JobEnded): GET
	// /v1/jobs/{id}?wait=… and the watch of an agent job.
	ended broadcast.Signal
}

// JobEnded returns a channel closed when this process next records the end
// of a job, after the transaction that records it has committed.
func (s *Service) JobEnded() <-chan struct{} { return s.ended.Next() }

// riverMigrationLock serializes River's schema migration across replicas.
const riverMigrationLock = 0x68617665_6e5f7276 // "haven_rv"

// riverConns is what River itself may hold of the job pool at once: its
// LISTEN connection, the producer's fetches, the completer and the
// leader's maintenance services.
const riverConns = 4

// poolSizes is the job service's connection budget, worked out so that no
// kind of work can wait forever on another:
//   - a job holds at most two session advisory locks at once (its asset's
//     and, for a VM backup, a vCenter slot; a storage import holds only
//     its storage's), each pinning a connection of
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
// migrates River's schema and builds the service; register the executors
// (Handle) and reconcilers (SetReconcilers), then Start it.
func New(ctx context.Context, databaseURL string, log *slog.Logger, cfg Config) (_ *Service, err error) {
	cfg.defaults()
	jobConns, lockConns := cfg.poolSizes()
	pool, err := db.Connect(ctx, databaseURL, jobConns)
	if err != nil {
		return nil, err
	}
	lockPool, err := db.Connect(ctx, databaseURL, lockConns)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s := &Service{cfg: cfg, db: &db.DB{Pool: pool}, locks: db.NewLocks(lockPool), log: log, executors: map[string]Executor{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := migrateRiver(ctx, pool); err != nil {
		return nil, err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &worker[BackupArgs]{s: s})
	river.AddWorker(workers, &worker[RestoreArgs]{s: s})
	river.AddWorker(workers, &worker[RestorePlanArgs]{s: s})
	river.AddWorker(workers, &worker[VerifyArgs]{s: s})
	river.AddWorker(workers, &worker[GCArgs]{s: s})
	river.AddWorker(workers, &worker[ImportArgs]{s: s})
	river.AddWorker(workers, &worker[DRReplicateArgs]{s: s})
	river.AddWorker(workers, &worker[DRFailoverArgs]{s: s})
	river.AddWorker(workers, &worker[DRTestArgs]{s: s})
	river.AddWorker(workers, &worker[DRCleanupArgs]{s: s})
	river.AddWorker(workers, &worker[DRFailbackArgs]{s: s})
	addReconciler(workers, s, func(ctx context.Context, _ *river.Job[ScheduleArgs]) error { return s.reconcilers.Schedule(ctx) })
	addReconciler(workers, s, func(ctx context.Context, _ *river.Job[SelectionArgs]) error { return s.reconcilers.Selection(ctx) })
	addReconciler(workers, s, func(ctx context.Context, _ *river.Job[JanitorArgs]) error { return s.reconcilers.Janitor(ctx) })
	addReconciler(workers, s, func(ctx context.Context, j *river.Job[RetentionArgs]) error {
		return s.reconcilers.Retention(ctx, j.Args.AssetID)
	})
	addReconciler(workers, s, func(ctx context.Context, _ *river.Job[SettleArgs]) error { return s.settleOrphans(ctx) })
	addReconciler(workers, s, func(ctx context.Context, _ *river.Job[DRArgs]) error {
		if s.reconcilers.DR == nil {
			return nil
		}
		return s.reconcilers.DR(ctx)
	})
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
			river.NewPeriodicJob(river.PeriodicInterval(cfg.DREvery), func() (river.JobArgs, *river.InsertOpts) {
				return DRArgs{}, &river.InsertOpts{MaxAttempts: 1}
			}, &river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(min(cfg.RescueAfter, time.Minute)), func() (river.JobArgs, *river.InsertOpts) {
				return SettleArgs{}, &river.InsertOpts{MaxAttempts: 1}
			}, &river.PeriodicJobOpts{RunOnStart: true}),
		},
	}
	if !cfg.NoWork {
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}}
		rc.FetchPollInterval = 250 * time.Millisecond
		// A job inserted within River's default cooldown (100 ms) of the
		// last fetch waited out the rest of it: up to 0.08 s measured
		// between a "backup now" and its start. Fetches are one indexed
		// query, so one every few milliseconds under a burst costs nothing
		// next to a job.
		rc.FetchCooldown = 5 * time.Millisecond
	}
	client, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("job queue: %w", err)
	}
	s.river = client
	return s, nil
}

func migrateRiver(ctx context.Context, pool *pgxpool.Pool) error {
	return db.WithLock(ctx, pool, riverMigrationLock, func() error {
		m, err := rivermigrate.New(riverpgxv5.New(pool), nil)
		if err != nil {
			return err
		}
		if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
			return fmt.Errorf("job queue schema: %w", err)
		}
		return nil
	})
}

// Handle sets the executor of a kind of job (api.JobBackup, ...).
func (s *Service) Handle(kind string, e Executor) { s.executors[kind] = e }

// SetReconcilers sets the periodic reconcilers.
func (s *Service) SetReconcilers(r Reconcilers) { s.reconcilers = r }

// DB is the catalog on the job service's pool, for executors and drivers:
// their queries never take the API's connections.
func (s *Service) DB() *db.DB { return s.db }

// Locks are the session locks jobs hold for their length.
func (s *Service) Locks() *db.Locks { return s.locks }

// Now is the engine's clock.
func (s *Service) Now() time.Time { return s.cfg.Now() }

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
	s.db.Pool.Close()
	s.locks.Close()
}

// Job args: one River kind per Haven kind, each carrying only the job id.
type (
	BackupArgs struct {
		JobID string `json:"job_id"`
	}
	RestoreArgs struct {
		JobID string `json:"job_id"`
	}
	RestorePlanArgs struct {
		JobID string `json:"job_id"`
	}
	VerifyArgs struct {
		JobID string `json:"job_id"`
	}
	GCArgs struct {
		JobID string `json:"job_id"`
	}
	ImportArgs struct {
		JobID string `json:"job_id"`
	}
	DRReplicateArgs struct {
		JobID string `json:"job_id"`
	}
	DRFailoverArgs struct {
		JobID string `json:"job_id"`
	}
	DRTestArgs struct {
		JobID string `json:"job_id"`
	}
	DRCleanupArgs struct {
		JobID string `json:"job_id"`
	}
	DRFailbackArgs struct {
		JobID string `json:"job_id"`
	}
	ScheduleArgs struct{}
)

func (BackupArgs) Kind() string      { return "haven.backup" }
func (RestoreArgs) Kind() string     { return "haven.restore" }
func (RestorePlanArgs) Kind() string { return "haven.restore_plan" }
func (VerifyArgs) Kind() string      { return "haven.verify" }
func (GCArgs) Kind() string          { return "haven.gc" }
func (ImportArgs) Kind() string      { return "haven.import" }
func (DRReplicateArgs) Kind() string { return "haven.dr_replicate" }
func (DRFailoverArgs) Kind() string  { return "haven.dr_failover" }
func (DRTestArgs) Kind() string      { return "haven.dr_test" }
func (DRCleanupArgs) Kind() string   { return "haven.dr_cleanup" }
func (DRFailbackArgs) Kind() string  { return "haven.dr_failback" }
func (ScheduleArgs) Kind() string    { return "haven.schedule" }

func (a BackupArgs) jobID() string      { return a.JobID }
func (a RestoreArgs) jobID() string     { return a.JobID }
func (a RestorePlanArgs) jobID() string { return a.JobID }
func (a VerifyArgs) jobID() string      { return a.JobID }
func (a GCArgs) jobID() string          { return a.JobID }
func (a ImportArgs) jobID() string      { return a.JobID }
func (a DRReplicateArgs) jobID() string { return a.JobID }
func (a DRFailoverArgs) jobID() string  { return a.JobID }
func (a DRTestArgs) jobID() string      { return a.JobID }
func (a DRCleanupArgs) jobID() string   { return a.JobID }
func (a DRFailbackArgs) jobID() string  { return a.JobID }

func argsFor(kind, id string) river.JobArgs {
	switch kind {
	case api.JobBackup:
		return BackupArgs{JobID: id}
	case api.JobRestore:
		return RestoreArgs{JobID: id}
	case api.JobRestorePlan:
		return RestorePlanArgs{JobID: id}
	case api.JobVerify:
		return VerifyArgs{JobID: id}
	case api.JobImport:
		return ImportArgs{JobID: id}
	case api.JobDRReplicate:
		return DRReplicateArgs{JobID: id}
	case api.JobDRFailover:
		return DRFailoverArgs{JobID: id}
	case api.JobDRTest:
		return DRTestArgs{JobID: id}
	case api.JobDRCleanup:
		return DRCleanupArgs{JobID: id}
	case api.JobDRFailback:
		return DRFailbackArgs{JobID: id}
	}
	return GCArgs{JobID: id}
}

// Enqueue records a job and queues its execution in one transaction. A
// scheduled backup whose slot already has a job is not queued again
// (ok=false).
func (s *Service) Enqueue(ctx context.Context, n db.NewJob) (api.Job, bool, error) {
	return s.EnqueueWith(ctx, n, nil)
}

// EnqueueWith is Enqueue that first runs prepare (unless nil) in the
// same transaction: what the job needs is recorded if and only if the
// job is (a storage import's storage).
func (s *Service) EnqueueWith(ctx context.Context, n db.NewJob, prepare func(ctx context.Context, tx pgx.Tx) error) (api.Job, bool, error) {
	var j api.Job
	var ok bool
	err := pgx.BeginFunc(ctx, s.db.Pool, func(tx pgx.Tx) error {
		if prepare != nil {
			if err := prepare(ctx, tx); err != nil {
				return err
			}
		}
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
	ended, err := s.db.EndJob(ctx, s.db.Pool, id, api.JobCanceled, "canceled by request", "")
	if err != nil {
		return j, err
	}
	s.ended.Fire()
	if ended != nil && ended.From == api.JobQueued {
		// No worker holds a queued job to observe its end (a running one
		// is observed by its worker when it sees the cancel).
		s.observeEnd(ended, api.JobCanceled)
	}
	var params struct{}
	if riverID, err := s.db.JobParams(ctx, id, &params); err == nil && riverID != 0 {
		if _, err := s.river.JobCancel(ctx, riverID); err != nil && !errors.Is(err, river.ErrNotFound) {
			s.log.Warn("canceling river job", "job_id", id, "error", err.Error())
		}
	}
	return s.db.GetJob(ctx, id)
}

type idArgs interface {
	river.JobArgs
	jobID() string
}

// worker adapts an executor to River and keeps the user-facing job row in
// step: running, then succeeded, failed (after the last attempt, or at
// once for a driver.Failed), canceled, skipped, or back to queued while it
// waits or retries. Every final state is written through finish.
type worker[T idArgs] struct {
	river.WorkerDefaults[T]
	s *Service
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
	run, ok := s.executors[j.Kind]
	if !ok {
		err = fmt.Errorf("this server has no executor for %s jobs", j.Kind)
	} else {
		err = run(ctx, &j)
	}
	ended := func(state string) {
		s.observeEnd(&db.EndedJob{Kind: j.Kind, StartedAt: j.StartedAt}, state)
	}
	if errors.Is(err, driver.ErrBusy) {
		// A wait like any other, saying why: with no message, a backup
		// waiting for another of its asset looked stuck.
		err = driver.Wait{Reason: err.Error(), After: 2 * time.Second}
	}
	var skip driver.Skip
	var wait driver.Wait
	var failed driver.Failed
	switch {
	case err == nil:
		log.Info("job finished")
		return s.finished(ctx, log, &j, api.JobSucceeded, "", "")
	case errors.As(err, &skip):
		log.Info("job skipped", "reason", skip.Reason)
		return s.finished(ctx, log, &j, api.JobSkipped, skip.Reason, "")
	case errors.As(err, &wait):
		_ = s.db.RequeueJob(context.WithoutCancel(ctx), id, wait.Reason)
		return river.JobSnooze(wait.After)
	case ctx.Err() != nil:
		cur, gerr := s.db.GetJob(context.WithoutCancel(ctx), id)
		if gerr == nil && cur.State == api.JobCanceled {
			log.Info("job canceled")
			ended(api.JobCanceled)
			return river.JobCancel(err)
		}
		// The server is stopping: put the job back for another replica.
		_ = s.db.RequeueJob(context.WithoutCancel(ctx), id, "interrupted: "+err.Error())
		return err
	case errors.As(err, &failed):
		log.Warn("job failed", "error", err.Error())
		if ferr := s.finished(ctx, log, &j, api.JobFailed, err.Error(), failed.Point); ferr != nil {
			return ferr
		}
		return river.JobCancel(err)
	}
	log.Warn("job attempt failed", "error", err.Error())
	if rj.Attempt >= rj.MaxAttempts {
		_ = s.finished(ctx, log, &j, api.JobFailed, err.Error(), "")
		return river.JobCancel(err)
	}
	_ = s.db.RequeueJob(context.WithoutCancel(ctx), id, err.Error())
	return err
}

// finished records a job's final state through finish, and then tells
// the observer; a state it could not write is settled later from River's
// record (settleOrphans), which tells the observer then, so the River job
// ends either way and the job is observed once.
func (s *Service) finished(ctx context.Context, log *slog.Logger, j *api.Job, state, msg, pointID string) error {
	if err := s.finish(ctx, j.ID, state, msg, pointID); err != nil {
		log.Error("recording the job's outcome", "state", state, "error", err.Error())
		return nil
	}
	s.observeEnd(&db.EndedJob{Kind: j.Kind, StartedAt: j.StartedAt}, state)
	return nil
}

// observeEnd tells the observer a job ended in state. Each job is observed
// once, where its end is settled: by the worker that ran it (after
// recording the outcome), by Cancel for a job no worker held, or by
// settleOrphans for a job whose execution ended without it. A job that
// never started (canceled while queued) is observed with a duration of
// zero, so that the observer counts every job that ended.
func (s *Service) observeEnd(e *db.EndedJob, state string) {
	took := time.Duration(0)
	if e.StartedAt != nil {
		took = max(time.Since(*e.StartedAt), 0)
	}
	s.cfg.Observer.JobFinished(e.Kind, state, took)
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
				if err := s.db.TouchRiverAttempt(ctx, riverID); err != nil && ctx.Err() == nil {
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
// pointID names the point the job made or read, if any.
func (s *Service) finish(ctx context.Context, id, state, msg, pointID string) error {
	ctx = context.WithoutCancel(ctx)
	wait := 100 * time.Millisecond
	for try := 1; ; try++ {
		err := s.db.FinishJob(ctx, s.db.Pool, id, state, msg, pointID)
		if err == nil {
			s.ended.Fire()
		}
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
// them (db.UnsettledJobs), which would otherwise show queued or running
// for good.
func (s *Service) settleOrphans(ctx context.Context) error {
	orphans, err := s.db.UnsettledJobs(ctx)
	if err != nil {
		return err
	}
	for _, o := range orphans {
		s.log.Warn("settling a job whose execution ended", "job_id", o.ID, "river_state", o.RiverState, "error", o.LastError)
		ended, err := s.db.EndJob(ctx, s.db.Pool, o.ID, api.JobFailed, o.Message(), "")
		if err != nil {
			return err
		}
		if ended != nil {
			s.ended.Fire()
			s.observeEnd(ended, api.JobFailed)
		}
	}
	return nil
}

// QueueRetention asks for a retention run over the given assets soon.
func (s *Service) QueueRetention(ctx context.Context, assetIDs ...string) {
	for _, a := range assetIDs {
		if _, err := s.river.Insert(ctx, RetentionArgs{AssetID: a}, &river.InsertOpts{MaxAttempts: 3}); err != nil {
			s.log.Warn("queueing retention", "asset_id", a, "error", err.Error())
		}
	}
}

// QueueSelection asks for a selection run soon (after a rule changed).
func (s *Service) QueueSelection(ctx context.Context) {
	if _, err := s.river.Insert(ctx, SelectionArgs{}, nil); err != nil {
		s.log.Warn("queueing VM selection", "error", err.Error())
	}
}

// Reconciler jobs: periodic on the leader, and queued on demand.
type (
	// SelectionArgs run the selection reconciler.
	SelectionArgs struct{}
	// JanitorArgs run the drivers' cleanup of what crashed jobs left.
	JanitorArgs struct{}
	// RetentionArgs run the retention reconciler over one asset, or all.
	RetentionArgs struct {
		AssetID string `json:"asset_id,omitempty"`
	}
	// DRArgs run the DR reconciler.
	DRArgs struct{}
)

func (SelectionArgs) Kind() string { return "haven.vm-selection" }
func (JanitorArgs) Kind() string   { return "haven.vm-janitor" }
func (RetentionArgs) Kind() string { return "haven.retention" }
func (DRArgs) Kind() string        { return "haven.dr" }
