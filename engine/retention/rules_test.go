package retention

import (
	"strings"
	"testing"
	"time"
	"unsafe"
)

func full(id string, created time.Time) Point {
	return Point{ID: id, Asset: "a", Kind: KindFull, Created: created}
}

func child(id string, k Kind, created time.Time, base string) Point {
	return Point{ID: id, Asset: "a", Kind: k, Created: created, Base: base}
}

func TestWeeklyBoundaries(t *testing.T) {
	la := loadLoc(t, "America/Los_Angeles")
	pol := Policy{Location: la, WeeklyWeeks: 1}
	points := []Point{
		full("f-wed", wall(la, 2017, 2, 8, 12, 0, 0)),
		// Sunday 23:59:59 local is Monday 07:59:59 UTC: it still ends the
		// week of 6-12 Feb, and as its latest point (an incremental) it is
		// that week's representative.
		child("i-sun", KindIncremental, wall(la, 2017, 2, 12, 23, 59, 59), "f-wed"),
		full("f-mon", wall(la, 2017, 2, 13, 0, 0, 0)),
	}
	endW7 := wall(la, 2017, 2, 20, 0, 0, 0) // Sunday 19 Feb ends
	endW8 := wall(la, 2017, 2, 27, 0, 0, 0) // Sunday 26 Feb ends
	runChecks(t, pol, points, []check{
		{
			name:    "Monday 00:00 starts a new week",
			now:     wall(la, 2017, 2, 13, 0, 0, 0),
			kept:    []string{"f-wed", "i-sun", "f-mon"},
			reasons: map[string][]string{"f-wed": deps("i-sun"), "i-sun": {"weekly"}, "f-mon": {"weekly"}},
			expires: map[string]time.Time{"f-wed": {}, "i-sun": endW7, "f-mon": endW8},
			next:    map[string]time.Time{"f-wed": endW7, "i-sun": endW7, "f-mon": endW8},
		},
		{
			name: "last second of the keep week",
			now:  wall(la, 2017, 2, 19, 23, 59, 59),
			kept: []string{"f-wed", "i-sun", "f-mon"},
		},
		{
			name: "Monday 00:00 after the keep week",
			now:  endW7,
			kept: []string{"f-mon"},
		},
		{
			name: "Sunday 23:59:59 of the next keep week",
			now:  wall(la, 2017, 2, 26, 23, 59, 59),
			kept: []string{"f-mon"},
		},
		{name: "all gone", now: endW8, kept: nil},
	})

	// A Wednesday full that is not the latest of its week has no reason at
	// all with only the weekly rule, even on the day it is created.
	runChecks(t, pol, points[:3], []check{{
		name:    "non-representative",
		now:     wall(la, 2017, 2, 8, 12, 0, 1),
		kept:    []string{"f-wed", "i-sun", "f-mon"},
		reasons: map[string][]string{"f-wed": deps("i-sun")},
	}})
}

func TestMonthlyBoundaryOnFallBack(t *testing.T) {
	// 31 Oct 2021 is the last Sunday of October: London falls back at 02:00
	// BST, so the day is 25 hours long and October ends at 00:00 GMT.
	lon := loadLoc(t, "Europe/London")
	pol := Policy{Location: lon, MonthlyMonths: 1}
	points := []Point{
		full("f-0915", wall(lon, 2021, 9, 15, 12, 0, 0)),
		full("f-0930", wall(lon, 2021, 9, 30, 23, 30, 0)), // 22:30 UTC, latest of September
		full("f-1001", wall(lon, 2021, 10, 1, 0, 0, 0)),   // 23:00 UTC on 30 Sep, but October locally
	}
	endOct := utc(2021, 11, 1, 0, 0, 0)
	endNov := utc(2021, 12, 1, 0, 0, 0)
	runChecks(t, pol, points, []check{
		{
			name:    "representatives",
			now:     utc(2021, 10, 1, 12, 0, 0),
			kept:    []string{"f-0930", "f-1001"},
			reasons: map[string][]string{"f-0930": {"monthly"}, "f-1001": {"monthly"}, "f-0915": nil},
			expires: map[string]time.Time{"f-0930": endOct, "f-1001": endNov},
		},
		{name: "23:30 GMT on the long last day", now: utc(2021, 10, 31, 23, 30, 0), kept: []string{"f-0930", "f-1001"}},
		{name: "1 Nov 00:00 GMT", now: endOct, kept: []string{"f-1001"}},
	})
}

