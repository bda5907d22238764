package reconcile

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"
)

type drPlansFake []DRPlan

func (f drPlansFake) DRPlans(context.Context) ([]DRPlan, error) { return f, nil }

type drQueueFake struct{ queued, cleanups []string }

func (q *drQueueFake) QueueCleanup(_ context.Context, id string) error {
	q.cleanups = append(q.cleanups, id)
	return nil
}

// drCleanupsFake holds runs kept until a time.
type drCleanupsFake map[string]time.Time

func (f drCleanupsFake) DueDRCleanups(_ context.Context, now time.Time) ([]string, error) {
	var out []string
	for id, at := range f {
		if !at.After(now) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out, nil
}

func (q *drQueueFake) QueueReplication(_ context.Context, id string) error {
	q.queued = append(q.queued, id)
	return nil
}

func TestDRQueuesPlansWhoseCopiesAreDue(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(ago time.Duration) *time.Time { v := now.Add(-ago); return &v }
	plans := drPlansFake{
		// never copied, has a point: due
		{ID: "first", Interval: time.Hour, VMs: []DRVM{{ProtectedVMID: "a", NewestPoint: "p1"}}},
		// no point yet: nothing to copy
		{ID: "empty", Interval: time.Hour, VMs: []DRVM{{ProtectedVMID: "b"}}},
		// copy holds the newest point: up to date however old
		{ID: "current", Interval: time.Hour, VMs: []DRVM{{ProtectedVMID: "c", NewestPoint: "p2", CopyPoint: "p2", CopiedAt: at(48 * time.Hour)}}},
		// newer point, but the copy is younger than the interval
		{ID: "young", Interval: time.Hour, VMs: []DRVM{{ProtectedVMID: "d", NewestPoint: "p4", CopyPoint: "p3", CopiedAt: at(30 * time.Minute)}}},
		// newer point and the interval passed: due (one VM is enough)
		{ID: "old", Interval: time.Hour, VMs: []DRVM{
			{ProtectedVMID: "e", NewestPoint: "p5", CopyPoint: "p5", CopiedAt: at(time.Minute)},
			{ProtectedVMID: "f", NewestPoint: "p7", CopyPoint: "p6", CopiedAt: at(time.Hour)},
		}},
	}
	q := &drQueueFake{}
	kept := drCleanupsFake{"due": now.Add(-time.Minute), "now": now, "later": now.Add(time.Minute)}
	r := &DR{Plans: plans, Cleanups: kept, Queue: q, Log: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }}
	if err := r.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := []string{"first", "old"}; !slices.Equal(q.queued, want) {
		t.Fatalf("queued %v, want %v", q.queued, want)
	}
	if want := []string{"due", "now"}; !slices.Equal(q.cleanups, want) {
		t.Fatalf("cleanups queued %v, want %v (kept tests whose time is up)", q.cleanups, want)
	}
}
