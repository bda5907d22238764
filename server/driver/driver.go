// Package driver is the contract between Haven's job engine and the
// workloads it protects. Every kind of protected asset (files on the server
// host, files through an agent, VMware VMs, ...) is served by one Driver,
// chosen by the asset's kind through a Registry; the engine (the queue,
// progress, the one point-commit path, retention) knows nothing
// workload-specific, and a new workload is one driver package with no
// switch to edit elsewhere.
//
// A driver:
//   - decodes its assets from the catalog (live, or as recorded when they
//     were deleted, since their points outlive them);
//   - checks a backup against the asset before anything is captured, and a
//     restore request before it is queued (errors name the field);
//   - captures the asset into a repo.Sink and commits the point through
//     the engine's Backup.Commit;
//   - restores a point from a repo.Source;
//   - cleans up what a crashed job left behind.
//
// Drivers are safe for concurrent use, hold no state a second server
// replica would miss (a driver on any replica may serve any job), and
// return errors that say what failed in the user's terms.
package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// Driver serves one asset kind.
type Driver interface {
	// Kind names the asset kind this driver serves; it is unique in a
	// Registry.
	Kind() string

	// CheckBackup runs as a backup job starts, before the engine takes the
	// asset's lock: a Skip error finishes the job as skipped with its
	// reason (a VM the schedule does not back up any more), a Wait error
	// puts it back in the queue for a while. nil lets the backup run.
	CheckBackup(ctx context.Context, b Backup) error

	// Backup captures the asset into a new recovery point. It runs holding
	// the asset's lock (never two backups of one asset at once, on any
	// replica). A driver that captures on this replica opens b.Writer (a
	// repo.Sink), captures into it and ends with b.Commit; a driver whose
	// capture runs elsewhere (an agent) hands it over and returns once the
	// point was committed through the same commit path (Committer), or the
	// attempt failed. It must leave no half-made point: a failed capture
	// aborts its writer. Every resource it takes on the protected system
	// (a snapshot) is released before it returns, or by Cleanup.
	Backup(ctx context.Context, b Backup) error

	// PrepareRestore checks a restore request against the point, its asset
	// and the target before the job is queued, so refusals come back at
	// once (api.Unprocessable or api.FieldError naming the field) and no
	// byte moves for a restore that cannot work. It returns the request as
	// the job stores it (defaults filled in) and where the restore runs.
	PrepareRestore(ctx context.Context, req api.RestoreRequest, p api.Point, a *Asset) (*RestoreParams, error)

	// Restore restores a point as r.Params say, reading chunks from the
	// point's repository (a repo.Source). A retried restore resumes where
	// the interrupted attempt stopped if the workload can. A restore that
	// ran but could not write everything returns a Failed error, which is
	// final; any other error is retried.
	Restore(ctx context.Context, r Restore) error

	// Cleanup removes what crashed jobs of this kind left behind on the
	// protected systems (snapshots, temporary disks). It runs periodically
	// on one replica, while jobs run: it must touch only what no running job
	// owns. A driver with nothing to clean up returns nil.
	Cleanup(ctx context.Context) error
}

// Planner is a Driver whose restores have a dry run. The engine calls
// PlanRestore with what PrepareRestore returned, the point's repository
// and its root; it says what the restore would write, overwrite, rename or
// skip, and must write nothing. A driver that is not a Planner answers
// dry runs with 422.
//
// A target this server cannot see (an agent's host) is planned where it
// is: PlanRestore returns ErrPlanOnTarget, the engine queues a
// restore_plan job instead, and PlanOnTarget runs it, returning once the
// job has ended; whoever computed the plan records it with the job's
// success (db.FinishPlanJob).
type Planner interface {
	PlanRestore(ctx context.Context, params *RestoreParams, p api.Point, rp *repo.Repository, root format.ID) (*api.RestorePlan, error)
	PlanOnTarget(ctx context.Context, run Restore) error
}

// ErrPlanOnTarget is a Planner's answer for a dry run that only the
// target's own host can compute.
var ErrPlanOnTarget = errors.New("the dry run is computed on the target's host")

// Asset is a protected asset as the engine hands it to its driver.
type Asset struct {
	ID   string
	Name string
	// Kind is the serving driver's Kind.
	Kind      string
	StorageID string
	// Policy is the backup policy the asset is under (for a deleted asset,
	// the policy as it was when it was deleted).
	Policy api.Policy
	// Retired is set for a deleted asset: its points are restored and
	// retained, it is never backed up again.
	Retired bool
	// Inactive, when not empty, says why the schedule does not back the
	// asset up now (a VM no rule selects, or missing from its vCenter).
	Inactive string
	// TakesLogs says the asset takes log backups (a database set whose
	// server can archive its log): the schedule queues them every
	// LogBackupIntervalMinutes of its policy once a full completed.
	TakesLogs bool
	// Spec is the driver's own view of the asset (decoded by its Decoder).
	Spec any
	// Sealed is the asset's sealed secret, if it has one.
	Sealed []byte
}

