// Package db is the server's PostgreSQL store: the connection pool, the
// embedded schema migrations, and the queries behind the API.
package db

import (
	"context"
	"embed"
	"errors"
	"fmt"

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
}

// Open connects and brings the schema up to date. Migrations run under a
// PostgreSQL advisory lock, so replicas starting together serialize on it
// and all come up on the same schema.
func Open(ctx context.Context, url string) (*DB, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return &DB{Pool: pool}, nil
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
