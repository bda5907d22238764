package retention

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

const (
	kFull uint8 = iota
	kDiff
	kIncr
	kLog
)

func kindCode(k Kind) (uint8, bool) {
	switch k {
	case KindFull:
		return kFull, true
	case KindDifferential:
		return kDiff, true
	case KindIncremental:
		return kIncr, true
	case KindLog:
		return kLog, true
	}
	return 0, false
}

// sortKey is kept small so that sorting moves little memory; the planning
// state lives in item, built once in sorted order.
type sortKey struct {
	sec  int64
	nsec int32
	idx  int32
	id   string
}

func cmpKey(a, b sortKey) int {
	if c := cmp.Compare(a.sec, b.sec); c != 0 {
		return c
	}
	if c := cmp.Compare(a.nsec, b.nsec); c != 0 {
		return c
	}
	return strings.Compare(a.id, b.id)
}

// item is one point of the asset being planned, at its position in creation
// order. Instants are Unix seconds: every rule lapses on a whole second, so
// "now < lapse" is "floor(now) < lapse".
type item struct {
	sec   int64
	nsec  int32
	idx   int32 // index into the caller's points
	id    string
	base  string
	local int64 // creation wall clock, seconds since the Unix epoch
	day   int64 // local day number
	wk    int64 // Monday of the ISO week
	mk    int64 // year*12 + month-1
	yr    int64

	eDay, eWeek, eMonth, eYear int64 // rule lapse instants, keepNone if the rule does not apply
	keep                       int64 // keep-until: max over own rules and dependents

	parent  int32 // position of the point this one needs, or -1
	lastLog int32 // position of the latest log based on this point, or -1
	nDeps   int32 // kept points that need this one directly
	slot    int32 // next free dependency reason slot

	kind             uint8
	hold, kept       bool
	repW, repM, repY bool
}

// worker holds scratch memory reused across assets.
type worker struct {
	c     *compiled
	keys  []sortKey
	items []item
	byID  map[string]int32
	maxN  int
	buf   []byte
	hint  int
}

func newWorker(c *compiled) *worker {
	return &worker{c: c, byID: make(map[string]int32)}
}

func (w *worker) endOfDay(day int64) int64 {
	return w.c.zone.instantOfLocal((day+1)*secPerDay, &w.hint)
}