func TestMonthlyAndWeeklyBoundaryOnSpringForward(t *testing.T) {
	// 31 Mar 2024 is a Sunday and London's spring-forward day (23 hours):
	// both the month and the ISO week end at 00:00 BST = 23:00 UTC.
	lon := loadLoc(t, "Europe/London")
	end := utc(2024, 3, 31, 23, 0, 0)

	monthly := []Point{full("m-0220", wall(lon, 2024, 2, 20, 10, 0, 0))}
	runChecks(t, Policy{Location: lon, MonthlyMonths: 1}, monthly, []check{
		{name: "monthly 22:59:59Z", now: utc(2024, 3, 31, 22, 59, 59), kept: []string{"m-0220"},
			expires: map[string]time.Time{"m-0220": end}, next: map[string]time.Time{"m-0220": end}},
		{name: "monthly 23:00Z", now: end, kept: nil},
	})

	weekly := []Point{full("w-0324", wall(lon, 2024, 3, 24, 20, 0, 0))}
	runChecks(t, Policy{Location: lon, WeeklyWeeks: 1}, weekly, []check{
		{name: "weekly 22:59:59Z", now: utc(2024, 3, 31, 22, 59, 59), kept: []string{"w-0324"},
			expires: map[string]time.Time{"w-0324": end}},
		{name: "weekly 23:00Z", now: end, kept: nil},
	})
}

func TestYearlyBoundary(t *testing.T) {
	la := loadLoc(t, "America/Los_Angeles")
	pol := Policy{Location: la, YearlyYears: 1}
	points := []Point{
		full("f-1230", wall(la, 2016, 12, 30, 12, 0, 0)),
		full("f-1231", wall(la, 2016, 12, 31, 23, 30, 0)), // 2017 in UTC, 2016 locally
		full("f-0101", wall(la, 2017, 1, 1, 0, 30, 0)),
	}
	end2017 := wall(la, 2018, 1, 1, 0, 0, 0)
	end2018 := wall(la, 2019, 1, 1, 0, 0, 0)
	runChecks(t, pol, points, []check{
		{
			name:    "mid 2017",
			now:     wall(la, 2017, 6, 1, 0, 0, 0),
			kept:    []string{"f-1231", "f-0101"},
			reasons: map[string][]string{"f-1231": {"yearly"}, "f-0101": {"yearly"}},
			expires: map[string]time.Time{"f-1231": end2017, "f-0101": end2018, "f-1230": {}},
		},
		{name: "31 Dec 2017 23:59:59", now: wall(la, 2017, 12, 31, 23, 59, 59), kept: []string{"f-1231", "f-0101"}},
		{name: "1 Jan 2018 00:00", now: end2017, kept: []string{"f-0101"}},
		{name: "1 Jan 2019 00:00", now: end2018, kept: nil},
	})
}

