package index

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
)

// PackInfo describes a stored pack and how much of it is still live.
type PackInfo struct {
	ID        format.ID
	Size      int64
	LiveBytes int64
	Chunks    int64
	Class     int16
	CreatedAt time.Time
	RetiredAt *time.Time
}

// Packs lists the repository's packs with their live bytes (what indexed
// chunks still occupy in them). fn is called once per pack.
func (x *Index) Packs(ctx context.Context, fn func(PackInfo) error) error {
	rows, err := x.pool.Query(ctx, `
		SELECT p.pack_id, p.size, coalesce(sum(c.length), 0), count(c.chunk_id), p.class, p.created_at, p.retired_at
		FROM repo_packs p LEFT JOIN repo_chunks c ON c.repo_id = p.repo_id AND c.pack_id = p.pack_id
		WHERE p.repo_id = $1 GROUP BY p.repo_id, p.pack_id ORDER BY p.pack_id`, x.repo)
	if err != nil {
		return err
	}
	var infos []PackInfo
	for rows.Next() {
		var pi PackInfo
		var pid []byte
		if err := rows.Scan(&pid, &pi.Size, &pi.LiveBytes, &pi.Chunks, &pi.Class, &pi.CreatedAt, &pi.RetiredAt); err != nil {
			rows.Close()
			return err
		}
		if pi.ID, err = toID(pid); err != nil {
			rows.Close()
			return err
		}
		infos = append(infos, pi)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, pi := range infos {
		if err := fn(pi); err != nil {
			return err
		}
	}
	return nil
}

// PackChunks lists the indexed chunks of one pack, in pack order.
func (x *Index) PackChunks(ctx context.Context, pack format.ID) ([]format.PackEntry, error) {
	rows, err := x.pool.Query(ctx, `SELECT chunk_id, type, pack_offset, length, raw_length FROM repo_chunks
		WHERE repo_id = $1 AND pack_id = $2 ORDER BY pack_offset`, x.repo, pack[:])
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (format.PackEntry, error) {
		var e format.PackEntry
		var cid []byte
		var t int16
		if err := r.Scan(&cid, &t, &e.Offset, &e.Length, &e.RawLength); err != nil {
			return e, err
		}
		e.Type = format.Type(t)
		var err error
		e.ID, err = toID(cid)
		return e, err
	})
}

// ErrGCRunning means another GC holds this repository's GC lock.
var ErrGCRunning = errors.New("another garbage collection of this repository is running")

// GCConn is a pinned connection holding the repository's GC lock, on which
// the mark set lives as a temporary table.
type GCConn struct {
	conn *pgxpool.Conn
	x    *Index
}

// BeginGC takes the repository's GC lock (one GC per repository across all
// replicas) and prepares the mark set.
func (x *Index) BeginGC(ctx context.Context) (*GCConn, error) {
	conn, err := x.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	h := fnv.New64a()
	h.Write([]byte("haven-gc:" + x.repo))
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, int64(h.Sum64())).Scan(&ok); err != nil {
		conn.Release()
		return nil, err
	}
	if !ok {
		conn.Release()
		return nil, ErrGCRunning
	}
	if _, err := conn.Exec(ctx, `DROP TABLE IF EXISTS gc_live; CREATE TEMP TABLE gc_live (chunk_id bytea NOT NULL)`); err != nil {
		conn.Release()
		return nil, err
	}
	return &GCConn{conn: conn, x: x}, nil
}

// End drops the mark set and releases the lock (closing the session, since
// advisory locks are per session).
func (g *GCConn) End() {
	ctx := context.Background()
	_, _ = g.conn.Exec(ctx, `DROP TABLE IF EXISTS gc_live`)
	_, _ = g.conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
	g.conn.Release()
}

// Cutoff is the touch time before which an unmarked chunk may be swept:
// grace before now, and grace before the start of the oldest live backup
// session, so nothing a running backup has deduplicated against or stored
// can be swept under it.
func (g *GCConn) Cutoff(ctx context.Context, grace time.Duration) (time.Time, error) {
	var cutoff time.Time
	err := g.conn.QueryRow(ctx, `
		SELECT least(now(), coalesce((SELECT min(started_at) FROM repo_sessions
			WHERE repo_id = $1 AND heartbeat_at > now() - $2::interval), now())) - $3::interval`,
		g.x.repo, SessionTimeout.String(), grace.String()).Scan(&cutoff)
	return cutoff, err
}

// Mark adds live chunk ids to the mark set.
func (g *GCConn) Mark(ctx context.Context, ids []format.ID) error {
	_, err := g.conn.CopyFrom(ctx, pgx.Identifier{"gc_live"}, []string{"chunk_id"},
		pgx.CopyFromSlice(len(ids), func(i int) ([]any, error) { return []any{ids[i][:]}, nil }))
	return err
}

