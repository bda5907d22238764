package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// GCOptions tune a garbage collection.
type GCOptions struct {
	// Grace is how long an unreferenced chunk survives after it was last
	// touched, and a retired pack after it was retired. It must exceed
	// the index's touch granularity.
	Grace time.Duration
	// RepackBelow repacks packs whose live fraction is under it (0.5 by
	// default); zero disables repacking below the default, negative never repacks.
	RepackBelow float64
}

// DefaultGrace is long enough for any in-flight lookup to be protected by
// its touch, and for restores that located chunks just before a repack.
const DefaultGrace = time.Hour

// GCReport says what a garbage collection did.
type GCReport struct {
	LiveRoots    int
	Marked       int64
	SweptChunks  int64
	SweptBytes   int64
	Repacked     int64
	RetiredPacks int64
	DeletedPacks int64
	OrphanPacks  int64
	FreedBytes   int64
}

// GC reclaims what no live recovery point needs, safely while backups run:
//
//  1. Take the repository's GC lock (one GC at a time across replicas).
//  2. Fix the cutoff: grace before now, and grace before the start of the
//     oldest live backup session.
//  3. Mark every chunk reachable from live roots (and from the roots live
//     sessions build on) into a temporary table.
//  4. Sweep index rows that are unmarked and were last touched before the
//     cutoff. Backups touch every chunk they deduplicate against, under a
//     row lock, so a chunk a running backup relies on is either kept or
//     reported missing to that backup (which then stores it again).
//  5. Repack packs whose live fraction fell under the threshold, retire
//     packs nothing points into, and delete retired packs (and orphan
//     objects never indexed) older than the grace period.
func (r *Repository) GC(ctx context.Context, opts GCOptions) (*GCReport, error) {
	if opts.Grace == 0 {
		opts.Grace = DefaultGrace
	}
	if opts.Grace <= r.index.TouchGranularity() {
		return nil, fmt.Errorf("GC grace %v must exceed the touch granularity %v", opts.Grace, r.index.TouchGranularity())
	}
	if opts.RepackBelow == 0 {
		opts.RepackBelow = 0.5
	}
	g, err := r.index.BeginGC(ctx)
	if err != nil {
		return nil, err
	}
	defer g.End()
	rep := &GCReport{}

	cutoff, err := g.Cutoff(ctx, opts.Grace)
	if err != nil {
		return nil, err
	}
	roots, err := r.index.LiveRoots(ctx)
	if err != nil {
		return nil, err
	}
	rep.LiveRoots = len(roots)
	var batch []format.ID
	for _, root := range roots {
		err := r.walkRefs(ctx, root.Root, func(id format.ID, _ string) error {
			batch = append(batch, id)
			rep.Marked++
			if len(batch) >= 8192 {
				err := g.Mark(ctx, batch)
				batch = batch[:0]
				return err
			}
			return nil
		})
		if err != nil {
			// A root that cannot be walked must stop the sweep: otherwise
			// everything only it references would be swept.
			return nil, fmt.Errorf("marking point %s: %w", root.PointID, err)
		}
	}
	if err := g.Mark(ctx, batch); err != nil {
		return nil, err
	}
	if rep.SweptChunks, rep.SweptBytes, err = g.Sweep(ctx, cutoff); err != nil {
		return nil, err
	}
	if err := r.index.DropDeletedRoots(ctx); err != nil {
		return nil, err
	}
	if opts.RepackBelow > 0 {
		if err := r.repack(ctx, cutoff, opts.RepackBelow, rep); err != nil {
			return nil, err
		}
	}
	if rep.RetiredPacks, err = r.index.RetireEmptyPacks(ctx, cutoff); err != nil {
		return nil, err
	}
	now, err := r.index.Now(ctx)
	if err != nil {
		return nil, err
	}
	if err := r.deleteRetired(ctx, now.Add(-opts.Grace), rep); err != nil {
		return nil, err
	}
	if err := r.deleteOrphans(ctx, now.Add(-opts.Grace), rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// repack copies the live blobs of sparse packs into new packs (sealed
// blobs move as they are, no decryption needed) and redirects the index.
// The old packs are retired once nothing points into them.
func (r *Repository) repack(ctx context.Context, cutoff time.Time, below float64, rep *GCReport) error {
	var sparse []index.PackInfo
	if err := r.index.Packs(ctx, func(p index.PackInfo) error {
		if p.RetiredAt == nil && p.Chunks > 0 && p.CreatedAt.Before(cutoff) && float64(p.LiveBytes) < below*float64(p.Size) {
			sparse = append(sparse, p)
		}
		return nil
	}); err != nil {
		return err
	}
	builder := format.NewPackBuilder(r.opts.PackSize)
	from := map[format.ID]format.ID{}
	flush := func() error {
		if builder.Len() == 0 {
			return nil
		}
		entries := append([]format.PackEntry(nil), builder.Entries()...)
		data := builder.Finish(r.sealer)
		pid, err := r.putPack(ctx, nil, data, store.ClassWarm)
		if err != nil {
			return err
		}
		if err := r.index.MoveChunks(ctx, pid, int64(len(data)), int16(store.ClassWarm), entries, from); err != nil {
			return err
		}
		builder = format.NewPackBuilder(r.opts.PackSize)
		clear(from)
		return nil
	}
	for _, p := range sparse {
		entries, err := r.index.PackChunks(ctx, p.ID)
		if err != nil {
			return err
		}
		rc, err := r.store.Get(ctx, PackName(p.ID), 0, -1)
		if err != nil {
			return fmt.Errorf("repacking %s: %w", p.ID.Short(), err)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Offset+e.Length > int64(len(data)) {
				return fmt.Errorf("repacking %s: chunk %s lies past the end of the pack", p.ID.Short(), e.ID.Short())
			}
			builder.AddSealed(e.ID, e.Type, data[e.Offset:e.Offset+e.Length], e.RawLength)
			from[e.ID] = p.ID
			if builder.Size() >= r.opts.PackSize {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		rep.Repacked++
	}
	return flush()
}

func (r *Repository) deleteRetired(ctx context.Context, before time.Time, rep *GCReport) error {
	retired, err := r.index.RetiredPacks(ctx, before)
	if err != nil {
		return err
	}
	for _, p := range retired {
		info, err := r.store.Stat(ctx, PackName(p))
		if err == nil {
			rep.FreedBytes += info.Size
		}
		if err := r.store.Delete(ctx, PackName(p)); err != nil {
			return err
		}
		if err := r.index.ForgetPack(ctx, p); err != nil {
			return err
		}
		rep.DeletedPacks++
	}
	return nil
}

// deleteOrphans removes pack objects with no row at all (left by a crash
// between a retired pack's delete and its row's removal, or by hand). Every
// upload records its row before it starts, so this never races a writer;
// uploads whose writer died are retired through their pending row.
func (r *Repository) deleteOrphans(ctx context.Context, before time.Time, rep *GCReport) error {
	var orphans []store.ObjectInfo
	err := r.store.List(ctx, PacksPrefix, func(o store.ObjectInfo) error {
		if o.ModTime.IsZero() || !o.ModTime.Before(before) {
			return nil
		}
		id, err := format.ParseID(strings.TrimPrefix(o.Name, PacksPrefix))
		if err != nil {
			return nil // not ours
		}
		known, err := r.index.KnownPack(ctx, id)
		if err != nil {
			return err
		}
		if !known {
			orphans = append(orphans, o)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, o := range orphans {
		if err := r.store.Delete(ctx, o.Name); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		rep.OrphanPacks++
		rep.FreedBytes += o.Size
	}
	return nil
}
