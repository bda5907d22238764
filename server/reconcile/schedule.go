package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/schedule"
)

// ScheduleMarks record, per asset, how far its schedule was evaluated.
type ScheduleMarks interface {
	// ScheduleMark is the asset's mark; ok is false when it has none yet.
	ScheduleMark(ctx context.Context, assetID string) (mark time.Time, ok bool, err error)
	// SetScheduleMark moves the asset's mark to until; a mark never moves
	// back, so a slow replica cannot make a faster one's slots due again.
	SetScheduleMark(ctx context.Context, assetID string, until time.Time) error
}

// Schedule turns each asset's backup policy into due backup jobs. Each
// asset's mark records how far it was evaluated, so a slot is considered
// exactly once; a slot whose window passed while no server ran is recorded
// as a skipped job, with the reason. Even if two runs overlap, the queue
// keeps every slot to a single job (see Enqueuer).
type Schedule struct {
	Assets Assets
	Marks  ScheduleMarks
	Jobs   Enqueuer
	// Logs tells when assets that take log backups last had one.
	Logs LogSchedules
	Log  *slog.Logger
	Now  func() time.Time
}

// Run evaluates every live asset up to now. An asset that fails is logged
// and left for the next run; it does not stop the others.
func (r *Schedule) Run(ctx context.Context) error {
	now := r.Now()
	return r.Assets.EachAsset(ctx, func(id string) error {
		if err := r.reconcileAsset(ctx, id, now); err != nil {
			r.Log.Error("scheduling", "asset_id", id, "error", err.Error())
		}
		return nil
	})
}

func (r *Schedule) reconcileAsset(ctx context.Context, assetID string, now time.Time) error {
	a, err := r.Assets.Asset(ctx, assetID)
	if err != nil {
		return err
	}
	if !a.Scheduled {
		// Not backed up any more (unselected or missing VM); a later
		// return to service starts the schedule from then, not from now.
		return r.Marks.SetScheduleMark(ctx, assetID, now)
	}
	mark, ok, err := r.Marks.ScheduleMark(ctx, assetID)
	if err != nil {
		return err
	}
	if !ok {
		// A new asset starts its schedule now: no backfill of old slots.
		return r.Marks.SetScheduleMark(ctx, assetID, now)
	}
	if !now.After(mark) {
		return r.queueLogBackup(ctx, a, now)
	}
	slots, err := schedule.Due(&a.Policy, mark, now)
	if err != nil {
		return err
	}
	if err := r.queueLogBackup(ctx, a, now); err != nil {
		return err
	}
	for _, slot := range slots {
		at := slot.At
		n := db.NewJob{Kind: api.JobBackup, AssetID: assetID, StorageID: a.StorageID, Trigger: api.TriggerScheduled,
			BackupType: slot.Type, Slot: &at}
		if deadline := schedule.Deadline(&a.Policy, slot); now.After(deadline) {
			n.State = api.JobSkipped
			n.Error = fmt.Sprintf("missed: no server was running between the slot (%s) and the end of its window (%s)",
				at.Format(time.RFC3339), deadline.Format(time.RFC3339))
		}
		if _, _, err := r.Jobs.Enqueue(ctx, n); err != nil {
			return err
		}
	}
	return r.Marks.SetScheduleMark(ctx, assetID, now)
}

// LogSchedules read when an asset last had a full and a log backup.
type LogSchedules interface {
	LogScheduleOf(ctx context.Context, assetID string) (db.LogSchedule, error)
}

// queueLogBackup queues a log backup of an asset that takes them when one
// is due: once a full has completed, the first at once, then every
// LogBackupIntervalMinutes from the start of the last one, so that one
// that overran its interval is followed as soon as it ends. Nothing is
// queued while a backup of the asset is queued or running.
func (r *Schedule) queueLogBackup(ctx context.Context, a Asset, now time.Time) error {
	every := time.Duration(a.Policy.LogBackupIntervalMinutes) * time.Minute
	if !a.TakesLogs || every <= 0 || r.Logs == nil {
		return nil
	}
	st, err := r.Logs.LogScheduleOf(ctx, a.ID)
	if err != nil || st.LastFull.IsZero() || st.Busy {
		return err
	}
	if !st.LastLogStarted.IsZero() && now.Before(st.LastLogStarted.Add(every)) {
		return nil
	}
	_, _, err = r.Jobs.Enqueue(ctx, db.NewJob{Kind: api.JobBackup, AssetID: a.ID, StorageID: a.StorageID, Trigger: api.TriggerScheduled,
		BackupType: api.BackupLog})
	return err
}
