package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/executors"
)

// probeTimeout bounds the write-read-delete proof of a storage, so a
// black-holed endpoint gets a clear 422 instead of a hung apply.
const probeTimeout = 30 * time.Second

func storageKind(d *db.DB, master *keys.MasterKey, js *engine) objectKind[api.StorageRequest, api.Storage] {
	return objectKind[api.StorageRequest, api.Storage]{
		db: d, label: "storage", table: db.Storages,
		version: func(r *api.StorageRequest) *int64 { return r.Version },
		prepare: func(ctx context.Context, req *api.StorageRequest, prev *db.Object) (storedObject, error) {
			spec := req.StorageSpec
			spec.Normalize()
			var prevSpec api.StorageSpec
			if prev != nil {
				if err := json.Unmarshal(prev.Spec, &prevSpec); err != nil {
					return storedObject{}, err
				}
				if prevSpec.Kind != spec.Kind {
					return storedObject{}, api.Unprocessable("kind", "cannot change from %q to %q: a storage's kind is fixed; create a new storage instead", prevSpec.Kind, spec.Kind)
				}
			}
			keepSecret := prev != nil && prev.SealedSecret != nil && spec.AccessKeyID == prevSpec.AccessKeyID
			if err := spec.Validate(keepSecret); err != nil {
				return storedObject{}, err
			}
			secret := spec.SecretAccessKey
			var sealed []byte
			switch {
			case secret != "":
				sealed = master.Seal([]byte(secret), connect.StoreSecretContext)
			case keepSecret && spec.AccessKeyID != "":
				sealed = prev.SealedSecret
				plain, err := master.Open(sealed, connect.StoreSecretContext)
				if err != nil {
					return storedObject{}, fmt.Errorf("storage %s: %w", prev.ID, err)
				}
				secret = string(plain)
			}
			if err := probeStorage(ctx, spec, secret); err != nil {
				return storedObject{}, err
			}
			spec.SecretAccessKey = ""
			b, err := json.Marshal(spec)
			return storedObject{name: spec.Name, spec: b, sealed: sealed}, err
		},
		present: func(o db.Object) (api.Storage, error) {
			s := api.Storage{Meta: meta(o), HasSecret: o.SealedSecret != nil}
			return s, json.Unmarshal(o.Spec, &s.StorageSpec)
		},
		beforeDelete: func(ctx context.Context, o db.Object) error {
			if err := refusedIfUsedByUsers(ctx, d, js, "storage_id", o.ID, "storage"); err != nil {
				return err
			}
			// Its points are not in the catalog yet, and the job would
			// fail on a storage gone.
			importing, err := d.StorageJobsActive(ctx, o.ID, []string{api.JobImport}, false)
			if err != nil {
				return err
			}
			if len(importing) > 0 {
				return api.Conflict("", "the storage is being imported (job %s): wait for the import or cancel it first", importing[0])
			}
			return refusedIfHoldsPoints(ctx, d, o)
		},
		destroy: func(ctx context.Context, o db.Object) (any, error) {
			var spec api.StorageSpec
			if err := json.Unmarshal(o.Spec, &spec); err != nil || !spec.ForceDestroy {
				return nil, err
			}
			return js.DestroyStorageData(ctx, o.ID)
		},
	}
}

// refusedIfHoldsPoints refuses to delete a storage that holds recovery
// points, which outlive their assets and live out their retention, unless
// the storage has force_destroy; a forced destroy still waits for its jobs
// and for legal holds to be released.
func refusedIfHoldsPoints(ctx context.Context, d *db.DB, o db.Object) error {
	var spec api.StorageSpec
	if err := json.Unmarshal(o.Spec, &spec); err != nil {
		return err
	}
	points, assets, held, err := d.StoragePoints(ctx, o.ID)
	if err != nil {
		return err
	}
	if !spec.ForceDestroy {
		if points == 0 {
			return nil
		}
		return api.Conflict("force_destroy", "the storage holds %d recovery points of %d assets, restorable until their retention ends: "+
			"wait for them to expire, or set force_destroy = true on the storage to expire them and delete their data with it", points, assets)
	}
	if held > 0 {
		return api.Conflict("force_destroy", "%d of the storage's recovery points are on legal hold: release the holds before destroying the storage", held)
	}
	work, err := d.StorageJobsActive(ctx, o.ID, executors.MaintenanceKinds, true)
	if err != nil {
		return err
	}
	if len(work) > 0 {
		return api.Conflict("", "%d backups, restores or imports are queued or running on the storage (job %s): wait for them or cancel them first", len(work), work[0])
	}
	return nil
}

// probeStorage proves a storage works by writing, reading back and deleting
// an object. Any failure is the caller's to fix, so it is a 422 carrying the
// backend's reason.
func probeStorage(ctx context.Context, spec api.StorageSpec, secret string) error {
	field := locationField(spec)
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	s, err := connect.Store(ctx, spec, secret)
	if err != nil {
		return api.Unprocessable(field, "storage cannot be opened: %v", err)
	}
	if err := store.Probe(ctx, s); err != nil {
		return api.Unprocessable(field, "storage failed its write-read-delete probe: %v", err)
	}
	return nil
}

func meta(o db.Object) api.Meta {
	return api.Meta{ID: o.ID, Version: o.Version, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
}
