// Package db is the server's PostgreSQL store: the connection pool, the
// embedded schema migrations, and the queries behind the API.
package db

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/havenbackup/terraform-provider-haven/internal/pgmigrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// DB is the server's handle on PostgreSQL.
type DB struct {
	Pool *pgxpool.Pool
	// assetTables: see SetAssetTables.
	assetTables []AssetTable
}

// Open connects and brings the schema up to date. Migrations run under a
// PostgreSQL advisory lock, so replicas starting together serialize on it
// and all come up on the same schema. The pool is the API's; the job
// service opens its own (see Connect), so jobs can never starve requests.
func Open(ctx context.Context, url string) (*DB, error) {
	pool, err := Connect(ctx, url, 0)
	if err != nil {
		return nil, err
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &DB{Pool: pool}, nil
}

// MinAPIConns is the least the API's pool gets when the URL does not set
// pool_max_conns: pgx's default (the CPU count, at least 4) is too few
// for a server answering agents and clients at once on a small host.
const MinAPIConns = 8

// Connect opens a pool of at most maxConns connections without touching
// the schema. Zero takes the URL's pool_max_conns if it has one, else
// MinAPIConns or pgx's default, whichever is more.
func Connect(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	switch {
	case maxConns > 0:
		cfg.MaxConns = maxConns
	case !strings.Contains(url, "pool_max_conns"):
		cfg.MaxConns = max(cfg.MaxConns, MinAPIConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	return pool, nil
}

// migrationLockID serializes server schema migrations across replicas.
const migrationLockID = 0x68617665_6e5f7376 // "haven_sv"

func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	return pgmigrate.Up(ctx, pool, migrations, "migrations", "haven_server_schema", migrationLockID)
}

// Close releases the pool.
func (d *DB) Close() { d.Pool.Close() }

// Ping tells whether the database answers.
func (d *DB) Ping(ctx context.Context) error { return d.Pool.Ping(ctx) }

// Errors the queries return; the API layer maps them to status codes.
var (
	ErrNotFound  = errors.New("not found")
	ErrNameTaken = errors.New("name taken")
)

// StaleError is a failed optimistic-concurrency check.
type StaleError struct{ Current int64 }

func (e *StaleError) Error() string { return fmt.Sprintf("stale version (current %d)", e.Current) }

func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (constraint == "" || pgErr.ConstraintName == constraint)
}

func isInvalidText(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "22P02"
}

// InTx runs fn in a transaction, committing when it returns nil.
func (d *DB) InTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, d.Pool, fn)
}