func TestDailyAcrossDST(t *testing.T) {
	la := loadLoc(t, "America/Los_Angeles")
	pol := Policy{Location: la, DailyDays: 2}
	// Spring forward on 12 Mar 2017: kept through 12 Mar, expired from
	// 13 Mar 00:00 PDT = 07:00 UTC (three 24h days after 10 Mar 00:00 PST
	// would wrongly give 08:00 UTC).
	runChecks(t, pol, []Point{
		full("d-0310", wall(la, 2017, 3, 10, 12, 0, 0)),
		full("d-0312", wall(la, 2017, 3, 12, 3, 30, 0)), // just after the gap
	}, []check{
		{name: "spring: 06:59:59Z", now: utc(2017, 3, 13, 6, 59, 59), kept: []string{"d-0310", "d-0312"},
			expires: map[string]time.Time{"d-0310": utc(2017, 3, 13, 7, 0, 0), "d-0312": utc(2017, 3, 15, 7, 0, 0)}},
		{name: "spring: 07:00Z", now: utc(2017, 3, 13, 7, 0, 0), kept: []string{"d-0312"}},
	})
	// Fall back on 5 Nov 2017: kept through 5 Nov, expired from 6 Nov 00:00
	// PST = 08:00 UTC. 01:30 happens twice on 5 Nov; both belong to 5 Nov.
	runChecks(t, pol, []Point{
		full("d-1103", wall(la, 2017, 11, 3, 12, 0, 0)),
		full("d-1105a", utc(2017, 11, 5, 8, 30, 0)), // 01:30 PDT
		full("d-1105b", utc(2017, 11, 5, 9, 30, 0)), // 01:30 PST
	}, []check{
		{name: "fall: 07:59:59Z", now: utc(2017, 11, 6, 7, 59, 59), kept: []string{"d-1103", "d-1105a", "d-1105b"},
			next: map[string]time.Time{"d-1103": utc(2017, 11, 6, 8, 0, 0), "d-1105a": utc(2017, 11, 8, 8, 0, 0), "d-1105b": utc(2017, 11, 8, 8, 0, 0)}},
		{name: "fall: 08:00Z", now: utc(2017, 11, 6, 8, 0, 0), kept: []string{"d-1105a", "d-1105b"}},
	})
}

// Zones whose clocks change at midnight: the day's first instant does not
// exist (gap) or a day ends twice (overlap). Kept "through the end of the day"
// means until the clock can no longer show that day.
func TestDailyMidnightTransitions(t *testing.T) {
	scl := loadLoc(t, "America/Santiago")
	pol := Policy{Location: scl, DailyDays: 1}
	// 8 Sep 2019 starts at 01:00 -03 (04:00 UTC): 00:00 never happens.
	runChecks(t, pol, []Point{full("s-0906", utc(2019, 9, 6, 16, 0, 0))}, []check{
		{name: "gap: 03:59:59Z", now: utc(2019, 9, 8, 3, 59, 59), kept: []string{"s-0906"},
			expires: map[string]time.Time{"s-0906": utc(2019, 9, 8, 4, 0, 0)}},
		{name: "gap: 04:00Z", now: utc(2019, 9, 8, 4, 0, 0), kept: nil},
	})
	// 6 Apr 2019 ends twice: 23:59:59 -03 (02:59:59 UTC), then the clock goes
	// back to 23:00 -04 and 6 Apr ends again at 04:00 UTC.
	runChecks(t, pol, []Point{full("s-0405", utc(2019, 4, 5, 15, 0, 0))}, []check{
		{name: "overlap: second 23:30 of 6 Apr", now: utc(2019, 4, 7, 3, 30, 0), kept: []string{"s-0405"},
			expires: map[string]time.Time{"s-0405": utc(2019, 4, 7, 4, 0, 0)}},
		{name: "overlap: 7 Apr 00:00", now: utc(2019, 4, 7, 4, 0, 0), kept: nil},
	})

	// Samoa skipped 30 Dec 2011: 29 Dec 23:59:59 -10 was followed by
	// 31 Dec 00:00 +14 (10:00 UTC). Keeping through 29 Dec and keeping
	// through the day that never happened both end then.
	apia := loadLoc(t, "Pacific/Apia")
	skip := utc(2011, 12, 30, 10, 0, 0)
	runChecks(t, Policy{Location: apia, DailyDays: 1}, []Point{
		full("ws-1228", utc(2011, 12, 28, 22, 0, 0)), // 28 Dec 12:00 -10
		full("ws-1229", utc(2011, 12, 29, 22, 0, 0)), // 29 Dec 12:00 -10
	}, []check{
		{name: "Apia before the jump", now: skip.Add(-time.Second), kept: []string{"ws-1228", "ws-1229"},
			expires: map[string]time.Time{"ws-1228": skip, "ws-1229": skip}},
		{name: "Apia after the jump", now: skip, kept: nil},
	})
}

