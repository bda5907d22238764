// Package index is the repository's chunk index in PostgreSQL: chunk id →
// pack, offset, length. Every worker and every replica deduplicates against
// this one index. Lookups and inserts are batched (one round trip for many
// ids; COPY for inserts), and nothing is cached in memory, so a server's
// memory does not grow with the repository.
//
// It also keeps the bookkeeping of the GC protocol (see package gc... and
// templates/guides/repository-format.md.tmpl): committed roots, backup
// sessions and per-chunk touch times.
package index

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/pgmigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

const migrationLockID = 0x68617665_6e5f6978 // "haven_ix"

// Migrate brings the index schema up to date.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgmigrate.Up(ctx, pool, migrations, "migrations", "haven_engine_schema", migrationLockID)
}

// DefaultTouchGranularity bounds how often a deduplicated chunk's touch
// time is rewritten: re-touching on every lookup would rewrite every row of
// the index on every backup. GC's grace period must exceed it.
const DefaultTouchGranularity = 10 * time.Minute

// SessionTimeout is how long a session lives without a heartbeat. GC
// ignores older sessions, and they can no longer commit.
const SessionTimeout = 15 * time.Minute

// Location is where a chunk's sealed blob lives.
type Location struct {
	Type      format.Type
	Pack      format.ID
	Offset    int64
	Length    int64
	RawLength int64
}

// Index is one repository's view of the index.
type Index struct {
	pool  *pgxpool.Pool
	repo  string
	touch time.Duration
}

// New returns the index of repository repoID.
func New(pool *pgxpool.Pool, repoID string) *Index {
	return &Index{pool: pool, repo: repoID, touch: DefaultTouchGranularity}
}

// SetTouchGranularity changes how stale a touch must be before a lookup
// renews it. Every process using the repository must agree on it; tests
// lower it to run the GC protocol in real time.
func (x *Index) SetTouchGranularity(d time.Duration) { x.touch = d }

// TouchGranularity is the current touch granularity.
func (x *Index) TouchGranularity() time.Duration { return x.touch }

// Pool is the connection pool the index uses.
func (x *Index) Pool() *pgxpool.Pool { return x.pool }

// RepoID is the repository this index serves.
func (x *Index) RepoID() string { return x.repo }

func idSlices(ids []format.ID) [][]byte {
	out := make([][]byte, len(ids))
	for i := range ids {
		out[i] = ids[i][:]
	}
	return out
}

func toID(b []byte) (format.ID, error) {
	var id format.ID
	if len(b) != format.IDSize {
		return id, fmt.Errorf("index holds a %d-byte id", len(b))
	}
	copy(id[:], b)
	return id, nil
}

// Has reports which ids are in the index, in one round trip, and renews
// the touch time of those found whose touch is older than the touch
// granularity, so a running backup's dedup hits survive a concurrent GC.
//
// Stale rows are locked in chunk id order and updated; the sweep locks in
// the same order, so either the touch lands first (and the sweep's recheck
// keeps the row) or the sweep does (and the chunk is reported missing, and
// the backup stores it again). Rows touched within the granularity cannot
// be swept by any GC whose cutoff protects this session.
func (x *Index) Has(ctx context.Context, ids []format.ID) (map[format.ID]bool, error) {
	for attempt := 0; ; attempt++ {
		found, err := x.has(ctx, ids)
		if err != nil && isDeadlock(err) && attempt < 5 {
			continue
		}
		return found, err
	}
}

func (x *Index) has(ctx context.Context, ids []format.ID) (map[format.ID]bool, error) {
	rows, err := x.pool.Query(ctx, `
		WITH stale AS (
			SELECT chunk_id FROM repo_chunks
			WHERE repo_id = $1 AND chunk_id = ANY($2) AND touched_at < now() - $3::interval
			ORDER BY chunk_id FOR UPDATE
		), touched AS (
			UPDATE repo_chunks c SET touched_at = now() FROM stale
			WHERE c.repo_id = $1 AND c.chunk_id = stale.chunk_id RETURNING c.chunk_id
		)
		SELECT chunk_id FROM touched
		UNION ALL
		SELECT chunk_id FROM repo_chunks WHERE repo_id = $1 AND chunk_id = ANY($2) AND touched_at >= now() - $3::interval`,
		x.repo, idSlices(ids), x.touch.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[format.ID]bool, len(ids))
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, err
		}
		id, err := toID(b)
		if err != nil {
			return nil, err
		}
		found[id] = true
	}
	return found, rows.Err()
}

