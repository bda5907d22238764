package repo_test

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/fsstore"
)

func pgxpoolNew(ctx context.Context, url string) (*pgxpool.Pool, error) { return pgxpool.New(ctx, url) }

func fsstoreNew(dir string) (*fsstore.Store, error) { return fsstore.New(dir) }