func TestLogs(t *testing.T) {
	la := loadLoc(t, "America/Los_Angeles")
	pol := Policy{Location: la, DailyDays: 1, WeeklyWeeks: 4, MonthlyMonths: 12, LogDays: 2}
	points := []Point{
		full("f", wall(la, 2017, 2, 8, 12, 0, 0)),
		child("d", KindDifferential, wall(la, 2017, 2, 9, 21, 0, 0), "f"),
		child("l3", KindLog, wall(la, 2017, 2, 10, 10, 0, 0), "d"),
		child("l1", KindLog, wall(la, 2017, 2, 11, 10, 0, 0), "f"),
		// The latest point of the week and of the month, but a log: only
		// log_days applies. d is the representative.
		child("l2", KindLog, wall(la, 2017, 2, 12, 23, 0, 0), "f"),
	}
	dWeekly := utc(2017, 3, 13, 7, 0, 0)      // Sunday 12 Feb + 4 weeks = 12 Mar, the spring-forward day
	dMonthly := wall(la, 2018, 3, 1, 0, 0, 0) // February + 12 months
	runChecks(t, pol, points, []check{
		{
			name: "13 Feb 12:00",
			now:  wall(la, 2017, 2, 13, 12, 0, 0),
			kept: []string{"f", "d", "l1", "l2"},
			reasons: map[string][]string{
				"f":  deps("d", "l1"),
				"d":  {"weekly", "monthly"},
				"l1": cat([]string{"log"}, deps("l2")),
				"l2": {"log"},
				"l3": nil,
			},
			expires: map[string]time.Time{"d": dMonthly, "l2": wall(la, 2017, 2, 15, 0, 0, 0), "l1": wall(la, 2017, 2, 14, 0, 0, 0)},
			next:    map[string]time.Time{"l1": wall(la, 2017, 2, 15, 0, 0, 0), "f": dMonthly},
		},
		{
			// l2 replays on top of l1: the earlier log of the same base is
			// kept after its own log_days lapsed.
			name:    "14 Feb 12:00",
			now:     wall(la, 2017, 2, 14, 12, 0, 0),
			kept:    []string{"f", "d", "l1", "l2"},
			reasons: map[string][]string{"l1": deps("l2"), "l2": {"log"}, "f": deps("d", "l1")},
			expires: map[string]time.Time{"l1": {}},
		},
		{
			name:    "15 Feb 00:00",
			now:     wall(la, 2017, 2, 15, 0, 0, 0),
			kept:    []string{"f", "d"},
			reasons: map[string][]string{"f": deps("d"), "d": {"weekly", "monthly"}},
		},
		{
			name:    "after the weekly rule",
			now:     dWeekly,
			kept:    []string{"f", "d"},
			reasons: map[string][]string{"d": {"monthly"}},
		},
	})

	// daily_days never applies to logs, and a log is never a weekly
	// representative: with log_days 0 it has no reason at all.
	runChecks(t, Policy{Location: la, DailyDays: 3, WeeklyWeeks: 1}, []Point{
		full("f2", wall(la, 2017, 2, 13, 0, 0, 0)),
		child("log", KindLog, wall(la, 2017, 2, 13, 6, 0, 0), "f2"),
	}, []check{{
		name:    "log_days 0",
		now:     wall(la, 2017, 2, 13, 12, 0, 0),
		kept:    []string{"f2"},
		reasons: map[string][]string{"f2": {"daily", "weekly"}, "log": nil},
	}})
}