// Scheduled tells whether the schedule should back the asset up.
func (a *Asset) Scheduled() bool { return !a.Retired && a.Inactive == "" }

// Record is an asset as the catalog holds it: a live object of one of the
// asset tables, or (Retired set) what was recorded when it was deleted.
type Record struct {
	Table   db.Table
	Object  db.Object
	Retired *db.RetiredAsset
}

// Decoder turns the catalog's records of one asset table into assets,
// setting each one's Kind: one table may hold the assets of several
// drivers (filesets on the server host and on agents).
type Decoder interface {
	// Table is the asset table the decoder reads; RetiredKind is the kind
	// its deleted assets are recorded under in retired_assets.
	Table() db.Table
	RetiredKind() string
	Decode(ctx context.Context, rec Record) (*Asset, error)
}

// Plan is how a backup builds on earlier points.
type Plan struct {
	// Kind is the point's kind: full or incremental (a database's: full,
	// differential or log).
	Kind string
	// ParentPoint and ParentRoot name the point the backup builds on (none
	// for a full).
	ParentPoint string
	ParentRoot  format.ID
}

// PointStats are what a point records about its capture.
type PointStats struct {
	// LogicalBytes and Files are the source's size and its entries (a VM
	// point's "files" are its disks).
	LogicalBytes, Files int64
	Started             time.Time
	// LogStart and LogEnd bound the instants a log point covers; Database
	// is what a database point records besides (nil for other kinds).
	LogStart, LogEnd *time.Time
	Database         *api.DatabasePoint
}

// Backup is one backup attempt as the engine offers it to a driver.
type Backup interface {
	Job() *api.Job
	Asset() *Asset
	Progress() Progress
	// Repository opens the asset's repository, with the policy's upload
	// cap when it has one.
	Repository(ctx context.Context) (*repo.Repository, error)
	// Plan picks full or incremental: the first backup of an asset is
	// full; a scheduled run follows its slot's type; an on-demand one is
	// incremental once a point exists.
	Plan(ctx context.Context) (Plan, error)
	// Writer plans the backup and opens its writer on the planned parent;
	// a parent GC took meanwhile makes it a full backup.
	Writer(ctx context.Context) (*repo.Writer, Plan, error)
	// Commit flushes w and makes the point visible: the root, the catalog
	// row and the job's success in one transaction. It aborts w on failure.
	Commit(ctx context.Context, w *repo.Writer, plan Plan, root format.ID, st PointStats) error
	// Now is the engine's clock.
	Now() time.Time
	// Queue queues a follow-up job of the backup (the verification of a
	// database point it committed).
	Queue(ctx context.Context, n db.NewJob) error
}

// Restore is one restore attempt as the engine offers it to a driver.
type Restore interface {
	Job() *api.Job
	Params() *RestoreParams
	Point() api.Point
	// Asset is the point's asset, live or retired.
	Asset() *Asset
	Progress() Progress
	// Repository opens the point's repository; Root is the point's root.
	Repository(ctx context.Context) (*repo.Repository, error)
	Root(ctx context.Context) (format.ID, error)
	// SetResult records what the restore made (a new VM's name and id),
	// shown on the job.
	SetResult(ctx context.Context, result map[string]string) error
}

// RestoreParams are stored with a restore job.
type RestoreParams struct {
	api.RestoreRequest
	// TargetLocation is where the target file server runs (server or agent).
	TargetLocation string `json:"target_location"`
	// Driver is what the driver decided for the restore as it prepared it
	// (which points a database restore replays), in its own format.
	Driver json.RawMessage `json:"driver,omitempty"`
}

// Progress reports a running job's progress and warnings. Reports are
// written at most once a second unless forced; warnings are kept until
// the next report, and written before the job's end is.
type Progress interface {
	Report(ctx context.Context, p api.JobProgress, force bool)
	// Warn records a warning about one path; Note one that is not.
	Warn(path string, err error)
	Note(msg string)
	// Flush writes the warnings not written yet.
	Flush(ctx context.Context)
}