// Sweep deletes index entries that are unmarked and untouched since the
// cutoff, and returns how many chunks and sealed bytes it removed. It locks
// rows in chunk id order, as lookups do, so the two never deadlock; a
// touch that wins the lock is seen by the delete's recheck of touched_at.
func (g *GCConn) Sweep(ctx context.Context, cutoff time.Time) (chunks, bytes int64, err error) {
	if _, err := g.conn.Exec(ctx, `CREATE INDEX ON gc_live (chunk_id); ANALYZE gc_live`); err != nil {
		return 0, 0, err
	}
	err = g.conn.QueryRow(ctx, `
		WITH doomed AS (
			SELECT chunk_id FROM repo_chunks c WHERE c.repo_id = $1 AND c.touched_at < $2
			AND NOT EXISTS (SELECT 1 FROM gc_live l WHERE l.chunk_id = c.chunk_id)
			ORDER BY chunk_id FOR UPDATE
		), swept AS (
			DELETE FROM repo_chunks c USING doomed d WHERE c.repo_id = $1 AND c.chunk_id = d.chunk_id
			AND c.touched_at < $2
			RETURNING c.length)
		SELECT count(*), coalesce(sum(length), 0) FROM swept`, g.x.repo, cutoff).Scan(&chunks, &bytes)
	return chunks, bytes, err
}

// RetireEmptyPacks marks packs that no indexed chunk points into any more,
// and pending packs whose writer's session is dead (uploads that never got
// indexed). A pending pack of a live session is never touched.
func (x *Index) RetireEmptyPacks(ctx context.Context, cutoff time.Time) (int64, error) {
	tag, err := x.pool.Exec(ctx, `UPDATE repo_packs p SET retired_at = now()
		WHERE p.repo_id = $1 AND p.retired_at IS NULL AND p.created_at < $2
		AND (NOT p.pending OR NOT EXISTS (SELECT 1 FROM repo_sessions s WHERE s.session_id = p.session_id
			AND s.heartbeat_at > now() - $3::interval))
		AND NOT EXISTS (SELECT 1 FROM repo_chunks c WHERE c.repo_id = p.repo_id AND c.pack_id = p.pack_id)`,
		x.repo, cutoff, SessionTimeout.String())
	return tag.RowsAffected(), err
}

// MoveChunks records that a repack stored these chunks in a new pack: each
// row still pointing at its old pack is redirected, then the new pack is
// recorded. A row that moved or vanished meanwhile is left alone.
func (x *Index) MoveChunks(ctx context.Context, newPack format.ID, size int64, class int16, entries []format.PackEntry, from map[format.ID]format.ID) error {
	return pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO repo_packs (repo_id, pack_id, size, chunks, class) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (repo_id, pack_id) DO UPDATE SET retired_at = NULL, pending = false, chunks = $4`, x.repo, newPack[:], size, len(entries), class); err != nil {
			return err
		}
		batch := &pgx.Batch{}
		for _, e := range entries {
			old := from[e.ID]
			batch.Queue(`UPDATE repo_chunks SET pack_id = $3, pack_offset = $4, length = $5
				WHERE repo_id = $1 AND chunk_id = $2 AND pack_id = $6`, x.repo, e.ID[:], newPack[:], e.Offset, int32(e.Length), old[:])
		}
		return tx.SendBatch(ctx, batch).Close()
	})
}

// RetiredPacks lists packs retired before the given time.
func (x *Index) RetiredPacks(ctx context.Context, before time.Time) ([]format.ID, error) {
	rows, err := x.pool.Query(ctx, `SELECT pack_id FROM repo_packs WHERE repo_id = $1 AND retired_at < $2`, x.repo, before)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (format.ID, error) {
		var b []byte
		if err := r.Scan(&b); err != nil {
			return format.ID{}, err
		}
		return toID(b)
	})
}

// ForgetPack removes a retired pack's row once its object is deleted.
func (x *Index) ForgetPack(ctx context.Context, pack format.ID) error {
	_, err := x.pool.Exec(ctx, `DELETE FROM repo_packs WHERE repo_id = $1 AND pack_id = $2 AND retired_at IS NOT NULL
		AND NOT EXISTS (SELECT 1 FROM repo_chunks WHERE repo_id = $1 AND pack_id = $2)`, x.repo, pack[:])
	return err
}

// KnownPack reports whether a pack is recorded (retired or not).
func (x *Index) KnownPack(ctx context.Context, pack format.ID) (bool, error) {
	var ok bool
	err := x.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM repo_packs WHERE repo_id = $1 AND pack_id = $2)`, x.repo, pack[:]).Scan(&ok)
	return ok, err
}