func TestLegalHold(t *testing.T) {
	la := loadLoc(t, "America/Los_Angeles")
	pol := Policy{Location: la, DailyDays: 1}
	points := []Point{
		full("f", wall(la, 2017, 2, 1, 12, 0, 0)),
		child("i1", KindIncremental, wall(la, 2017, 2, 2, 12, 0, 0), "f"),
		child("i2", KindIncremental, wall(la, 2017, 2, 3, 12, 0, 0), "i1"),
		child("i3", KindIncremental, wall(la, 2017, 2, 4, 12, 0, 0), "i2"),
		full("f2", wall(la, 2017, 2, 5, 12, 0, 0)),
	}
	points[2].LegalHold = true // i2
	points[4].LegalHold = true // f2
	runChecks(t, pol, points, []check{
		{
			// f2 is created after now: planned like any point, never expired
			// for being early.
			name: "while i3 is kept",
			now:  wall(la, 2017, 2, 4, 13, 0, 0),
			kept: []string{"f", "i1", "i2", "i3", "f2"},
			reasons: map[string][]string{
				"i2": cat([]string{"daily", "legal_hold"}, deps("i3")),
				"i1": deps("i2"),
				"f":  deps("i1"),
			},
			expires: map[string]time.Time{"i2": wall(la, 2017, 2, 5, 0, 0, 0), "i1": {}},
			next:    map[string]time.Time{"i2": {}, "i1": {}, "f": {}, "i3": wall(la, 2017, 2, 6, 0, 0, 0)},
		},
		{
			name: "a month later",
			now:  wall(la, 2017, 3, 1, 0, 0, 0),
			kept: []string{"f", "i1", "i2", "f2"},
			reasons: map[string][]string{
				"i2": {"legal_hold"}, "i1": deps("i2"), "f": deps("i1"), "f2": {"legal_hold"}, "i3": nil,
			},
			expires: map[string]time.Time{"i2": {}, "f2": {}},
			next:    map[string]time.Time{"i2": {}, "f": {}, "f2": {}},
		},
		{
			name: "a century later",
			now:  wall(la, 2117, 3, 1, 0, 0, 0),
			kept: []string{"f", "i1", "i2", "f2"},
		},
	})
}

func TestIncrementalChains(t *testing.T) {
	la := loadLoc(t, "America/Los_Angeles")
	pol := Policy{Location: la, DailyDays: 2}
	points := []Point{
		full("f", wall(la, 2017, 2, 5, 12, 0, 0)),
		child("i1", KindIncremental, wall(la, 2017, 2, 6, 12, 0, 0), "f"),
		child("i2", KindIncremental, wall(la, 2017, 2, 7, 12, 0, 0), "i1"),
		child("i3", KindIncremental, wall(la, 2017, 2, 8, 12, 0, 0), "i2"),
		// Its parent was deleted: nothing more can be kept for it.
		child("orphan", KindIncremental, wall(la, 2017, 2, 8, 13, 0, 0), "gone"),
		full("f2", wall(la, 2017, 2, 9, 9, 0, 0)),
		child("i4", KindIncremental, wall(la, 2017, 2, 9, 11, 0, 0), "f2"),
	}
	end10 := wall(la, 2017, 2, 11, 0, 0, 0)
	runChecks(t, pol, points, []check{
		{
			name: "9 Feb 12:00",
			now:  wall(la, 2017, 2, 9, 12, 0, 0),
			kept: []string{"f", "i1", "i2", "i3", "orphan", "f2", "i4"},
			reasons: map[string][]string{
				"f":      deps("i1"),
				"i1":     deps("i2"),
				"i2":     cat([]string{"daily"}, deps("i3")),
				"i3":     {"daily"},
				"orphan": {"daily"},
				"f2":     cat([]string{"daily"}, deps("i4")),
				"i4":     {"daily"},
			},
			expires: map[string]time.Time{"f": {}, "i1": {}, "i2": wall(la, 2017, 2, 10, 0, 0, 0), "i3": end10},
			// The whole chain lives exactly as long as its newest member.
			next: map[string]time.Time{"f": end10, "i1": end10, "i2": end10, "i3": end10},
		},
		{name: "10 Feb 23:59:59", now: end10.Add(-time.Second), kept: []string{"f", "i1", "i2", "i3", "orphan", "f2", "i4"}},
		{name: "11 Feb 00:00", now: end10, kept: []string{"f2", "i4"}},
	})
}