// plan decides the points of one asset; members are their indices.
func (w *worker) plan(points []Point, members []int32, out []Decision) error {
	c := w.c
	n := len(members)

	keys := w.keys[:0]
	for _, idx := range members {
		p := &points[idx]
		if p.ID == "" {
			return fmt.Errorf("retention: point %d of asset %q has no ID", idx, p.Asset)
		}
		keys = append(keys, sortKey{sec: p.Created.Unix(), nsec: int32(p.Created.Nanosecond()), idx: idx, id: p.ID})
	}
	slices.SortFunc(keys, cmpKey)
	w.keys = keys

	if w.maxN > 4*n+1024 {
		// clear costs the map's capacity, not its length; one huge asset
		// must not tax every later small one.
		w.byID, w.maxN = make(map[string]int32, n), 0
	} else {
		clear(w.byID)
	}
	w.maxN = max(w.maxN, n)

	items := slices.Grow(w.items[:0], n)[:n]
	w.items = items
	for i, k := range keys {
		p := &points[k.idx]
		kc, ok := kindCode(p.Kind)
		if !ok {
			return fmt.Errorf("retention: point %q has unknown kind %q", p.ID, p.Kind)
		}
		if _, dup := w.byID[k.id]; dup {
			return fmt.Errorf("retention: point ID %q appears twice in asset %q", k.id, p.Asset)
		}
		w.byID[k.id] = int32(i)
		it := &items[i]
		*it = item{
			sec: k.sec, nsec: k.nsec, idx: k.idx, id: k.id, base: p.Base,
			kind: kc, hold: p.LegalHold,
			eDay: keepNone, eWeek: keepNone, eMonth: keepNone, eYear: keepNone,
			parent: -1, lastLog: -1,
		}
		z := c.zone.interval(k.sec, &w.hint)
		it.local = k.sec + c.zone.offs[z]
		it.day = floorDiv(it.local, secPerDay)
		if kc == kLog {
			if c.log > 0 {
				it.eDay = w.endOfDay(it.day + c.log)
			}
			continue
		}
		if c.daily > 0 {
			it.eDay = w.endOfDay(it.day + c.daily)
		}
		y, m, _ := civilFromDays(it.day)
		it.wk, it.mk, it.yr = mondayOf(it.day), y*12+m-1, y
	}

	w.markRepresentatives(items)
	for i := range items {
		it := &items[i]
		if it.repW && c.weekly > 0 {
			it.eWeek = w.endOfDay(it.wk + 6 + 7*c.weekly)
		}
		if it.repM && c.monthly > 0 {
			it.eMonth = w.endOfDay(firstDayOfMonth(it.mk+c.monthly+1) - 1)
		}
		if it.repY && c.yearly > 0 {
			it.eYear = w.endOfDay(daysFromCivil(it.yr+c.yearly+1, 1, 1) - 1)
		}
		it.keep = max(it.eDay, it.eWeek, it.eMonth, it.eYear)
		if it.hold {
			it.keep = keepForever
		}
	}

	w.link(items)

	// Keep-until flows from each point to what it needs. Going from the
	// newest point back, an ancestor created earlier has yet to pass its own
	// value on, so one step suffices and the pass is linear. Only a base
	// created after its dependent (malformed, possibly a cycle) sends the walk
	// further; it stops at the first ancestor that already keeps as long.
	for i := n - 1; i >= 0; i-- {
		v := items[i].keep
		for q := items[i].parent; q >= 0 && items[q].keep < v; q = items[q].parent {
			items[q].keep = v
			if int(q) < i {
				break
			}
		}
	}

	w.decide(items, out)
	return nil
}

// markRepresentatives flags the latest non-log point of each week, month and
// year. Local dates follow creation order except around a zone transition
// that moves the clock back across midnight; only then is a map needed.
func (w *worker) markRepresentatives(items []item) {
	monotone := true
	pw, pm, py := int64(keepNone), int64(keepNone), int64(keepNone)
	for i := range items {
		it := &items[i]
		if it.kind == kLog {
			continue
		}
		if it.wk < pw || it.mk < pm || it.yr < py {
			monotone = false
			break
		}
		pw, pm, py = it.wk, it.mk, it.yr
	}
	if monotone {
		lw, lm, ly := int64(keepNone), int64(keepNone), int64(keepNone)
		for i := len(items) - 1; i >= 0; i-- {
			it := &items[i]
			if it.kind == kLog {
				continue
			}
			it.repW, it.repM, it.repY = it.wk != lw, it.mk != lm, it.yr != ly
			lw, lm, ly = it.wk, it.mk, it.yr
		}
		return
	}
	type key struct {
		rule byte
		v    int64
	}
	seen := make(map[key]bool)
	first := func(k key) bool {
		if seen[k] {
			return false
		}
		seen[k] = true
		return true
	}
	for i := len(items) - 1; i >= 0; i-- {
		it := &items[i]
		if it.kind == kLog {
			continue
		}
		it.repW, it.repM, it.repY = first(key{'w', it.wk}), first(key{'m', it.mk}), first(key{'y', it.yr})
	}
}

// link resolves each point's parent in the restore graph (see the package
// documentation for logs).
func (w *worker) link(items []item) {
	// The base of a differential is nearly always the latest full, and the
	// parent of an incremental or a log the latest non-log point, so those
	// are tried before the map.
	lastFull, lastNonLog := int32(-1), int32(-1)
	find := func(id string, self int32) int32 {
		if id == "" {
			return -1
		}
		if lastFull >= 0 && items[lastFull].id == id {
			return lastFull
		}
		if lastNonLog >= 0 && items[lastNonLog].id == id {
			return lastNonLog
		}
		if q, ok := w.byID[id]; ok && q != self {
			return q
		}
		return -1
	}
	for i := range items {
		it := &items[i]
		self := int32(i)
		switch it.kind {
		case kFull:
			lastFull, lastNonLog = self, self
		case kDiff, kIncr:
			it.parent = find(it.base, self)
			lastNonLog = self
		case kLog:
			if b := find(it.base, self); b >= 0 {
				if prev := items[b].lastLog; prev >= 0 {
					it.parent = prev
				} else {
					it.parent = b
				}
				items[b].lastLog = self
			}
		}
	}
}

