package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// pointRecord is the sealed object points/<point id>: the store's own copy
// of the catalog row, so the store alone (with the master key) is enough to
// find every recovery point.
type pointRecord struct {
	Version   int       `json:"version"`
	PointID   string    `json:"point_id"`
	Root      format.ID `json:"root"`
	Committed time.Time `json:"committed"`
}

const pointPurpose = "haven/point"

func (r *Repository) putPointRecord(ctx context.Context, pointID string, root format.ID) error {
	b, err := json.Marshal(pointRecord{Version: 1, PointID: pointID, Root: root, Committed: time.Now().UTC()})
	if err != nil {
		return err
	}
	sealed := r.sealer.SealObject(pointPurpose, b)
	return r.store.Put(ctx, PointsPrefix+pointID, bytes.NewReader(sealed), int64(len(sealed)), store.PutOptions{})
}

// Root returns the root manifest of a committed recovery point, the
// starting point of every read of it. A point that was never committed in
// this repository, or that was deleted, yields an error wrapping ErrNoRoot.
func (r *Repository) Root(ctx context.Context, pointID string) (format.ID, error) {
	return r.index.Root(ctx, pointID)
}

// DeletePoint removes a point: its catalog root is marked deleted and its
// store record removed. Its chunks are reclaimed by the next GC.
func (r *Repository) DeletePoint(ctx context.Context, pointID string) error {
	if err := r.index.DeleteRoot(ctx, pointID); err != nil {
		return err
	}
	return r.store.Delete(ctx, PointsPrefix+pointID)
}