func TestTiers(t *testing.T) {
	la := loadLoc(t, "America/Los_Angeles")

	t.Run("warm to cold", func(t *testing.T) {
		pol := Policy{Location: la, YearlyYears: 1, WarmDays: 30, ColdAfterDays: ptr(60)}
		points := []Point{full("y", wall(la, 2017, 1, 1, 10, 0, 0))}
		cold := wall(la, 2017, 3, 2, 10, 0, 0)
		expiry := wall(la, 2019, 1, 1, 0, 0, 0)
		runChecks(t, pol, points, []check{
			{name: "warm", now: cold.Add(-time.Second), kept: []string{"y"},
				tiers: map[string]Tier{"y": TierWarm}, next: map[string]time.Time{"y": cold}},
			{name: "cold", now: cold, kept: []string{"y"},
				tiers: map[string]Tier{"y": TierCold}, next: map[string]time.Time{"y": expiry}},
			{name: "expired", now: expiry, kept: nil, tiers: map[string]Tier{"y": TierWarm}},
		})
	})

	t.Run("calendar days across DST", func(t *testing.T) {
		// 1 Mar 10:00 PST + 30 days is 31 Mar 10:00 PDT = 17:00 UTC, one
		// hour earlier than 30*24h.
		pol := Policy{Location: la, YearlyYears: 1, WarmDays: 30, ColdAfterDays: ptr(30)}
		points := []Point{full("p", wall(la, 2017, 3, 1, 10, 0, 0))}
		runChecks(t, pol, points, []check{
			{name: "16:59:59Z", now: utc(2017, 3, 31, 16, 59, 59), kept: []string{"p"},
				tiers: map[string]Tier{"p": TierWarm}, next: map[string]time.Time{"p": utc(2017, 3, 31, 17, 0, 0)}},
			{name: "17:00Z", now: utc(2017, 3, 31, 17, 0, 0), kept: []string{"p"}, tiers: map[string]Tier{"p": TierCold}},
		})
	})

	t.Run("never cold when not kept", func(t *testing.T) {
		pol := Policy{Location: la, DailyDays: 10, WarmDays: 5, ColdAfterDays: ptr(5)}
		points := []Point{full("p", wall(la, 2017, 2, 1, 12, 0, 0))}
		cold := wall(la, 2017, 2, 6, 12, 0, 0)
		expiry := wall(la, 2017, 2, 12, 0, 0, 0)
		runChecks(t, pol, points, []check{
			{name: "warm", now: wall(la, 2017, 2, 3, 0, 0, 0), kept: []string{"p"},
				tiers: map[string]Tier{"p": TierWarm}, next: map[string]time.Time{"p": cold}},
			{name: "cold", now: wall(la, 2017, 2, 7, 0, 0, 0), kept: []string{"p"},
				tiers: map[string]Tier{"p": TierCold}, next: map[string]time.Time{"p": expiry}},
			{name: "expired", now: expiry, kept: nil,
				tiers: map[string]Tier{"p": TierWarm}, next: map[string]time.Time{"p": {}}},
		})

		// Expiring before the cold date: the cold date is no transition.
		short := Policy{Location: la, DailyDays: 2, WarmDays: 5, ColdAfterDays: ptr(5)}
		runChecks(t, short, points, []check{{name: "expires first", now: wall(la, 2017, 2, 2, 0, 0, 0), kept: []string{"p"},
			next: map[string]time.Time{"p": wall(la, 2017, 2, 4, 0, 0, 0)}}})
	})

	t.Run("warm days bound cold", func(t *testing.T) {
		points := []Point{{ID: "h", Asset: "a", Kind: KindFull, Created: wall(la, 2017, 1, 1, 10, 0, 0), LegalHold: true}}
		// cold_after_days below warm_days: warm_days wins.
		runChecks(t, Policy{Location: la, DailyDays: 1, WarmDays: 30, ColdAfterDays: ptr(10)}, points, []check{
			{name: "clamped", now: wall(la, 2017, 1, 20, 0, 0, 0), kept: []string{"h"},
				tiers: map[string]Tier{"h": TierWarm}, next: map[string]time.Time{"h": wall(la, 2017, 1, 31, 10, 0, 0)}},
		})
		// warm_days 0 means the default of 90 days.
		runChecks(t, Policy{Location: la, DailyDays: 1, ColdAfterDays: ptr(30)}, points, []check{
			{name: "default warm", now: wall(la, 2017, 3, 31, 0, 0, 0), kept: []string{"h"},
				tiers: map[string]Tier{"h": TierWarm}, next: map[string]time.Time{"h": wall(la, 2017, 4, 1, 10, 0, 0)}},
			{name: "default warm over", now: wall(la, 2017, 4, 1, 10, 0, 0), kept: []string{"h"},
				tiers: map[string]Tier{"h": TierCold}, next: map[string]time.Time{"h": {}}},
		})
		// No cold_after_days: never cold, and a legal hold never changes.
		runChecks(t, Policy{Location: la, DailyDays: 1, WarmDays: 1}, points, []check{
			{name: "no cold", now: wall(la, 2030, 1, 1, 0, 0, 0), kept: []string{"h"},
				tiers: map[string]Tier{"h": TierWarm}, next: map[string]time.Time{"h": {}}},
		})
	})
}