func (w *worker) decide(items []item, out []Decision) {
	c := w.c
	now := c.nowSec
	nRules, nDeps := 0, 0
	for i := range items {
		it := &items[i]
		it.kept = now < it.keep
		if !it.kept {
			continue
		}
		nRules += b2i(now < it.eDay) + b2i(now < it.eWeek) + b2i(now < it.eMonth) + b2i(now < it.eYear) + b2i(it.hold)
		if it.parent >= 0 {
			items[it.parent].nDeps++
			nDeps++
		}
	}

	// Every dependency reason of the asset is a substring of one string, and
	// every reason and time a sub-slice of one slab, so an asset costs a
	// handful of allocations however many points it has.
	buf := w.buf[:0]
	for i := range items {
		if it := &items[i]; it.kept && it.parent >= 0 {
			buf = append(buf, DependencyPrefix...)
			buf = append(buf, it.id...)
		}
	}
	w.buf = buf
	deps := string(buf)
	reasons := make([]string, nRules+nDeps)
	var times []time.Time
	if nRules+nDeps > 0 {
		times = make([]time.Time, 0, 2*len(items))
	}
	stamp := func(sec int64, nsec int32) *time.Time {
		times = append(times, time.Unix(sec, int64(nsec)).In(c.loc))
		return &times[len(times)-1]
	}

	pos := 0
	for i := range items {
		it := &items[i]
		d := Decision{Tier: TierWarm}
		if it.kept {
			start := pos
			expires := int64(keepNone)
			for _, r := range [...]struct {
				at   int64
				name string
			}{{it.eDay, ReasonDaily}, {it.eWeek, ReasonWeekly}, {it.eMonth, ReasonMonthly}, {it.eYear, ReasonYearly}} {
				if now < r.at {
					name := r.name
					if name == ReasonDaily && it.kind == kLog {
						name = ReasonLog
					}
					reasons[pos] = name
					pos++
					expires = max(expires, r.at)
				}
			}
			if it.hold {
				reasons[pos] = ReasonLegalHold
				pos++
			}
			it.slot = int32(pos)
			pos += int(it.nDeps)
			d.Keep = true
			d.Reasons = reasons[start:pos:pos]
			if expires != keepNone {
				d.ExpiresAt = stamp(expires, 0)
			}

			nextSec, nextNsec := it.keep, int32(0)
			if c.coldDays >= 0 {
				cs := c.zone.instantOfLocal(it.local+c.coldDays*secPerDay, &w.hint)
				if before(cs, it.nsec, now, c.nowNsec) || (cs == now && it.nsec == c.nowNsec) {
					d.Tier = TierCold
				} else if before(cs, it.nsec, nextSec, nextNsec) {
					nextSec, nextNsec = cs, it.nsec
				}
			}
			if nextSec != keepForever {
				d.NextTransition = stamp(nextSec, nextNsec)
			}
		}
		out[it.idx] = d
	}

	// Dependency reasons go in the order of the dependents, which is creation
	// order because items are sorted.
	off := 0
	for i := range items {
		it := &items[i]
		if !it.kept || it.parent < 0 {
			continue
		}
		l := len(DependencyPrefix) + len(it.id)
		p := &items[it.parent]
		reasons[p.slot] = deps[off : off+l]
		p.slot++
		off += l
	}
}

func before(aSec int64, aNsec int32, bSec int64, bNsec int32) bool {
	return aSec < bSec || (aSec == bSec && aNsec < bNsec)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
