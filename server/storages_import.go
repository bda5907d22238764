package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// importStorage serves POST /v1/storages/import, the recovery of a
// server that lost its database: given a storage's location and
// credentials, and with this server holding the master key the storage
// was created under, it finds the repository there by its keys, rebuilds
// the chunk index from the pack trailers (repo.Rebuild), adds the storage
// to the catalog under the id the repository was created with, and adds
// every whole point from the catalog entry its record keeps, with its
// asset as a deleted (retired) asset unless the catalog has it live. The
// points then list, restore and are retained as before. Importing the
// same location again adds nothing (and finishes an import that was cut
// short); a location another storage of the catalog already has, or a
// repository the catalog has at another location, is a conflict.
func (s *Server) importStorage(w http.ResponseWriter, r *http.Request) {
	var req api.StorageImportRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	out, created, err := s.runImport(r.Context(), req.StorageSpec)
	if err != nil {
		writeError(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, out)
}

func (s *Server) runImport(ctx context.Context, spec api.StorageSpec) (*api.StorageImport, bool, error) {
	spec.Normalize()
	if err := spec.Validate(false); err != nil {
		return nil, false, err
	}
	field := locationField(spec)
	secret := spec.SecretAccessKey
	if err := probeStorage(ctx, spec, secret); err != nil {
		return nil, false, err
	}
	st, err := connect.Store(ctx, spec, secret)
	if err != nil {
		return nil, false, api.Unprocessable(field, "storage cannot be opened: %v", err)
	}
	st = store.WithRetry(st, store.DefaultRetryPolicy())
	here, err := s.storageAt(ctx, spec)
	if err != nil {
		return nil, false, err
	}
	rp, err := repo.OpenExisting(ctx, st, s.db.Pool, s.master, repo.Options{TouchGranularity: s.cfg.TouchGranularity})
	if here != nil && (err != nil || here.ID != rp.ID()) {
		return nil, false, api.Conflict(field, "storage %q (%s) of the catalog is already this location: there is nothing to import", here.Name, here.ID)
	}
	var wrongKey *repo.WrongMasterKeyError
	switch {
	case errors.Is(err, repo.ErrNoRepository):
		return nil, false, api.Unprocessable(field, "%v: there is nothing to import here", err)
	case errors.As(err, &wrongKey):
		return nil, false, api.Unprocessable(field, "%v (start the server with --master-key-file naming it)", err)
	case err != nil:
		return nil, false, api.Unprocessable(field, "the storage's repository cannot be opened: %v", err)
	}
	if here == nil {
		// The catalog may know the repository at another location.
		o, err := s.db.Get(ctx, db.Storages, rp.ID())
		if err == nil {
			return nil, false, api.Conflict(field, "the repository here is storage %q (%s) of the catalog, which names another location for it: update that storage instead", o.Name, o.ID)
		}
		if !errors.Is(err, db.ErrNotFound) {
			return nil, false, err
		}
	}

	rebuilt, err := rp.Rebuild(ctx)
	if errors.Is(err, repo.ErrGCRunning) {
		return nil, false, api.Conflict("", "a garbage collection of this storage is running: import again once it is done")
	}
	if err != nil {
		return nil, false, err
	}
	var sealed []byte
	if secret != "" {
		sealed = s.master.Seal([]byte(secret), connect.StoreSecretContext)
	}
	spec.SecretAccessKey = ""
	b, err := json.Marshal(spec)
	if err != nil {
		return nil, false, err
	}
	o, created, err := s.db.CreateWithID(ctx, db.Storages, rp.ID(), spec.Name, b, sealed)
	if errors.Is(err, db.ErrNameTaken) {
		return nil, false, api.Conflict("name", "another storage already has this name")
	}
	if err != nil {
		return nil, false, err
	}
	found := make([]db.FoundPoint, len(rebuilt.Points))
	for i, p := range rebuilt.Points {
		found[i] = db.FoundPoint{ID: p.PointID, Committed: p.Committed, Entry: p.Catalog, RecordVersion: p.RecordVersion}
	}
	imported, err := s.db.ImportPoints(ctx, o.ID, found)
	if err != nil {
		return nil, false, err
	}
	assets := map[string]bool{}
	for _, p := range rebuilt.Points {
		if _, skipped := imported.Skipped[p.PointID]; !skipped {
			if pt, err := s.db.GetPoint(ctx, p.PointID); err == nil {
				assets[pt.AssetID] = true
			}
		}
	}
	for a := range assets {
		s.jobs.QueueRetention(context.WithoutCancel(ctx), a)
	}

	out := &api.StorageImport{Storage: api.Storage{Meta: meta(o), HasSecret: o.SealedSecret != nil}, Packs: rebuilt.Packs,
		Chunks: rebuilt.Chunks, KnownPacks: rebuilt.KnownPacks, Points: imported.Points, KnownPoints: imported.KnownPoints,
		Assets: imported.Assets, Skipped: []api.ImportSkipped{}}
	if err := json.Unmarshal(o.Spec, &out.Storage.StorageSpec); err != nil {
		return nil, false, err
	}
	for _, sk := range rebuilt.Skipped {
		out.Skipped = append(out.Skipped, api.ImportSkipped{Object: sk.Object, Reason: sk.Reason})
	}
	for id, reason := range imported.Skipped {
		out.Skipped = append(out.Skipped, api.ImportSkipped{Object: repo.PointsPrefix + id, Reason: reason})
	}
	sort.Slice(out.Skipped, func(i, j int) bool { return out.Skipped[i].Object < out.Skipped[j].Object })
	out.Message = fmt.Sprintf("storage %s imported: %d recovery points added to the catalog (%d were there), %d deleted assets recorded, "+
		"%d packs with %d chunks indexed (%d were indexed); %d objects skipped", spec.Name, out.Points, out.KnownPoints, out.Assets,
		out.Packs, out.Chunks, out.KnownPacks, len(out.Skipped))
	s.log.Warn("storage imported", "storage_id", o.ID, "points", out.Points, "known_points", out.KnownPoints,
		"assets", out.Assets, "packs", out.Packs, "chunks", out.Chunks, "skipped", len(out.Skipped))
	return out, created, nil
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
