package reconcile

import (
	"context"
	"log/slog"
	"time"
)

// DRPlan is what the DR reconciler needs to know of a DR plan: how often
// its copies are due and where each VM's copy stands.
type DRPlan struct {
	ID       string
	Interval time.Duration
	VMs      []DRVM
}

// DRVM is one VM of a plan: its newest recovery point, and the point its
// copy in AWS holds with when it was copied ("" and nil before the first).
type DRVM struct {
	ProtectedVMID string
	NewestPoint   string
	CopyPoint     string
	CopiedAt      *time.Time
}

// DRPlans lists the DR plans.
type DRPlans interface {
	DRPlans(ctx context.Context) ([]DRPlan, error)
}

// DRQueue queues a plan's replication, and a DR run's cleanup; one
// already queued or running stands for it (the queue keeps one per plan,
// and one per run).
type DRQueue interface {
	QueueReplication(ctx context.Context, planID string) error
	QueueCleanup(ctx context.Context, runID string) error
}

// DRCleanups lists the DR runs due to be cleaned up: tests kept for a
// while after they passed, whose time is up.
type DRCleanups interface {
	DueDRCleanups(ctx context.Context, now time.Time) ([]string, error)
}

// DR queues the replication of each DR plan that is due: a VM of it has a
// point newer than its copy, and its copy is at least the plan's interval
// old (or it has none). The job copies every VM of the plan that is behind.
// It also queues the cleanup of each kept DR test whose time is up.
type DR struct {
	Plans    DRPlans
	Cleanups DRCleanups
	Queue    DRQueue
	Log      *slog.Logger
	Now      func() time.Time
}

// Run is one pass over every plan.
func (r *DR) Run(ctx context.Context) error {
	plans, err := r.Plans.DRPlans(ctx)
	if err != nil {
		return err
	}
	now := r.Now()
	for _, p := range plans {
		if !Due(p, now) {
			continue
		}
		if err := r.Queue.QueueReplication(ctx, p.ID); err != nil {
			r.Log.Warn("queueing a DR replication", "plan_id", p.ID, "error", err.Error())
			continue
		}
	}
	due, err := r.Cleanups.DueDRCleanups(ctx, now)
	if err != nil {
		return err
	}
	for _, id := range due {
		if err := r.Queue.QueueCleanup(ctx, id); err != nil {
			r.Log.Warn("queueing a DR test's cleanup", "run_id", id, "error", err.Error())
		}
	}
	return nil
}

// Due says whether a plan's replication is due at now.
func Due(p DRPlan, now time.Time) bool {
	for _, v := range p.VMs {
		if v.NewestPoint == "" || v.NewestPoint == v.CopyPoint {
			continue
		}
		if v.CopiedAt == nil || now.Sub(*v.CopiedAt) >= p.Interval {
			return true
		}
	}
	return false
}
