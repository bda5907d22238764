// Package schedule turns a backup policy's schedule into the instants at
// which backups are due. It is pure: no database, no goroutines, and no clock
// reads; "now" is always a parameter, so the schedule reconciler can run on
// any number of replicas and tests can pin any instant.
//
// # Rules
//
// These are the product's behaviour, and the tests pin each of them.
//
//   - Times are wall-clock times in the policy's IANA timezone. A full at
//     "12:00" runs at noon local time in winter and in summer, so its UTC
//     instant moves with daylight saving time.
//   - Full backups run on the listed days_of_week at "at", or on day_of_month
//     at "at". A day_of_month larger than the month's length runs on the
//     month's last day (31 runs on 28 or 29 February and on 30 April), so
//     every month has exactly one full.
//   - Incremental backups run on the listed days_of_week at "at", or every
//     every_hours = N hours aligned on the local wall clock: at 00:00, N:00,
//     2N:00, ... of every calendar day in the timezone. When 24 is not a
//     multiple of N the sequence restarts at midnight (N = 5 gives 00, 05,
//     10, 15, 20 and then 00 of the next day, four hours later).
//   - When a full and an incremental slot fall on the same instant, only the
//     full one exists.
//   - Daylight saving time. A wall time w runs at the first instant whose
//     local wall clock reads w or later. So a wall time inside a
//     spring-forward gap (02:30 on a day that jumps from 02:00 to 03:00) runs
//     once, at the end of the gap (03:00 local), and a wall time that occurs
//     twice on a fall-back day runs once, at its first occurrence. No day's
//     slot is ever skipped and no slot runs twice. every_hours slots follow
//     the same rule; two slots that land on the same instant (02:00 and 03:00
//     on a spring-forward day with N = 1) are one slot, a full one if either
//     was full. Because of this rule the gap between two every_hours slots can
//     be longer than N hours across a fall back (01:00 PDT to 02:00 PST is two
//     hours) and shorter across a spring forward.
//   - Window. A run of a slot may start at any instant in [slot, deadline).
//     With window_hours = 0 the deadline is the next slot of the policy, of
//     either type. Otherwise it is slot + window_hours elapsed hours (not wall
//     hours, so a DST change neither stretches nor shrinks a window), but
//     never later than the next slot: once the next slot is due, it
//     supersedes the late one, so two runs of one policy never compete and a
//     long window cannot queue up stale runs. A run not started by the
//     deadline is skipped.
//   - The first backup of an asset is always full, whatever the slot's type,
//     because an incremental needs a full to build on (see TypeFor).
package schedule

