package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// DestroyReport says what Destroy removed.
type DestroyReport struct {
	Objects int64
	Bytes   int64
}

// Destroy deletes the whole repository: every pack, point record and key
// object in its store, then every index row. It is what deleting a storage
// with force_destroy does, once the caller has made sure that no recovery
// point it still lists is on it and that no job uses it; a backup session
// still alive refuses the destroy. The store holds one repository (GC
// already deletes packs the index does not know), so every object under
// the repository's prefixes is its own. Keys go last, so that a destroy
// cut short can be run again on a repository that still opens.
func (r *Repository) Destroy(ctx context.Context) (DestroyReport, error) {
	var rep DestroyReport
	live, err := r.index.LiveSessions(ctx)
	if err != nil {
		return rep, err
	}
	if live > 0 {
		return rep, fmt.Errorf("%d backup sessions are still writing to the repository", live)
	}
	for _, prefix := range []string{PacksPrefix, PointsPrefix, KeysPrefix} {
		var objects []store.ObjectInfo
		if err := r.store.List(ctx, prefix, func(o store.ObjectInfo) error {
			objects = append(objects, o)
			return nil
		}); err != nil {
			return rep, err
		}
		for _, o := range objects {
			if err := r.store.Delete(ctx, o.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
				return rep, err
			}
			rep.Objects++
			rep.Bytes += o.Size
		}
	}
	return rep, r.index.Drop(ctx)
}
