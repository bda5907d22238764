package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/zeebo/blake3"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/internal/freelist"
)

// WriteStats counts what a writer did. Logical bytes are what was offered;
// new bytes were not in the repository before; stored bytes are what the
// new chunks take in the store after compression and encryption.
type WriteStats struct {
	Chunks       int64
	LogicalBytes int64
	NewChunks    int64
	NewBytes     int64
	StoredBytes  int64
	Packs        int64
}

// Writer stores chunks for one backup. Save is safe for concurrent use;
// callers compress and seal in parallel, straight into the open pack, and
// only taking room in it is serialized. Packs are uploaded in the
// background, at most Options.Uploads at once, and a caller blocks when
// that many are in flight (backpressure, so memory stays bounded whatever
// the input rate). Pack buffers come from a budget shared with the other
// writers (see packBudget), so the memory of many backups at once is
// bounded too.
//
// Chunks become visible in the index only after the pack holding them is
// stored; a crash at any point leaves no index entry pointing at a missing
// pack. Nothing becomes a recovery point until Commit.
type Writer struct {
	repo    *Repository
	session *index.Session
	// ctx scopes background uploads: the writer's life, not one Save call.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	pack    *openPack              // nil until the first new chunk after a flush
	claimed map[format.ID]struct{} // in the open pack or uploading
	// opening serializes taking a buffer for a new open pack, so that
	// callers finding none open take one buffer, not one each.
	opening sync.Mutex
	buffers bufferHolder

	uploads  sync.WaitGroup
	slots    chan struct{}
	failOnce sync.Once
	failErr  error
	failed   atomic.Bool
	stats    WriteStats
	stopBeat context.CancelFunc
	beatDone chan struct{}
	beatOnce sync.Once
	owner    bool
}

// NewWriter opens a backup session. parentPoint names the point whose
// manifest the backup reuses (empty for a full backup); the session keeps
// it alive against GC until Commit or Abort.
func (r *Repository) NewWriter(ctx context.Context, parentPoint string) (*Writer, error) {
	s, err := r.index.BeginSession(ctx, parentPoint)
	if err != nil {
		return nil, err
	}
	return r.newWriter(ctx, s, true), nil
}

// BeginSession opens a backup session for an owner that writes through
// other processes (an agent's backup, which joins it with JoinSession) and
// returns its id. parentPoint, if not empty, names the point the backup
// builds on; it must still be live, or BeginSession returns ErrParentGone
// and opens nothing (the caller may fall back to a full backup with no
// parent). While the session lives, GC keeps the parent's tree and every
// chunk the session stores or finds with Has. The owner must Heartbeat
// within SessionTimeout, and ends the session with CommitSession or
// EndSession.
func (r *Repository) BeginSession(ctx context.Context, parentPoint string) (string, error) {
	s, err := r.index.BeginSession(ctx, parentPoint)
	if err != nil {
		return "", err
	}
	return s.ID, nil
}

// JoinSession returns a writer that stores chunks for a session another
// process owns (an agent's backup, whose session the job's worker opened
// and keeps alive). Use Save and Flush only: the owner commits or aborts.
func (r *Repository) JoinSession(ctx context.Context, sessionID string) *Writer {
	return r.newWriter(ctx, &index.Session{ID: sessionID}, false)
}

// CommitSession commits a point for a session by id, from any process
// (see commit).
func (r *Repository) CommitSession(ctx context.Context, sessionID, pointID string, root format.ID, also CatalogFunc) error {
	return r.commit(ctx, &index.Session{ID: sessionID}, pointID, root, also)
}

// commit is the one point-commit path: the whole-point check (see
// CheckWhole), the index commit (with also in its transaction), then the
// store's point record, carrying the catalog entry also returned.
func (r *Repository) commit(ctx context.Context, s *index.Session, pointID string, root format.ID, also CatalogFunc) error {
	if err := r.CheckWhole(ctx, root); err != nil {
		return err
	}
	var catalog []byte
	err := r.index.Commit(ctx, s, pointID, root, func(tx pgx.Tx) error {
		if also == nil {
			return nil
		}
		var err error
		catalog, err = also(tx)
		return err
	})
	if err != nil {
		return err
	}
	return r.putPointRecord(ctx, pointID, root, catalog)
}

