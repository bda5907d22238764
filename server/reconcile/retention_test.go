package reconcile

import (
	"errors"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// weekOfDailies keeps points a week; archive keeps them over a year and
// moves them to cold after 60 days.
var (
	weekOfDailies = api.PolicySpec{Name: "week", Timezone: "UTC", Retention: api.Retention{DailyDays: 7}}
	archive       = api.PolicySpec{Name: "archive", Timezone: "UTC", Retention: api.Retention{DailyDays: 400},
		Tiering: api.Tiering{WarmDays: 30, ColdAfterDays: new(60)}}
)

type retentionFixture struct {
	clock  *clock
	assets *memAssets
	points *memPoints
	repos  *memRepos
	gc     *memGC
	r      *Retention
}

// newRetention starts with no assets and the clock at 2026-03-10 12:00 UTC.
func newRetention(t *testing.T) *retentionFixture {
	f := &retentionFixture{clock: &clock{at(t, "2026-03-10 12:00")}, assets: &memAssets{assets: map[string]Asset{}},
		points: &memPoints{}, repos: newRepos(), gc: &memGC{}}
	f.r = &Retention{Assets: f.assets, Points: f.points, Repos: f.repos, GC: f.gc, Log: quiet, Now: f.clock.Now}
	return f
}

// asset adds an asset in storage under policy, with a full point per age
// (in days before now) named "<asset>-<age>d", oldest first.
func (f *retentionFixture) asset(id, storage string, policy api.PolicySpec, agesDays ...int) {
	f.assets.assets[id] = Asset{ID: id, StorageID: storage, Policy: policy, Scheduled: true}
	for _, age := range agesDays {
		done := f.clock.Now().AddDate(0, 0, -age)
		f.points.points = append(f.points.points, &api.Point{ID: id + "-" + strconv.Itoa(age) + "d", AssetID: id, StorageID: storage,
			Kind: api.BackupFull, CompletedAt: done, StartedAt: done.Add(-time.Minute), Tier: "warm"})
	}
}

func (f *retentionFixture) run(t *testing.T, onlyAsset string) {
	t.Helper()
	if err := f.r.Run(t.Context(), onlyAsset); err != nil {
		t.Fatal(err)
	}
}

// catalog is a copy of every point as it is now.
func (f *retentionFixture) catalog() []api.Point {
	var out []api.Point
	for _, p := range f.points.points {
		out = append(out, *p)
	}
	return out
}

func (f *retentionFixture) point(t *testing.T, id string) *api.Point {
	t.Helper()
	p := f.points.find(id)
	if p == nil {
		t.Fatalf("no point %s", id)
	}
	return p
}

func TestRetentionExpiresWhatThePolicyDoesNotKeep(t *testing.T) {
	f := newRetention(t)
	f.asset("fs-1", "st-1", weekOfDailies, 30, 1)
	f.run(t, "")
	if old := f.point(t, "fs-1-30d"); old.DeletedAt == nil {
		t.Fatal("a point no rule keeps was not expired from the catalog")
	}
	if got := f.repos.deleted["st-1"]; !slices.Equal(got, []string{"fs-1-30d"}) {
		t.Fatalf("deleted from st-1's repository: %v, want [fs-1-30d]", got)
	}
	kept := f.point(t, "fs-1-1d")
	if kept.DeletedAt != nil || !slices.Contains(kept.Reasons, "daily") || kept.RestorableUntil == nil {
		t.Fatalf("kept point = %+v, want it live with its daily reason and expiry recorded", kept)
	}
	if want := at(t, "2026-03-17 00:00"); !kept.RestorableUntil.Equal(want) {
		t.Fatalf("kept point expires %v, want %v (the end of its seventh day)", kept.RestorableUntil, want)
	}
}

func TestRetentionLegalHoldSetMeanwhileWins(t *testing.T) {
	f := newRetention(t)
	f.asset("fs-1", "st-1", weekOfDailies, 30, 1)
	f.points.beforeGet = func(p *api.Point) { p.LegalHold = true }
	f.run(t, "")
	if old := f.point(t, "fs-1-30d"); old.DeletedAt != nil {
		t.Fatal("a point put on legal hold during the run was expired")
	}
	if len(f.repos.deleted) != 0 {
		t.Fatalf("repository deletes %v for a held point, want none", f.repos.deleted)
	}
}

func TestRetentionQueuesGCForStoragesThatLostPoints(t *testing.T) {
	f := newRetention(t)
	f.asset("fs-1", "st-1", weekOfDailies, 30, 20, 1)
	f.asset("fs-2", "st-1", weekOfDailies, 10)
	f.asset("fs-3", "st-2", weekOfDailies, 1)
	f.run(t, "")
	if !slices.Equal(f.gc.storages, []string{"st-1"}) {
		t.Fatalf("GC queued for %v, want once for st-1 (st-2 lost nothing)", f.gc.storages)
	}
}

func TestRetentionAppliesTiersOnlyWhereSomethingIsCold(t *testing.T) {
	f := newRetention(t)
	f.asset("vm-1", "st-cold", archive, 90, 1)
	f.asset("vm-2", "st-warm", archive, 20, 1)
	f.run(t, "")
	if got := f.point(t, "vm-1-90d").Tier; got != "cold" {
		t.Fatalf("a 90-day point's tier = %q, want cold", got)
	}
	if got := f.point(t, "vm-1-1d").Tier; got != "warm" {
		t.Fatalf("a 1-day point's tier = %q, want warm", got)
	}
	got, ok := f.repos.tiered["st-cold"]
	if !ok || !slices.Equal(got[0], []string{"vm-1-1d"}) || !slices.Equal(got[1], []string{"vm-1-90d"}) {
		t.Fatalf("tiers applied to st-cold: %v (%v), want warm [vm-1-1d] and cold [vm-1-90d]", got, ok)
	}
	if _, ok := f.repos.tiered["st-warm"]; ok {
		t.Fatal("tiers were applied to a storage with no cold point")
	}
}

func TestRetentionOneFailingAssetDoesNotStopOthers(t *testing.T) {
	f := newRetention(t)
	f.asset("fs-0", "st-0", weekOfDailies, 30)
	f.asset("fs-1", "st-1", weekOfDailies, 30)
	f.assets.broken = map[string]error{"fs-0": errors.New("policy unreadable")}
	f.run(t, "")
	if f.point(t, "fs-0-30d").DeletedAt != nil {
		t.Fatal("the failing asset's point was expired")
	}
	if f.point(t, "fs-1-30d").DeletedAt == nil || !slices.Equal(f.gc.storages, []string{"st-1"}) {
		t.Fatalf("fs-1 was not retained after fs-0 failed (GC %v)", f.gc.storages)
	}
}

func TestRetentionOfOneAsset(t *testing.T) {
	f := newRetention(t)
	f.asset("fs-1", "st-1", weekOfDailies, 30)
	f.asset("fs-2", "st-1", weekOfDailies, 30)
	f.run(t, "fs-2")
	if f.point(t, "fs-1-30d").DeletedAt != nil || f.point(t, "fs-2-30d").DeletedAt == nil {
		t.Fatal("a run for fs-2 did not expire exactly fs-2's point")
	}
}

func TestRetentionPreviewCounts(t *testing.T) {
	f := newRetention(t)
	// Under archive now; the preview proposes a week of dailies with cold
	// after 3 days for both assets.
	f.asset("fs-1", "st-1", archive, 90, 40, 5, 1)
	f.asset("fs-2", "st-1", archive, 2)
	f.asset("fs-3", "st-1", archive, 100) // another policy's
	f.point(t, "fs-2-2d").Tier = "cold"   // recorded cold, warm under the proposal
	f.points.using = map[string][]string{"policy_id=pol-1": {"fs-1", "fs-2"}}
	proposal := weekOfDailies
	proposal.Tiering = api.Tiering{WarmDays: 1, ColdAfterDays: new(3)}
	before := f.catalog()
	got, err := f.r.Preview(t.Context(), "pol-1", proposal)
	if err != nil {
		t.Fatal(err)
	}
	// fs-1: 90d and 40d expire, 5d goes cold, 1d stays warm; fs-2: 2d
	// comes back to warm.
	want := api.RetentionPreview{Expiring: 2, ExpiringAssets: 1, ToCold: 1, ToWarm: 1, PointIDs: []string{"fs-1-90d", "fs-1-40d"}}
	if got.Expiring != want.Expiring || got.ExpiringAssets != want.ExpiringAssets || !slices.Equal(got.PointIDs, want.PointIDs) ||
		got.ToCold != want.ToCold || got.ToWarm != want.ToWarm ||
		got.OldestExpiring == nil || !got.OldestExpiring.Equal(f.point(t, "fs-1-90d").CompletedAt) {
		t.Fatalf("preview = %+v, want %+v with the oldest expiring 90 days ago", got, want)
	}
	if !reflect.DeepEqual(f.catalog(), before) || len(f.repos.deleted) != 0 || len(f.gc.storages) != 0 {
		t.Fatal("a preview wrote something")
	}
	if _, err := f.r.Preview(t.Context(), "pol-1", api.PolicySpec{Timezone: "Mars/Olympus"}); err == nil {
		t.Fatal("a preview with an unknown timezone succeeded")
	} else if e, ok := errors.AsType[*api.Error](err); !ok || e.Field != "timezone" {
		t.Fatalf("error = %v, want one naming the timezone field", err)
	}
}

// TestRetentionOfADatabaseSet: logs follow log_days alone, a kept log
// keeps the point it follows, and a kept differential keeps its full,
// which no daily rule keeps any more.
func TestRetentionOfADatabaseSet(t *testing.T) {
	f := newRetention(t)
	pol := api.PolicySpec{Name: "db", Timezone: "UTC", Retention: api.Retention{DailyDays: 7, LogDays: 3}}
	f.assets.assets["db-1"] = Asset{ID: "db-1", StorageID: "st-1", Policy: pol, Scheduled: true}
	add := func(id, kind, parent string, ageDays int) {
		done := f.clock.Now().AddDate(0, 0, -ageDays)
		f.points.points = append(f.points.points, &api.Point{ID: id, AssetID: "db-1", StorageID: "st-1", Kind: kind, ParentID: parent,
			CompletedAt: done, StartedAt: done.Add(-time.Minute), Tier: "warm"})
	}
	add("full-40d", api.BackupFull, "", 40)
	add("log-30d", api.BackupLog, "full-40d", 30)
	add("diff-2d", api.BackupDifferential, "full-40d", 2)
	add("log-5d", api.BackupLog, "full-40d", 5)
	add("log-1d", api.BackupLog, "diff-2d", 1)
	f.run(t, "")
	for id, kept := range map[string]bool{"full-40d": true, "diff-2d": true, "log-1d": true, "log-30d": false, "log-5d": false} {
		if p := f.point(t, id); (p.DeletedAt == nil) != kept {
			t.Errorf("%s: kept %v, want %v (reasons %v)", id, p.DeletedAt == nil, kept, p.Reasons)
		}
	}
	if full := f.point(t, "full-40d"); !slices.Contains(full.Reasons, "dependency:diff-2d") {
		t.Errorf("the full is kept for %v, want its differential among the reasons", full.Reasons)
	}
}
