package retention

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The product's reference example: America/Los_Angeles, weekly fulls on
// Wednesday at 12:00 (completing at 16:00 on 1 Feb and 15:00 on 8 Feb 2017),
// daily differentials at 21:00 from 1 to 10 Feb, daily retention 10 days.
func referenceExample(t testing.TB) (Policy, []Point, *time.Location) {
	la := loadLoc(t, "America/Los_Angeles")
	pol := Policy{Location: la, DailyDays: 10}
	points := []Point{
		{ID: "full-0201", Asset: "vm-1", Kind: KindFull, Created: wall(la, 2017, 2, 1, 16, 0, 0)},
		{ID: "full-0208", Asset: "vm-1", Kind: KindFull, Created: wall(la, 2017, 2, 8, 15, 0, 0)},
	}
	for d := 1; d <= 10; d++ {
		base := "full-0201"
		if d >= 8 {
			base = "full-0208"
		}
		points = append(points, Point{
			ID: "diff-02" + two(d), Asset: "vm-1", Kind: KindDifferential,
			Created: wall(la, 2017, 2, d, 21, 0, 0), Base: base,
		})
	}
	return pol, points, la
}

func two(d int) string { return string([]byte{byte('0' + d/10), byte('0' + d%10)}) }

func TestReferenceExample(t *testing.T) {
	pol, points, la := referenceExample(t)
	at := func(d, h, mi, s int) time.Time { return wall(la, 2017, 2, d, h, mi, s) }
	midnight := func(d int) time.Time { return at(d, 0, 0, 0) }
	allDiffs := []string{"diff-0201", "diff-0202", "diff-0203", "diff-0204", "diff-0205", "diff-0206", "diff-0207", "diff-0208", "diff-0209", "diff-0210"}

	runChecks(t, pol, points, []check{
		{
			name: "11 Feb 05:00: 12 restorable points",
			now:  at(11, 5, 0, 0),
			kept: cat([]string{"full-0201", "full-0208"}, allDiffs),
			reasons: map[string][]string{
				"full-0201": cat([]string{"daily"}, deps("diff-0201", "diff-0202", "diff-0203", "diff-0204", "diff-0205", "diff-0206", "diff-0207")),
				"full-0208": cat([]string{"daily"}, deps("diff-0208", "diff-0209", "diff-0210")),
				"diff-0201": {"daily"},
			},
			expires: map[string]time.Time{"full-0201": midnight(12), "full-0208": midnight(19), "diff-0201": midnight(12), "diff-0210": midnight(21)},
			// The 1 Feb full outlives its daily rule until diff-0207 lapses.
			next: map[string]time.Time{"full-0201": midnight(18), "full-0208": midnight(21), "diff-0201": midnight(12)},
		},
		{
			name: "11 Feb 23:59:59: the 1 Feb full is still kept by the daily rule",
			now:  at(11, 23, 59, 59),
			kept: cat([]string{"full-0201", "full-0208"}, allDiffs),
			reasons: map[string][]string{
				"full-0201": cat([]string{"daily"}, deps("diff-0201", "diff-0202", "diff-0203", "diff-0204", "diff-0205", "diff-0206", "diff-0207")),
				"diff-0201": {"daily"},
			},
			expires: map[string]time.Time{"full-0201": midnight(12), "diff-0201": midnight(12)},
			next:    map[string]time.Time{"full-0201": midnight(18), "diff-0201": midnight(12)},
		},
		{
			name: "last nanosecond of 11 Feb",
			now:  at(11, 23, 59, 59).Add(999999999),
			kept: cat([]string{"full-0201", "full-0208"}, allDiffs),
			reasons: map[string][]string{
				"full-0201": cat([]string{"daily"}, deps("diff-0201", "diff-0202", "diff-0203", "diff-0204", "diff-0205", "diff-0206", "diff-0207")),
			},
		},
		{
			name: "12 Feb 00:00: daily lapsed, the 1 Feb full is kept only by dependency",
			now:  midnight(12),
			kept: cat([]string{"full-0201", "full-0208"}, allDiffs[1:]),
			reasons: map[string][]string{
				"full-0201": deps("diff-0202", "diff-0203", "diff-0204", "diff-0205", "diff-0206", "diff-0207"),
				"diff-0201": nil,
			},
			expires: map[string]time.Time{"full-0201": {}, "diff-0201": {}, "diff-0202": midnight(13)},
			next:    map[string]time.Time{"full-0201": midnight(18), "diff-0201": {}},
		},
		{
			name: "13 Feb 11:00: differentials of 1 and 2 Feb expired",
			now:  at(13, 11, 0, 0),
			kept: []string{"full-0201", "full-0208", "diff-0203", "diff-0204", "diff-0205", "diff-0206", "diff-0207", "diff-0208", "diff-0209", "diff-0210"},
			reasons: map[string][]string{
				"full-0201": deps("diff-0203", "diff-0204", "diff-0205", "diff-0206", "diff-0207"),
				"full-0208": cat([]string{"daily"}, deps("diff-0208", "diff-0209", "diff-0210")),
				"diff-0203": {"daily"},
				"diff-0201": nil,
				"diff-0202": nil,
			},
			expires: map[string]time.Time{"full-0201": {}, "full-0208": midnight(19), "diff-0203": midnight(14)},
			next:    map[string]time.Time{"full-0201": midnight(18), "full-0208": midnight(21), "diff-0202": {}},
			tiers:   map[string]Tier{"full-0201": TierWarm, "diff-0201": TierWarm},
		},
		{
			name:    "17 Feb 23:59:59: diff-0207 still holds the 1 Feb full",
			now:     at(17, 23, 59, 59),
			kept:    []string{"full-0201", "full-0208", "diff-0207", "diff-0208", "diff-0209", "diff-0210"},
			reasons: map[string][]string{"full-0201": deps("diff-0207")},
		},
		{
			name: "18 Feb 00:00: the 1 Feb full is gone",
			now:  midnight(18),
			kept: []string{"full-0208", "diff-0208", "diff-0209", "diff-0210"},
			reasons: map[string][]string{
				"full-0208": cat([]string{"daily"}, deps("diff-0208", "diff-0209", "diff-0210")),
			},
		},
		{
			name:    "19 Feb 00:00: the 8 Feb full is kept by its later differentials",
			now:     midnight(19),
			kept:    []string{"full-0208", "diff-0209", "diff-0210"},
			reasons: map[string][]string{"full-0208": deps("diff-0209", "diff-0210")},
			next:    map[string]time.Time{"full-0208": midnight(21), "diff-0209": midnight(20)},
		},
		{
			name: "21 Feb 00:00: nothing is left",
			now:  midnight(21),
			kept: nil,
		},
	})
}

// The same example planned from shuffled input and in parallel gives the same
// decisions, point by point.
func TestReferenceExampleOrderAndParallel(t *testing.T) {
	pol, points, la := referenceExample(t)
	now := wall(la, 2017, 2, 13, 11, 0, 0)
	want, err := Plan(points, pol, now)
	if err != nil {
		t.Fatal(err)
	}
	wantByID := byID(t, points, want)
	r := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		shuffled := slices.Clone(points)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got, err := PlanParallel(shuffled, pol, now, 3)
		if err != nil {
			t.Fatal(err)
		}
		for id, d := range byID(t, shuffled, got) {
			if !decisionsEqual(d, wantByID[id]) {
				t.Fatalf("%s: shuffled %+v, want %+v", id, d, wantByID[id])
			}
		}
	}
}

func decisionsEqual(a, b Decision) bool {
	eqT := func(x, y *time.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
	return a.Keep == b.Keep && a.Tier == b.Tier && slices.Equal(a.Reasons, b.Reasons) &&
		eqT(a.ExpiresAt, b.ExpiresAt) && eqT(a.NextTransition, b.NextTransition)
}