// EndSession ends a session without a point (its owner gave up).
func (r *Repository) EndSession(ctx context.Context, sessionID string) error {
	return r.index.Abort(ctx, &index.Session{ID: sessionID})
}

// Heartbeat keeps a session alive for its owner.
func (r *Repository) Heartbeat(ctx context.Context, sessionID string) error {
	return r.index.Heartbeat(ctx, &index.Session{ID: sessionID})
}

func (r *Repository) newWriter(ctx context.Context, s *index.Session, owner bool) *Writer {
	w := &Writer{
		repo: r, session: s, claimed: map[format.ID]struct{}{},
		slots:    make(chan struct{}, r.opts.Uploads),
		beatDone: make(chan struct{}),
	}
	w.ctx, w.cancel = context.WithCancel(ctx)
	beatCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	w.stopBeat = stop
	if owner {
		go w.heartbeat(beatCtx)
	} else {
		close(w.beatDone)
	}
	w.owner = owner
	return w
}

// SessionID names the writer's backup session.
func (w *Writer) SessionID() string { return w.session.ID }

// sealBuffers is what one Save call reuses from chunk to chunk: the
// compression output (the sealed blob goes straight into the pack).
type sealBuffers struct {
	scratch []byte
}

// sealPool is shared by all writers, so that a backup starts with the
// compression buffers the previous one grew instead of growing its own.
var sealPool = freelist.List[*sealBuffers]{New: func() *sealBuffers { return &sealBuffers{} }, Max: 16}

// openPack is a pack being filled. Callers seal their blobs into room they
// took in it outside the writer's lock, so filling counts those not yet
// sealed, and the pack is finished only once it is zero.
type openPack struct {
	b       *format.PackBuilder
	filling sync.WaitGroup
}

func (w *Writer) heartbeat(ctx context.Context) {
	defer close(w.beatDone)
	t := time.NewTicker(index.SessionTimeout / 5)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := w.repo.index.Heartbeat(ctx, w.session); err != nil && ctx.Err() == nil {
				w.fail(fmt.Errorf("backup session heartbeat: %w", err))
			}
		}
	}
}

func (w *Writer) fail(err error) {
	w.failOnce.Do(func() {
		w.failErr = err
		w.failed.Store(true)
	})
}

func (w *Writer) err() error {
	if w.failed.Load() {
		return w.failErr
	}
	return nil
}

// Stats returns a snapshot of the counters.
func (w *Writer) Stats() WriteStats {
	return WriteStats{
		Chunks: atomic.LoadInt64(&w.stats.Chunks), LogicalBytes: atomic.LoadInt64(&w.stats.LogicalBytes),
		NewChunks: atomic.LoadInt64(&w.stats.NewChunks), NewBytes: atomic.LoadInt64(&w.stats.NewBytes),
		StoredBytes: atomic.LoadInt64(&w.stats.StoredBytes), Packs: atomic.LoadInt64(&w.stats.Packs),
	}
}

// Save stores every chunk the repository lacks. ids[i] must be
// repo.Hash(chunks[i]). It returns once the new chunks are in the open pack
// or an upload; Flush waits for the uploads.
func (w *Writer) Save(ctx context.Context, t format.Type, ids []format.ID, chunks [][]byte) error {
	if err := w.err(); err != nil {
		return err
	}
	if len(ids) != len(chunks) {
		return errors.New("repo: Save needs one id per chunk")
	}
	var logical int64
	for _, c := range chunks {
		logical += int64(len(c))
	}
	atomic.AddInt64(&w.stats.Chunks, int64(len(ids)))
	atomic.AddInt64(&w.stats.LogicalBytes, logical)

	// Chunks this backup is already storing need no index round trip.
	ask := make([]format.ID, 0, len(ids))
	w.mu.Lock()
	for _, id := range ids {
		if _, ok := w.claimed[id]; !ok {
			ask = append(ask, id)
		}
	}
	w.mu.Unlock()
	if len(ask) == 0 {
		return nil
	}
	found, err := w.repo.index.Has(ctx, ask)
	if err != nil {
		return fmt.Errorf("dedup lookup: %w", err)
	}
	var mine []int
	w.mu.Lock()
	for i, id := range ids {
		if found[id] {
			continue
		}
		if _, ok := w.claimed[id]; ok {
			continue
		}
		w.claimed[id] = struct{}{}
		mine = append(mine, i)
	}
	w.mu.Unlock()

	bufs := sealPool.Get()
	defer sealPool.Put(bufs)
	for _, i := range mine {
		if bufs.scratch == nil || cap(bufs.scratch) < len(chunks[i]) {
			bufs.scratch = make([]byte, 0, len(chunks[i])+len(chunks[i])/8+64)
		}
		pre := w.repo.sealer.Prepare(chunks[i], bufs.scratch)
		n := pre.SealedLen()
		region, p, full, err := w.reserve(ctx, ids[i], t, n, int64(len(chunks[i])))
		if err != nil {
			return err
		}
		if hookBeforeSeal != nil {
			hookBeforeSeal(ids[i])
		}
		w.repo.sealer.SealPrepared(region, ids[i], pre)
		p.filling.Done()
		atomic.AddInt64(&w.stats.NewChunks, 1)
		atomic.AddInt64(&w.stats.NewBytes, int64(len(chunks[i])))
		atomic.AddInt64(&w.stats.StoredBytes, int64(n))
		if full != nil {
			if err := w.ship(ctx, full); err != nil {
				return err
			}
		}
	}
	return nil
}

