// Package executors does each kind of job the queue runs: backup and
// restore (through the asset's driver, chosen by kind in the registry),
// verify and garbage collection (on a storage's repository), the import
// of a storage found with its recovery points, and the forced destroy of
// a storage's data. Nothing here depends on a workload.
package executors

import (
	"log/slog"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/jobs"
	"github.com/havenbackup/terraform-provider-haven/server/repos"
)

// Engine holds what the executors share.
type Engine struct {
	db      *db.DB
	jobs    *jobs.Service
	drivers *driver.Registry
	repos   *repos.Cache
	log     *slog.Logger
	// gcGrace tunes the repository's GC protocol (zero: the engine's default).
	gcGrace time.Duration
}

// New builds the executors and registers them with the queue.
func New(js *jobs.Service, drivers *driver.Registry, rc *repos.Cache, log *slog.Logger, gcGrace time.Duration) *Engine {
	e := &Engine{db: js.DB(), jobs: js, drivers: drivers, repos: rc, log: log, gcGrace: gcGrace}
	js.Handle(api.JobBackup, e.Backup)
	js.Handle(api.JobRestore, e.Restore)
	js.Handle(api.JobRestorePlan, e.PlanOnTarget)
	js.Handle(api.JobVerify, e.Verify)
	js.Handle(api.JobGC, e.GC)
	js.Handle(api.JobImport, e.Import)
	return e
}
