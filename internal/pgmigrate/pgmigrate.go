// Package pgmigrate applies embedded, versioned SQL migrations with goose
// under a PostgreSQL advisory lock, so replicas starting together serialize
// and all come up on the same schema. The server and the engine each own a
// schema and a version table, and both use this one runner.
package pgmigrate

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Up applies every migration in dir of fsys not yet recorded in table.
// lockID must differ between schemas so their runners do not wait on each
// other needlessly.
func Up(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS, dir, table string, lockID int64) error {
	sub, err := fs.Sub(fsys, dir)
	if err != nil {
		return err
	}
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer sqlDB.Close()
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(lockID))
	if err != nil {
		return err
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, sub,
		goose.WithSessionLocker(locker), goose.WithTableName(table), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("loading %s migrations: %w", table, err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("applying %s migrations: %w", table, err)
	}
	return nil
}
