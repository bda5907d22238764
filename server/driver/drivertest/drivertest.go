// Package drivertest runs a driver's backups and restores in a test,
// against real parts (a fresh catalog database on the test PostgreSQL, a
// filesystem store, a random master key), with a small in-memory stand-in
// for the job engine: the driver.Backup and driver.Restore the executors
// would hand the driver, committing points straight through the
// repository. It is what the tests beside each driver use; the whole
// engine (queue, executors, commit in the catalog) is covered by the
// server's end-to-end tests.
package drivertest

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/repos"
)

// Env is a catalog with one filesystem storage and one backup policy.
type Env struct {
	DB     *db.DB
	Master *keys.MasterKey
	Repos  *repos.Cache
	// StorageID and PolicyID name the storage and the policy made for the test.
	StorageID, PolicyID string
	// Now is the clock runs report; tests may move it.
	Now time.Time
}

// New makes the environment. The catalog's schema and the chunk index's
// are migrated as the server does.
func New(t testing.TB) *Env {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, testparts.PostgresURL(t))
	if err != nil {
		t.Fatalf("catalog: %v", err)
	}
	t.Cleanup(d.Close)
	if err := repo.Migrate(ctx, d.Pool); err != nil {
		t.Fatalf("chunk index: %v", err)
	}
	raw := make([]byte, keys.MasterKeySize)
	rand.Read(raw)
	mk, err := keys.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	e := &Env{DB: d, Master: mk, Repos: repos.New(d, mk, 0), Now: time.Now()}
	e.StorageID = e.Create(t, db.Storages, "store", api.StorageSpec{Name: "store", Kind: api.StorageFilesystem, Path: t.TempDir()})
	e.PolicyID = e.Create(t, db.BackupPolicies, "daily", api.PolicySpec{Name: "daily", Timezone: "UTC",
		Full: api.FullSchedule{At: "01:00"}, Retention: api.Retention{DailyDays: 7}})
	return e
}

// Create stores an object in the catalog and returns its id.
func (e *Env) Create(t testing.TB, table db.Table, name string, spec any) string {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	o, _, err := e.DB.Create(context.Background(), table, name, b, nil, "")
	if err != nil {
		t.Fatalf("creating %s %q: %v", table, name, err)
	}
	return o.ID
}

