package retention

import (
	"math/rand/v2"
	"testing"
	"time"
)

var tableZones = []string{
	"America/Los_Angeles", "Europe/London", "Europe/Warsaw", "America/Santiago", "Australia/Lord_Howe",
	"Pacific/Apia", "Asia/Kolkata", "America/St_Johns", "Africa/Casablanca", "Asia/Tehran", "UTC",
}

func zoneOffset(loc *time.Location, u int64) int64 {
	_, off := time.Unix(u, 0).In(loc).Zone()
	return int64(off)
}

// The table agrees with the time package's offsets everywhere in its span,
// including years served by the TZif footer rule and the last day of leap
// years there (golang/go#81583).
func TestZoneTableOffsets(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	lo := time.Date(1900, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(2150, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for _, name := range tableZones {
		loc := loadLoc(t, name)
		z := newZoneTable(loc, lo, hi)
		hint := 0
		probe := func(u int64) {
			if got, want := z.offs[z.interval(u, &hint)], zoneOffset(loc, u); got != want {
				t.Fatalf("%s at %s: table offset %d, time package %d", name, time.Unix(u, 0).UTC(), got, want)
			}
		}
		for range 20000 {
			probe(lo + r.Int64N(hi-lo))
		}
		for y := 2030; y < 2150; y++ {
			for _, d := range []int{1, 30, 31} {
				probe(time.Date(y, 12, d, 12, 0, 0, 0, time.UTC).Unix())
			}
		}
		// Every interval boundary is an offset change, exactly.
		for i := 1; i < len(z.starts); i++ {
			if s := z.starts[i]; zoneOffset(loc, s-1) == zoneOffset(loc, s) {
				t.Fatalf("%s: no offset change at %s", name, time.Unix(s, 0).UTC())
			}
		}
	}
}

// instantOfLocal is exactly time.Date for a wall time that exists once, and
// otherwise the first instant at or after which the clock reads L or later.
func TestInstantOfLocal(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	lo := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	hi := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for _, name := range tableZones {
		loc := loadLoc(t, name)
		z := newZoneTable(loc, lo-3*secPerDay, hi+3*secPerDay)
		hint := 0
		local := func(u int64) int64 { return u + zoneOffset(loc, u) }
		unique, other := 0, 0
		for i := range 20000 {
			L := lo + r.Int64N(hi-lo)
			if i%2 == 0 {
				L -= floorMod(L, 900) // quarter hours, where transitions happen
			}
			u := z.instantOfLocal(L, &hint)
			if !(local(u-1) < L && local(u) >= L) {
				t.Fatalf("%s: L=%s: u=%s has local %d, before it %d", name, time.Unix(L, 0).UTC(), time.Unix(u, 0).UTC(), local(u), local(u-1))
			}
			w := time.Unix(L, 0).UTC()
			td := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, loc)
			occurrences := 0
			seen := map[int64]bool{}
			for _, d := range []int64{-2, -1, 0, 1, 2} {
				o := zoneOffset(loc, L+d*secPerDay)
				if !seen[o] && local(L-o) == L {
					occurrences++
				}
				seen[o] = true
			}
			if occurrences == 1 {
				unique++
				if u != td.Unix() {
					t.Fatalf("%s: %s local: instantOfLocal %s, time.Date %s", name, w.Format(time.DateTime), time.Unix(u, 0).UTC(), td.UTC())
				}
			} else {
				other++
			}
		}
		if unique < 19000 {
			t.Fatalf("%s: only %d unique wall times", name, unique)
		}
	}
}

func TestCivilCalendar(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	check := func(day int64) {
		tm := time.Unix(day*secPerDay, 0).UTC()
		y, m, d := civilFromDays(day)
		if int(y) != tm.Year() || time.Month(m) != tm.Month() || int(d) != tm.Day() {
			t.Fatalf("day %d: civil %d-%d-%d, time %s", day, y, m, d, tm)
		}
		if back := daysFromCivil(y, m, d); back != day {
			t.Fatalf("day %d: round trip %d", day, back)
		}
		mon := mondayOf(day)
		mt := time.Unix(mon*secPerDay, 0).UTC()
		wy, ww := tm.ISOWeek()
		my, mw := mt.ISOWeek()
		if mt.Weekday() != time.Monday || wy != my || ww != mw || day-mon > 6 {
			t.Fatalf("day %d (%s): Monday %s", day, tm, mt)
		}
		if fd := firstDayOfMonth(y*12 + m - 1); fd != day-d+1 {
			t.Fatalf("day %d: first of month %d", day, fd)
		}
	}
	for day := int64(-1000); day < 1000; day++ {
		check(day)
	}
	for range 200000 {
		check(r.Int64N(3_000_000) - 720_000) // years 1 to ~8000
	}
}

// Local dates can go back when a zone moves its clock back across midnight
// (or a whole day, as Alaska did in 1867). The representative is still the
// latest point of each period.
func TestRepresentativesWhenLocalDatesGoBack(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	w := newWorker(nil)
	for c := range 2000 {
		n := 1 + r.IntN(12)
		items := make([]item, n)
		for i := range items {
			items[i] = item{wk: int64(r.IntN(4)) * 7, mk: int64(r.IntN(3)), yr: int64(r.IntN(2))}
			if r.IntN(4) == 0 {
				items[i].kind = kLog
			}
		}
		if c%2 == 0 {
			for i := 1; i < n; i++ { // mostly ordered, one step back
				items[i].wk, items[i].mk, items[i].yr = max(items[i].wk, items[i-1].wk), max(items[i].mk, items[i-1].mk), max(items[i].yr, items[i-1].yr)
			}
			items[r.IntN(n)].wk = -7
		}
		w.markRepresentatives(items)
		for i, it := range items {
			latest := func(key func(item) int64) bool {
				if it.kind == kLog {
					return false
				}
				for _, later := range items[i+1:] {
					if later.kind != kLog && key(later) == key(it) {
						return false
					}
				}
				return true
			}
			if it.repW != latest(func(x item) int64 { return x.wk }) ||
				it.repM != latest(func(x item) int64 { return x.mk }) ||
				it.repY != latest(func(x item) int64 { return x.yr }) {
				t.Fatalf("case %d item %d: %+v", c, i, items)
			}
		}
	}
}
