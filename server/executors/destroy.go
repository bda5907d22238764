package executors

import (
	"context"
	"fmt"

	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// MaintenanceKinds are the jobs that work on a whole storage rather than
// on an asset's data.
var MaintenanceKinds = []string{api.JobGC, api.JobVerify}

// DestroyStorageData is the forced destroy of a storage: it expires every
// recovery point the catalog still lists on it, then deletes the
// repository's data (packs, point records, keys) and its index rows. The
// caller has checked that nothing refers to the storage, that no job uses
// it and that no point on it is on legal hold. Points are expired first,
// so that no restore starts on data being deleted; a destroy cut short is
// finished by deleting the storage again.
func (s *Engine) DestroyStorageData(ctx context.Context, storageID string) (*api.StorageDestroyed, error) {
	// The destroy supersedes the storage's GCs and verifies.
	maintenance, err := s.db.StorageJobsActive(ctx, storageID, MaintenanceKinds, false)
	if err != nil {
		return nil, err
	}
	for _, id := range maintenance {
		if _, err := s.jobs.Cancel(ctx, id); err != nil {
			return nil, err
		}
	}
	r, err := s.repos.Open(ctx, storageID, nil)
	if err != nil {
		return nil, err
	}
	expired, err := s.db.ExpireStoragePoints(ctx, storageID)
	if err != nil {
		return nil, err
	}
	rep, err := r.Destroy(ctx)
	if err != nil {
		return nil, fmt.Errorf("deleting the storage's data (%d recovery points were expired; delete the storage again to finish): %w", expired, err)
	}
	s.repos.Forget(storageID)
	out := &api.StorageDestroyed{ExpiredPoints: expired, DeletedObjects: rep.Objects, DeletedBytes: rep.Bytes,
		Message: fmt.Sprintf("force_destroy: expired %d recovery points and deleted their data (%d objects, %d bytes)", expired, rep.Objects, rep.Bytes)}
	s.log.Warn("storage destroyed with its recovery points", "storage_id", storageID, "expired_points", expired,
		"deleted_objects", rep.Objects, "deleted_bytes", rep.Bytes)
	return out, nil
}
