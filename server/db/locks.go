package db

import (
	"context"
	"hash/fnv"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Locks are named PostgreSQL session advisory locks that jobs hold for
// their whole length (an asset's backup lock, a vCenter's backup slots),
// on a pool of their own. Each held lock pins one connection of that pool
// until it is released, so a lock dies with its process (or connection)
// and never with a job's passing queries; the pool is sized so that
// pinning never waits (see jobs' poolSizes).
type Locks struct {
	pool *pgxpool.Pool
}

// NewLocks takes locks on pool.
func NewLocks(pool *pgxpool.Pool) *Locks { return &Locks{pool: pool} }

// Close closes the lock pool.
func (l *Locks) Close() { l.pool.Close() }

// TryLock takes the lock called name without waiting for it; ok is false
// when another session holds it.
func (l *Locks) TryLock(ctx context.Context, name string) (release func(), ok bool, err error) {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return nil, false, err
	}
	key := lockKey(name)
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&ok); err != nil || !ok {
		conn.Release()
		return nil, false, err
	}
	return func() {
		_, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, key)
		conn.Release()
	}, true, nil
}

func lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return int64(h.Sum64())
}

// WithLock runs fn holding the advisory lock key, waiting for it (schema
// migrations of several replicas starting together).
func WithLock(ctx context.Context, pool *pgxpool.Pool, key int64, fn func() error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		return err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key)
	return fn()
}
