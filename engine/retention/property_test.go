package retention

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

const propertyCases = 400

var propertyZones = []string{
	"America/Los_Angeles", "Europe/London", "America/Santiago", "Australia/Lord_Howe",
	"UTC", "Asia/Kolkata", "Pacific/Apia", "Australia/Sydney", "America/St_Johns",
}

// Zones whose transitions never touch midnight, where time.Date at 00:00 is
// exact and so can serve as the independent reference.
var referenceZones = []string{
	"America/Los_Angeles", "Europe/London", "Australia/Lord_Howe", "UTC", "Asia/Kolkata", "Australia/Sydney",
}

type gen struct {
	r    *rand.Rand
	locs []*time.Location
}

func newGen(t testing.TB, seed uint64, zones []string) *gen {
	g := &gen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for _, z := range zones {
		g.locs = append(g.locs, loadLoc(t, z))
	}
	return g
}

var gaps = []time.Duration{15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour, 3 * 24 * time.Hour, 8 * 24 * time.Hour, 40 * 24 * time.Hour}

// points builds a few assets with realistic chains plus some malformed ones:
// missing bases, bases created later (even cycles), equal creation times.
func (g *gen) points() ([]Point, time.Time, time.Time) {
	r := g.r
	start := time.Date(1995+r.IntN(100), time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), 0, time.UTC)
	var all []Point
	end := start
	for a := range 1 + r.IntN(4) {
		asset := fmt.Sprintf("asset-%d", a)
		t := start.Add(time.Duration(r.IntN(48)) * time.Hour)
		var mine []Point
		lastFull, lastNonLog := "", ""
		for i := range r.IntN(70) {
			if i > 0 && r.IntN(20) > 0 {
				t = t.Add(gaps[r.IntN(len(gaps))] + time.Duration(r.IntN(7200))*time.Second + time.Duration(r.IntN(3))*time.Millisecond)
			}
			p := Point{ID: fmt.Sprintf("%s-p%02d", asset, i), Asset: asset, Created: t, LegalHold: r.IntN(25) == 0}
			k := r.IntN(10)
			switch {
			case lastFull == "" || k < 2:
				p.Kind = KindFull
			case k < 5:
				p.Kind, p.Base = KindDifferential, lastFull
			case k < 8:
				p.Kind, p.Base = KindIncremental, lastNonLog
			default:
				p.Kind, p.Base = KindLog, lastNonLog
			}
			switch m := r.IntN(40); {
			case p.Kind == KindFull:
			case m == 0:
				p.Base = "gone"
			case m == 1 && len(mine) > 0:
				p.Base = mine[r.IntN(len(mine))].ID
			case m == 2:
				p.Base = fmt.Sprintf("%s-p%02d", asset, i+1+r.IntN(3)) // a later point
			}
			switch p.Kind {
			case KindFull:
				lastFull, lastNonLog = p.ID, p.ID
			case KindDifferential, KindIncremental:
				lastNonLog = p.ID
			}
			mine = append(mine, p)
		}
		all = append(all, mine...)
		if t.After(end) {
			end = t
		}
	}
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all, start, end
}

func (g *gen) policy() Policy {
	r := g.r
	count := func(n int) int {
		if r.IntN(3) == 0 {
			return 0
		}
		return r.IntN(n + 1)
	}
	p := Policy{
		Location:      g.locs[r.IntN(len(g.locs))],
		DailyDays:     count(40),
		WeeklyWeeks:   count(10),
		MonthlyMonths: count(15),
		YearlyYears:   count(3),
		LogDays:       count(10),
		WarmDays:      count(60),
	}
	if r.IntN(2) == 0 {
		p.ColdAfterDays = ptr(r.IntN(400))
	}
	return p
}

func (g *gen) now(start, end time.Time) time.Time {
	lo, hi := start.Add(-10*24*time.Hour), end.Add(3*365*24*time.Hour)
	return lo.Add(time.Duration(g.r.Int64N(int64(hi.Sub(lo)))))
}

func (g *gen) instance(t testing.TB) ([]Point, Policy, time.Time) {
	points, start, end := g.points()
	return points, g.policy(), g.now(start, end)
}