import (
	"errors"
	"fmt"
	"iter"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// Slot is one scheduled run of a policy.
type Slot struct {
	// At is the instant the run is due, in the policy's timezone.
	At time.Time
	// Type is api.BackupFull or api.BackupIncremental.
	Type string
}

// MaxDueSpan bounds the interval Due accepts. Due materialises every slot of
// its interval, so a caller that passes a zero "last run" instant would
// otherwise allocate two thousand years of hourly slots.
const MaxDueSpan = 10 * 366 * 24 * time.Hour

// ErrSpanTooLong is returned by Due for an interval longer than MaxDueSpan.
var ErrSpanTooLong = errors.New("schedule: interval longer than MaxDueSpan")

// Schedule is a policy's schedule, parsed once. Callers that evaluate the same
// policy for many assets should build it with New and reuse it; it is
// immutable and safe for concurrent use.
type Schedule struct {
	loc    *time.Location
	window time.Duration

	fullDays   [7]bool // indexed by time.Weekday
	fullDOM    int     // 0 when fullDays is used
	fullMinute int     // minutes after local midnight

	incDays    [7]bool
	incMinute  int
	everyHours int // 0 when incDays is used
	hasInc     bool
}

// New parses the schedule fields of p: timezone, full, incremental and
// window_hours. Other fields are ignored, so a policy that fails
// api.PolicySpec.Validate for an unrelated field still has a schedule.
func New(p *api.PolicySpec) (*Schedule, error) {
	if p == nil {
		return nil, errors.New("schedule: nil policy")
	}
	loc, err := location(p.Timezone)
	if err != nil {
		return nil, err
	}
	s := &Schedule{loc: loc}

	if p.WindowHours < 0 || p.WindowHours > api.MaxWindowHours {
		return nil, fmt.Errorf("schedule: window_hours must be between 0 and %d, got %d", api.MaxWindowHours, p.WindowHours)
	}
	s.window = time.Duration(p.WindowHours) * time.Hour

	f := p.Full
	switch {
	case len(f.DaysOfWeek) > 0 && f.DayOfMonth != 0:
		return nil, errors.New("schedule: full has both days_of_week and day_of_month")
	case len(f.DaysOfWeek) > 0:
		if s.fullDays, err = weekdays("full.days_of_week", f.DaysOfWeek); err != nil {
			return nil, err
		}
	case f.DayOfMonth >= 1 && f.DayOfMonth <= 31:
		s.fullDOM = f.DayOfMonth
	case f.DayOfMonth != 0:
		return nil, fmt.Errorf("schedule: full.day_of_month must be between 1 and 31, got %d", f.DayOfMonth)
	default:
		// Every policy needs fulls: incrementals alone would chain forever
		// and Next could not promise to find a slot.
		return nil, errors.New("schedule: full needs days_of_week or day_of_month")
	}
	if s.fullMinute, err = clock("full.at", f.At); err != nil {
		return nil, err
	}

	if inc := p.Incremental; inc != nil {
		s.hasInc = true
		if inc.EveryHours != 0 {
			if len(inc.DaysOfWeek) > 0 || inc.At != "" {
				return nil, errors.New("schedule: incremental has both every_hours and days_of_week/at")
			}
			if inc.EveryHours < 1 || inc.EveryHours > 24 {
				return nil, fmt.Errorf("schedule: incremental.every_hours must be between 1 and 24, got %d", inc.EveryHours)
			}
			s.everyHours = inc.EveryHours
		} else {
			if len(inc.DaysOfWeek) == 0 {
				return nil, errors.New("schedule: incremental needs days_of_week or every_hours")
			}
			if s.incDays, err = weekdays("incremental.days_of_week", inc.DaysOfWeek); err != nil {
				return nil, err
			}
			if s.incMinute, err = clock("incremental.at", inc.At); err != nil {
				return nil, err
			}
		}
	}
	return s, nil
}

// Location is the policy's timezone.
func (s *Schedule) Location() *time.Location { return s.loc }

// Slots yields every slot strictly after 'after', in time order, without end;
// stop ranging to stop it. It allocates nothing per slot.
func (s *Schedule) Slots(after time.Time) iter.Seq[Slot] {
	return func(yield func(Slot) bool) {
		// Start two local days early: a slot never runs before its wall
		// time, but a gap (Samoa skipped a whole day in 2011) can push a slot
		// of an earlier local day past 'after'.
		y, m, d := after.In(s.loc).Date()
		day := civilDay(y, m, d) - 2
		// Slots fall on whole seconds and Unix truncates towards the past,
		// so comparing seconds is exact even for an 'after' with a fraction.
		afterSec := after.Unix()

		r := resolver{loc: s.loc}
		var buf [26]wallSlot
		var pending Slot
		var pendingSec int64
		have := false
		for ; day <= maxDay; day++ {
			for _, w := range s.wallSlots(day, buf[:0]) {
				sec := r.resolve(day*secondsPerDay + int64(w.minute)*60)
				if have && sec == pendingSec {
					if w.typ == api.BackupFull {
						pending.Type = api.BackupFull
					}
					continue
				}
				if have && pendingSec > afterSec {
					if !yield(pending) {
						return
					}
				}
				pending = Slot{At: time.Unix(sec, 0).In(s.loc), Type: w.typ}
				pendingSec = sec
				have = true
			}
		}
		if have && pendingSec > afterSec {
			yield(pending)
		}
	}
}

// Due returns every slot in (after, until], in time order: a slot exactly at
// 'after' was due in the previous call, one exactly at 'until' is due now.
// It fails with ErrSpanTooLong when until - after exceeds MaxDueSpan.
func (s *Schedule) Due(after, until time.Time) ([]Slot, error) {
	if !until.After(after) {
		return nil, nil
	}
	if until.Sub(after) > MaxDueSpan {
		return nil, ErrSpanTooLong
	}
	var out []Slot
	for slot := range s.Slots(after) {
		if slot.At.After(until) {
			break
		}
		out = append(out, slot)
	}
	return out, nil
}

// Next returns the first slot strictly after t.
func (s *Schedule) Next(t time.Time) Slot {
	for slot := range s.Slots(t) {
		return slot
	}
	// Only reached past year 9999: every valid schedule has a full at least
	// once a month.
	return Slot{}
}

// Last returns the latest slot at or before t. A reconciler that was down
// uses it to run only the most recent missed slot rather than all of them.
func (s *Schedule) Last(t time.Time) Slot {
	// A full recurs at least every 31 local days, so 64 days back always
	// holds a slot; widen step by step to keep the common case cheap.
	for _, back := range []time.Duration{2 * 24 * time.Hour, 9 * 24 * time.Hour, 64 * 24 * time.Hour} {
		var last Slot
		for slot := range s.Slots(t.Add(-back)) {
			if slot.At.After(t) {
				break
			}
			last = slot
		}
		if !last.At.IsZero() {
			return last
		}
	}
	return Slot{}
}

// Deadline is the end of slot's window: a run may start at any instant in
// [slot.At, Deadline) and is skipped from the deadline on. See the package
// documentation for why the next slot always caps it.
func (s *Schedule) Deadline(slot Slot) time.Time {
	next := s.Next(slot.At).At
	if s.window == 0 {
		return next
	}
	if end := slot.At.Add(s.window).In(s.loc); end.Before(next) {
		return end
	}
	return next
}

// InWindow tells whether a run of slot may start at now.
func (s *Schedule) InWindow(slot Slot, now time.Time) bool {
	return !now.Before(slot.At) && now.Before(s.Deadline(slot))
}

// Due returns every slot of p in (after, until], in time order.
func Due(p *api.PolicySpec, after, until time.Time) ([]Slot, error) {
	s, err := New(p)
	if err != nil {
		return nil, err
	}
	return s.Due(after, until)
}

// Next returns the first slot of p strictly after t.
func Next(p *api.PolicySpec, t time.Time) (Slot, error) {
	s, err := New(p)
	if err != nil {
		return Slot{}, err
	}
	return s.Next(t), nil
}

// Deadline is the latest time a run of slot s may start (exclusive); after it
// the run is skipped. p must be a policy Due or Next accepted; if it is not,
// Deadline returns s.At so that no run starts on a schedule nobody can check.
func Deadline(p *api.PolicySpec, s Slot) time.Time {
	sch, err := New(p)
	if err != nil {
		return s.At
	}
	return sch.Deadline(s)
}

// TypeFor picks the backup type of a run of slot s. An asset without a
// complete full backup (hasFull=false) always gets a full, since an
// incremental would have nothing to build on.
func TypeFor(s Slot, hasFull bool) string {
	if !hasFull {
		return api.BackupFull
	}
	return s.Type
}

const (
	secondsPerDay = 86400
	// maxDay is 9999-12-31, the last day time.Time formats sensibly.
	maxDay = 2932896
	// lookback bounds how far a wall time and its instant can differ. It
	// covers every UTC offset in tzdata, local mean times of the 19th
	// century included (Asia/Manila was -15:56).
	lookback = 48 * 3600
)

// wallSlot is a slot as the policy states it: minutes after local midnight.
type wallSlot struct {
	minute int
	typ    string
}

// wallSlots appends the slots of local calendar day 'day', ordered by minute,
// with a full replacing an incremental of the same minute.
func (s *Schedule) wallSlots(day int64, out []wallSlot) []wallSlot {
	wd := weekdayOf(day)
	full := s.fullDays[wd]
	if s.fullDOM != 0 {
		y, m, d := time.Unix(day*secondsPerDay, 0).UTC().Date()
		last := time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
		full = d == min(s.fullDOM, last)
	}
	switch {
	case !s.hasInc:
	case s.everyHours != 0:
		for h := 0; h < 24; h += s.everyHours {
			out = append(out, wallSlot{minute: h * 60, typ: api.BackupIncremental})
		}
	case s.incDays[wd]:
		out = append(out, wallSlot{minute: s.incMinute, typ: api.BackupIncremental})
	}
	if !full {
		return out
	}
	i := 0
	for i < len(out) && out[i].minute < s.fullMinute {
		i++
	}
	if i < len(out) && out[i].minute == s.fullMinute {
		out[i].typ = api.BackupFull
		return out
	}
	out = append(out, wallSlot{})
	copy(out[i+1:], out[i:])
	out[i] = wallSlot{minute: s.fullMinute, typ: api.BackupFull}
	return out
}

// resolver maps local wall times to instants. It remembers the zone period
// (a span with one UTC offset) of its last answer, because consecutive slots
// almost always share it and a zone lookup costs far more than a subtraction.
type resolver struct {
	loc        *time.Location
	valid      bool
	start, end int64 // period bounds in Unix seconds, end exclusive
	off        int64
}

func (r *resolver) load(sec int64) {
	t := time.Unix(sec, 0).In(r.loc)
	_, off := t.Zone()
	start, end := t.ZoneBounds()
	r.off = int64(off)
	r.start, r.end = math.MinInt64, math.MaxInt64
	if !start.IsZero() {
		r.start = start.Unix()
	}
	if !end.IsZero() {
		r.end = end.Unix()
	}
	r.valid = true
}

// resolve returns the first instant (Unix seconds) whose local wall clock
// reads wall or later, wall being a local date and time written as if it were
// UTC. Within one zone period the wall clock rises with the instant, so the
// answer is the first period that reaches wall, at max(period start, wall -
// offset): the end of the gap for a skipped time, the first occurrence for a
// repeated one.
func (r *resolver) resolve(wall int64) int64 {
	if r.valid {
		// The cached period answers only if it began long enough before the
		// candidate that no earlier period can reach wall.
		c := wall - r.off
		if c < r.end && r.start <= c-lookback {
			return c
		}
	}
	sec := wall - lookback
	for range 64 {
		r.load(sec)
		c := max(wall-r.off, r.start)
		if c < r.end {
			return c
		}
		sec = r.end
	}
	// Unreachable with real tzdata: 64 offset changes within four days.
	return wall - r.off
}

// civilDay numbers local calendar days from 1970-01-01, which is day 0.
func civilDay(y int, m time.Month, d int) int64 {
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / secondsPerDay
}

func weekdayOf(day int64) time.Weekday {
	// 1970-01-01 was a Thursday.
	return time.Weekday(((day+4)%7 + 7) % 7)
}

var dayNames = map[string]time.Weekday{
	"mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday, "thu": time.Thursday,
	"fri": time.Friday, "sat": time.Saturday, "sun": time.Sunday,
}

func weekdays(field string, names []string) ([7]bool, error) {
	var set [7]bool
	for _, n := range names {
		wd, ok := dayNames[strings.ToLower(n)]
		if !ok {
			return set, fmt.Errorf("schedule: %s: %q is not one of mon, tue, wed, thu, fri, sat, sun", field, n)
		}
		set[wd] = true
	}
	return set, nil
}

// clock parses "HH:MM" into minutes after midnight.
func clock(field, at string) (int, error) {
	if !api.TimeOfDayPattern.MatchString(at) {
		return 0, fmt.Errorf("schedule: %s must be HH:MM on a 24-hour clock, got %q", field, at)
	}
	h := int(at[0]-'0')*10 + int(at[1]-'0')
	m := int(at[3]-'0')*10 + int(at[4]-'0')
	return h*60 + m, nil
}

// locations caches parsed timezones: LoadLocation reads and parses zoneinfo
// on every call, and the reconciler asks for the same few zones every minute.
var locations sync.Map // string -> *time.Location

func location(name string) (*time.Location, error) {
	if v, ok := locations.Load(name); ok {
		return v.(*time.Location), nil
	}
	// "" and "Local" are valid for LoadLocation but mean UTC and the server
	// host's zone; a policy must name its zone so that it runs the same on
	// every replica.
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("schedule: timezone must be an IANA name such as Europe/Paris or UTC, got %q", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("schedule: timezone %q: %w", name, err)
	}
	locations.Store(name, loc)
	return loc, nil
}