// Repository opens the test storage's repository.
func (e *Env) Repository(t testing.TB) *repo.Repository {
	t.Helper()
	r, err := e.Repos.Open(context.Background(), e.StorageID, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Progress records what a run reports.
type Progress struct {
	mu       sync.Mutex
	Last     api.JobProgress
	Reports  int
	Warnings []string
}

func (p *Progress) Report(_ context.Context, pr api.JobProgress, _ bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Last = pr
	p.Reports++
}

func (p *Progress) Warn(path string, err error) { p.Note(fmt.Sprintf("%s: %v", path, err)) }

func (p *Progress) Note(msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Warnings = append(p.Warnings, msg)
}

func (p *Progress) Flush(context.Context) {}

// Backup is one backup attempt: a driver.Backup whose Commit commits the
// point straight through the repository and keeps it in Points.
type Backup struct {
	Env      *Env
	JobValue api.Job
	AssetVal *driver.Asset
	Prog     Progress
	// Parent is the point incremental backups build on ("" for a full).
	Parent api.Point
	// Committed is the point Commit made.
	Committed *api.Point
	// Root is the root Commit committed.
	Root format.ID
	// Queued are the follow-up jobs the driver queued.
	Queued []db.NewJob
}

// NewBackup is a backup of a, on demand unless the job says otherwise.
func (e *Env) NewBackup(a *driver.Asset) *Backup {
	return &Backup{Env: e, AssetVal: a, JobValue: api.Job{ID: uuid.NewString(), Kind: api.JobBackup, AssetID: a.ID,
		StorageID: a.StorageID, Trigger: api.TriggerOnDemand, Attempt: 1}}
}

func (b *Backup) Job() *api.Job             { return &b.JobValue }
func (b *Backup) Asset() *driver.Asset      { return b.AssetVal }
func (b *Backup) Progress() driver.Progress { return &b.Prog }
func (b *Backup) Now() time.Time            { return b.Env.Now }
func (b *Backup) Repository(ctx context.Context) (*repo.Repository, error) {
	return b.Env.Repos.Open(ctx, b.AssetVal.StorageID, nil)
}

func (b *Backup) Plan(ctx context.Context) (driver.Plan, error) {
	if b.Parent.ID == "" {
		return driver.Plan{Kind: api.BackupFull}, nil
	}
	r, err := b.Repository(ctx)
	if err != nil {
		return driver.Plan{}, err
	}
	root, err := r.Root(ctx, b.Parent.ID)
	if err != nil {
		return driver.Plan{}, err
	}
	return driver.Plan{Kind: api.BackupIncremental, ParentPoint: b.Parent.ID, ParentRoot: root}, nil
}

func (b *Backup) Writer(ctx context.Context) (*repo.Writer, driver.Plan, error) {
	plan, err := b.Plan(ctx)
	if err != nil {
		return nil, plan, err
	}
	r, err := b.Repository(ctx)
	if err != nil {
		return nil, plan, err
	}
	w, err := r.NewWriter(ctx, plan.ParentPoint)
	return w, plan, err
}

func (b *Backup) Queue(_ context.Context, n db.NewJob) error {
	b.Queued = append(b.Queued, n)
	return nil
}

func (b *Backup) Commit(ctx context.Context, w *repo.Writer, plan driver.Plan, root format.ID, st driver.PointStats) error {
	p := api.Point{ID: uuid.NewString(), AssetID: b.AssetVal.ID, StorageID: b.AssetVal.StorageID, Kind: plan.Kind,
		ParentID: plan.ParentPoint, StartedAt: st.Started, CompletedAt: b.Env.Now, LogicalBytes: st.LogicalBytes, Files: st.Files, JobID: b.JobValue.ID}
	if err := w.Commit(ctx, p.ID, root); err != nil {
		w.Abort(ctx)
		return err
	}
	b.Committed, b.Root = &p, root
	return nil
}

// Restore is one restore attempt: a driver.Restore of a point made by a Backup.
type Restore struct {
	Env       *Env
	JobValue  api.Job
	ParamsVal driver.RestoreParams
	PointVal  api.Point
	AssetVal  *driver.Asset
	Prog      Progress
	// Result is what SetResult recorded.
	Result map[string]string
}

// NewRestore restores the point a backup committed, as params say.
func (e *Env) NewRestore(b *Backup, params driver.RestoreParams) *Restore {
	params.PointID = b.Committed.ID
	return &Restore{Env: e, ParamsVal: params, PointVal: *b.Committed, AssetVal: b.AssetVal,
		JobValue: api.Job{ID: uuid.NewString(), Kind: api.JobRestore, AssetID: b.AssetVal.ID, StorageID: b.AssetVal.StorageID,
			PointID: b.Committed.ID, Trigger: api.TriggerOnDemand, Attempt: 1}}
}

func (r *Restore) Job() *api.Job                 { return &r.JobValue }
func (r *Restore) Params() *driver.RestoreParams { return &r.ParamsVal }
func (r *Restore) Point() api.Point              { return r.PointVal }
func (r *Restore) Asset() *driver.Asset          { return r.AssetVal }
func (r *Restore) Progress() driver.Progress     { return &r.Prog }
func (r *Restore) Repository(ctx context.Context) (*repo.Repository, error) {
	return r.Env.Repos.Open(ctx, r.PointVal.StorageID, nil)
}

func (r *Restore) Root(ctx context.Context) (format.ID, error) {
	rp, err := r.Repository(ctx)
	if err != nil {
		return format.ID{}, err
	}
	return rp.Root(ctx, r.PointVal.ID)
}

func (r *Restore) SetResult(_ context.Context, result map[string]string) error {
	r.Result = result
	return nil
}

// Locks are in-process named locks, a driver.Locker for tests that do not
// run several processes.
type Locks struct {
	mu   sync.Mutex
	held map[string]bool
}

func (l *Locks) TryLock(_ context.Context, name string) (func(), bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.held == nil {
		l.held = map[string]bool{}
	}
	if l.held[name] {
		return nil, false, nil
	}
	l.held[name] = true
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.held, name)
	}, true, nil
}
