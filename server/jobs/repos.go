package jobs

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/storages"
)

// openRepo opens a storage's repository for a job. Transient store errors
// are retried by the store wrapper; bytesPerSec > 0 caps upload bandwidth
// (scheduled backups honour the policy's cap, on-demand ones do not).
func (s *Service) openRepo(ctx context.Context, storageID string, bytesPerSec int64) (*repo.Repository, error) {
	o, err := s.db.Get(ctx, db.Storages, storageID)
	if err != nil {
		return nil, fmt.Errorf("storage %s: %w", storageID, err)
	}
	// Agents call in once per upload; opening the repository (the keys
	// object, a lock round trip) each time would cost more than the data.
	// A changed storage has a new version and so a new entry.
	key := repoKey{id: o.ID, version: o.Version, rate: bytesPerSec}
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
	secret, err := storages.Secret(s.master, o.SealedSecret)
	if err != nil {
		return nil, err
	}
	st, err := storages.Open(ctx, spec, secret)
	if err != nil {
		return nil, fmt.Errorf("storage %s: %w", spec.Name, err)
	}
	st = store.WithRetry(st, store.DefaultRetryPolicy())
	if bytesPerSec > 0 {
		st = store.WithRateLimit(st, bytesPerSec)
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
	rate    int64
}
