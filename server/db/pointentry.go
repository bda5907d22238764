package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// Every recovery point's record in its store (points/<id>, sealed with the
// storage's data key) carries the server's catalog entry of the point: its
// catalog row as committed and its asset as it would be recorded if it
// were deleted then (see retire). With the store and the master key alone,
// ImportPoints makes the point listable, restorable and retained again
// after the catalog was lost. The entry's layout is documented in the
// repository-format guide; change it only compatibly, and bump Version.

// PointEntryVersion is the version of the catalog entry written.
const PointEntryVersion = 1

// PointEntry is the server's catalog entry of a point.
type PointEntry struct {
	Version int        `json:"version"`
	Point   EntryPoint `json:"point"`
	// Asset is the point's asset as a retired_assets row holds it; nil if
	// the asset was already gone at commit.
	Asset *EntryAsset `json:"asset,omitempty"`
}

// EntryPoint is a point's catalog row as committed.
type EntryPoint struct {
	ID           string    `json:"id"`
	AssetID      string    `json:"asset_id"`
	StorageID    string    `json:"storage_id"`
	Kind         string    `json:"kind"`
	ParentID     string    `json:"parent_id,omitempty"`
	StartedAt    time.Time `json:"started_at"`
	CompletedAt  time.Time `json:"completed_at"`
	LogicalBytes int64     `json:"logical_bytes"`
	NewBytes     int64     `json:"new_bytes"`
	StoredBytes  int64     `json:"stored_bytes"`
	Files        int64     `json:"files"`
	JobID        string    `json:"job_id,omitempty"`
	// LegalHold is kept up to date after the commit (see WithLegalHold).
	LegalHold bool `json:"legal_hold,omitempty"`
	// LogStart, LogEnd and Database are a database point's (added
	// compatibly: older entries have none).
	LogStart *time.Time         `json:"log_start,omitempty"`
	LogEnd   *time.Time         `json:"log_end,omitempty"`
	Database *api.DatabasePoint `json:"database,omitempty"`
}

