package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"

	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
	"github.com/havenbackup/terraform-provider-haven/internal/freelist"
)

// ErrChunkMissing means the index has no location for a chunk a manifest
// needs: the point cannot be restored whole.
var ErrChunkMissing = errors.New("chunk missing from the index")

// Reads of neighbouring blobs in one pack are merged into one ranged GET
// while the gap between them stays under maxGap and the read under maxRun:
// restores read mostly in backup order, so this turns thousands of small
// requests into a few large ones.
const (
	maxGap     = 256 << 10
	maxRun     = 8 << 20
	locateSize = 4096
)

// LoadChunk reads and opens one chunk.
func (r *Repository) LoadChunk(ctx context.Context, id format.ID) ([]byte, error) {
	return loadOne(ctx, r, id)
}

func (r *Repository) workers() int {
	if r.opts.Workers > 0 {
		return r.opts.Workers
	}
	return max(runtime.GOMAXPROCS(0), 2)
}

// Load fetches the plaintext of every id and calls fn(i, data) for each
// position i. Calls come concurrently from several goroutines and in no
// particular order; data is valid only during the call. Repeated ids are
// fetched once and delivered to each of their positions.
func (r *Repository) Load(ctx context.Context, ids []format.ID, fn func(i int, data []byte) error) error {
	for start := 0; start < len(ids); start += locateSize {
		batch := ids[start:min(start+locateSize, len(ids))]
		if err := r.loadBatch(ctx, batch, start, fn); err != nil {
			return err
		}
	}
	return nil
}

type member struct {
	id        format.ID
	positions []int
	loc       index.Location
}

type readRun struct {
	pack       format.ID
	start, end int64
	members    []*member
}

func (r *Repository) loadBatch(ctx context.Context, ids []format.ID, base int, fn func(int, []byte) error) error {
	uniq := map[format.ID]*member{}
	var order []format.ID
	for i, id := range ids {
		m, ok := uniq[id]
		if !ok {
			m = &member{id: id}
			uniq[id] = m
			order = append(order, id)
		}
		m.positions = append(m.positions, base+i)
	}
	locs, err := r.index.Locate(ctx, order)
	if err != nil {
		return err
	}
	members := make([]*member, 0, len(order))
	for _, id := range order {
		loc, ok := locs[id]
		if !ok {
			return fmt.Errorf("chunk %s: %w", id, ErrChunkMissing)
		}
		m := uniq[id]
		m.loc = loc
		members = append(members, m)
	}
	slices.SortFunc(members, func(a, b *member) int {
		if c := slices.Compare(a.loc.Pack[:], b.loc.Pack[:]); c != 0 {
			return c
		}
		return int(a.loc.Offset - b.loc.Offset)
	})
	var runs []*readRun
	for _, m := range members {
		end := m.loc.Offset + m.loc.Length
		if n := len(runs); n > 0 {
			last := runs[n-1]
			if last.pack == m.loc.Pack && m.loc.Offset-last.end <= maxGap && end-last.start <= maxRun {
				last.end = max(last.end, end)
				last.members = append(last.members, m)
				continue
			}
		}
		runs = append(runs, &readRun{pack: m.loc.Pack, start: m.loc.Offset, end: end, members: []*member{m}})
	}

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.workers())
	for _, run := range runs {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return r.readRun(gctx, run, fn) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

var (
	runBuffers    = freelist.List[*[]byte]{New: func() *[]byte { b := make([]byte, 0, maxRun); return &b }, Max: 16}
	decodeBuffers = freelist.List[*[]byte]{New: func() *[]byte { return new([]byte) }, Max: 16}
)

func (r *Repository) readRun(ctx context.Context, run *readRun, fn func(int, []byte) error) error {
	rc, err := r.store.Get(ctx, PackName(run.pack), run.start, run.end-run.start)
	if err != nil {
		return fmt.Errorf("reading pack %s: %w", run.pack.Short(), err)
	}
	bp := runBuffers.Get()
	defer runBuffers.Put(bp)
	buf := (*bp)[:0]
	if int64(cap(buf)) < run.end-run.start {
		buf = make([]byte, 0, run.end-run.start)
	}
	buf = buf[:run.end-run.start]
	_, err = io.ReadFull(rc, buf)
	rc.Close()
	if err != nil {
		return fmt.Errorf("reading pack %s: %w", run.pack.Short(), err)
	}
	*bp = buf[:0]
	// The run's bytes are this call's own, so each blob is opened where it
	// lies and raw chunks are handed to fn without a copy; compressed ones
	// are decoded into a pooled buffer. Both stay put until fn returns.
	dp := decodeBuffers.Get()
	defer decodeBuffers.Put(dp)
	for _, m := range run.members {
		if err := ctx.Err(); err != nil {
			return err
		}
		off := m.loc.Offset - run.start
		var plain []byte
		plain, *dp, err = r.sealer.OpenInPlace((*dp)[:0], m.id, buf[off:off+m.loc.Length])
		if err != nil {
			return err
		}
		if int64(len(plain)) != m.loc.RawLength {
			return fmt.Errorf("chunk %s: %d bytes, index says %d: %w", m.id, len(plain), m.loc.RawLength, format.ErrCorrupt)
		}
		if got := r.hasher.Sum(plain); got != m.id {
			return fmt.Errorf("chunk %s: content hashes to %s: %w", m.id, got, format.ErrCorrupt)
		}
		for _, pos := range m.positions {
			if err := fn(pos, plain); err != nil {
				return err
			}
		}
	}
	return nil
}
