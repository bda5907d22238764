package retention

import (
	"math"
	"time"
)

const secPerDay = 86400

// farPast opens the first zone interval. It is far enough from the int64
// limits that adding an offset cannot overflow.
const farPast = -1 << 62

// zoneTable is the policy location flattened into the offset intervals that
// cover the span a plan needs. Per-point conversions then are a search over a
// few dozen int64s instead of time.Time calls, and expiry instants come from
// a rule of our own (instantOfLocal) rather than from time.Date, whose choice
// inside a gap or an overlap is unspecified.
type zoneTable struct {
	starts []int64 // Unix second at which interval i starts; starts[0] is farPast
	offs   []int64 // seconds east of UTC during interval i
}

// newZoneTable covers [lo, hi] (Unix seconds). Before lo the first offset is
// assumed and after hi the last one; callers widen the span so that no query
// falls outside.
func newZoneTable(loc *time.Location, lo, hi int64) zoneTable {
	var z zoneTable
	t := time.Unix(lo, 0).In(loc)
	for {
		_, off := t.Zone()
		s := int64(farPast)
		if len(z.starts) > 0 {
			s = t.Unix()
		}
		if n := len(z.offs); n == 0 || z.offs[n-1] != int64(off) {
			z.starts = append(z.starts, s)
			z.offs = append(z.offs, int64(off))
		}
		_, end := t.ZoneBounds()
		if end.IsZero() {
			return z
		}
		if !end.After(t) {
			// golang/go#81583: in years served by the TZif footer rule,
			// ZoneBounds can end a period at or before t on the last day of a
			// leap year, so it would never advance. The offsets are right;
			// find the next change from them.
			end = nextOffsetChange(t, off)
		}
		if end.Unix() > hi {
			return z
		}
		t = end
	}
}

// nextOffsetChange returns the first whole second within a day after t whose
// offset differs from off, or t plus one day if there is none.
func nextOffsetChange(t time.Time, off int) time.Time {
	lo, hi := t.Unix(), t.Unix()+secPerDay
	if _, o := time.Unix(hi, 0).In(t.Location()).Zone(); o == off {
		return time.Unix(hi, 0).In(t.Location())
	}
	for hi-lo > 1 {
		m := lo + (hi-lo)/2
		if _, o := time.Unix(m, 0).In(t.Location()).Zone(); o == off {
			lo = m
		} else {
			hi = m
		}
	}
	return time.Unix(hi, 0).In(t.Location())
}

// interval returns the index of the interval containing Unix second u. hint
// is the previous answer: consecutive points of an asset are nearly always in
// the same interval.
func (z *zoneTable) interval(u int64, hint *int) int {
	if h := *hint; h < len(z.starts) && z.starts[h] <= u && (h+1 == len(z.starts) || u < z.starts[h+1]) {
		return h
	}
	lo, hi := 0, len(z.starts)
	for hi-lo > 1 {
		m := int(uint(lo+hi) >> 1)
		if z.starts[m] <= u {
			lo = m
		} else {
			hi = m
		}
	}
	*hint = lo
	return lo
}

// instantOfLocal returns the first instant after which the local wall clock
// never again reads earlier than L (local seconds since the Unix epoch,
// i.e. Unix seconds plus offset). For a wall time that exists once this is
// simply that instant. Inside a gap it is the transition (the first instant
// at or after L). When L occurs twice it is the second occurrence, so a
// "kept through the end of the day" never ends while the clock can still show
// that day.
//
// Proof sketch: the set {u : u + off(u) < L} restricted to interval i is
// [starts[i], min(starts[i+1], L-offs[i])); its supremum over all intervals is
// attained in the last interval j where it is non-empty, since every earlier
// interval ends no later than starts[j] <= L-offs[j].
func (z *zoneTable) instantOfLocal(L int64, hint *int) int64 {
	// Offsets stay within a day of UTC, so no interval starting more than two
	// days after L can contain a wall time before L.
	j := z.interval(L+2*secPerDay, hint)
	for j > 0 && z.starts[j]+z.offs[j] >= L {
		j--
	}
	u := L - z.offs[j]
	if j+1 < len(z.starts) && z.starts[j+1] < u {
		u = z.starts[j+1]
	}
	return u
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 {
	return a - floorDiv(a, b)*b
}

// civilFromDays converts days since 1970-01-01 to a proleptic Gregorian date
// (Howard Hinnant's algorithm; exact for the whole int64 range used here).
func civilFromDays(z int64) (y int64, m int64, d int64) {
	z += 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	if mp < 10 {
		m = mp + 3
	} else {
		m = mp - 9
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

// daysFromCivil is the inverse of civilFromDays.
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := floorDiv(y, 400)
	yoe := y - era*400
	mp := m + 9
	if m > 2 {
		mp = m - 3
	}
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

// mondayOf returns the day number of the Monday that starts the ISO week of
// day z. 1970-01-01 was a Thursday, three days after a Monday.
func mondayOf(z int64) int64 {
	return z - floorMod(z+3, 7)
}

// firstDayOfMonth returns the day number of the first day of month index mi
// (year*12 + month-1).
func firstDayOfMonth(mi int64) int64 {
	return daysFromCivil(floorDiv(mi, 12), floorMod(mi, 12)+1, 1)
}

const (
	keepNone    = math.MinInt64 // no reason: never kept
	keepForever = math.MaxInt64 // legal hold
)
