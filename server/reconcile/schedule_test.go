package reconcile

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// nightly is a daily full backup at 02:00 UTC with a three-hour window.
var nightly = api.PolicySpec{Name: "nightly", Timezone: "UTC",
	Full:        api.FullSchedule{DaysOfWeek: []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"}, At: "02:00"},
	WindowHours: 3}

func at(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

type scheduleFixture struct {
	clock  *clock
	assets *memAssets
	marks  memMarks
	queue  *memQueue
	r      *Schedule
}

// newSchedule has one scheduled asset, "fs-1" in storage "st-1" under
// nightly, and the clock at now.
func newSchedule(t *testing.T, now string) *scheduleFixture {
	f := &scheduleFixture{
		clock:  &clock{at(t, now)},
		assets: &memAssets{assets: map[string]Asset{"fs-1": {ID: "fs-1", StorageID: "st-1", Policy: nightly, Scheduled: true}}},
		marks:  memMarks{},
		queue:  &memQueue{},
	}
	f.r = &Schedule{Assets: f.assets, Marks: f.marks, Jobs: f.queue, Log: quiet, Now: f.clock.Now}
	return f
}

func (f *scheduleFixture) run(t *testing.T) {
	t.Helper()
	if err := f.r.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// slots lists the queued jobs as "<slot UTC> <type> <state>".
func (f *scheduleFixture) slots() []string {
	var out []string
	for _, j := range f.queue.jobs {
		out = append(out, j.Slot.UTC().Format("2006-01-02 15:04")+" "+j.BackupType+" "+j.State)
	}
	return out
}

func TestScheduleNewAssetStartsNowWithoutBackfill(t *testing.T) {
	f := newSchedule(t, "2026-03-10 12:00")
	f.run(t)
	if len(f.queue.jobs) != 0 {
		t.Fatalf("a new asset's past slots were queued: %v", f.slots())
	}
	if got := f.marks["fs-1"]; !got.Equal(f.clock.Now()) {
		t.Fatalf("mark = %v, want now (%v)", got, f.clock.Now())
	}
	// Its first slot is the next one after now.
	f.clock.Advance(15 * time.Hour) // 2026-03-11 03:00
	f.run(t)
	if got := f.slots(); len(got) != 1 || got[0] != "2026-03-11 02:00 full " {
		t.Fatalf("after the first slot: %q, want one queued full at 2026-03-11 02:00", got)
	}
}

func TestScheduleDueSlotBecomesJob(t *testing.T) {
	f := newSchedule(t, "2026-03-10 03:00")
	f.marks["fs-1"] = at(t, "2026-03-10 00:00")
	f.run(t)
	if len(f.queue.jobs) != 1 {
		t.Fatalf("jobs: %q, want one", f.slots())
	}
	j := f.queue.jobs[0]
	if j.Kind != api.JobBackup || j.AssetID != "fs-1" || j.StorageID != "st-1" || j.Trigger != api.TriggerScheduled ||
		j.BackupType != api.BackupFull || !j.Slot.Equal(at(t, "2026-03-10 02:00")) || j.State != "" || j.Error != "" {
		t.Fatalf("job = %+v, want a queued scheduled full backup of fs-1 into st-1 for 2026-03-10 02:00", j)
	}
	if got := f.marks["fs-1"]; !got.Equal(f.clock.Now()) {
		t.Fatalf("mark = %v, want now", got)
	}
}

func TestScheduleMissedSlotsAreSkippedWithReason(t *testing.T) {
	// No server ran from the 10th at midnight to the 12th at 03:00: the
	// slots of the 10th and 11th ended their windows (05:00) unrun.
	f := newSchedule(t, "2026-03-12 03:00")
	f.marks["fs-1"] = at(t, "2026-03-10 00:00")
	f.run(t)
	want := []string{"2026-03-10 02:00 full skipped", "2026-03-11 02:00 full skipped", "2026-03-12 02:00 full "}
	if got := f.slots(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("jobs = %q, want %q", got, want)
	}
	reason := f.queue.jobs[0].Error
	if !strings.HasPrefix(reason, "missed: no server was running") || !strings.Contains(reason, "2026-03-10T02:00:00Z") ||
		!strings.Contains(reason, "2026-03-10T05:00:00Z") {
		t.Fatalf("skip reason = %q, want it to name the slot and the end of its window", reason)
	}
}

func TestScheduleInactiveAssetOnlyMovesItsMark(t *testing.T) {
	f := newSchedule(t, "2026-03-12 03:00")
	f.marks["fs-1"] = at(t, "2026-03-10 00:00")
	a := f.assets.assets["fs-1"]
	a.Scheduled = false // e.g. a VM missing from its vCenter
	f.assets.assets["fs-1"] = a
	f.run(t)
	if len(f.queue.jobs) != 0 {
		t.Fatalf("an inactive asset got jobs: %q", f.slots())
	}
	if got := f.marks["fs-1"]; !got.Equal(f.clock.Now()) {
		t.Fatalf("mark = %v, want now", got)
	}
	// Back in service an hour later: its schedule goes on from then, not
	// from when it went out.
	a.Scheduled = true
	f.assets.assets["fs-1"] = a
	f.clock.Advance(time.Hour)
	f.run(t)
	if len(f.queue.jobs) != 0 {
		t.Fatalf("slots from while it was inactive were queued: %q", f.slots())
	}
}

func TestScheduleRunTwiceQueuesOnce(t *testing.T) {
	f := newSchedule(t, "2026-03-10 03:00")
	f.marks["fs-1"] = at(t, "2026-03-10 00:00")
	f.run(t)
	f.run(t)
	f.clock.Advance(time.Minute)
	f.run(t)
	if got := f.slots(); len(got) != 1 {
		t.Fatalf("jobs = %q, want the slot queued once", got)
	}
}

func TestScheduleOneFailingAssetDoesNotStopOthers(t *testing.T) {
	f := newSchedule(t, "2026-03-10 03:00")
	f.marks["fs-1"] = at(t, "2026-03-10 00:00")
	f.assets.assets["fs-0"] = Asset{ID: "fs-0", Scheduled: true}
	f.assets.broken = map[string]error{"fs-0": errors.New("policy unreadable")}
	f.run(t)
	if got := f.slots(); len(got) != 1 || f.queue.jobs[0].AssetID != "fs-1" {
		t.Fatalf("jobs = %q, want fs-1's slot despite fs-0 failing first", got)
	}
}

// memLogs is LogSchedules over a map.
type memLogs map[string]db.LogSchedule

func (m memLogs) LogScheduleOf(_ context.Context, id string) (db.LogSchedule, error) {
	return m[id], nil
}

// TestScheduleQueuesLogBackups: an asset that takes logs has none before
// its first full, one as soon as the full completed, the next an interval
// after the last one started (at once when it overran), and none while a
// backup of it runs or for an asset that does not take logs.
func TestScheduleQueuesLogBackups(t *testing.T) {
	f := newSchedule(t, "2026-03-10 12:00")
	pol := nightly
	pol.LogBackupIntervalMinutes = 15
	f.assets.assets["db-1"] = Asset{ID: "db-1", StorageID: "st-1", Policy: pol, Scheduled: true, TakesLogs: true}
	f.assets.assets["fs-1"] = Asset{ID: "fs-1", StorageID: "st-1", Policy: pol, Scheduled: true}
	logs := memLogs{}
	f.r.Logs = logs
	f.marks["db-1"], f.marks["fs-1"] = f.clock.Now(), f.clock.Now()
	now := f.clock.Now()
	logJobs := func() int {
		n := 0
		for _, j := range f.queue.jobs {
			if j.BackupType == api.BackupLog {
				if j.AssetID != "db-1" || j.Trigger != api.TriggerScheduled || j.Slot != nil {
					t.Fatalf("log job %+v", j)
				}
				n++
			}
		}
		return n
	}
	for _, step := range []struct {
		state db.LogSchedule
		want  int
		why   string
	}{
		{db.LogSchedule{}, 0, "no full yet"},
		{db.LogSchedule{LastFull: now.Add(-time.Minute)}, 1, "the full just completed"},
		{db.LogSchedule{LastFull: now.Add(-time.Hour), LastLogStarted: now.Add(-10 * time.Minute)}, 1, "the last started 10 minutes ago"},
		{db.LogSchedule{LastFull: now.Add(-time.Hour), LastLogStarted: now.Add(-16 * time.Minute)}, 2, "the last started 16 minutes ago"},
		{db.LogSchedule{LastFull: now.Add(-time.Hour), LastLogStarted: now.Add(-40 * time.Minute), Busy: true}, 2, "a backup runs"},
	} {
		logs["db-1"] = step.state
		logs["fs-1"] = db.LogSchedule{LastFull: now.Add(-time.Hour)}
		f.run(t)
		if got := logJobs(); got != step.want {
			t.Fatalf("%s: %d log backups queued, want %d", step.why, got, step.want)
		}
	}
}
