package retention

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is the kind of a recovery point.
type Kind string

const (
	KindFull         Kind = "full"
	KindDifferential Kind = "differential"
	KindIncremental  Kind = "incremental"
	// KindLog is a transaction-log or archive-log backup. Only LogDays and
	// legal hold keep it, apart from the logs that need it.
	KindLog Kind = "log"
)

// Point is one recovery point as the planner needs to see it.
type Point struct {
	// ID must be unique within its asset.
	ID string
	// Asset groups points: planning, representatives and dependencies are
	// per asset, so points of many assets can be passed in one call.
	Asset string
	Kind  Kind
	// Created is the completion time. Its calendar day, week, month and year
	// are taken in the policy's time zone.
	Created time.Time
	// Base is what the point is restored on top of: a differential's full,
	// an incremental's parent (the previous point of its chain), a log's full,
	// differential or incremental. Ignored for a full.
	Base      string
	LegalHold bool
}

// DefaultWarmDays is the warm period used when Policy.WarmDays is 0.
const DefaultWarmDays = 90

// Planner limits. They are far above what the API accepts; they exist so that
// date arithmetic cannot overflow on hand-built input.
const (
	MaxDays   = 109575 // 300 years
	MaxWeeks  = 15654
	MaxMonths = 3600
	MaxYears  = 300
)

// Policy is the retention and tiering part of a backup policy.
type Policy struct {
	// Location is the policy time zone. Required.
	Location *time.Location
	// Retention counts; zero disables a rule.
	DailyDays, WeeklyWeeks, MonthlyMonths, YearlyYears, LogDays int
	// WarmDays is the minimum time a point stays warm (DefaultWarmDays when 0).
	WarmDays int
	// ColdAfterDays, when set, moves a kept point to cold this many days after
	// creation, but never before WarmDays. nil: never cold.
	ColdAfterDays *int
}

// Validate reports the first field that the planner cannot work with.
func (p Policy) Validate() error {
	if p.Location == nil {
		return errors.New("retention: policy has no location")
	}
	for _, f := range []struct {
		name string
		v    int
		max  int
	}{
		{"daily_days", p.DailyDays, MaxDays},
		{"weekly_weeks", p.WeeklyWeeks, MaxWeeks},
		{"monthly_months", p.MonthlyMonths, MaxMonths},
		{"yearly_years", p.YearlyYears, MaxYears},
		{"log_days", p.LogDays, MaxDays},
		{"warm_days", p.WarmDays, MaxDays},
	} {
		if f.v < 0 || f.v > f.max {
			return fmt.Errorf("retention: %s = %d is outside [0, %d]", f.name, f.v, f.max)
		}
	}
	if c := p.ColdAfterDays; c != nil && (*c < 0 || *c > MaxDays) {
		return fmt.Errorf("retention: cold_after_days = %d is outside [0, %d]", *c, MaxDays)
	}
	return nil
}

// Tier is the storage tier a point belongs in.
type Tier string

const (
	TierWarm Tier = "warm"
	TierCold Tier = "cold"
)

// Reasons a point is kept.
const (
	ReasonDaily     = "daily"
	ReasonWeekly    = "weekly"
	ReasonMonthly   = "monthly"
	ReasonYearly    = "yearly"
	ReasonLog       = "log"
	ReasonLegalHold = "legal_hold"
	// DependencyPrefix is followed by the ID of a kept point that needs this one.
	DependencyPrefix = "dependency:"
)

// Decision is the plan for one point at the planned instant.
// It is 64 bytes, one cache line, because a plan over shuffled input writes
// its decisions in random order.
type Decision struct {
	Keep bool
	// Reasons lists every reason that keeps the point, in the order daily,
	// weekly, monthly, yearly, log, legal_hold, then one dependency:<id> per
	// kept point that needs this one directly. Empty when not kept.
	Reasons []string
	Tier    Tier
	// ExpiresAt is when the current rule reasons (all but legal hold and
	// dependencies) lapse: the first instant at which none of them keeps the
	// point. nil when no rule reason applies.
	ExpiresAt *time.Time
	// NextTransition is the next instant after now at which Keep or Tier
	// changes, assuming no new points. nil when that never happens.
	NextTransition *time.Time
}

// PackTier applies the pack rule: a pack moves to the cold storage class only
// when every point referencing it is cold, because reading a warm point must
// never need a retrieval from cold. Pass the tiers of the points that still
// reference the pack (expired points are about to be deleted and do not
// count). A pack no point references stays warm: it is garbage, not archive.
func PackTier(pointTiers []Tier) Tier {
	if len(pointTiers) == 0 {
		return TierWarm
	}
	for _, t := range pointTiers {
		if t != TierCold {
			return TierWarm
		}
	}
	return TierCold
}

// Earliest and latest creation instants accepted: the calendar code works
// on proleptic Gregorian years 1 to 9999.
var (
	minCreated = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).Unix() + 2*secPerDay
	maxCreated = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC).Unix()
)

// Plan decides every point at instant now. The result is aligned with
// points: Plan(points, ...)[i] is the decision for points[i]. It fails
// without deciding anything on input it cannot plan safely: an invalid
// policy, an unknown kind, an empty ID, an ID used twice within an asset
// (a decision by ID would then be ambiguous), or a creation time outside
// years 1 to 9999.
func Plan(points []Point, p Policy, now time.Time) ([]Decision, error) {
	return plan(points, p, now, 1)
}