// DropDeletedRoots forgets deleted roots no live session builds on.
func (x *Index) DropDeletedRoots(ctx context.Context) error {
	_, err := x.pool.Exec(ctx, `DELETE FROM repo_roots r WHERE repo_id = $1 AND deleted_at IS NOT NULL AND NOT EXISTS (
		SELECT 1 FROM repo_sessions s WHERE s.repo_id = $1 AND s.parent_point = r.point_id
		AND s.heartbeat_at > now() - $2::interval)`, x.repo, SessionTimeout.String())
	return err
}

// Now is the database's clock, which every replica shares.
func (x *Index) Now(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := x.pool.QueryRow(ctx, `SELECT now()`).Scan(&t)
	return t, err
}

// PackClass is a pack's recorded storage class.
func (x *Index) PackClass(ctx context.Context, pack format.ID) (int16, error) {
	var c int16
	err := x.pool.QueryRow(ctx, `SELECT class FROM repo_packs WHERE repo_id = $1 AND pack_id = $2`, x.repo, pack[:]).Scan(&c)
	return c, err
}

// SetPackClass records a pack's storage class after the store changed it.
func (x *Index) SetPackClass(ctx context.Context, pack format.ID, class int16) error {
	_, err := x.pool.Exec(ctx, `UPDATE repo_packs SET class = $3 WHERE repo_id = $1 AND pack_id = $2`, x.repo, pack[:], class)
	return err
}

// LiveSessions counts the backup sessions still writing to the repository.
func (x *Index) LiveSessions(ctx context.Context) (int, error) {
	var n int
	err := x.pool.QueryRow(ctx, `SELECT count(*) FROM repo_sessions WHERE repo_id = $1 AND heartbeat_at > now() - $2::interval`,
		x.repo, SessionTimeout.String()).Scan(&n)
	return n, err
}

// Drop forgets the whole repository: every pack, chunk, root and session
// row, in one transaction.
func (x *Index) Drop(ctx context.Context) error {
	return pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		for _, table := range []string{"repo_sessions", "repo_roots", "repo_chunks", "repo_packs"} {
			if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE repo_id = $1`, x.repo); err != nil {
				return err
			}
		}
		return nil
	})
}

// KnownPacks is the set of every pack recorded for the repository, retired
// or not.
func (x *Index) KnownPacks(ctx context.Context) (map[format.ID]bool, error) {
	rows, err := x.pool.Query(ctx, `SELECT pack_id FROM repo_packs WHERE repo_id = $1`, x.repo)
	if err != nil {
		return nil, err
	}
	ids, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (format.ID, error) {
		var b []byte
		if err := r.Scan(&b); err != nil {
			return format.ID{}, err
		}
		return toID(b)
	})
	if err != nil {
		return nil, err
	}
	known := make(map[format.ID]bool, len(ids))
	for _, id := range ids {
		known[id] = true
	}
	return known, nil
}

// RootState is what ImportRoot found or did.
type RootState int

const (
	// RootAdded: the root was not in the index and now is, live.
	RootAdded RootState = iota
	// RootLive: the index already had the point, live, with this root.
	RootLive
	// RootDeleted: the index has the point as deleted; it stays deleted.
	RootDeleted
)

// ErrRootMismatch means the index records another root for a point than
// the one being imported.
var ErrRootMismatch = errors.New("the index records another root for this point")

// ImportRoot records a committed point's root found in the store, with the
// time it was committed, unless the index already has the point: a point
// the index knows keeps its state (a deleted point is not revived).
func (x *Index) ImportRoot(ctx context.Context, pointID string, root format.ID, committed time.Time) (RootState, error) {
	tag, err := x.pool.Exec(ctx, `INSERT INTO repo_roots (repo_id, point_id, root_id, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (repo_id, point_id) DO NOTHING`, x.repo, pointID, root[:], committed)
	if err != nil {
		return 0, err
	}
	if tag.RowsAffected() == 1 {
		return RootAdded, nil
	}
	var had []byte
	var deleted bool
	if err := x.pool.QueryRow(ctx, `SELECT root_id, deleted_at IS NOT NULL FROM repo_roots WHERE repo_id = $1 AND point_id = $2`,
		x.repo, pointID).Scan(&had, &deleted); err != nil {
		return 0, err
	}
	if string(had) != string(root[:]) {
		return 0, fmt.Errorf("point %s: %w", pointID, ErrRootMismatch)
	}
	if deleted {
		return RootDeleted, nil
	}
	return RootLive, nil
}
