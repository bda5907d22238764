package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/auth"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/executors"
)

// backupNow queues an on-demand backup of an asset. A backup already
// queued or running for it is answered as is (409 would only make scripts
// retry); a restore of the asset does not block it.
func (s *Server) backupNow(w http.ResponseWriter, r *http.Request) {
	o, ref, err := s.assetRef(r, r.PathValue("id"))
	if errors.Is(err, db.ErrNotFound) {
		writeError(w, r, api.NotFound("asset", r.PathValue("id")))
		return
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	if err := mayWriteGroup(r.Context(), ref.Group); err != nil {
		writeError(w, r, err)
		return
	}
	req, err := backupRequest(w, r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if req.Type != "" {
		types, err := s.jobs.BackupTypes(r.Context(), o.ID)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if !slices.Contains(types, req.Type) {
			writeError(w, r, api.FieldError("type", "must be one of %s for this asset, got %q", strings.Join(types, ", "), req.Type))
			return
		}
	}
	s.enqueue(w, r, db.NewJob{Kind: api.JobBackup, AssetID: o.ID, StorageID: ref.StorageID, Trigger: api.TriggerOnDemand,
		BackupType: req.Type})
}

// backupRequest reads a backup now's body, which is optional: clients that
// predate it send none, or an empty object.
func backupRequest(w http.ResponseWriter, r *http.Request) (api.BackupRequest, error) {
	var req api.BackupRequest
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return req, &api.Error{Code: api.CodeBodyTooLarge, Field: "body", Status: http.StatusRequestEntityTooLarge,
			Message: fmt.Sprintf("body is larger than %d bytes", MaxBodyBytes)}
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return req, nil
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	if err := decodeJSON(w, r, &req); err != nil {
		return req, err
	}
	if err := req.Validate(); err != nil {
		return req, err
	}
	return req, nil
}

// enqueue answers a request that makes a job with the job. A request
// repeating an earlier one's Idempotency-Key (a client's retry) gets the
// job the first one made, and so does a backup now while a backup of the
// asset is queued or running (db.InsertJob).
func (s *Server) enqueue(w http.ResponseWriter, r *http.Request, n db.NewJob) {
	s.enqueueWith(w, r, n, nil)
}

// enqueueWith is enqueue that records what prepare records in the job's
// transaction (jobs.EnqueueWith).
func (s *Server) enqueueWith(w http.ResponseWriter, r *http.Request, n db.NewJob, prepare func(context.Context, pgx.Tx) error) {
	j, err := s.queueJob(r, n, prepare)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, j)
}

// queueJob queues n for the request, honouring its Idempotency-Key: a
// retried request gets the job its first try queued.
func (s *Server) queueJob(r *http.Request, n db.NewJob, prepare func(context.Context, pgx.Tx) error) (api.Job, error) {
	key := r.Header.Get("Idempotency-Key")
	if len(key) > 255 || strings.IndexFunc(key, func(c rune) bool { return c < 0x21 || c > 0x7e }) >= 0 {
		return api.Job{}, api.FieldError("Idempotency-Key", "must be at most 255 visible ASCII characters")
	}
	if p := auth.FromContext(r.Context()); p != nil && key != "" {
		n.RequestKey, n.Caller = key, p.TokenID
	}
	j, _, err := s.jobs.EnqueueWith(r.Context(), n, prepare)
	if errors.Is(err, db.ErrKeyReused) {
		err = api.Unprocessable("Idempotency-Key", "%v: send a new key for a new request", err)
	}
	return j, err
}

// assetRef is what every kind of asset spec shares.
type assetRef struct {
	StorageID string `json:"storage_id"`
	Group     string `json:"group"`
	// FileServerID is a fileset's host, VCenterID a protected VM's.
	FileServerID string `json:"file_server_id"`
	VCenterID    string `json:"vcenter_id"`
}

// assetRef finds an asset of any kind (fileset, protected VM) by id.
func (s *Server) assetRef(r *http.Request, id string) (db.Object, assetRef, error) {
	_, o, err := s.db.AssetObject(r.Context(), id)
	if err != nil {
		return o, assetRef{}, err
	}
	var ref assetRef
	err = json.Unmarshal(o.Spec, &ref)
	return o, ref, err
}

func (s *Server) startRestore(w http.ResponseWriter, r *http.Request) {
	var req api.RestoreRequest
	if !decodeValid(w, r, &req) {
		return
	}
	// Who may restore this point, and onto this target, is settled before
	// anything about the target is looked at, so a refused caller learns
	// nothing about another group's hosts.
	if point, err := s.db.GetPoint(r.Context(), req.PointID); err == nil {
		if err := s.mayRestore(r, point.AssetID, req); err != nil {
			writeError(w, r, err)
			return
		}
	}
	if req.DryRun {
		plan, params, point, err := s.jobs.PlanRestore(r.Context(), req)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if plan == nil {
			// Only the target's host sees the target: its agent plans it.
			s.enqueue(w, r, db.NewJob{Kind: api.JobRestorePlan, AssetID: point.AssetID, StorageID: point.StorageID,
				Trigger: api.TriggerOnDemand, PointID: point.ID, Params: params})
			return
		}
		writeJSON(w, http.StatusOK, plan)
		return
	}
	params, point, err := s.jobs.PrepareRestore(r.Context(), req)
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.enqueue(w, r, db.NewJob{Kind: api.JobRestore, AssetID: point.AssetID, StorageID: point.StorageID,
		Trigger: api.TriggerOnDemand, PointID: point.ID, Params: params})
}

// assetSpecRef reads what every asset spec shares, live or deleted (a
// deleted asset's points keep its group).
func (s *Server) assetSpecRef(r *http.Request, assetID string) (assetRef, error) {
	var ref assetRef
	spec, err := s.db.AssetSpec(r.Context(), assetID)
	if err != nil {
		return ref, err
	}
	return ref, json.Unmarshal(spec, &ref)
}

// mayWriteAsset applies the group rule of an asset, live or deleted. An
// asset without any record has no group: only admins and operators act on
// what it left.
func (s *Server) mayWriteAsset(r *http.Request, assetID string) error {
	ref, err := s.assetSpecRef(r, assetID)
	if errors.Is(err, db.ErrNotFound) {
		return mayWriteGroup(r.Context(), "")
	}
	if err != nil {
		return err
	}
	return mayWriteGroup(r.Context(), ref.Group)
}

// mayRestore is the permission to restore a point of an asset onto the
// target a request names: group admins restore only points of their
// groups' assets, and only onto targets of their groups (file servers,
// vCenters, VMs: whatever the asset's driver says the restore writes
// onto). Admins and operators restore anywhere.
func (s *Server) mayRestore(r *http.Request, assetID string, req api.RestoreRequest) error {
	if err := s.mayWriteAsset(r, assetID); err != nil {
		return err
	}
	if p := auth.FromContext(r.Context()); p == nil || p.Allows(auth.WriteGlobal) {
		return nil
	}
	targets, err := s.jobs.RestoreTargets(r.Context(), assetID, req)
	if err != nil {
		return err
	}
	for _, t := range targets {
		if err := mayUseGroup(r.Context(), t.Group, t.Field, t.Label, t.Name); err != nil {
			return err
		}
	}
	return nil
}

// mayUseGroup refuses a group admin a host or target (file server,
// vCenter, VM) outside its groups.
func mayUseGroup(ctx context.Context, group, field, label, name string) error {
	p := auth.FromContext(ctx)
	if p == nil || p.Allows(auth.WriteGlobal) || p.InGroup(group) {
		return nil
	}
	return &api.Error{Code: api.CodeForbidden, Status: http.StatusForbidden, Field: field,
		Message: fmt.Sprintf("role %s may only use hosts and restore targets of its administrative groups %v; %s %q is not in them", p.Role, p.Groups, label, name)}
}

// maintenance queues a verify or GC of a storage.
func (s *Server) maintenance(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		o, err := s.db.Get(r.Context(), db.Storages, r.PathValue("id"))
		if errors.Is(err, db.ErrNotFound) {
			writeError(w, r, api.NotFound("storage", r.PathValue("id")))
			return
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		var body struct {
			PointIDs []string `json:"point_ids,omitempty"`
		}
		if r.ContentLength != 0 {
			if err := decodeJSON(w, r, &body); err != nil {
				writeError(w, r, err)
				return
			}
		}
		s.enqueue(w, r, db.NewJob{Kind: kind, StorageID: o.ID, Trigger: api.TriggerOnDemand,
			Params: executors.MaintenanceParams{StorageID: o.ID, PointIDs: body.PointIDs}})
	}
}

// getByID serves GET .../{id} for catalog rows read by id.
func getByID[T any](label string, get func(ctx context.Context, id string) (T, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := get(r.Context(), r.PathValue("id"))
		if errors.Is(err, db.ErrNotFound) {
			err = api.NotFound(label, r.PathValue("id"))
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

// maxJobWait bounds how long a read of a job waits for its end.
const maxJobWait = 30 * time.Second

// getJob answers a job. With ?wait=D it answers as soon as the job has
// ended, or once D has passed: a client waiting for a job (the CLI's
// --wait) learns of its end at once without polling fast. The server
// reads the row again whenever this process records a job's end (the
// job service's JobEnded), and every 100 ms for ends recorded elsewhere
// (another replica, an agent's job finished through the hub).
func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > maxJobWait {
			writeError(w, r, api.FieldError("wait", "must be a duration from 0s to %s, such as 2s; got %q", maxJobWait, v))
			return
		}
		wait = d
	}
	deadline := time.Now().Add(wait)
	for {
		var ended <-chan struct{}
		if s.jobs != nil {
			ended = s.jobs.JobEnded()
		}
		j, err := s.db.GetJob(r.Context(), r.PathValue("id"))
		if errors.Is(err, db.ErrNotFound) {
			err = api.NotFound("job", r.PathValue("id"))
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		if j.Finished() || !time.Now().Before(deadline) {
			writeJSON(w, http.StatusOK, j)
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-ended:
		case <-time.After(min(100*time.Millisecond, time.Until(deadline))):
		}
	}
}

// getJobPlan answers the plan a restore_plan job computed on its
// target's host. Its entries are names of the point's files and of the
// target's, so a group admin reads only those of its groups' assets.
func (s *Server) getJobPlan(w http.ResponseWriter, r *http.Request) {
	j, err := s.db.GetJob(r.Context(), r.PathValue("id"))
	if errors.Is(err, db.ErrNotFound) {
		err = api.NotFound("job", r.PathValue("id"))
	}
	if err == nil {
		err = s.mayBrowse(r, j.AssetID)
	}
	if err == nil && j.Kind != api.JobRestorePlan {
		err = &api.Error{Code: api.CodeNotFound, Status: http.StatusNotFound,
			Message: fmt.Sprintf("job %s is a %s job: only restore_plan jobs (restore dry runs onto an agent's host) have a plan", j.ID, j.Kind)}
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	plan, ok, err := s.db.JobPlan(r.Context(), j.ID)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if !ok {
		msg := fmt.Sprintf("the dry run is %s; its plan is there once it has succeeded", j.State)
		if j.Finished() {
			msg = fmt.Sprintf("the dry run ended %s and has no plan: %s", j.State, j.Error)
		}
		writeError(w, r, api.Unprocessable("", "%s", msg))
		return
	}
	writeJSON(w, http.StatusOK, plan)
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) {
	j, err := s.db.GetJob(r.Context(), r.PathValue("id"))
	if errors.Is(err, db.ErrNotFound) {
		err = api.NotFound("job", r.PathValue("id"))
	}
	if err == nil {
		err = s.mayActOnJob(r, j)
	}
	if err == nil {
		j, err = s.jobs.Cancel(r.Context(), j.ID)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// mayActOnJob is the permission to start the job, which every action on
// a job (cancel, and whatever comes after it) needs too: a backup needs
// its asset's group, a restore its source's and its target's, a storage
// import is for admins, and other work on a whole storage (verify, GC) is
// for admins and operators.
func (s *Server) mayActOnJob(r *http.Request, j api.Job) error {
	switch {
	case (j.Kind == api.JobRestore || j.Kind == api.JobRestorePlan) && j.AssetID != "":
		var params driver.RestoreParams
		if _, err := s.db.JobParams(r.Context(), j.ID, &params); err != nil {
			return err
		}
		return s.mayRestore(r, j.AssetID, params.RestoreRequest)
	case j.Kind == api.JobBackup && j.AssetID != "":
		return s.mayWriteAsset(r, j.AssetID)
	case j.Kind == api.JobImport:
		if p := auth.FromContext(r.Context()); p != nil && !p.Allows(auth.ImportStorages) {
			return &api.Error{Code: api.CodeForbidden, Status: http.StatusForbidden,
				Message: fmt.Sprintf("role %s may not act on an import job: like starting one, that needs %s", p.Role, auth.ImportStorages)}
		}
		return nil
	}
	if p := auth.FromContext(r.Context()); p != nil && !p.Allows(auth.WriteGlobal) {
		return &api.Error{Code: api.CodeForbidden, Status: http.StatusForbidden,
			Message: fmt.Sprintf("role %s may not act on a %s job: like starting one, that needs %s", p.Role, j.Kind, auth.WriteGlobal)}
	}
	return nil
}

// listJobs pages newest first; the page token is the last job's
// (created_at, id).
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	limit, after, err := pageParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	f := db.JobFilter{AssetID: q.Get("asset_id"), Kind: q.Get("kind"), State: q.Get("state")}
	if f.BeforeCreated, f.BeforeID, err = parseTimeCursor(after); err != nil {
		writeError(w, r, err)
		return
	}
	if f.AssetID != "" && !uuidPattern.MatchString(f.AssetID) {
		writeError(w, r, api.FieldError("asset_id", "must be an asset id"))
		return
	}
	list, err := s.db.ListJobs(r.Context(), f, limit+1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out, _ := pageOf(list, limit, func(j api.Job) string { return timeCursor(j.CreatedAt, j.ID) }, same[api.Job])
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) listPoints(w http.ResponseWriter, r *http.Request) {
	limit, after, err := pageParams(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	before, beforeID, err := parseTimeCursor(after)
	if err != nil {
		writeError(w, r, err)
		return
	}
	asset := r.URL.Query().Get("asset_id")
	if asset != "" && !uuidPattern.MatchString(asset) {
		// An asset by name, of any kind.
		_, o, err := s.db.AssetObject(r.Context(), asset)
		if err != nil {
			writeError(w, r, api.FieldError("asset_id", "no asset %q", asset))
			return
		}
		asset = o.ID
	}
	f := api.PointFilter{AssetID: asset, Kind: r.URL.Query().Get("kind"), Tier: r.URL.Query().Get("tier")}
	for name, dst := range map[string]**time.Time{"created_after": &f.CreatedAfter, "created_before": &f.CreatedBefore} {
		if v := r.URL.Query().Get(name); v != "" {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil {
				writeError(w, r, api.FieldError(name, "must be an RFC 3339 time, got %q", v))
				return
			}
			*dst = &t
		}
	}
	switch f.Kind {
	case "", "full", "incremental", "differential", "log":
	default:
		writeError(w, r, api.FieldError("kind", "must be full, incremental, differential or log, got %q", f.Kind))
		return
	}
	switch f.Tier {
	case "", "warm", "cold":
	default:
		writeError(w, r, api.FieldError("tier", "must be warm or cold, got %q", f.Tier))
		return
	}
	list, err := s.db.ListPoints(r.Context(), f, before, beforeID, limit+1)
	if err != nil {
		writeError(w, r, err)
		return
	}
	out, _ := pageOf(list, limit, func(p api.Point) string { return timeCursor(p.CompletedAt, p.ID) }, same[api.Point])
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) setLegalHold(w http.ResponseWriter, r *http.Request) {
	var req api.LegalHoldRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	p, err := s.db.GetPoint(r.Context(), r.PathValue("id"))
	if err == nil {
		err = s.mayWriteAsset(r, p.AssetID)
	}
	// The point's record in the store first: if that fails, the catalog is
	// left as it was and the request can be repeated.
	if err == nil && p.DeletedAt == nil {
		err = s.jobs.KeepLegalHold(r.Context(), p, req.LegalHold)
	}
	if err == nil {
		p, err = s.db.SetLegalHold(r.Context(), p.ID, req.LegalHold)
	}
	if errors.Is(err, db.ErrNotFound) {
		err = api.NotFound("recovery point", r.PathValue("id"))
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}
