package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
)

// ErrPointIncomplete means a point's manifest references chunks the index
// lacks: committing it would make a point that can never be restored.
var ErrPointIncomplete = errors.New("the recovery point is not whole")

// MissingRefs is what one point references that the index lacks.
type MissingRefs struct {
	// Count is how many references are missing (a chunk referenced twice
	// counts twice).
	Count int64
	// Chunks and Files name the first few (up to maxListedMissing), with
	// the paths that need them.
	Chunks []format.ID
	Files  []string
}

const maxListedMissing = 10

func (m *MissingRefs) add(id format.ID, path string) {
	m.Count++
	if len(m.Chunks) < maxListedMissing {
		m.Chunks = append(m.Chunks, id)
		if path != "" {
			m.Files = append(m.Files, path)
		}
	}
}

func (m *MissingRefs) String() string {
	s := fmt.Sprintf("%d referenced chunks are not in the repository, first %s", m.Count, m.Chunks[0])
	if len(m.Files) > 0 {
		s += " (needed by " + m.Files[0] + ")"
	}
	return s
}

// locateRefs walks everything a root references (see walkRefs) and calls
// fn with each chunk's location, found false when the index lacks it.
// Lookups are batched, so memory holds one batch, not the point. A root or
// tree chunk the index lacks ends the walk with ErrChunkMissing, since the
// rest of the manifest cannot be read.
func (r *Repository) locateRefs(ctx context.Context, root format.ID, fn func(id format.ID, path string, loc index.Location, found bool) error) error {
	type ref struct {
		id   format.ID
		path string
	}
	var batch []ref
	ids := make([]format.ID, 0, locateSize)
	flush := func() error {
		ids = ids[:0]
		for _, rf := range batch {
			ids = append(ids, rf.id)
		}
		locs, err := r.index.Locate(ctx, ids)
		if err != nil {
			return err
		}
		for _, rf := range batch {
			loc, ok := locs[rf.id]
			if err := fn(rf.id, rf.path, loc, ok); err != nil {
				return err
			}
		}
		batch = batch[:0]
		return nil
	}
	err := r.walkRefs(ctx, root, func(id format.ID, path string) error {
		batch = append(batch, ref{id, path})
		if len(batch) >= locateSize {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	return flush()
}

// CheckWhole confirms that a root and every chunk it references (tree
// chunks, file and disk chunks, nested manifests) are indexed, and so
// stored in a pack the store acknowledged. Commit runs it last, so a
// point that could not be restored in full is never committed.
func (r *Repository) CheckWhole(ctx context.Context, root format.ID) error {
	var missing MissingRefs
	err := r.locateRefs(ctx, root, func(id format.ID, path string, _ index.Location, found bool) error {
		if !found {
			missing.add(id, path)
		}
		return nil
	})
	if errors.Is(err, ErrChunkMissing) || errors.Is(err, format.ErrCorrupt) {
		return fmt.Errorf("%w: its manifest cannot be read: %v", ErrPointIncomplete, err)
	}
	if err != nil {
		return fmt.Errorf("checking the point's references: %w", err)
	}
	if missing.Count > 0 {
		return fmt.Errorf("%w: %s", ErrPointIncomplete, missing.String())
	}
	return nil
}
