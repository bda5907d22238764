package repo

import (
	"context"
	"errors"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// TierReport says what a tier pass did.
type TierReport struct {
	ToCold      int
	Unsupported bool // the store has no storage classes (a filesystem)
}

// ApplyTiers moves packs to the cold storage class when every committed
// point referencing them is cold. Deduplication shares packs between
// points, so a pack any warm point still uses stays warm; packs that no
// committed point references (garbage, or uploads of a backup still
// running) are left alone. Moving back to warm is not done here: archive
// classes need a restore request first.
func (r *Repository) ApplyTiers(ctx context.Context, warmPoints, coldPoints []string) (TierReport, error) {
	var rep TierReport
	warm, err := r.packsOfPoints(ctx, warmPoints)
	if err != nil {
		return rep, err
	}
	cold, err := r.packsOfPoints(ctx, coldPoints)
	if err != nil {
		return rep, err
	}
	for p := range cold {
		if warm[p] {
			continue
		}
		cls, err := r.index.PackClass(ctx, p)
		if err != nil {
			return rep, err
		}
		if cls == int16(store.ClassCold) {
			continue
		}
		err = store.SetClass(ctx, r.store, PackName(p), store.ClassCold)
		if errors.Is(err, store.ErrUnsupported) {
			rep.Unsupported = true
			return rep, nil
		}
		if err != nil {
			return rep, err
		}
		if err := r.index.SetPackClass(ctx, p, int16(store.ClassCold)); err != nil {
			return rep, err
		}
		rep.ToCold++
	}
	return rep, nil
}

// packsOfPoints collects the packs holding anything the points reference.
func (r *Repository) packsOfPoints(ctx context.Context, pointIDs []string) (map[format.ID]bool, error) {
	packs := map[format.ID]bool{}
	for _, p := range pointIDs {
		root, err := r.index.Root(ctx, p)
		if err != nil {
			return nil, err
		}
		var batch []format.ID
		flush := func() error {
			locs, err := r.index.Locate(ctx, batch)
			if err != nil {
				return err
			}
			for _, l := range locs {
				packs[l.Pack] = true
			}
			batch = batch[:0]
			return nil
		}
		if err := r.walkRefs(ctx, root, func(id format.ID, _ string) error {
			batch = append(batch, id)
			if len(batch) >= locateSize {
				return flush()
			}
			return nil
		}); err != nil {
			return nil, err
		}
		if err := flush(); err != nil {
			return nil, err
		}
	}
	return packs, nil
}