// hookBeforeSeal lets tests hold a chunk between taking room in a pack and
// sealing into it, the moment another caller may close and ship that pack.
var hookBeforeSeal func(id format.ID)

// reserve takes room for a blob of n sealed bytes in the open pack, and
// returns it with the pack, whose filling count it raised: the caller
// seals into region and then lowers it. A pack that would have to move its
// bytes to take the blob is closed and shipped first; one that reaches the
// pack size with the blob is closed and returned as full, for the caller
// to ship once it has sealed. No caller holds a closed pack unshipped
// while it waits for a buffer (see packBudget).
func (w *Writer) reserve(ctx context.Context, id format.ID, t format.Type, n int, raw int64) (region []byte, p, full *openPack, err error) {
	for {
		w.mu.Lock()
		if w.pack == nil {
			w.mu.Unlock()
			if err := w.openPack(ctx); err != nil {
				return nil, nil, nil, err
			}
			continue
		}
		region, ok := w.pack.b.Reserve(id, t, n, raw)
		if !ok {
			closed := w.pack
			w.pack = nil
			w.mu.Unlock()
			if err := w.ship(ctx, closed); err != nil {
				return nil, nil, nil, err
			}
			continue
		}
		p = w.pack
		p.filling.Add(1)
		if p.b.Size() >= w.repo.opts.PackSize {
			full = p
			w.pack = nil
		}
		w.mu.Unlock()
		return region, p, full, nil
	}
}

// openPack opens a pack in a buffer from the budget, unless another
// caller did while this one waited to.
func (w *Writer) openPack(ctx context.Context) error {
	w.opening.Lock()
	defer w.opening.Unlock()
	w.mu.Lock()
	open := w.pack != nil
	w.mu.Unlock()
	if open {
		return nil
	}
	buf, err := w.repo.packs.take(ctx, &w.buffers, w.repo.opts.PackSize+w.repo.opts.PackSize/8)
	if err != nil {
		return err
	}
	w.mu.Lock()
	w.pack = &openPack{b: format.NewPackBuilderIn(buf)}
	w.mu.Unlock()
	return nil
}

// release gives a pack's buffer back to the budget once nobody seals into
// it any more; the pack must not be used afterwards.
func (w *Writer) release(p *openPack) {
	p.filling.Wait()
	w.repo.packs.give(&w.buffers, p.b.Buffer())
}

// ship uploads a closed pack in the background once a slot is free, or
// releases it if the backup is over.
func (w *Writer) ship(ctx context.Context, p *openPack) error {
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		w.release(p)
		return ctx.Err()
	}
	if err := w.err(); err != nil {
		<-w.slots
		w.release(p)
		return err
	}
	w.uploads.Add(1)
	go func() {
		defer w.uploads.Done()
		defer func() { <-w.slots }()
		p.filling.Wait()
		entries := p.b.Entries()
		err := w.repo.storePack(w.ctx, w.session, p.b, store.ClassWarm)
		// The index insert copied the entries out, and the store is done
		// with the bytes.
		w.release(p)
		if err != nil {
			w.fail(err)
			return
		}
		atomic.AddInt64(&w.stats.Packs, 1)
		w.mu.Lock()
		for _, e := range entries {
			delete(w.claimed, e.ID)
		}
		w.mu.Unlock()
	}()
	return nil
}

