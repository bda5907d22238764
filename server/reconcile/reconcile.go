// Package reconcile holds Haven's reconcilers. Each one turns one concern
// of the desired state in the catalog into work, in a single pass that can
// be re-run without harm, on several server replicas at once:
//   - Schedule: backups that are due become jobs;
//   - Selection: VMs that selection rules match become protected VMs;
//   - Retention: points expire and change tier, and storages that lost
//     points are queued for garbage collection;
//   - Janitor: each workload's driver removes what crashed jobs left behind
//     (its Cleanup, server/driver).
//
// A reconciler depends only on the small interfaces declared beside it, on
// the consumer's side. The server (reconcilers.go) adapts the catalog, the
// driver registry, the repository cache, the vCenter connector and the
// queue to them, and the queue (server/jobs) runs each reconciler as a
// periodic job on the leader. The unit tests beside each reconciler use
// in-memory stand-ins and a fake clock; the real parts are exercised by
// the server's end-to-end tests.
package reconcile

import (
	"context"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// Asset is what the reconcilers need to know of a protected asset (a
// fileset or a protected VM), live or retired (deleted while it had
// recovery points, which stay retained).
type Asset struct {
	ID        string
	StorageID string
	// Policy is the backup policy the asset is under; for a retired asset,
	// the one it was under when it was deleted.
	Policy api.PolicySpec
	// Scheduled is false for an asset the schedule must not back up now:
	// a rule's VM that no rule selects any more, or a VM missing from its
	// vCenter's inventory.
	Scheduled bool
	// TakesLogs says the asset takes log backups (a database set whose
	// server can archive its log) every Policy.LogBackupIntervalMinutes.
	TakesLogs bool
}

// AssetLoader loads one asset, live or retired.
type AssetLoader interface {
	Asset(ctx context.Context, id string) (Asset, error)
}

// Assets lists the live assets and loads them.
type Assets interface {
	AssetLoader
	// EachAsset calls fn with the id of every live asset, stopping at fn's
	// first error.
	EachAsset(ctx context.Context, fn func(id string) error) error
}

// Enqueuer records a job and queues its execution. A scheduled backup
// whose slot already has a job is not queued again (ok=false).
type Enqueuer interface {
	Enqueue(ctx context.Context, n db.NewJob) (j api.Job, ok bool, err error)
}
