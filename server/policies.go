package server

import (
	"context"
	"encoding/json"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

func policyKind(d *db.DB) objectKind[api.PolicyRequest, api.Policy] {
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
		present: func(o db.Object) (api.Policy, error) {
			p := api.Policy{Meta: meta(o)}
			return p, json.Unmarshal(o.Spec, &p.PolicySpec)
		},
		beforeDelete: func(ctx context.Context, o db.Object) error {
			return refusedIfUsed(ctx, d, "policy_id", o.ID, "backup policy")
		},
	}
}