func TestPackTier(t *testing.T) {
	for _, c := range []struct {
		tiers []Tier
		want  Tier
	}{
		{nil, TierWarm},
		{[]Tier{}, TierWarm},
		{[]Tier{TierCold}, TierCold},
		{[]Tier{TierCold, TierCold, TierCold}, TierCold},
		{[]Tier{TierCold, TierWarm, TierCold}, TierWarm},
		{[]Tier{TierWarm}, TierWarm},
	} {
		if got := PackTier(c.tiers); got != c.want {
			t.Errorf("PackTier(%v) = %s, want %s", c.tiers, got, c.want)
		}
	}
}

func TestPlanRejectsBadInput(t *testing.T) {
	la := loadLoc(t, "America/Los_Angeles")
	good := Policy{Location: la, DailyDays: 7}
	now := wall(la, 2017, 3, 1, 0, 0, 0)
	p := func(id, asset string, k Kind) Point {
		return Point{ID: id, Asset: asset, Kind: k, Created: wall(la, 2017, 2, 1, 0, 0, 0)}
	}
	for _, c := range []struct {
		name   string
		pol    Policy
		points []Point
		want   string
	}{
		{"no location", Policy{DailyDays: 1}, nil, "location"},
		{"negative daily", Policy{Location: la, DailyDays: -1}, nil, "daily_days"},
		{"negative weekly", Policy{Location: la, WeeklyWeeks: -1}, nil, "weekly_weeks"},
		{"huge yearly", Policy{Location: la, YearlyYears: MaxYears + 1}, nil, "yearly_years"},
		{"negative cold", Policy{Location: la, ColdAfterDays: ptr(-1)}, nil, "cold_after_days"},
		{"unknown kind", good, []Point{p("x", "a", "snapshot")}, "unknown kind"},
		{"empty id", good, []Point{p("", "a", KindFull)}, "no ID"},
		{"duplicate id", good, []Point{p("x", "a", KindFull), p("y", "a", KindFull), p("x", "a", KindLog)}, "twice"},
		{"year 10000", good, []Point{{ID: "x", Kind: KindFull, Created: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}, "outside years"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, workers := range []int{1, 2} {
				_, err := PlanParallel(c.points, c.pol, now, workers)
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("workers %d: err = %v, want it to mention %q", workers, err, c.want)
				}
			}
		})
	}

	// The same ID in two assets is two points.
	ds, err := Plan([]Point{p("x", "a", KindFull), p("x", "b", KindFull)}, good, wall(la, 2017, 2, 2, 0, 0, 0))
	if err != nil || !ds[0].Keep || !ds[1].Keep {
		t.Fatalf("same ID in two assets: %v %+v", err, ds)
	}
	if ds, err := Plan(nil, good, now); err != nil || len(ds) != 0 {
		t.Fatalf("no points: %v %v", ds, err)
	}
}

// Plans over shuffled input write decisions in random order; one cache line
// per decision keeps that affordable (see BenchmarkPlan/shuffled).
func TestDecisionIsOneCacheLine(t *testing.T) {
	if s := unsafe.Sizeof(Decision{}); s != 64 {
		t.Fatalf("Decision is %d bytes", s)
	}
}
