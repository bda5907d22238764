package server

import (
	"context"
	"errors"
	"log/slog"

	"github.com/havenbackup/terraform-provider-haven/engine/confine"
	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/dr"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/databases"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/files"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/nas"
	"github.com/havenbackup/terraform-provider-haven/server/drivers/vms"
	"github.com/havenbackup/terraform-provider-haven/server/executors"
	"github.com/havenbackup/terraform-provider-haven/server/jobs"
	"github.com/havenbackup/terraform-provider-haven/server/reconcile"
	"github.com/havenbackup/terraform-provider-haven/server/repos"
)

// engine is the server's job engine, assembled from its parts: the queue
// (jobs), the repositories, the workload drivers in their registry, the
// executors of each job kind, and the reconcilers. The handlers reach it
// through the methods below.
type engine struct {
	*jobs.Service
	repos   *repos.Cache
	drivers *driver.Registry
	hub     *files.Hub
	exec    *executors.Engine
	rec     reconcilers
	// dr runs DR replications (dr_replicate jobs).
	dr *dr.Replicator
	// drRuns runs failovers, DR tests and their cleanups.
	drRuns *dr.Runner
	// audit prunes the audit log past its retention; the janitor runs it.
	audit auditPruner
}

// engineConfig is what the engine's parts take from the server's Config.
type engineConfig struct {
	jobs jobs.Config
	// apiDB is the API's catalog, which learns the asset tables too.
	apiDB      *db.DB
	localRoots *confine.Roots
	// extraDrivers are registered after the built-in ones (tests add
	// made-up workloads through them).
	extraDrivers []driver.Driver
	extraTables  []driver.Decoder
}

// newEngine opens the job service on databaseURL and wires every part.
func newEngine(ctx context.Context, databaseURL string, master *keys.MasterKey, log *slog.Logger, cfg Config, ec engineConfig) (*engine, error) {
	js, err := jobs.New(ctx, databaseURL, log, ec.jobs)
	if err != nil {
		return nil, err
	}
	e := &engine{Service: js, repos: repos.New(js.DB(), master, cfg.TouchGranularity), drivers: driver.NewRegistry(js.DB())}
	e.hub = files.NewHub(js.DB(), e.repos, js, js.Now, cfg.AgentOfflineAfter)
	e.drivers.RegisterDecoder(files.Decoder{DB: js.DB()})
	e.drivers.RegisterDecoder(vms.Decoder{})
	e.drivers.RegisterDecoder(databases.Decoder{DB: js.DB()})
	e.drivers.RegisterDecoder(nas.Decoder{DB: js.DB()})
	for _, d := range ec.extraTables {
		e.drivers.RegisterDecoder(d)
	}
	e.drivers.Register(
		files.NewLocal(js.DB(), ec.localRoots, e.hub),
		files.NewAgent(js.DB(), ec.localRoots, e.hub),
		vms.New(js.DB(), master, js.Locks(), e.repos, log, cfg.VCenterConcurrency),
		databases.New(js.DB(), e.hub, master, js.Locks()),
		nas.New(js.DB(), e.hub, master, js.Locks()),
	)
	e.drivers.Register(ec.extraDrivers...)
	js.DB().SetAssetTables(e.drivers.AssetTables())
	ec.apiDB.SetAssetTables(e.drivers.AssetTables())
	e.exec = executors.New(js, e.drivers, e.repos, log, cfg.GCGrace)
	e.rec = newReconcilers(js, e.drivers, e.repos, master, log)
	e.dr = &dr.Replicator{DB: js.DB(), Jobs: js, Repos: e.repos, Master: master, Log: log}
	js.Handle(api.JobDRReplicate, e.dr.Run)
	e.drRuns = &dr.Runner{DB: js.DB(), Jobs: js, Master: master, Log: log, Replicator: e.dr, Poll: cfg.DRPoll, Dial: cfg.DRDial}
	js.Handle(api.JobDRFailover, e.drRuns.Launch)
	js.Handle(api.JobDRTest, e.drRuns.Launch)
	js.Handle(api.JobDRCleanup, e.drRuns.Cleanup)
	js.Handle(api.JobDRFailback, e.drRuns.Failback)
	e.audit = auditPruner{db: js.DB(), keep: cfg.AuditRetention, now: js.Now, log: log}
	js.SetReconcilers(jobs.Reconcilers{
		Schedule:  e.rec.schedule.Run,
		Selection: e.rec.selection.Run,
		Retention: e.rec.retention.Run,
		Janitor:   (&reconcile.Janitor{Cleaners: e.cleaners, Log: log}).Run,
		DR:        e.rec.dr.Run,
	})
	return e, nil
}

// cleaners are what the janitor runs: the drivers' Cleanup, and the
// pruning of the audit log.
func (e *engine) cleaners() []reconcile.Cleaner {
	out := []reconcile.Cleaner{e.audit}
	_ = e.drivers.Each(func(d driver.Driver) error {
		out = append(out, d)
		return nil
	})
	return out
}

// Agents is the hub that hands jobs to agents and serves their calls.
func (e *engine) Agents() *files.Hub { return e.hub }

func (e *engine) PrepareRestore(ctx context.Context, req api.RestoreRequest) (*driver.RestoreParams, api.Point, error) {
	return e.exec.PrepareRestore(ctx, req)
}

// BackupTypes are the backup types the asset's driver takes.
func (e *engine) BackupTypes(ctx context.Context, assetID string) ([]string, error) {
	_, d, err := e.drivers.LoadServed(ctx, assetID)
	if err != nil {
		return nil, err
	}
	return driver.BackupTypes(d), nil
}

// RestoreTargets is what a restore of a point of the asset would write
// onto, as the asset's driver names it (driver.Targeter).
func (e *engine) RestoreTargets(ctx context.Context, assetID string, req api.RestoreRequest) ([]driver.Target, error) {
	a, d, err := e.drivers.LoadServed(ctx, assetID)
	if err != nil {
		return nil, err
	}
	t, ok := d.(driver.Targeter)
	if !ok {
		return nil, nil
	}
	return t.RestoreTargets(ctx, req, a)
}

func (e *engine) PlanRestore(ctx context.Context, req api.RestoreRequest) (*api.RestorePlan, *driver.RestoreParams, api.Point, error) {
	return e.exec.PlanRestore(ctx, req)
}

func (e *engine) DestroyStorageData(ctx context.Context, storageID string) (*api.StorageDestroyed, error) {
	return e.exec.DestroyStorageData(ctx, storageID)
}

func (e *engine) PreviewRetention(ctx context.Context, policyID string, spec api.PolicySpec) (*api.RetentionPreview, error) {
	return e.rec.retention.Preview(ctx, policyID, spec)
}

func (e *engine) RetireRuleMade(ctx context.Context, field, id string) error {
	return e.rec.selection.RetireRuleMade(ctx, field, id)
}

// KeepLegalHold records a point's legal hold in its record in the store,
// so that a storage import (after the catalog was lost) keeps the hold.
func (e *engine) KeepLegalHold(ctx context.Context, p api.Point, hold bool) error {
	r, err := e.repos.Open(ctx, p.StorageID, nil)
	if err != nil {
		return err
	}
	err = r.UpdatePointCatalog(ctx, p.ID, func(entry []byte) ([]byte, error) { return db.WithLegalHold(entry, hold) })
	if errors.Is(err, store.ErrNotFound) {
		return nil // no record, nothing for an import to find: the catalog's hold is all there is
	}
	return err
}

// PolicyChanged applies a policy's new upload cap to the uploads running here.
func (e *engine) PolicyChanged(p api.Policy) { e.repos.PolicyChanged(p) }
