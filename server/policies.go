package server

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

func policyKind(d *db.DB, js *engine) objectKind[api.PolicyRequest, api.Policy] {
	present := func(o db.Object) (api.Policy, error) {
		p := api.Policy{Meta: meta(o)}
		return p, json.Unmarshal(o.Spec, &p.PolicySpec)
	}
	return objectKind[api.PolicyRequest, api.Policy]{
		db: d, label: "backup policy", table: db.BackupPolicies,
		version: func(r *api.PolicyRequest) *int64 { return r.Version },
		prepare: func(_ context.Context, req *api.PolicyRequest, _ *db.Object) (storedObject, error) {
			spec := req.PolicySpec
			spec.Normalize()
			if err := spec.Validate(); err != nil {
				return storedObject{}, err
			}
			b, err := json.Marshal(spec)
			return storedObject{name: spec.Name, spec: b}, err
		},
		present: present,
		beforeDelete: func(ctx context.Context, o db.Object) error {
			return refusedIfUsedByUsers(ctx, d, js, "policy_id", o.ID, "backup policy")
		},
		// A changed policy applies its retention to its assets right away,
		// and its bandwidth cap to its uploads running on this replica.
		afterUpdate: func(ctx context.Context, o db.Object) {
			if assets, err := d.AssetsUsing(ctx, "policy_id", o.ID); err == nil {
				js.QueueRetention(context.WithoutCancel(ctx), assets...)
			}
			if p, err := present(o); err == nil {
				js.PolicyChanged(p)
			}
		},
	}
}

// previewRetention dry-runs a policy change (POST .../preview).
func (s *Server) previewRetention(w http.ResponseWriter, r *http.Request) {
	o, err := s.db.Get(r.Context(), db.BackupPolicies, r.PathValue("id"))
	if err != nil {
		if err == db.ErrNotFound {
			err = api.NotFound("backup policy", r.PathValue("id"))
		}
		writeError(w, r, err)
		return
	}
	var req api.PolicyRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	spec := req.PolicySpec
	spec.Normalize()
	if err := spec.Validate(); err != nil {
		writeError(w, r, err)
		return
	}
	out, err := s.jobs.PreviewRetention(r.Context(), o.ID, spec)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}