// storePack finishes, uploads and indexes one pack: the index learns of its
// chunks only after the store has acknowledged the whole object.
func (r *Repository) storePack(ctx context.Context, s *index.Session, p *format.PackBuilder, class store.Class) error {
	entries := p.Entries()
	data := p.Finish(r.sealer)
	pid, err := r.putPack(ctx, s, data, class)
	if err != nil {
		return err
	}
	// The store holds the pack now, so index it even when the backup is
	// being canceled (an agent that went away, a job stopped): the bytes are
	// paid for, and indexed chunks let the next attempt dedup against them
	// instead of uploading them again.
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := r.index.AddPack(ictx, pid, int64(len(data)), int16(class), entries); err != nil {
		return fmt.Errorf("indexing pack %s: %w", pid.Short(), err)
	}
	return nil
}

// putPack stores finished pack bytes under their content hash, recording
// the pack as pending (owned by the session) first, so GC never takes an
// upload in flight for an orphan.
func (r *Repository) putPack(ctx context.Context, s *index.Session, data []byte, class store.Class) (format.ID, error) {
	pid := format.ID(blake3.Sum256(data))
	if err := r.index.ReservePack(ctx, s, pid, int64(len(data)), int16(class)); err != nil {
		return pid, fmt.Errorf("recording pack %s: %w", pid.Short(), err)
	}
	if err := r.store.Put(ctx, PackName(pid), bytes.NewReader(data), int64(len(data)), store.PutOptions{Class: class}); err != nil {
		return pid, fmt.Errorf("uploading pack %s: %w", pid.Short(), err)
	}
	return pid, nil
}

// Flush uploads the open pack and waits for every upload.
func (w *Writer) Flush(ctx context.Context) error {
	w.mu.Lock()
	p := w.pack
	w.pack = nil
	w.mu.Unlock()
	if p != nil && p.b.Len() == 0 {
		// Opened by a caller that has not taken room in it yet.
		w.release(p)
		p = nil
	}
	if p != nil {
		if err := w.ship(ctx, p); err != nil {
			w.uploads.Wait()
			return err
		}
	}
	w.uploads.Wait()
	return w.err()
}

// Commit flushes and then makes the point visible with its root: the
// commit is the last step, so a point exists only once all its data does.
// It refuses (ErrPointIncomplete) a root whose manifest references a chunk
// the index lacks.
func (w *Writer) Commit(ctx context.Context, pointID string, root format.ID) error {
	return w.CommitWith(ctx, pointID, root, nil)
}

// CommitWith is Commit that also runs also (a catalog insert, say) in the
// same database transaction, so the caller's records and the point become
// visible together or not at all; the catalog entry also returns is kept
// with the point in the store (see CatalogFunc).
func (w *Writer) CommitWith(ctx context.Context, pointID string, root format.ID, also CatalogFunc) error {
	if err := w.Flush(ctx); err != nil {
		return err
	}
	// The heartbeat keeps the session live through the whole-point check.
	defer w.cancel()
	defer w.stopHeartbeat()
	return w.repo.commit(ctx, w.session, pointID, root, also)
}

// Abort ends the session without a point. Uploaded packs stay; the next
// backup deduplicates against them, or GC reclaims them.
func (w *Writer) Abort(ctx context.Context) {
	w.cancel()
	w.uploads.Wait()
	w.mu.Lock()
	p := w.pack
	w.pack = nil
	w.mu.Unlock()
	if p != nil {
		w.release(p)
	}
	w.stopHeartbeat()
	if w.owner {
		_ = w.repo.index.Abort(context.WithoutCancel(ctx), w.session)
	}
}

func (w *Writer) stopHeartbeat() {
	w.beatOnce.Do(func() {
		w.stopBeat()
		<-w.beatDone
	})
}

// Hash returns the chunk id of data under the repository's id key.
func (w *Writer) Hash(data []byte) format.ID { return w.repo.Hash(data) }