// Committer is the engine's one point-commit path, for a capture whose
// data went through a backup session rather than a local writer (an
// agent's).
type Committer interface {
	CommitSession(ctx context.Context, c SessionCommit) (pointID string, err error)
}

// SessionCommit is a point to commit for a backup session.
type SessionCommit struct {
	JobID      string
	StorageID  string
	Repository *repo.Repository
	SessionID  string
	Plan       Plan
	Root       format.ID
	Stats      PointStats
	// StoredBytes reads, inside the commit's transaction, the new and
	// stored bytes the session's writers counted (on whichever replica
	// received the uploads).
	StoredBytes func(ctx context.Context, q db.Querier) (newBytes, storedBytes int64, err error)
	// KeepJob leaves the job running: the point is one step of it (the
	// tail-log backup of a restore over a database), not its outcome.
	KeepJob bool
}

// Locker takes the named session locks jobs hold for their length.
type Locker interface {
	// TryLock takes the lock called name without waiting; ok is false when
	// another holder has it. The lock dies with this process.
	TryLock(ctx context.Context, name string) (release func(), ok bool, err error)
}

// AssetLockName is the lock a backup of an asset holds for its length.
func AssetLockName(assetID string) string { return "haven-backup:" + assetID }

// LockAsset takes an asset's backup lock, or fails with ErrBusy.
func LockAsset(ctx context.Context, l Locker, assetID string) (release func(), err error) {
	release, ok, err := l.TryLock(ctx, AssetLockName(assetID))
	if err == nil && !ok {
		err = ErrBusy
	}
	return release, err
}

// Outcomes a driver can return besides success and plain failure.
var (
	// ErrBusy: the asset is locked by another backup; the job tries again
	// shortly, queued with this error as the reason it waits.
	ErrBusy = errors.New("another backup of this asset is running")
)

// Skip finishes a job as skipped with a reason.
type Skip struct{ Reason string }

func (e Skip) Error() string { return e.Reason }

// Skipf is a Skip with a formatted reason.
func Skipf(format string, args ...any) error { return Skip{fmt.Sprintf(format, args...)} }

// Wait puts a job back in the queue for a while (an offline agent, a
// vCenter with every backup slot taken).
type Wait struct {
	Reason string
	After  time.Duration
}

func (e Wait) Error() string { return e.Reason }

// Failed ends a job as failed for good, without a retry: the work ran and
// its outcome is known (a restore that could not write some files). Point
// names the point the job was about, if any.
type Failed struct {
	Err   error
	Point string
}

func (e Failed) Error() string { return e.Err.Error() }
func (e Failed) Unwrap() error { return e.Err }

// BackupTyper is a Driver whose backups take types of their own (a
// database's full, differential and log); the others take full and
// incremental. A backup now of another type is refused at once.
type BackupTyper interface {
	BackupTypes() []string
}

// BackupTypes are the backup types d takes.
func BackupTypes(d Driver) []string {
	if t, ok := d.(BackupTyper); ok {
		return t.BackupTypes()
	}
	return []string{api.BackupFull, api.BackupIncremental}
}

// Targeter is a Driver whose restores may write onto something besides
// the asset itself (another host, another vCenter, another VM). It names
// what a restore request would write onto, so that the API can hold group
// admins to targets of their groups without knowing the workload. A
// driver that is not a Targeter restores only onto its own asset, whose
// group the API checks anyway.
type Targeter interface {
	// RestoreTargets lists, in the order they are checked, the targets
	// req names for a point of a (the defaults filled in as
	// PrepareRestore would). A target that does not exist is left out:
	// PrepareRestore refuses it. A request of the wrong shape for the
	// workload has no targets: PrepareRestore refuses it too.
	RestoreTargets(ctx context.Context, req api.RestoreRequest, a *Asset) ([]Target, error)
}

// Target is something a restore writes onto, as authorization sees it.
type Target struct {
	// Field is the request field that names it (or would, where the
	// default applies); Label says what it is ("file server") and Name
	// which one, in a refusal.
	Field, Label, Name string
	// Group is its administrative group, "" for none.
	Group string
}

// ObjectTarget is the catalog object id of table as a restore target,
// with the group its spec names; none if there is no such object.
func ObjectTarget(ctx context.Context, d *db.DB, table db.Table, id, field, label string) ([]Target, error) {
	o, err := d.Get(ctx, table, id)
	if errors.Is(err, db.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var spec struct {
		Group string `json:"group"`
	}
	if err := json.Unmarshal(o.Spec, &spec); err != nil {
		return nil, err
	}
	return []Target{{Field: field, Label: label, Name: o.Name, Group: spec.Group}}, nil
}
