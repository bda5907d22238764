package reconcile

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// In-memory stand-ins for the interfaces the reconcilers depend on. Each
// keeps the contract its interface documents (versions, unique names,
// marks that never move back, legal holds), and nothing more.

var quiet = slog.New(slog.DiscardHandler)

// clock is a fake clock that tests move by hand.
type clock struct{ t time.Time }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }

// memAssets holds assets by id; Asset fails for the ids in broken.
type memAssets struct {
	assets map[string]Asset
	broken map[string]error
}

func (m *memAssets) EachAsset(ctx context.Context, fn func(string) error) error {
	for _, id := range slices.Sorted(maps.Keys(m.assets)) {
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

func (m *memAssets) Asset(ctx context.Context, id string) (Asset, error) {
	if err := m.broken[id]; err != nil {
		return Asset{}, err
	}
	a, ok := m.assets[id]
	if !ok {
		return Asset{}, db.ErrNotFound
	}
	return a, nil
}

// memMarks are schedule marks; like the catalog's, one never moves back.
type memMarks map[string]time.Time

func (m memMarks) ScheduleMark(ctx context.Context, assetID string) (time.Time, bool, error) {
	t, ok := m[assetID]
	return t, ok, nil
}

func (m memMarks) SetScheduleMark(ctx context.Context, assetID string, until time.Time) error {
	if cur, ok := m[assetID]; !ok || until.After(cur) {
		m[assetID] = until
	}
	return nil
}

// memQueue records every job it is asked to queue.
type memQueue struct{ jobs []db.NewJob }

func (q *memQueue) Enqueue(ctx context.Context, n db.NewJob) (api.Job, bool, error) {
	q.jobs = append(q.jobs, n)
	return api.Job{ID: fmt.Sprint(len(q.jobs)), Kind: n.Kind, State: cmp.Or(n.State, api.JobQueued)}, true, nil
}

// memObjects are object collections with versions and unique names.
// beforeWrite, when set, runs before every write: a test makes another
// writer win a race there.
type memObjects struct {
	tables      map[db.Table]map[string]db.Object
	nextID      int
	beforeWrite func(op string, t db.Table, id string)
}

func newObjects() *memObjects { return &memObjects{tables: map[db.Table]map[string]db.Object{}} }

func (m *memObjects) table(t db.Table) map[string]db.Object {
	if m.tables[t] == nil {
		m.tables[t] = map[string]db.Object{}
	}
	return m.tables[t]
}

func (m *memObjects) sorted(t db.Table) []db.Object {
	out := slices.Collect(maps.Values(m.table(t)))
	slices.SortFunc(out, func(a, b db.Object) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func (m *memObjects) Each(ctx context.Context, t db.Table, fn func(db.Object) error) error {
	for _, o := range m.sorted(t) {
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

func (m *memObjects) Get(ctx context.Context, t db.Table, idOrName string) (db.Object, error) {
	for _, o := range m.table(t) {
		if o.ID == idOrName || o.Name == idOrName {
			return o, nil
		}
	}
	return db.Object{}, db.ErrNotFound
}

func (m *memObjects) Create(ctx context.Context, t db.Table, name string, spec, sealedSecret []byte, idempotencyKey string) (db.Object, bool, error) {
	if m.beforeWrite != nil {
		m.beforeWrite("create", t, name)
	}
	o, err := m.insert(t, name, spec, sealedSecret)
	return o, err == nil, err
}

func (m *memObjects) insert(t db.Table, name string, spec, sealedSecret []byte) (db.Object, error) {
	for _, o := range m.table(t) {
		if o.Name == name {
			return db.Object{}, db.ErrNameTaken
		}
	}
	m.nextID++
	o := db.Object{ID: fmt.Sprintf("%s-%d", t, m.nextID), Name: name, Spec: spec, SealedSecret: sealedSecret, Version: 1}
	m.table(t)[o.ID] = o
	return o, nil
}

func (m *memObjects) check(t db.Table, id string, expect *int64) (db.Object, error) {
	o, ok := m.table(t)[id]
	switch {
	case !ok:
		return o, db.ErrNotFound
	case expect != nil && *expect != o.Version:
		return o, &db.StaleError{Current: o.Version}
	}
	return o, nil
}

func (m *memObjects) Update(ctx context.Context, t db.Table, id string, expect *int64, name string, spec, sealedSecret []byte) (db.Object, error) {
	if m.beforeWrite != nil {
		m.beforeWrite("update", t, id)
	}
	o, err := m.check(t, id, expect)
	if err != nil {
		return o, err
	}
	o.Name, o.Spec, o.SealedSecret = name, spec, sealedSecret
	o.Version++
	m.table(t)[id] = o
	return o, nil
}

func (m *memObjects) Delete(ctx context.Context, t db.Table, id string, expect *int64) error {
	if m.beforeWrite != nil {
		m.beforeWrite("delete", t, id)
	}
	if _, err := m.check(t, id, expect); err != nil {
		return err
	}
	delete(m.table(t), id)
	return nil
}

func (m *memObjects) RuleMadeUsing(ctx context.Context, field, id string) ([]db.Object, error) {
	var out []db.Object
	for _, o := range m.sorted(db.ProtectedVMs) {
		var spec map[string]any
		if err := json.Unmarshal(o.Spec, &spec); err != nil {
			return nil, err
		}
		if spec[field] == id && spec["rule_id"] != nil && spec["rule_id"] != "" {
			out = append(out, o)
		}
	}
	return out, nil
}

// put stores v as an object of table, as if made before the test, and
// returns it.
func (m *memObjects) put(t *testing.T, table db.Table, name string, v any) db.Object {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	o, err := m.insert(table, name, b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// memPoints is a points catalog. beforeGet, when set, runs as GetPoint
// reads a point: a test changes the point meanwhile there.
type memPoints struct {
	points    []*api.Point
	using     map[string][]string // "field=id" → asset ids
	beforeGet func(p *api.Point)
}

func (m *memPoints) live() []*api.Point {
	var out []*api.Point
	for _, p := range m.points {
		if p.DeletedAt == nil {
			out = append(out, p)
		}
	}
	return out
}

func (m *memPoints) find(id string) *api.Point {
	for _, p := range m.points {
		if p.ID == id {
			return p
		}
	}
	return nil
}

func (m *memPoints) AssetsWithPoints(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	for _, p := range m.live() {
		seen[p.AssetID] = true
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

func (m *memPoints) AssetsUsing(ctx context.Context, field, id string) ([]string, error) {
	return m.using[field+"="+id], nil
}

func (m *memPoints) AssetPoints(ctx context.Context, assetID string) ([]api.Point, error) {
	var out []api.Point
	for _, p := range m.live() {
		if p.AssetID == assetID {
			out = append(out, *p)
		}
	}
	return out, nil
}

func (m *memPoints) GetPoint(ctx context.Context, id string) (api.Point, error) {
	p := m.find(id)
	if p == nil {
		return api.Point{}, db.ErrNotFound
	}
	if m.beforeGet != nil {
		m.beforeGet(p)
	}
	return *p, nil
}

func (m *memPoints) SetRetention(ctx context.Context, id, tier string, expires *time.Time, reasons []string, next *time.Time) error {
	if p := m.find(id); p != nil {
		p.Tier, p.RestorableUntil, p.Reasons = tier, expires, reasons
	}
	return nil
}

func (m *memPoints) ExpirePoint(ctx context.Context, id string) error {
	if p := m.find(id); p != nil && p.DeletedAt == nil && !p.LegalHold {
		now := time.Now()
		p.DeletedAt = &now
	}
	return nil
}

func (m *memPoints) PointsByTier(ctx context.Context, storageID string) (warm, cold []string, err error) {
	for _, p := range m.live() {
		switch {
		case p.StorageID != storageID:
		case p.Tier == "cold":
			cold = append(cold, p.ID)
		default:
			warm = append(warm, p.ID)
		}
	}
	return warm, cold, nil
}

func (m *memPoints) LatestPoint(ctx context.Context, assetID string) (api.Point, error) {
	var latest *api.Point
	for _, p := range m.live() {
		if p.AssetID == assetID && (latest == nil || p.CompletedAt.After(latest.CompletedAt)) {
			latest = p
		}
	}
	if latest == nil {
		return api.Point{}, db.ErrNotFound
	}
	return *latest, nil
}

// memRepos records what retention does to each storage's repository.
type memRepos struct {
	deleted map[string][]string    // storage → point ids
	tiered  map[string][2][]string // storage → warm and cold points
}

func newRepos() *memRepos {
	return &memRepos{deleted: map[string][]string{}, tiered: map[string][2][]string{}}
}

func (m *memRepos) Repository(ctx context.Context, storageID string) (Repository, error) {
	return memRepo{m, storageID}, nil
}

type memRepo struct {
	m       *memRepos
	storage string
}

func (r memRepo) DeletePoint(ctx context.Context, pointID string) error {
	r.m.deleted[r.storage] = append(r.m.deleted[r.storage], pointID)
	return nil
}

func (r memRepo) ApplyTiers(ctx context.Context, warm, cold []string) (repo.TierReport, error) {
	r.m.tiered[r.storage] = [2][]string{warm, cold}
	return repo.TierReport{ToCold: len(cold)}, nil
}

// memGC records the storages queued for GC.
type memGC struct{ storages []string }

func (g *memGC) QueueGC(ctx context.Context, storageID string) error {
	g.storages = append(g.storages, storageID)
	return nil
}

// memInventory holds each vCenter's VMs; VMs fails for the ids in broken.
type memInventory struct {
	vms    map[string][]api.VM
	broken map[string]error
}

func (m *memInventory) VMs(ctx context.Context, vcenterID string) ([]api.VM, error) {
	if err := m.broken[vcenterID]; err != nil {
		return nil, err
	}
	return m.vms[vcenterID], nil
}
