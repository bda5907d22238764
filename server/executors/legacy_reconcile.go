package executors

import (
	"context"
	"fmt"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/schedule"
)

// reconcileSchedules turns each asset's policy into due backup jobs. It
// runs as a periodic job, which River enqueues only on the elected leader;
// even if two runs overlapped, the one-job-per-slot index keeps every slot
// to a single job. Each asset's mark records how far it was evaluated, so
// a slot is considered exactly once; a slot whose window passed while no
// server ran is recorded as skipped, with the reason.
func (s *Engine) ReconcileSchedules(ctx context.Context) error {
	now := s.jobs.Now()
	for _, t := range s.drivers.Tables() {
		if err := s.db.Each(ctx, t, func(o db.Object) error {
			if err := s.reconcileAsset(ctx, o.ID, now); err != nil {
				s.log.Error("scheduling", "asset_id", o.ID, "error", err.Error())
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

func (s *Engine) reconcileAsset(ctx context.Context, assetID string, now time.Time) error {
	a, err := s.drivers.Load(ctx, assetID)
	if err != nil {
		return err
	}
	if !a.Scheduled() {
		// Not backed up any more (unselected or missing VM); a later
		// return to service starts the schedule from then, not from now.
		return s.db.SetScheduleMark(ctx, s.db.Pool, assetID, now)
	}
	mark, ok, err := s.db.ScheduleMark(ctx, assetID)
	if err != nil {
		return err
	}
	if !ok {
		// A new asset starts its schedule now: no backfill of old slots.
		return s.db.SetScheduleMark(ctx, s.db.Pool, assetID, now)
	}
	if !now.After(mark) {
		return nil
	}
	slots, err := schedule.Due(&a.Policy.PolicySpec, mark, now)
	if err != nil {
		return err
	}
	for _, slot := range slots {
		at := slot.At
		n := db.NewJob{Kind: api.JobBackup, AssetID: assetID, StorageID: a.StorageID, Trigger: api.TriggerScheduled,
			BackupType: slot.Type, Slot: &at}
		if deadline := schedule.Deadline(&a.Policy.PolicySpec, slot); now.After(deadline) {
			n.State = api.JobSkipped
			n.Error = fmt.Sprintf("missed: no server was running between the slot (%s) and the end of its window (%s)",
				at.Format(time.RFC3339), deadline.Format(time.RFC3339))
		}
		if _, _, err := s.jobs.Enqueue(ctx, n); err != nil {
			return err
		}
	}
	return s.db.SetScheduleMark(ctx, s.db.Pool, assetID, now)
}
