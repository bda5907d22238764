package jobs

import (
	"context"
	"encoding/json"
	"fmt"

	"golang.org/x/time/rate"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// openRepo opens a storage's repository for a job. Transient store errors
// are retried by the store wrapper; a limiter caps upload bandwidth (a
// policy's, shared by its jobs: see uploadLimiter), nil leaves it free.
func (s *Service) openRepo(ctx context.Context, storageID string, limiter *rate.Limiter) (*repo.Repository, error) {
	o, err := s.db.Get(ctx, db.Storages, storageID)
	if err != nil {
		return nil, fmt.Errorf("storage %s: %w", storageID, err)
	}
	// Agents call in once per upload; opening the repository (the keys
	// object, a lock round trip) each time would cost more than the data.
	// A changed storage has a new version and so a new entry.
	key := repoKey{id: o.ID, version: o.Version, limiter: limiter}
	s.reposMu.Lock()
	if r, ok := s.repos[key]; ok {
		s.reposMu.Unlock()
		return r, nil
	}
	s.reposMu.Unlock()
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
	ix := index.New(s.pool, o.ID)
	if s.cfg.TouchGranularity > 0 {
		ix.SetTouchGranularity(s.cfg.TouchGranularity)
	}
	r, err := repo.Open(ctx, st, ix, s.master, repo.Options{})
	if err != nil {
		return nil, err
	}
	s.reposMu.Lock()
	if len(s.repos) > 256 {
		clear(s.repos)
	}
	s.repos[key] = r
	s.reposMu.Unlock()
	return r, nil
}

type repoKey struct {
	id      string
	version int64
	limiter *rate.Limiter
}