func mustPlan(t testing.TB, points []Point, p Policy, now time.Time) []Decision {
	t.Helper()
	ds, err := Plan(points, p, now)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// before orders points as the planner does: creation instant, then ID.
func pointBefore(a, b Point) bool {
	if c := a.Created.Compare(b.Created); c != 0 {
		return c < 0
	}
	return a.ID < b.ID
}

// needs lists what restoring p requires directly, from the rules stated in
// the package documentation rather than from the planner's own links: the
// base, and for a log also every earlier log of the asset on the same base.
func needs(points []Point, i int) []int {
	p := points[i]
	if p.Kind == KindFull || p.Base == "" {
		return nil
	}
	base := -1
	for j, q := range points {
		if j != i && q.Asset == p.Asset && q.ID == p.Base {
			base = j
		}
	}
	if base < 0 {
		return nil
	}
	out := []int{base}
	if p.Kind == KindLog {
		for j, q := range points {
			if q.Kind == KindLog && q.Asset == p.Asset && q.Base == p.Base && pointBefore(q, p) {
				out = append(out, j)
			}
		}
	}
	return out
}

func TestPropertyDependenciesKept(t *testing.T) {
	g := newGen(t, 1, propertyZones)
	for c := range propertyCases {
		points, pol, now := g.instance(t)
		ds := mustPlan(t, points, pol, now)
		for i, d := range ds {
			if !d.Keep {
				continue
			}
			for _, j := range needs(points, i) {
				if !ds[j].Keep {
					t.Fatalf("case %d: %s is kept (%q) but %s, which it needs, is not", c, points[i].ID, d.Reasons, points[j].ID)
				}
			}
		}
	}
}

func TestPropertyStricterKeepsSubset(t *testing.T) {
	g := newGen(t, 2, propertyZones)
	for c := range propertyCases {
		points, loose, now := g.instance(t)
		strict := loose
		lower := func(v int) int { return g.r.IntN(v + 1) }
		strict.DailyDays, strict.WeeklyWeeks = lower(loose.DailyDays), lower(loose.WeeklyWeeks)
		strict.MonthlyMonths, strict.YearlyYears = lower(loose.MonthlyMonths), lower(loose.YearlyYears)
		strict.LogDays = lower(loose.LogDays)
		ls, ss := mustPlan(t, points, loose, now), mustPlan(t, points, strict, now)
		for i := range points {
			if ss[i].Keep && !ls[i].Keep {
				t.Fatalf("case %d: %s kept by the strict policy %+v (%q) but not by the loose %+v",
					c, points[i].ID, strict, ss[i].Reasons, loose)
			}
		}
	}
}

func TestPropertyLegalHoldKept(t *testing.T) {
	g := newGen(t, 3, propertyZones)
	held := 0
	for c := range propertyCases {
		points, pol, now := g.instance(t)
		ds := mustPlan(t, points, pol, now)
		for i, p := range points {
			if !p.LegalHold {
				continue
			}
			held++
			if !ds[i].Keep || !slices.Contains(ds[i].Reasons, ReasonLegalHold) {
				t.Fatalf("case %d: %s on legal hold: %+v", c, p.ID, ds[i])
			}
		}
	}
	if held < propertyCases {
		t.Fatalf("only %d held points generated", held)
	}
}

func TestPropertyDeterministic(t *testing.T) {
	g := newGen(t, 4, propertyZones)
	for c := range propertyCases {
		points, pol, now := g.instance(t)
		want := mustPlan(t, points, pol, now)
		key := func(p Point) string { return p.Asset + "\x00" + p.ID }
		wantBy := make(map[string]Decision)
		for i, p := range points {
			wantBy[key(p)] = want[i]
		}
		shuffled := slices.Clone(points)
		g.r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got, err := PlanParallel(shuffled, pol, now, 1+g.r.IntN(4))
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range shuffled {
			if !decisionsEqual(got[i], wantBy[key(p)]) {
				t.Fatalf("case %d: %s: %+v after shuffling, %+v before", c, p.ID, got[i], wantBy[key(p)])
			}
		}
	}
}

// At NextTransition Keep or Tier changes and just before it they have not;
// without one they never change. Likewise ExpiresAt ends the rule reasons.
func TestPropertyNextTransitionIsExact(t *testing.T) {
	g := newGen(t, 5, propertyZones)
	type state struct {
		keep bool
		tier Tier
	}
	checked := 0
	for c := range propertyCases / 4 {
		points, pol, now := g.instance(t)
		ds := mustPlan(t, points, pol, now)
		plans := map[time.Time][]Decision{}
		at := func(x time.Time) []Decision {
			x = x.UTC()
			if _, ok := plans[x]; !ok {
				plans[x] = mustPlan(t, points, pol, x)
			}
			return plans[x]
		}
		for i, d := range ds {
			s := state{d.Keep, d.Tier}
			if d.NextTransition == nil {
				if later := at(now.AddDate(150, 0, 0))[i]; (state{later.Keep, later.Tier}) != s {
					t.Fatalf("case %d: %s has no next transition but changes from %+v to %+v", c, points[i].ID, s, later)
				}
				continue
			}
			checked++
			nt := *d.NextTransition
			if b := at(nt.Add(-time.Nanosecond))[i]; (state{b.Keep, b.Tier}) != s {
				t.Fatalf("case %d: %s changes before its next transition %s: %+v then %+v", c, points[i].ID, nt, s, b)
			}
			if a := at(nt)[i]; (state{a.Keep, a.Tier}) == s {
				t.Fatalf("case %d: %s does not change at its next transition %s: %+v", c, points[i].ID, nt, a)
			}
			if d.ExpiresAt != nil {
				ruleReasons := func(x Decision) int {
					n := 0
					for _, r := range x.Reasons {
						if r != ReasonLegalHold && !isDependency(r) {
							n++
						}
					}
					return n
				}
				if ruleReasons(at(d.ExpiresAt.Add(-time.Nanosecond))[i]) == 0 || ruleReasons(at(*d.ExpiresAt)[i]) != 0 {
					t.Fatalf("case %d: %s rule reasons do not end exactly at %s", c, points[i].ID, d.ExpiresAt)
				}
			}
		}
	}
	if checked < propertyCases {
		t.Fatalf("only %d transitions checked", checked)
	}
}

func isDependency(r string) bool {
	return len(r) > len(DependencyPrefix) && r[:len(DependencyPrefix)] == DependencyPrefix
}

// The planner agrees with a slow reference written directly from the rules
// with the time package's calendar (time.Date, ISOWeek, AddDate).
func TestPropertyMatchesReference(t *testing.T) {
	g := newGen(t, 6, referenceZones)
	compared := 0
	for c := range propertyCases {
		points, pol, now := g.instance(t)
		got := mustPlan(t, points, pol, now)
		want := referencePlan(points, pol, now)
		for i := range points {
			w, d := want[i], got[i]
			if d.Keep != w.keep || !slices.Equal(d.Reasons, w.reasons) || !sameInstant(d.ExpiresAt, w.expires) ||
				(w.tier != "" && d.Tier != w.tier) {
				t.Fatalf("case %d (%s, %+v, now %s): %s created %s:\n got %v %q %s %s\nwant %v %q %s %s",
					c, pol.Location, pol, now, points[i].ID, points[i].Created.In(pol.Location),
					d.Keep, d.Reasons, fmtInstant(d.ExpiresAt), d.Tier, w.keep, w.reasons, fmtInstant(nilIfZero(w.expires)), w.tier)
			}
			if d.Keep {
				compared++
			}
		}
	}
	if compared < propertyCases*5 {
		t.Fatalf("only %d kept points compared", compared)
	}
}

type refDecision struct {
	keep    bool
	reasons []string
	expires time.Time
	tier    Tier // "" when the reference cannot tell (cold instant in a gap or overlap)
}

func referencePlan(points []Point, p Policy, now time.Time) []refDecision {
	loc := p.Location
	n := len(points)
	out := make([]refDecision, n)
	type rule struct {
		name string
		at   time.Time
	}
	rules := make([][]rule, n)
	latest := func(i int, key func(Point) any) bool {
		for j, q := range points {
			if j != i && q.Kind != KindLog && q.Asset == points[i].Asset && key(q) == key(points[i]) && pointBefore(points[i], q) {
				return false
			}
		}
		return true
	}
	week := func(q Point) any { y, w := q.Created.In(loc).ISOWeek(); return [2]int{y, w} }
	month := func(q Point) any { y, m, _ := q.Created.In(loc).Date(); return [2]int{y, int(m)} }
	year := func(q Point) any { return q.Created.In(loc).Year() }
	for i, q := range points {
		lt := q.Created.In(loc)
		y, m, d := lt.Date()
		midnight := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, loc) }
		if q.Kind == KindLog {
			if p.LogDays > 0 {
				rules[i] = append(rules[i], rule{ReasonLog, midnight(y, m, d+p.LogDays+1)})
			}
			continue
		}
		if p.DailyDays > 0 {
			rules[i] = append(rules[i], rule{ReasonDaily, midnight(y, m, d+p.DailyDays+1)})
		}
		if p.WeeklyWeeks > 0 && latest(i, week) {
			toSunday := (7 - int(lt.Weekday())) % 7
			rules[i] = append(rules[i], rule{ReasonWeekly, midnight(y, m, d+toSunday+7*p.WeeklyWeeks+1)})
		}
		if p.MonthlyMonths > 0 && latest(i, month) {
			rules[i] = append(rules[i], rule{ReasonMonthly, midnight(y, m+time.Month(p.MonthlyMonths)+1, 1)})
		}
		if p.YearlyYears > 0 && latest(i, year) {
			rules[i] = append(rules[i], rule{ReasonYearly, midnight(y+p.YearlyYears+1, 1, 1)})
		}
	}

	// parent: the base, except that a log follows the previous log on the
	// same base when there is one.
	parent := make([]int, n)
	for i, q := range points {
		parent[i] = -1
		if q.Kind == KindFull || q.Base == "" {
			continue
		}
		for j, b := range points {
			if j != i && b.Asset == q.Asset && b.ID == q.Base {
				parent[i] = j
			}
		}
		if q.Kind != KindLog || parent[i] < 0 {
			continue
		}
		for j, l := range points {
			if l.Kind == KindLog && l.Asset == q.Asset && l.Base == q.Base && pointBefore(l, q) &&
				(parent[i] < 0 || points[parent[i]].Kind != KindLog || pointBefore(points[parent[i]], l)) {
				parent[i] = j
			}
		}
	}

	for i, q := range points {
		for _, r := range rules[i] {
			if now.Before(r.at) {
				out[i].keep = true
				out[i].reasons = append(out[i].reasons, r.name)
				if r.at.After(out[i].expires) {
					out[i].expires = r.at
				}
			}
		}
		if q.LegalHold {
			out[i].keep = true
			out[i].reasons = append(out[i].reasons, ReasonLegalHold)
		}
	}
	for changed := true; changed; {
		changed = false
		for i := range points {
			if out[i].keep && parent[i] >= 0 && !out[parent[i]].keep {
				out[parent[i]].keep, changed = true, true
			}
		}
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		switch {
		case pointBefore(points[a], points[b]):
			return -1
		case pointBefore(points[b], points[a]):
			return 1
		}
		return 0
	})
	for _, c := range order {
		if out[c].keep && parent[c] >= 0 {
			out[parent[c]].reasons = append(out[parent[c]].reasons, DependencyPrefix+points[c].ID)
		}
	}

	for i, q := range points {
		out[i].tier = TierWarm
		if !out[i].keep || p.ColdAfterDays == nil {
			continue
		}
		warm := p.WarmDays
		if warm == 0 {
			warm = DefaultWarmDays
		}
		days := max(*p.ColdAfterDays, warm)
		lt := q.Created.In(loc)
		cold := lt.AddDate(0, 0, days)
		// The reference has no rule of its own for a wall time that does not
		// exist or exists twice; it leaves those to the other tests.
		wallOf := func(x time.Time) [6]int {
			x = x.In(loc)
			return [6]int{x.Year(), int(x.Month()), x.Day(), x.Hour(), x.Minute(), x.Second()}
		}
		wy, wm, wd := lt.Date()
		intended := time.Date(wy, wm, wd+days, lt.Hour(), lt.Minute(), lt.Second(), 0, time.UTC)
		exact := wallOf(cold) == [6]int{intended.Year(), int(intended.Month()), intended.Day(), intended.Hour(), intended.Minute(), intended.Second()}
		ambiguous := false
		for _, shift := range []time.Duration{-2 * time.Hour, -time.Hour, -30 * time.Minute, 30 * time.Minute, time.Hour, 2 * time.Hour} {
			ambiguous = ambiguous || wallOf(cold.Add(shift)) == wallOf(cold)
		}
		switch {
		case !exact || ambiguous:
			out[i].tier = ""
		case !now.Before(cold):
			out[i].tier = TierCold
		}
	}
	return out
}
