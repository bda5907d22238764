package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// pointRecord is the sealed object points/<point id>: the store's own copy
// of the catalog row, so the store alone (with the master key) is enough to
// find every recovery point again (Rebuild). Version 2 added Catalog;
// version 1 records have none and are read the same way.
type pointRecord struct {
	Version   int       `json:"version"`
	PointID   string    `json:"point_id"`
	Root      format.ID `json:"root"`
	Committed time.Time `json:"committed"`
	// Catalog is what the committer's CatalogFunc returned: its own
	// description of the point, opaque to the repository.
	Catalog json.RawMessage `json:"catalog,omitempty"`
}

// pointRecordVersion is the version written; readers accept 1 and 2.
const pointRecordVersion = 2

const pointPurpose = "haven/point"

// CatalogFunc writes the caller's own records of a point (a catalog row,
// a job's outcome) inside the transaction that commits the point, and
// returns the catalog entry to keep with the point in the store: opaque
// JSON, or nil for none. Rebuild hands it back, so that whoever lost its
// records can make them again from the store alone.
type CatalogFunc func(tx pgx.Tx) (catalog []byte, err error)

func (r *Repository) putPointRecord(ctx context.Context, pointID string, root format.ID, catalog []byte) error {
	return r.writePointRecord(ctx, pointRecord{Version: pointRecordVersion, PointID: pointID, Root: root, Committed: time.Now().UTC(), Catalog: catalog})
}

func (r *Repository) writePointRecord(ctx context.Context, rec pointRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	sealed := r.sealer.SealObject(pointPurpose, b)
	return r.store.Put(ctx, PointsPrefix+rec.PointID, bytes.NewReader(sealed), int64(len(sealed)), store.PutOptions{})
}

// readPointRecord reads and opens points/<point id> by its object name.
func (r *Repository) readPointRecord(ctx context.Context, name string) (pointRecord, error) {
	var rec pointRecord
	sealed, err := readObject(ctx, r.store, name)
	if err != nil {
		return rec, err
	}
	plain, err := r.sealer.OpenObject(pointPurpose, sealed)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(plain, &rec); err != nil {
		return rec, fmt.Errorf("point record: %v: %w", err, format.ErrCorrupt)
	}
	if rec.Version < 1 || rec.Version > pointRecordVersion {
		return rec, fmt.Errorf("point record version %d is newer than this Haven reads (%d)", rec.Version, pointRecordVersion)
	}
	if PointsPrefix+rec.PointID != name {
		return rec, fmt.Errorf("point record names point %q, but is stored as %s: %w", rec.PointID, name, format.ErrCorrupt)
	}
	if len(rec.Catalog) > 0 && !json.Valid(rec.Catalog) {
		return rec, fmt.Errorf("point record's catalog entry is not JSON: %w", format.ErrCorrupt)
	}
	return rec, nil
}

// UpdatePointCatalog replaces the catalog entry a committed point's record
// keeps with what update makes of the current one (the committer's records
// of the point changed after the commit: a legal hold, say). A record
// without an entry (version 1) is left as it is. The record is rewritten
// whole, atomically; its root and commit time stay.
func (r *Repository) UpdatePointCatalog(ctx context.Context, pointID string, update func(catalog []byte) ([]byte, error)) error {
	rec, err := r.readPointRecord(ctx, PointsPrefix+pointID)
	if err != nil {
		return fmt.Errorf("point %s: %w", pointID, err)
	}
	if len(rec.Catalog) == 0 {
		return nil
	}
	catalog, err := update(rec.Catalog)
	if err != nil {
		return err
	}
	rec.Version, rec.Catalog = pointRecordVersion, catalog
	return r.writePointRecord(ctx, rec)
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
