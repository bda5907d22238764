package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// RebuildReport says what Rebuild found in the store and what it indexed.
type RebuildReport struct {
	// Packs and Chunks are what this rebuild indexed; KnownPacks the packs
	// the index already had (a second rebuild indexes nothing).
	Packs      int64
	Chunks     int64
	KnownPacks int64
	// Points are the whole points the store records, in point id order,
	// each now live in the index.
	Points []FoundPoint
	// Skipped are the objects Rebuild could not use, with why.
	Skipped []Skipped
}

// FoundPoint is a recovery point found in the store.
type FoundPoint struct {
	PointID   string
	Root      format.ID
	Committed time.Time
	// RecordVersion is the version of the point record: records of
	// version 1 carry no catalog entry.
	RecordVersion int
	// Catalog is the entry the committer kept with the point (see
	// CatalogFunc); nil if it kept none.
	Catalog json.RawMessage
	// Added is set when this rebuild put the point in the index, clear
	// when the index had it already.
	Added bool
}

// RebuildProgress is how far a rebuild is: the packs it indexes (those
// the index lacked) and their bytes, then the point records it reads.
type RebuildProgress struct {
	PacksDone, PacksTotal int64
	BytesDone, BytesTotal int64
	PointsDone            int64
	PointsTotal           int64
}

// Skipped is an object of the store that Rebuild could not use.
type Skipped struct {
	Object string
	Reason string
}

// Rebuild makes the chunk index whole again from what the store holds: it
// indexes every pack the index lacks from the pack's trailer (two ranged
// reads per pack), then records the root of every point whose record is
// in the store and whose data is all there (the same whole-point check a
// commit runs). It is how a repository is recovered after the index (the
// server's database) was lost, and it is idempotent: what the index knows
// is left as it is, so a second rebuild adds nothing, and a point the
// index holds as deleted stays deleted.
//
// Rebuild holds the repository's GC lock throughout: a GC running on a
// half-rebuilt index would take the packs not indexed yet for orphans.
// Packs whose trailer cannot be read (damaged, or in an archive class that
// needs a restore request first) and points that are not whole are
// reported in Skipped, not indexed; the rest of the rebuild goes on.
//
// progress, unless nil, hears how far the rebuild is after each pack and
// each point record; calls come one at a time.
func (r *Repository) Rebuild(ctx context.Context, progress func(RebuildProgress)) (*RebuildReport, error) {
	g, err := r.index.BeginGC(ctx)
	if err != nil {
		return nil, fmt.Errorf("rebuilding the index: %w", err)
	}
	defer g.End()
	if progress == nil {
		progress = func(RebuildProgress) {}
	}
	rep := &RebuildReport{}
	var at RebuildProgress
	if err := r.rebuildPacks(ctx, rep, &at, progress); err != nil {
		return nil, err
	}
	if err := r.rebuildPoints(ctx, rep, &at, progress); err != nil {
		return nil, err
	}
	return rep, nil
}