// EntryAsset is an asset as its points remember it (see RetiredAsset).
type EntryAsset struct {
	ID         string          `json:"id"`
	Kind       string          `json:"kind"`
	Name       string          `json:"name"`
	Spec       json.RawMessage `json:"spec"`
	Policy     json.RawMessage `json:"policy,omitempty"`
	FileServer json.RawMessage `json:"file_server,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
}

// NewPointEntry is the catalog entry of point p, read in q (the
// transaction that commits p, so the asset is seen as the point is).
func (d *DB) NewPointEntry(ctx context.Context, q Querier, p api.Point) ([]byte, error) {
	e := PointEntry{Version: PointEntryVersion, Point: EntryPoint{ID: p.ID, AssetID: p.AssetID, StorageID: p.StorageID, Kind: p.Kind,
		ParentID: p.ParentID, StartedAt: p.StartedAt, CompletedAt: p.CompletedAt, LogicalBytes: p.LogicalBytes,
		NewBytes: p.NewBytes, StoredBytes: p.StoredBytes, Files: p.Files, JobID: p.JobID,
		LogStart: p.LogStart, LogEnd: p.LogEnd, Database: p.Database}}
	a, err := d.assetSnapshot(ctx, q, p.AssetID)
	switch {
	case err == nil:
		e.Asset = &EntryAsset{ID: a.ID, Kind: a.Kind, Name: a.Name, Spec: a.Spec, Policy: a.Policy, FileServer: a.FileServer, CreatedAt: a.CreatedAt}
	case !errors.Is(err, ErrNotFound):
		return nil, err
	}
	return json.Marshal(e)
}

// WithLegalHold is a catalog entry with its point's legal hold set or
// cleared, so that an import keeps the hold.
func WithLegalHold(entry []byte, hold bool) ([]byte, error) {
	var e PointEntry
	if err := json.Unmarshal(entry, &e); err != nil {
		return nil, fmt.Errorf("the point's catalog entry: %w", err)
	}
	if e.Version > PointEntryVersion {
		return nil, fmt.Errorf("the point's catalog entry is of version %d, newer than this server writes (%d)", e.Version, PointEntryVersion)
	}
	e.Point.LegalHold = hold
	return json.Marshal(e)
}

// FoundPoint is a point found in a store, to import.
type FoundPoint struct {
	ID        string
	Committed time.Time
	// Entry is the point's catalog entry; nil when its record has none.
	Entry []byte
	// RecordVersion is the version of the point's record in the store:
	// records of version 1 were written before records kept an entry.
	RecordVersion int
}

// ImportedPoints says what ImportPoints did.
type ImportedPoints struct {
	// Points and Assets were added to the catalog; KnownPoints were in it.
	Points, Assets, KnownPoints int64
	// Skipped names the points that could not be imported, with why.
	Skipped map[string]string
}

// ImportPoints adds the points found in storage storageID's store to the
// catalog, in one transaction: each point's row from its entry, and for
// an asset the catalog lacks, a retired_assets row, so the point is
// listed under its asset's name, restored and retained under the policy
// recorded with it. What the catalog has is left as it is, so importing
// again adds nothing. A point whose entry is missing or names another
// point is skipped, with the reason.
func (d *DB) ImportPoints(ctx context.Context, storageID string, found []FoundPoint) (ImportedPoints, error) {
	out := ImportedPoints{Skipped: map[string]string{}}
	err := d.InTx(ctx, func(tx pgx.Tx) error {
		out = ImportedPoints{Skipped: map[string]string{}}
		for _, f := range found {
			e, reason := decodeEntry(f)
			if reason != "" {
				out.Skipped[f.ID] = reason
				continue
			}
			if e.Asset != nil {
				added, err := d.importAsset(ctx, tx, e.Asset)
				if err != nil {
					return fmt.Errorf("point %s: asset %s: %w", f.ID, e.Asset.ID, err)
				}
				if added {
					out.Assets++
				}
			}
			p := e.Point
			tag, err := tx.Exec(ctx, `INSERT INTO points (id, asset_id, storage_id, kind, parent_id, started_at, completed_at,
				logical_bytes, new_bytes, stored_bytes, files, job_id, legal_hold, log_start, log_end, database)
				VALUES ($1, $2, $3, $4, $5::uuid, $6, $7, $8, $9, $10, $11, $12::uuid, $13, $14, $15, $16) ON CONFLICT (id) DO NOTHING`,
				p.ID, p.AssetID, storageID, p.Kind, nullable(p.ParentID), p.StartedAt, p.CompletedAt,
				p.LogicalBytes, p.NewBytes, p.StoredBytes, p.Files, nullable(p.JobID), p.LegalHold, p.LogStart, p.LogEnd, p.Database)
			if err != nil {
				return fmt.Errorf("point %s: %w", f.ID, err)
			}
			if tag.RowsAffected() == 1 {
				out.Points++
			} else {
				out.KnownPoints++
			}
		}
		return nil
	})
	return out, err
}

func decodeEntry(f FoundPoint) (PointEntry, string) {
	var e PointEntry
	if f.Entry == nil && f.RecordVersion == 1 {
		return e, "its record was written before records kept the catalog entry (point record version 1): " +
			"its data is indexed and kept, but it has no asset to list or restore it under"
	}
	if f.Entry == nil {
		return e, "its record keeps no catalog entry: its data is indexed and kept, but it has no asset to list or restore it under"
	}
	if err := json.Unmarshal(f.Entry, &e); err != nil {
		return e, fmt.Sprintf("its catalog entry is unreadable: %v", err)
	}
	if e.Version < 1 || e.Version > PointEntryVersion {
		return e, fmt.Sprintf("its catalog entry is of version %d, newer than this server reads (%d)", e.Version, PointEntryVersion)
	}
	if e.Point.ID != f.ID || !looksLikeUUID(e.Point.AssetID) || e.Point.Kind == "" || e.Point.StartedAt.IsZero() || e.Point.CompletedAt.IsZero() {
		return e, "its catalog entry is incomplete or names another point"
	}
	if e.Asset != nil && e.Asset.ID != e.Point.AssetID {
		return e, "its catalog entry's asset is not the point's"
	}
	return e, ""
}

// importAsset records an asset the catalog lacks as retired. A live asset
// of that id is left alone: its points belong to it.
func (d *DB) importAsset(ctx context.Context, tx pgx.Tx, a *EntryAsset) (bool, error) {
	if _, err := d.assetSnapshot(ctx, tx, a.ID); err == nil {
		return false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO retired_assets (id, kind, name, spec, policy, file_server, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO NOTHING`,
		a.ID, a.Kind, a.Name, []byte(a.Spec), nullJSON(a.Policy), nullJSON(a.FileServer), a.CreatedAt)
	return tag.RowsAffected() == 1, err
}

func nullJSON(b json.RawMessage) []byte {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	return b
}