func isDeadlock(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// Locate finds where chunks live, in one round trip. Missing ids are absent
// from the map.
func (x *Index) Locate(ctx context.Context, ids []format.ID) (map[format.ID]Location, error) {
	rows, err := x.pool.Query(ctx, `SELECT chunk_id, type, pack_id, pack_offset, length, raw_length
		FROM repo_chunks WHERE repo_id = $1 AND chunk_id = ANY($2)`, x.repo, idSlices(ids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[format.ID]Location, len(ids))
	for rows.Next() {
		var cid, pid []byte
		var t int16
		var loc Location
		if err := rows.Scan(&cid, &t, &pid, &loc.Offset, &loc.Length, &loc.RawLength); err != nil {
			return nil, err
		}
		id, err := toID(cid)
		if err != nil {
			return nil, err
		}
		if loc.Pack, err = toID(pid); err != nil {
			return nil, err
		}
		loc.Type = format.Type(t)
		out[id] = loc
	}
	return out, rows.Err()
}

// ReservePack records a pack as pending, owned by a session, before its
// upload starts.
func (x *Index) ReservePack(ctx context.Context, s *Session, pack format.ID, size int64, class int16) error {
	var sid *string
	if s != nil {
		sid = &s.ID
	}
	_, err := x.pool.Exec(ctx, `INSERT INTO repo_packs (repo_id, pack_id, size, chunks, class, pending, session_id)
		VALUES ($1, $2, $3, 0, $4, true, $5) ON CONFLICT (repo_id, pack_id) DO UPDATE SET retired_at = NULL`,
		x.repo, pack[:], size, class, sid)
	return err
}

// AddPack records a pack that is durably stored and indexes its chunks, in
// one transaction. Call it only after the store acknowledged the pack: an
// index entry must never point at a missing pack. A chunk already indexed
// (another writer stored it concurrently) keeps its first location; the
// duplicate blob stays unindexed until GC repacks it away.
func (x *Index) AddPack(ctx context.Context, pack format.ID, size int64, class int16, entries []format.PackEntry) error {
	return pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO repo_packs (repo_id, pack_id, size, chunks, class) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (repo_id, pack_id) DO UPDATE SET retired_at = NULL, pending = false, chunks = $4`, x.repo, pack[:], size, len(entries), class); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS new_chunks (
			chunk_id bytea, type smallint, pack_offset bigint, length integer, raw_length integer) ON COMMIT DELETE ROWS`); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"new_chunks"}, []string{"chunk_id", "type", "pack_offset", "length", "raw_length"},
			pgx.CopyFromSlice(len(entries), func(i int) ([]any, error) {
				e := entries[i]
				return []any{e.ID[:], int16(e.Type), e.Offset, int32(e.Length), int32(e.RawLength)}, nil
			}))
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO repo_chunks (repo_id, chunk_id, type, pack_id, pack_offset, length, raw_length)
			SELECT $1, chunk_id, type, $2, pack_offset, length, raw_length FROM new_chunks
			ON CONFLICT (repo_id, chunk_id) DO NOTHING`, x.repo, pack[:])
		return err
	})
}

// Session is a backup in flight.
type Session struct {
	ID string
}

// ErrSessionExpired means a session missed its heartbeats: GC may have
// swept chunks it relied on, so it must not commit.
var ErrSessionExpired = errors.New("backup session expired (no heartbeat within the session timeout); run the backup again")

// ErrParentGone means the point a backup wanted to build on was deleted.
var ErrParentGone = errors.New("parent recovery point no longer exists")

// BeginSession opens a backup session. parentPoint, if not empty, is the
// point whose manifest the backup reuses without re-reading data; the
// session keeps that root alive for GC, and it must still exist now.
func (x *Index) BeginSession(ctx context.Context, parentPoint string) (*Session, error) {
	var s Session
	err := pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		if parentPoint != "" {
			var ok bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM repo_roots WHERE repo_id = $1 AND point_id = $2 AND deleted_at IS NULL FOR SHARE)`,
				x.repo, parentPoint).Scan(&ok); err != nil {
				return err
			}
			if !ok {
				return ErrParentGone
			}
		}
		var parent *string
		if parentPoint != "" {
			parent = &parentPoint
		}
		return tx.QueryRow(ctx, `INSERT INTO repo_sessions (repo_id, parent_point) VALUES ($1, $2) RETURNING session_id::text`,
			x.repo, parent).Scan(&s.ID)
	})
	if err != nil {
		return nil, err
	}
	return &s, nil
}

