package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
)

// Cleaner removes what crashed jobs of one workload left behind on the
// systems it protects (a driver's Cleanup: orphaned VM snapshots, ...), or
// what the catalog keeps past its retention (the audit log). It must
// touch only what no running job owns.
type Cleaner interface {
	Kind() string
	Cleanup(ctx context.Context) error
}

// Janitor runs every cleaner: each workload's, and the audit log's. One
// that fails (a vCenter unreachable) does not keep the others from
// cleaning up; the run reports every failure, naming its kind.
type Janitor struct {
	Cleaners func() []Cleaner
	Log      *slog.Logger
}

// Run cleans up after every workload once.
func (j *Janitor) Run(ctx context.Context) error {
	var errs []error
	for _, c := range j.Cleaners() {
		if err := c.Cleanup(ctx); err != nil {
			j.Log.Warn("janitor", "kind", c.Kind(), "error", err.Error())
			errs = append(errs, fmt.Errorf("%s: %w", c.Kind(), err))
		}
	}
	return errors.Join(errs...)
}
