package repo

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sync/errgroup"

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
// fn with each chunk's location, found false when the index lacks it, in
// walk order and from one goroutine at a time. Lookups are batched, and up
// to lookupsInFlight batches are looked up at once while the walk goes on
// (one at a time, a commit of a million unchanged files spent most of its
// time waiting on the database), so memory holds a few batches, not the
// point. A root or tree chunk the index lacks ends the walk with
// ErrChunkMissing, since the rest of the manifest cannot be read.
func (r *Repository) locateRefs(ctx context.Context, root format.ID, fn func(id format.ID, path string, loc index.Location, found bool) error) error {
	type ref struct {
		id   format.ID
		path string
	}
	type lookup struct {
		refs []ref
		locs map[format.ID]index.Location
		err  error
		done chan struct{}
	}
	g, gctx := errgroup.WithContext(ctx)
	// inFlight holds the lookups in walk order; its capacity bounds them.
	inFlight := make(chan *lookup, lookupsInFlight)
	g.Go(func() error {
		for l := range inFlight {
			select {
			case <-l.done:
			case <-gctx.Done():
				return gctx.Err()
			}
			if l.err != nil {
				return l.err
			}
			for _, rf := range l.refs {
				loc, ok := l.locs[rf.id]
				if err := fn(rf.id, rf.path, loc, ok); err != nil {
					return err
				}
			}
		}
		return nil
	})
	batch := make([]ref, 0, locateSize)
	send := func() error {
		l := &lookup{refs: batch, done: make(chan struct{})}
		batch = make([]ref, 0, locateSize)
		ids := make([]format.ID, len(l.refs))
		for i, rf := range l.refs {
			ids[i] = rf.id
		}
		select {
		case inFlight <- l:
		case <-gctx.Done():
			return gctx.Err()
		}
		go func() {
			defer close(l.done)
			l.locs, l.err = r.index.Locate(gctx, ids)
		}()
		return nil
	}
	walkErr := r.walkRefs(gctx, root, func(id format.ID, path string) error {
		batch = append(batch, ref{id, path})
		if len(batch) >= locateSize {
			return send()
		}
		return nil
	})
	if walkErr == nil && len(batch) > 0 {
		walkErr = send()
	}
	close(inFlight)
	err := g.Wait()
	switch {
	case walkErr != nil && (err == nil || !errors.Is(walkErr, context.Canceled)):
		// The walk's own failure (a tree chunk the index lacks, say); a
		// cancellation the walk saw only echoes the lookups' error.
		return walkErr
	case err != nil:
		return err
	}
	return nil
}

// lookupsInFlight bounds the index lookups locateRefs runs at once.
const lookupsInFlight = 4

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
