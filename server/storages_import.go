package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/executors"
)

// importStorage serves POST /v1/storages/import, the recovery of a
// server that lost its database: given a storage's location and
// credentials, and with this server holding the master key the storage
// was created under, it finds the repository there by its keys, adds the
// storage to the catalog under the id the repository was created with,
// and queues the import job (executors.Import) that rebuilds the chunk
// index from the pack trailers and adds every whole point from the
// catalog entry its record keeps. It answers 202 with that job, which
// survives the client's timeout and the server's crash. The checks a
// client can act on are made here, before anything is recorded.
//
// A retry with the same Idempotency-Key gets the same job, and so does an
// import of a storage whose import is queued or running (db.InsertJob).
// Importing the same location once the job ended queues a new one, which
// adds nothing (or finishes what an import that failed left); a location
// another storage of the catalog already has, or a repository the
// catalog has at another location, is a conflict.
func (s *Server) importStorage(w http.ResponseWriter, r *http.Request) {
	var req api.StorageImportRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	id, add, err := s.checkImport(r.Context(), req.StorageSpec)
	if err != nil {
		writeError(w, r, err)
		return
	}
	// The storage enters the catalog with its import job, never without:
	// a storage without one would be taken for a created storage, whose
	// index is whole, and GC would delete the packs not indexed yet.
	s.enqueueWith(w, r, db.NewJob{Kind: api.JobImport, StorageID: id, Trigger: api.TriggerOnDemand,
		Params: executors.ImportParams{StorageID: id}}, add)
}

// checkImport checks an import request against the location and the
// catalog. id is the storage's, which is its repository's; add adds the
// storage to the catalog in the job's transaction, or finds it there from
// an earlier import.
func (s *Server) checkImport(ctx context.Context, spec api.StorageSpec) (id string, add func(context.Context, pgx.Tx) error, err error) {
	spec.Normalize()
	if err := spec.Validate(false); err != nil {
		return "", nil, err
	}
	field := locationField(spec)
	secret := spec.SecretAccessKey
	if err := probeStorage(ctx, spec, secret); err != nil {
		return "", nil, err
	}
	st, err := connect.Store(ctx, spec, secret)
	if err != nil {
		return "", nil, api.Unprocessable(field, "storage cannot be opened: %v", err)
	}
	st = store.WithRetry(st, store.DefaultRetryPolicy())
	here, err := s.storageAt(ctx, spec)
	if err != nil {
		return "", nil, err
	}
	rp, err := repo.OpenExisting(ctx, st, s.db.Pool, s.master, repo.Options{TouchGranularity: s.cfg.TouchGranularity})
	if here != nil && (err != nil || here.ID != rp.ID()) {
		return "", nil, api.Conflict(field, "storage %q (%s) of the catalog is already this location: there is nothing to import", here.Name, here.ID)
	}
	var wrongKey *repo.WrongMasterKeyError
	switch {
	case errors.Is(err, repo.ErrNoRepository):
		return "", nil, api.Unprocessable(field, "%v: there is nothing to import here", err)
	case errors.As(err, &wrongKey):
		return "", nil, api.Unprocessable(field, "%v (start the server with --master-key-file naming it)", err)
	case err != nil:
		return "", nil, api.Unprocessable(field, "the storage's repository cannot be opened: %v", err)
	}
	if here == nil {
		// The catalog may know the repository at another location.
		o, err := s.db.Get(ctx, db.Storages, rp.ID())
		if err == nil {
			return "", nil, api.Conflict(field, "the repository here is storage %q (%s) of the catalog, which names another location for it: update that storage instead", o.Name, o.ID)
		}
		if !errors.Is(err, db.ErrNotFound) {
			return "", nil, err
		}
	}
	var sealed []byte
	if secret != "" {
		sealed = s.master.Seal([]byte(secret), connect.StoreSecretContext)
	}
	spec.SecretAccessKey = ""
	b, err := json.Marshal(spec)
	if err != nil {
		return "", nil, err
	}
	add = func(ctx context.Context, tx pgx.Tx) error {
		o, created, err := s.db.CreateWithID(ctx, tx, db.Storages, rp.ID(), spec.Name, b, sealed)
		if errors.Is(err, db.ErrNameTaken) {
			return api.Conflict("name", "another storage already has this name")
		}
		if err == nil && created {
			s.log.Warn("storage added to the catalog for its import", "storage_id", o.ID, "name", o.Name)
		}
		return err
	}
	return rp.ID(), add, nil
}

// storageAt is the storage of the catalog at spec's location, or nil.
func (s *Server) storageAt(ctx context.Context, spec api.StorageSpec) (*db.Object, error) {
	after := ""
	for {
		page, err := s.db.List(ctx, db.Storages, after, 500)
		if err != nil {
			return nil, err
		}
		for _, o := range page {
			var other api.StorageSpec
			if err := json.Unmarshal(o.Spec, &other); err != nil {
				return nil, err
			}
			if sameLocation(spec, other) {
				return &o, nil
			}
		}
		if len(page) < 500 {
			return nil, nil
		}
		after = page[len(page)-1].Name
	}
}

// sameLocation tells whether two storage specs name the same place.
func sameLocation(a, b api.StorageSpec) bool {
	if a.Kind != b.Kind {
		return false
	}
	if a.Kind == api.StorageFilesystem {
		return a.Path == b.Path
	}
	return a.Endpoint == b.Endpoint && a.Bucket == b.Bucket && a.Prefix == b.Prefix
}

// locationField is the request field that names a storage's location.
func locationField(spec api.StorageSpec) string {
	if spec.Kind == api.StorageS3 {
		return "bucket"
	}
	return "path"
}
