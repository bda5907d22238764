// Package repotest opens real repositories for tests (a fresh database on
// the test PostgreSQL, a filesystem store in a temp dir, and a random
// master key) and measures what their benchmarks report.
package repotest

import (
	"context"
	"crypto/rand"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/fsstore"
	"github.com/havenbackup/terraform-provider-haven/internal/testparts"
)

// Env is everything a repository test needs, kept so a test can reopen the
// same repository (as a second process or replica would).
type Env struct {
	Pool     *pgxpool.Pool
	Store    store.Store
	StoreDir string
	Master   *keys.MasterKey
	// MasterRaw is the master key's bytes, for tests that hand it to
	// another process.
	MasterRaw []byte
	RepoID    string
	Repo      *repo.Repository
	DBURL     string
}

// New opens a fresh repository.
func New(t testing.TB, opts repo.Options) *Env {
	t.Helper()
	url := testparts.PostgresURL(t)
	dir := t.TempDir()
	st, err := fsstore.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, keys.MasterKeySize)
	rand.Read(raw)
	mk, err := keys.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Store: st, StoreDir: dir, Master: mk, MasterRaw: raw, RepoID: uuid.NewString(), DBURL: url}
	env.Pool = Pool(t, url)
	env.Repo = env.Open(t, opts)
	return env
}

// Pool connects to a test database and migrates the index schema.
func Pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := repo.Migrate(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

// Open opens (another handle on) the environment's repository.
func (e *Env) Open(t testing.TB, opts repo.Options) *repo.Repository {
	t.Helper()
	r, err := repo.OpenOn(context.Background(), e.Store, e.Pool, e.RepoID, e.Master, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
