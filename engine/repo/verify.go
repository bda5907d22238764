package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// Damage is one chunk that failed verification, and what it breaks.
type Damage struct {
	Chunk  format.ID
	Pack   format.ID
	Reason string
	// Points and Files are the recovery points, and the paths in them,
	// that reference the chunk.
	Points []string
	Files  []string
}

// VerifyReport is the result of a verify.
type VerifyReport struct {
	Packs   int64
	Chunks  int64
	Bytes   int64
	Damaged []Damage
	// Unreadable lists points whose manifest itself could not be read.
	Unreadable map[string]string
	// Missing lists, by point id, the chunks points reference that the
	// index lacks.
	Missing map[string]*MissingRefs
}

// OK reports whether nothing was found wrong.
func (v *VerifyReport) OK() bool {
	return len(v.Damaged) == 0 && len(v.Unreadable) == 0 && len(v.Missing) == 0
}

// Verify walks the given points (all live points when none are given):
// every chunk they reference must be indexed. It then reads back every
// pack they use (every live pack when no points are given) and checks
// every indexed chunk in them: the blob opens under its id, decompresses
// to its recorded length, and hashes to its id. Damaged chunks are then
// traced to the points and files that need them.
func (r *Repository) Verify(ctx context.Context, pointIDs []string) (*VerifyReport, error) {
	rep := &VerifyReport{Unreadable: map[string]string{}, Missing: map[string]*MissingRefs{}}
	roots, err := r.selectRoots(ctx, pointIDs)
	if err != nil {
		return nil, err
	}
	packs := map[format.ID]bool{}
	if len(pointIDs) == 0 {
		err = r.index.Packs(ctx, func(p index.PackInfo) error {
			if p.RetiredAt == nil {
				packs[p.ID] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if err := r.packsOf(ctx, roots, packs, rep); err != nil {
		return nil, err
	}

	var mu sync.Mutex
	damaged := map[format.ID]*Damage{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.workers())
	for pack := range packs {
		g.Go(func() error {
			n, bytes, bad, err := r.verifyPack(gctx, pack)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Packs++
			rep.Chunks += n
			rep.Bytes += bytes
			for _, d := range bad {
				damaged[d.Chunk] = &d
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(damaged) > 0 {
		for _, root := range roots {
			err := r.walkRefs(ctx, root.Root, func(id format.ID, path string) error {
				d, ok := damaged[id]
				if !ok {
					return nil
				}
				if n := len(d.Points); n == 0 || d.Points[n-1] != root.PointID {
					d.Points = append(d.Points, root.PointID)
				}
				if path != "" {
					d.Files = append(d.Files, root.PointID+":"+path)
				}
				return nil
			})
			if err != nil {
				rep.Unreadable[root.PointID] = err.Error()
			}
		}
	}
	for _, d := range damaged {
		rep.Damaged = append(rep.Damaged, *d)
	}
	sort.Slice(rep.Damaged, func(i, j int) bool { return rep.Damaged[i].Chunk.String() < rep.Damaged[j].Chunk.String() })
	return rep, nil
}

func (r *Repository) selectRoots(ctx context.Context, pointIDs []string) ([]index.RootEntry, error) {
	if len(pointIDs) == 0 {
		return r.index.LiveRoots(ctx)
	}
	var out []index.RootEntry
	for _, p := range pointIDs {
		root, err := r.index.Root(ctx, p)
		if err != nil {
			return nil, err
		}
		out = append(out, index.RootEntry{PointID: p, Root: root})
	}
	return out, nil
}

// packsOf collects the packs holding any chunk the points reference, and
// records the references the index lacks.
func (r *Repository) packsOf(ctx context.Context, roots []index.RootEntry, packs map[format.ID]bool, rep *VerifyReport) error {
	for _, root := range roots {
		var missing MissingRefs
		err := r.locateRefs(ctx, root.Root, func(id format.ID, path string, loc index.Location, found bool) error {
			if !found {
				missing.add(id, path)
				return nil
			}
			packs[loc.Pack] = true
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			rep.Unreadable[root.PointID] = err.Error()
		}
		if missing.Count > 0 {
			rep.Missing[root.PointID] = &missing
		}
	}
	return nil
}

// verifyPack reads one pack whole and checks each chunk the index places in it.
func (r *Repository) verifyPack(ctx context.Context, pack format.ID) (chunks, bytes int64, bad []Damage, err error) {
	entries, err := r.index.PackChunks(ctx, pack)
	if err != nil {
		return 0, 0, nil, err
	}
	rc, err := r.store.Get(ctx, PackName(pack), 0, -1)
	if errors.Is(err, store.ErrNotFound) {
		for _, e := range entries {
			bad = append(bad, Damage{Chunk: e.ID, Pack: pack, Reason: "pack object is missing from the store"})
		}
		return int64(len(entries)), 0, bad, nil
	}
	if err != nil {
		return 0, 0, nil, err
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return 0, 0, nil, err
	}
	var plain []byte
	for _, e := range entries {
		chunks++
		if e.Offset+e.Length > int64(len(data)) {
			bad = append(bad, Damage{Chunk: e.ID, Pack: pack, Reason: "pack is shorter than the index says"})
			continue
		}
		plain, err = r.sealer.Open(plain[:0], e.ID, data[e.Offset:e.Offset+e.Length])
		switch {
		case err != nil:
			bad = append(bad, Damage{Chunk: e.ID, Pack: pack, Reason: err.Error()})
		case int64(len(plain)) != e.RawLength:
			bad = append(bad, Damage{Chunk: e.ID, Pack: pack, Reason: fmt.Sprintf("decodes to %d bytes, index says %d", len(plain), e.RawLength)})
		case r.hasher.Sum(plain) != e.ID:
			bad = append(bad, Damage{Chunk: e.ID, Pack: pack, Reason: "content does not hash to its id"})
		default:
			bytes += int64(len(plain))
		}
	}
	return chunks, bytes, bad, nil
}
