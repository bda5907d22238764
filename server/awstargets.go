package server

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// storedAWSTarget is what the aws_targets table keeps as spec: the
// settings without the secret, and how the last check went.
type storedAWSTarget struct {
	api.AWSTargetSpec
	AccountID     string     `json:"account_id,omitempty"`
	Status        string     `json:"status"`
	StatusMessage string     `json:"status_message,omitempty"`
	CheckedAt     *time.Time `json:"checked_at,omitempty"`
}

func awsTargetKind(d *db.DB, master *keys.MasterKey) objectKind[api.AWSTargetRequest, api.AWSTarget] {
	return objectKind[api.AWSTargetRequest, api.AWSTarget]{
		db: d, label: "AWS target", table: db.AWSTargets,
		version: func(r *api.AWSTargetRequest) *int64 { return r.Version },
		prepare: func(ctx context.Context, req *api.AWSTargetRequest, prev *db.Object) (storedObject, error) {
			spec := req.AWSTargetSpec
			var old storedAWSTarget
			if prev != nil {
				if err := json.Unmarshal(prev.Spec, &old); err != nil {
					return storedObject{}, err
				}
			}
			// An update may leave the secret out while the access key
			// stays the same.
			keep := prev != nil && prev.SealedSecret != nil && spec.AccessKeyID == old.AccessKeyID
			if err := spec.Validate(keep); err != nil {
				return storedObject{}, err
			}
			secret := spec.SecretAccessKey
			var sealed []byte
			switch {
			case secret != "":
				sealed = master.Seal([]byte(secret), connect.AWSTargetSecretContext)
			case spec.AccessKeyID != "":
				plain, err := master.Open(prev.SealedSecret, connect.AWSTargetSecretContext)
				if err != nil {
					return storedObject{}, fmt.Errorf("AWS target %s: %w", prev.ID, err)
				}
				secret, sealed = string(plain), prev.SealedSecret
			}
			account, err := connect.CheckAWSTarget(ctx, spec, secret)
			if err != nil {
				return storedObject{}, err
			}
			now := time.Now().UTC()
			spec.SecretAccessKey = ""
			b, err := json.Marshal(storedAWSTarget{AWSTargetSpec: spec, AccountID: account, Status: "connected", CheckedAt: &now})
			return storedObject{name: spec.Name, spec: b, sealed: sealed}, err
		},
		beforeDelete: func(ctx context.Context, o db.Object) error { return awsTargetInUse(ctx, d, o.ID) },
		present: func(o db.Object) (api.AWSTarget, error) {
			var st storedAWSTarget
			if err := json.Unmarshal(o.Spec, &st); err != nil {
				return api.AWSTarget{}, err
			}
			return api.AWSTarget{Meta: meta(o), AWSTargetSpec: st.AWSTargetSpec, HasSecret: o.SealedSecret != nil,
				AccountID: st.AccountID, Status: st.Status, StatusMessage: st.StatusMessage, CheckedAt: st.CheckedAt}, nil
		},
	}
}