// rebuildPacks indexes every pack object the index lacks.
func (r *Repository) rebuildPacks(ctx context.Context, rep *RebuildReport, at *RebuildProgress, progress func(RebuildProgress)) error {
	known, err := r.index.KnownPacks(ctx)
	if err != nil {
		return err
	}
	var todo []store.ObjectInfo
	err = r.store.List(ctx, PacksPrefix, func(o store.ObjectInfo) error {
		id, err := format.ParseID(strings.TrimPrefix(o.Name, PacksPrefix))
		switch {
		case err != nil:
			rep.Skipped = append(rep.Skipped, Skipped{o.Name, "not a pack name"})
		case known[id]:
			rep.KnownPacks++
		default:
			todo = append(todo, o)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("listing packs: %w", err)
	}
	at.PacksTotal = int64(len(todo))
	for _, o := range todo {
		at.BytesTotal += o.Size
	}
	progress(*at)
	var mu sync.Mutex
	eg, ectx := errgroup.WithContext(ctx)
	eg.SetLimit(r.workers())
	for _, o := range todo {
		eg.Go(func() error {
			n, err := r.indexPack(ectx, o)
			mu.Lock()
			defer mu.Unlock()
			at.PacksDone++
			at.BytesDone += o.Size
			progress(*at)
			if err != nil {
				if ectx.Err() != nil {
					return ectx.Err()
				}
				rep.Skipped = append(rep.Skipped, Skipped{o.Name, err.Error()})
				return nil
			}
			rep.Packs++
			rep.Chunks += n
			return nil
		})
	}
	return eg.Wait()
}

// indexPack reads one pack's trailer and indexes its chunks.
func (r *Repository) indexPack(ctx context.Context, o store.ObjectInfo) (int64, error) {
	id, _ := format.ParseID(strings.TrimPrefix(o.Name, PacksPrefix))
	entries, err := format.ReadTrailer(&objectReaderAt{ctx: ctx, st: r.store, name: o.Name}, o.Size, r.sealer)
	if err != nil {
		return 0, fmt.Errorf("reading the pack trailer: %w", err)
	}
	for _, e := range entries {
		if e.Offset < 0 || e.Length <= 0 || e.Offset+e.Length > o.Size {
			return 0, fmt.Errorf("the trailer places chunk %s outside the pack: %w", e.ID.Short(), format.ErrCorrupt)
		}
	}
	if err := r.index.AddPack(ctx, id, o.Size, int16(o.Class), entries); err != nil {
		return 0, fmt.Errorf("indexing: %w", err)
	}
	return int64(len(entries)), nil
}

// rebuildPoints records the root of every whole point the store records.
func (r *Repository) rebuildPoints(ctx context.Context, rep *RebuildReport, at *RebuildProgress, progress func(RebuildProgress)) error {
	var names []string
	if err := r.store.List(ctx, PointsPrefix, func(o store.ObjectInfo) error {
		names = append(names, o.Name)
		return nil
	}); err != nil {
		return fmt.Errorf("listing point records: %w", err)
	}
	at.PointsTotal = int64(len(names))
	progress(*at)
	for _, name := range names {
		p, reason, err := r.rebuildPoint(ctx, name)
		if err != nil {
			return err
		}
		at.PointsDone++
		progress(*at)
		if reason != "" {
			rep.Skipped = append(rep.Skipped, Skipped{name, reason})
			continue
		}
		rep.Points = append(rep.Points, p)
	}
	return nil
}

// rebuildPoint imports one point record. A point that cannot be imported
// gives a reason; err is for failures that stop the whole rebuild.
func (r *Repository) rebuildPoint(ctx context.Context, name string) (p FoundPoint, reason string, err error) {
	rec, err := r.readPointRecord(ctx, name)
	if err != nil {
		if ctx.Err() != nil {
			return p, "", ctx.Err()
		}
		return p, "unreadable point record: " + err.Error(), nil
	}
	p = FoundPoint{PointID: rec.PointID, Root: rec.Root, Committed: rec.Committed, RecordVersion: rec.Version, Catalog: rec.Catalog}
	if err := r.CheckWhole(ctx, rec.Root); err != nil {
		if ctx.Err() != nil {
			return p, "", ctx.Err()
		}
		return p, err.Error(), nil
	}
	state, err := r.index.ImportRoot(ctx, rec.PointID, rec.Root, rec.Committed)
	switch {
	case errors.Is(err, index.ErrRootMismatch):
		return p, err.Error(), nil
	case err != nil:
		return p, "", err
	case state == index.RootDeleted:
		return p, "the point was deleted (its record outlived the delete); it stays deleted", nil
	}
	p.Added = state == index.RootAdded
	return p, "", nil
}

// objectReaderAt reads a stored object by ranges.
type objectReaderAt struct {
	ctx  context.Context
	st   store.Store
	name string
}

func (o *objectReaderAt) ReadAt(p []byte, off int64) (int, error) {
	rc, err := o.st.Get(o.ctx, o.name, off, int64(len(p)))
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return io.ReadFull(rc, p)
}