// PlanParallel is Plan with the assets spread over workers goroutines
// (GOMAXPROCS when workers <= 0). Assets are independent, so the result is
// identical to Plan's. Grouping the points by asset stays sequential and the
// work is mostly memory traffic, so the gain is modest: about 10-25% with two
// cores on BenchmarkPlan.
func PlanParallel(points []Point, p Policy, now time.Time, workers int) ([]Decision, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	return plan(points, p, now, workers)
}

// compiled is the per-call state shared read-only by the workers.
type compiled struct {
	loc                                 *time.Location
	zone                                zoneTable
	daily, weekly, monthly, yearly, log int64
	coldDays                            int64 // < 0: never cold
	nowSec                              int64
	nowNsec                             int32
}

func compile(points []Point, p Policy, now time.Time) (*compiled, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := &compiled{
		loc:      p.Location,
		daily:    int64(p.DailyDays),
		weekly:   int64(p.WeeklyWeeks),
		monthly:  int64(p.MonthlyMonths),
		yearly:   int64(p.YearlyYears),
		log:      int64(p.LogDays),
		coldDays: -1,
		nowSec:   now.Unix(),
		nowNsec:  int32(now.Nanosecond()),
	}
	if p.ColdAfterDays != nil {
		warm := p.WarmDays
		if warm == 0 {
			warm = DefaultWarmDays
		}
		c.coldDays = int64(max(*p.ColdAfterDays, warm))
	}
	lo, hi := int64(keepForever), int64(keepNone)
	for i := range points {
		s := points[i].Created.Unix()
		lo, hi = min(lo, s), max(hi, s)
	}
	if len(points) == 0 {
		lo, hi = c.nowSec, c.nowSec
	}
	if lo < minCreated || hi > maxCreated {
		for i := range points {
			if s := points[i].Created.Unix(); s < minCreated || s > maxCreated {
				return nil, fmt.Errorf("retention: point %q: creation time %s is outside years 1 to 9999", points[i].ID, points[i].Created)
			}
		}
	}
	// The table must reach the latest instant any rule or tier move can land
	// on; overestimate each span rather than compute it exactly.
	span := max(c.daily, c.log, c.coldDays) + 2
	span = max(span, 7*c.weekly+14, 31*c.monthly+62, 366*c.yearly+732)
	c.zone = newZoneTable(p.Location, lo-3*secPerDay, hi+(span+3)*secPerDay)
	return c, nil
}

func plan(points []Point, p Policy, now time.Time, workers int) ([]Decision, error) {
	c, err := compile(points, p, now)
	if err != nil {
		return nil, err
	}
	out := make([]Decision, len(points))
	if len(points) == 0 {
		return out, nil
	}
	if len(points) > maxPoints {
		return nil, fmt.Errorf("retention: %d points exceed one call's limit of %d", len(points), maxPoints)
	}
	order, bounds := groupByAsset(points)
	ngroups := len(bounds) - 1
	workers = min(workers, ngroups)
	if workers <= 1 {
		w := newWorker(c)
		for g := range ngroups {
			if err := w.plan(points, order[bounds[g]:bounds[g+1]], out); err != nil {
				return nil, err
			}
		}
		return out, nil
	}

	// Groups are handed out in batches to keep the shared counter cold; the
	// first error in group order is reported so failures are deterministic.
	const batch = 32
	var next atomic.Int64
	errs := make([]error, ngroups)
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			w := newWorker(c)
			for !failed.Load() {
				start := int(next.Add(batch)) - batch
				if start >= ngroups {
					return
				}
				for g := start; g < min(start+batch, ngroups); g++ {
					if err := w.plan(points, order[bounds[g]:bounds[g+1]], out); err != nil {
						errs[g] = err
						failed.Store(true)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() {
		// Batches are claimed in group order and a claimed batch runs to its
		// end unless it fails itself, so every group before the lowest failing
		// one did run: that error is the one Plan would return.
		for _, err := range errs {
			if err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// maxPoints keeps point indices in int32, which halves the grouping arrays.
const maxPoints = 1<<31 - 1

// groupByAsset returns the point indices grouped by asset (groups in order of
// first appearance, input order within a group) and the group boundaries.
// Inputs usually arrive ordered by asset, so a run of equal assets skips the
// map.
func groupByAsset(points []Point) (order []int32, bounds []int32) {
	gid := make([]int32, len(points))
	ids := make(map[string]int32)
	var counts []int32
	prev, prevID := "", int32(-1)
	for i := range points {
		a := points[i].Asset
		if prevID < 0 || a != prev {
			g, ok := ids[a]
			if !ok {
				g = int32(len(counts))
				ids[a] = g
				counts = append(counts, 0)
			}
			prev, prevID = a, g
		}
		gid[i] = prevID
		counts[prevID]++
	}
	bounds = make([]int32, len(counts)+1)
	for g, n := range counts {
		bounds[g+1] = bounds[g] + n
	}
	fill := counts // reused as the write cursor of each group
	copy(fill, bounds[:len(counts)])
	order = make([]int32, len(points))
	for i, g := range gid {
		order[fill[g]] = int32(i)
		fill[g]++
	}
	return order, bounds
}
