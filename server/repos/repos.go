// Package repos opens storages' repositories for the jobs and the agent
// hub, and keeps them open: agents call in once per upload, and opening a
// repository (the keys object, a lock round trip) each time would cost
// more than the data. It also holds the policies' upload caps.
package repos

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// Cache opens repositories and keeps them open.
type Cache struct {
	db     *db.DB
	master *keys.MasterKey
	// touchGranularity tunes the GC protocol (zero: the engine's default).
	touchGranularity time.Duration

	mu    sync.Mutex
	repos map[repoKey]*repo.Repository
	// limiters are the policies' shared upload caps.
	limiters policyLimiters
}

// New returns a cache over the catalog d, whose pool the chunk index uses.
func New(d *db.DB, master *keys.MasterKey, touchGranularity time.Duration) *Cache {
	return &Cache{db: d, master: master, touchGranularity: touchGranularity, repos: map[repoKey]*repo.Repository{}}
}

// Open opens a storage's repository. Transient store errors are retried
// by the store wrapper; a limiter caps upload bandwidth (a policy's,
// shared by its jobs: see UploadLimiter), nil leaves it free.
func (s *Cache) Open(ctx context.Context, storageID string, limiter *rate.Limiter) (*repo.Repository, error) {
	o, err := s.db.Get(ctx, db.Storages, storageID)
	if err != nil {
		return nil, fmt.Errorf("storage %s: %w", storageID, err)
	}
	// A changed storage has a new version and so a new entry.
	key := repoKey{id: o.ID, version: o.Version, limiter: limiter}
	s.mu.Lock()
	if r, ok := s.repos[key]; ok {
		s.mu.Unlock()
		return r, nil
	}
	s.mu.Unlock()
	var spec api.StorageSpec
	if err := json.Unmarshal(o.Spec, &spec); err != nil {
		return nil, err
	}
	secret, err := connect.StoreSecret(s.master, o.SealedSecret)
	if err != nil {
		return nil, err
	}
	st, err := connect.Store(ctx, spec, secret)
	if err != nil {
		return nil, fmt.Errorf("storage %s: %w", spec.Name, err)
	}
	st = store.WithRetry(st, store.DefaultRetryPolicy())
	if limiter != nil {
		st = store.WithRateLimit(st, limiter)
	}
	r, err := repo.OpenOn(ctx, st, s.db.Pool, o.ID, s.master, repo.Options{TouchGranularity: s.touchGranularity})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.repos) > 256 {
		clear(s.repos)
	}
	s.repos[key] = r
	s.mu.Unlock()
	return r, nil
}

type repoKey struct {
	id      string
	version int64
	limiter *rate.Limiter
}

// Forget drops a storage's open repositories (its data was destroyed).
func (s *Cache) Forget(storageID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.repos {
		if k.id == storageID {
			delete(s.repos, k)
		}
	}
}