// Heartbeat keeps a session alive.
func (x *Index) Heartbeat(ctx context.Context, s *Session) error {
	tag, err := x.pool.Exec(ctx, `UPDATE repo_sessions SET heartbeat_at = now()
		WHERE session_id = $1 AND heartbeat_at > now() - $2::interval`, s.ID, SessionTimeout.String())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrSessionExpired
	}
	return nil
}

// Commit makes a recovery point visible: it records the root and ends the
// session, in one transaction, and only if the session is still live.
func (x *Index) Commit(ctx context.Context, s *Session, pointID string, root format.ID, also func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM repo_sessions WHERE session_id = $1 AND heartbeat_at > now() - $2::interval`,
			s.ID, SessionTimeout.String())
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrSessionExpired
		}
		if _, err := tx.Exec(ctx, `INSERT INTO repo_roots (repo_id, point_id, root_id) VALUES ($1, $2, $3)`, x.repo, pointID, root[:]); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
}

// Abort ends a session without a point. What it stored stays in the index
// and is either reused by the next backup or swept by GC.
func (x *Index) Abort(ctx context.Context, s *Session) error {
	_, err := x.pool.Exec(ctx, `DELETE FROM repo_sessions WHERE session_id = $1`, s.ID)
	return err
}

// ErrNoRoot means the index has no live root for a point.
var ErrNoRoot = errors.New("not found")

// Root returns a live point's root.
func (x *Index) Root(ctx context.Context, pointID string) (format.ID, error) {
	var b []byte
	err := x.pool.QueryRow(ctx, `SELECT root_id FROM repo_roots WHERE repo_id = $1 AND point_id = $2 AND deleted_at IS NULL`,
		x.repo, pointID).Scan(&b)
	if errors.Is(err, pgx.ErrNoRows) {
		return format.ID{}, fmt.Errorf("recovery point %s: %w", pointID, ErrNoRoot)
	}
	if err != nil {
		return format.ID{}, err
	}
	return toID(b)
}

// DeleteRoot marks a point deleted; GC reclaims what only it referenced.
func (x *Index) DeleteRoot(ctx context.Context, pointID string) error {
	_, err := x.pool.Exec(ctx, `UPDATE repo_roots SET deleted_at = now() WHERE repo_id = $1 AND point_id = $2 AND deleted_at IS NULL`, x.repo, pointID)
	return err
}

// RootEntry is a committed root.
type RootEntry struct {
	PointID string
	Root    format.ID
}

// LiveRoots lists the roots GC must keep: every undeleted point, and every
// point a live session builds on.
func (x *Index) LiveRoots(ctx context.Context) ([]RootEntry, error) {
	rows, err := x.pool.Query(ctx, `
		SELECT point_id, root_id FROM repo_roots r WHERE repo_id = $1 AND (deleted_at IS NULL OR EXISTS (
			SELECT 1 FROM repo_sessions s WHERE s.repo_id = $1 AND s.parent_point = r.point_id
			AND s.heartbeat_at > now() - $2::interval))
		ORDER BY point_id`, x.repo, SessionTimeout.String())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (RootEntry, error) {
		var e RootEntry
		var b []byte
		if err := r.Scan(&e.PointID, &b); err != nil {
			return e, err
		}
		e.Root, err = toID(b)
		return e, err
	})
}
