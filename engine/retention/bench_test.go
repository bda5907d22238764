package retention

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// benchPoints is a year of one policy's catalog: per asset 52 weekly fulls,
// 30 daily differentials over the last five weeks and 18 four-hourly logs
// over the last three days, 100 points in all, ordered by asset and time as
// a catalog query returns them.
func benchPoints(b *testing.B, assets int) ([]Point, Policy, time.Time) {
	la := loadLoc(b, "America/Los_Angeles")
	start := time.Date(2025, 1, 6, 0, 0, 0, 0, la)
	points := make([]Point, 0, assets*100)
	for a := range assets {
		asset := fmt.Sprintf("asset-%05d", a)
		first := len(points)
		add := func(k Kind, created time.Time, base string) string {
			id := fmt.Sprintf("%s-%03d", asset, len(points)-first)
			points = append(points, Point{ID: id, Asset: asset, Kind: k, Created: created, Base: base})
			return id
		}
		fullDay := a % 7
		at := func(day, hour, minute int) time.Time {
			return time.Date(2025, 1, 6+day, hour, minute+a%60, a%53, 0, la)
		}
		var fulls []string
		for w := range 52 {
			fulls = append(fulls, add(KindFull, at(7*w+fullDay, 1, 0), ""))
		}
		// Catalog order is by time; the fulls above are re-sorted below with
		// the rest, so add the later kinds with their bases first.
		lastFullBefore := func(day int) string { return fulls[(day-fullDay)/7] }
		diffs := 0
		var lastDiff string
		for day := 364 - 35; day < 364 && diffs < 30; day++ {
			if day%7 == fullDay {
				continue
			}
			lastDiff = add(KindDifferential, at(day, 21, 0), lastFullBefore(day))
			diffs++
		}
		for h := range 18 {
			add(KindLog, at(361, 4*h, 30).Add(time.Duration(h/6)*time.Hour), lastDiff)
		}
		mine := points[first:]
		slices.SortFunc(mine, func(x, y Point) int { return x.Created.Compare(y.Created) })
	}
	pol := Policy{
		Location: la, DailyDays: 30, WeeklyWeeks: 8, MonthlyMonths: 12, YearlyYears: 3, LogDays: 3,
		WarmDays: 30, ColdAfterDays: ptr(90),
	}
	return points, pol, start.AddDate(0, 0, 365)
}

func benchPlan(b *testing.B, shuffle bool, workers int) {
	points, pol, now := benchPoints(b, 10000)
	if shuffle {
		r := rand.New(rand.NewPCG(11, 11))
		r.Shuffle(len(points), func(i, j int) { points[i], points[j] = points[j], points[i] })
	}
	ds, err := PlanParallel(points, pol, now, workers)
	if err != nil {
		b.Fatal(err)
	}
	kept, cold := 0, 0
	for _, d := range ds {
		if d.Keep {
			kept++
		}
		if d.Tier == TierCold {
			cold++
		}
	}
	if kept == 0 || kept == len(ds) || cold == 0 {
		b.Fatalf("unrealistic plan: %d kept, %d cold of %d", kept, cold, len(ds))
	}
	b.ReportMetric(float64(len(points)), "points/op")
	b.ResetTimer()
	for b.Loop() {
		if _, err := PlanParallel(points, pol, now, workers); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlan: 1,000,000 points across 10,000 assets in one call.
func BenchmarkPlan(b *testing.B) {
	b.Run("sequential", func(b *testing.B) { benchPlan(b, false, 1) })
	b.Run("parallel", func(b *testing.B) { benchPlan(b, false, 0) })
	b.Run("shuffled-sequential", func(b *testing.B) { benchPlan(b, true, 1) })
	b.Run("shuffled-parallel", func(b *testing.B) { benchPlan(b, true, 0) })
}
