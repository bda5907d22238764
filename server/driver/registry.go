package driver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// Registry maps asset kinds to their drivers and asset tables to their
// decoders. It is built once as the server starts; the only switch on
// asset kind is its lookup.
type Registry struct {
	db       *db.DB
	drivers  map[string]Driver
	decoders []Decoder
}

// NewRegistry returns an empty registry over the catalog d.
func NewRegistry(d *db.DB) *Registry { return &Registry{db: d, drivers: map[string]Driver{}} }

// Register adds drivers; a kind registered twice is a programming error.
func (r *Registry) Register(ds ...Driver) {
	for _, d := range ds {
		if _, dup := r.drivers[d.Kind()]; dup {
			panic(fmt.Sprintf("driver: kind %q registered twice", d.Kind()))
		}
		r.drivers[d.Kind()] = d
	}
}

// RegisterDecoder adds the decoder of an asset table.
func (r *Registry) RegisterDecoder(d Decoder) {
	for _, e := range r.decoders {
		if e.Table() == d.Table() {
			panic(fmt.Sprintf("driver: table %q has two decoders", d.Table()))
		}
	}
	r.decoders = append(r.decoders, d)
}

// Tables are the asset tables, in registration order.
func (r *Registry) Tables() []db.Table {
	out := make([]db.Table, len(r.decoders))
	for i, d := range r.decoders {
		out[i] = d.Table()
	}
	return out
}

// AssetTables are the asset tables with their retired kinds, for the catalog.
func (r *Registry) AssetTables() []db.AssetTable {
	out := make([]db.AssetTable, len(r.decoders))
	for i, d := range r.decoders {
		out[i] = db.AssetTable{Table: d.Table(), RetiredKind: d.RetiredKind()}
	}
	return out
}

// Kinds lists the registered kinds, sorted.
func (r *Registry) Kinds() []string {
	out := make([]string, 0, len(r.drivers))
	for k := range r.drivers {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ErrNoDriver means an asset's kind has no driver in this server.
var ErrNoDriver = errors.New("no driver serves this asset kind")

// For returns the driver of an asset kind.
func (r *Registry) For(kind string) (Driver, error) {
	d, ok := r.drivers[kind]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoDriver, kind)
	}
	return d, nil
}

// Each calls fn for every driver, in kind order.
func (r *Registry) Each(fn func(Driver) error) error {
	var errs []error
	for _, k := range r.Kinds() {
		if err := fn(r.drivers[k]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Load loads an asset by id, live or retired (deleted while it had
// recovery points: see db.RetiredAsset). A retired asset is what its
// points need: its spec and the policy it was under, as they were when it
// was deleted. An asset of neither kind is db.ErrNotFound.
func (r *Registry) Load(ctx context.Context, id string) (*Asset, error) {
	d := r.db
	for _, dec := range r.decoders {
		o, err := d.Get(ctx, dec.Table(), id)
		if errors.Is(err, db.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("asset %s: %w", id, err)
		}
		return r.decode(ctx, dec, Record{Table: dec.Table(), Object: o})
	}
	ra, err := d.GetRetiredAsset(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("asset %s: %w", id, err)
	}
	for _, dec := range r.decoders {
		if dec.RetiredKind() == ra.Kind {
			return r.decode(ctx, dec, Record{Table: dec.Table(), Retired: &ra})
		}
	}
	return nil, fmt.Errorf("deleted asset %s (%s) is of kind %q, which no driver serves", ra.Name, ra.ID, ra.Kind)
}

// LoadServed is Load, with the driver that serves the asset.
func (r *Registry) LoadServed(ctx context.Context, id string) (*Asset, Driver, error) {
	a, err := r.Load(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	d, err := r.For(a.Kind)
	return a, d, err
}

func (r *Registry) decode(ctx context.Context, dec Decoder, rec Record) (*Asset, error) {
	a, err := dec.Decode(ctx, rec)
	if err != nil {
		return nil, err
	}
	if _, err := r.For(a.Kind); err != nil {
		return nil, fmt.Errorf("asset %s: %w", a.ID, err)
	}
	a.Retired = rec.Retired != nil
	return a, r.loadPolicy(ctx, a, rec)
}

// loadPolicy fills in the asset's policy (the decoder set its id): the
// live policy, or for a retired asset the policy recorded with it.
func (r *Registry) loadPolicy(ctx context.Context, a *Asset, rec Record) error {
	if rec.Retired != nil {
		if rec.Retired.Policy == nil {
			return fmt.Errorf("deleted asset %s (%s) has no recorded backup policy", rec.Retired.Name, rec.Retired.ID)
		}
		return json.Unmarshal(rec.Retired.Policy, &a.Policy.PolicySpec)
	}
	pol, err := r.db.Get(ctx, db.BackupPolicies, a.Policy.ID)
	if err != nil {
		return fmt.Errorf("backup policy %s: %w", a.Policy.ID, err)
	}
	a.Policy.Meta = api.Meta{ID: pol.ID}
	return json.Unmarshal(pol.Spec, &a.Policy.PolicySpec)
}
