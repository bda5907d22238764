package retention

import (
	"slices"
	"testing"
	"time"

	// The tests pin instants in named zones; the embedded database makes them
	// independent of the machine's zoneinfo.
	_ "time/tzdata"
)

func loadLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return loc
}

// wall builds a local wall time that exists exactly once in loc.
func wall(loc *time.Location, y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, loc)
}

func utc(y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}

func ptr[T any](v T) *T { return &v }

// check is what a plan must return at one instant. Maps name only the points
// they care about; kept is the exact set.
type check struct {
	name    string
	now     time.Time
	kept    []string
	reasons map[string][]string
	expires map[string]time.Time // zero: ExpiresAt must be nil
	next    map[string]time.Time // zero: NextTransition must be nil
	tiers   map[string]Tier
}

func byID(t testing.TB, points []Point, ds []Decision) map[string]Decision {
	t.Helper()
	if len(ds) != len(points) {
		t.Fatalf("%d decisions for %d points", len(ds), len(points))
	}
	m := make(map[string]Decision, len(ds))
	for i, d := range ds {
		m[points[i].ID] = d
	}
	return m
}

func keptIDs(points []Point, ds []Decision) []string {
	var out []string
	for i, d := range ds {
		if d.Keep {
			out = append(out, points[i].ID)
		}
	}
	slices.Sort(out)
	return out
}

func sameInstant(got *time.Time, want time.Time) bool {
	if want.IsZero() {
		return got == nil
	}
	return got != nil && got.Equal(want)
}

func fmtInstant(t *time.Time) string {
	if t == nil {
		return "nil"
	}
	return t.Format(time.RFC3339Nano) + " (" + t.UTC().Format(time.RFC3339Nano) + ")"
}

func runChecks(t *testing.T, pol Policy, points []Point, checks []check) {
	t.Helper()
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			ds, err := Plan(points, pol, c.now)
			if err != nil {
				t.Fatal(err)
			}
			m := byID(t, points, ds)
			want := slices.Clone(c.kept)
			slices.Sort(want)
			if got := keptIDs(points, ds); !slices.Equal(got, want) {
				t.Errorf("kept at %s:\n got %v\nwant %v", c.now, got, want)
			}
			for id, r := range c.reasons {
				if got := m[id].Reasons; !slices.Equal(got, r) {
					t.Errorf("%s reasons = %q, want %q", id, got, r)
				}
			}
			for id, e := range c.expires {
				if got := m[id].ExpiresAt; !sameInstant(got, e) {
					t.Errorf("%s ExpiresAt = %s, want %s", id, fmtInstant(got), fmtInstant(nilIfZero(e)))
				}
			}
			for id, e := range c.next {
				if got := m[id].NextTransition; !sameInstant(got, e) {
					t.Errorf("%s NextTransition = %s, want %s", id, fmtInstant(got), fmtInstant(nilIfZero(e)))
				}
			}
			for id, tier := range c.tiers {
				if got := m[id].Tier; got != tier {
					t.Errorf("%s tier = %s, want %s", id, got, tier)
				}
			}
			// Invariants every plan must satisfy, whatever the case.
			for i, d := range ds {
				if d.Keep != (len(d.Reasons) > 0) {
					t.Errorf("%s: Keep=%v with reasons %q", points[i].ID, d.Keep, d.Reasons)
				}
				if !d.Keep && (d.Tier != TierWarm || d.ExpiresAt != nil || d.NextTransition != nil) {
					t.Errorf("%s: expired point has tier %s, ExpiresAt %s, next %s", points[i].ID, d.Tier, fmtInstant(d.ExpiresAt), fmtInstant(d.NextTransition))
				}
				if d.NextTransition != nil && !d.NextTransition.After(c.now) {
					t.Errorf("%s: next transition %s is not after now", points[i].ID, fmtInstant(d.NextTransition))
				}
			}
		})
	}
}

func nilIfZero(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func deps(ids ...string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = DependencyPrefix + id
	}
	return out
}

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
