// Package retention is the retention and tiering planner: a pure function
// from a set of recovery points, a policy and an instant ("now") to a
// decision per point. It reads no clock and does no I/O, so the retention
// reconciler can run it on any replica, any number of times, and get the
// same answer.
//
// # Calendar
//
// Every calendar notion (day, ISO week, month, year) is taken in the
// policy's time zone. A point belongs to the local calendar day on which it
// was created. A rule that keeps a point "through day X" keeps it until the
// first instant after which the local date is never X or earlier again; in
// the usual case that is local midnight at the start of day X+1, so the point
// is kept through 23:59:59.999999999 of day X and is expired from 00:00:00 of
// the next day. All arithmetic is calendar arithmetic on local dates, never
// multiples of 24 hours, so a day that is 23 or 25 hours long (or a zone that
// changes its clocks at midnight) moves the instant, not the date.
//
// # Rules
//
// A zero count disables its rule. The rules are evaluated per asset.
//
//   - daily: a full, differential or incremental point created on day D is
//     kept through day D + DailyDays.
//   - weekly: weeks are ISO weeks, Monday to Sunday. The latest point of each
//     week is kept through the Sunday that ends the week plus WeeklyWeeks*7
//     days.
//   - monthly: the latest point of each calendar month is kept through the
//     last day of the MonthlyMonths-th calendar month after its month (a
//     January point with MonthlyMonths = 1 is kept through the end of
//     February). Counting whole months avoids the "31 January + 1 month"
//     question.
//   - yearly: the latest point of each calendar year is kept through
//     31 December of the year YearlyYears after its year.
//   - log: a point of kind "log" created on day D is kept through day
//     D + LogDays. No other rule applies to logs.
//
// Points are planned as given. One created after "now" (clock skew between
// replicas, or a plan evaluated for an earlier instant) is planned like any
// other: its rules have not lapsed, so it is never expired for being early.
//
// "Latest of the week/month/year" is the point with the latest creation
// instant among the asset's fulls, differentials and incrementals whose local
// date falls in that period; ties are broken by the greater ID. Logs are never
// representatives and never displace one. An incremental can be the
// representative: it is a complete restore point once its chain is kept, and
// the dependency rule keeps that chain. The representatives are chosen among
// all points passed in, independently of which of them are kept, so a point
// that is no longer passed (because it was deleted) simply stops competing.
//
// # Dependencies
//
// A kept point keeps everything its restore needs:
//
//   - a differential needs its base (Point.Base, a full);
//   - an incremental needs its parent (Point.Base), and so, transitively,
//     its whole chain back to the full;
//   - a log needs its base (the full, differential or incremental it follows)
//     and every earlier log of the same asset that follows the same base,
//     because logs are replayed in sequence from the restored base. The planner
//     models this as a chain: a log's parent is the previous log with the
//     same base, and the first log after a base has the base as its parent.
//
// A full needs nothing; its Base is ignored. A Base that names no point of
// the same asset is a chain that is already broken (its point was deleted);
// nothing more can be kept for it, so the edge is dropped.
//
// A point needed by a kept point gets the reason "dependency:<id>" for each
// kept point that needs it directly (its children in the restore graph).
// Points that need it only transitively are reached through those children:
// listing them all would cost O(n²) strings for long incremental or log
// chains. Dependency reasons follow the rule reasons, in the order of the
// dependents' creation (then ID).
//
// # Legal hold
//
// A point on legal hold is always kept (reason "legal_hold"), and the
// dependency rule keeps what it needs.
//
// # Tiers
//
// Only two tiers are planned: warm and cold. A point is warm from creation.
// It is cold from creation + ColdAfterDays (calendar days in the policy
// zone, at the creation wall-clock time) if ColdAfterDays is set and the
// point is kept at that instant. WarmDays is the minimum time a point stays
// warm: the API validates ColdAfterDays >= WarmDays, and if a caller passes
// less, cold starts after WarmDays. A point that is not kept is never cold:
// it is about to be deleted, and moving it would only add transition and
// early-deletion charges.
// PackTier applies the pack rule on top of the point tiers.
//
// # Cost
//
// Plan groups the points by asset (a run of equal assets, the order a catalog
// query returns, skips the map), sorts each asset once, converts each
// creation time to a local day once with a table of the zone's offsets, and
// allocates per asset rather than per point. PlanParallel spreads the assets
// over goroutines; the result is identical.
//
// # Transitions and monotonicity
//
// Without new points, every rule reason of a point lapses at a fixed instant,
// and a point is kept exactly while it or some point that needs it
// (transitively) still has a reason. So each point has one keep-until
// instant, which is never earlier than that of any point that needs it; a
// point is kept at "now" iff now is before it. Consequences:
//
//   - a kept point's dependencies are always kept;
//   - the next transition of a kept point is the earlier of its keep-until
//     instant and its move to cold (if that is still ahead and before the
//     expiry); an expired point has no next transition;
//   - a stricter policy (every count lower or equal) keeps a subset of the
//     points: each rule's lapse instant is non-decreasing in its count, the
//     representatives do not depend on the counts, and keep-until is a
//     maximum over those instants along the dependency graph, which is
//     monotone.
package retention
