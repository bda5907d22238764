package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// storedVCenter is what the vcenters table keeps as spec: the settings
// without the password, and how the last login went.
type storedVCenter struct {
	api.VCenterSpec
	Status        string     `json:"status"`
	StatusMessage string     `json:"status_message,omitempty"`
	CheckedAt     *time.Time `json:"checked_at,omitempty"`
}

func vcenterKind(d *db.DB, master *keys.MasterKey, js *engine) objectKind[api.VCenterRequest, api.VCenter] {
	return objectKind[api.VCenterRequest, api.VCenter]{
		db: d, label: "vCenter", table: db.VCenters,
		version: func(r *api.VCenterRequest) *int64 { return r.Version },
		prepare: func(ctx context.Context, req *api.VCenterRequest, prev *db.Object) (storedObject, error) {
			spec := req.VCenterSpec
			var old storedVCenter
			if prev != nil {
				if err := json.Unmarshal(prev.Spec, &old); err != nil {
					return storedObject{}, err
				}
			}
			// An update may leave the password out while the account and
			// server stay the same.
			keep := prev != nil && prev.SealedSecret != nil && spec.Username == old.Username && spec.URL == old.URL
			if err := spec.Validate(keep); err != nil {
				return storedObject{}, err
			}
			password := spec.Password
			sealed := []byte(nil)
			if password != "" {
				sealed = master.Seal([]byte(password), connect.VCenterSecretContext)
			} else {
				plain, err := master.Open(prev.SealedSecret, connect.VCenterSecretContext)
				if err != nil {
					return storedObject{}, err
				}
				password, sealed = string(plain), prev.SealedSecret
			}
			c, err := connect.VCenter(ctx, spec, password)
			if err != nil {
				return storedObject{}, err
			}
			_ = c.Logout(context.WithoutCancel(ctx))
			now := time.Now().UTC()
			spec.Password = ""
			b, err := json.Marshal(storedVCenter{VCenterSpec: spec, Status: "connected", CheckedAt: &now})
			return storedObject{name: spec.Name, spec: b, sealed: sealed}, err
		},
		present: func(o db.Object) (api.VCenter, error) {
			var st storedVCenter
			if err := json.Unmarshal(o.Spec, &st); err != nil {
				return api.VCenter{}, err
			}
			return api.VCenter{Meta: meta(o), VCenterSpec: st.VCenterSpec, HasPassword: o.SealedSecret != nil,
				Status: st.Status, StatusMessage: st.StatusMessage, CheckedAt: st.CheckedAt}, nil
		},
		beforeDelete: func(ctx context.Context, o db.Object) error {
			if err := vcenterInUse(ctx, d, o.ID); err != nil {
				return err
			}
			return js.RetireRuleMade(ctx, "vcenter_id", o.ID)
		},
	}
}

// listVMs serves a vCenter's inventory, filtered (GET .../vms).
func (s *Server) listVMs(w http.ResponseWriter, r *http.Request) {
	o, err := s.db.Get(r.Context(), db.VCenters, r.PathValue("id"))
	if errors.Is(err, db.ErrNotFound) {
		err = api.NotFound("vCenter", r.PathValue("id"))
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	q := r.URL.Query()
	var re *regexp.Regexp
	if v := q.Get("name_regex"); v != "" {
		if re, err = regexp.Compile(v); err != nil {
			writeError(w, r, api.FieldError("name_regex", "is not a valid regular expression: %v", err))
			return
		}
	}
	var st storedVCenter
	if err := json.Unmarshal(o.Spec, &st); err != nil {
		writeError(w, r, err)
		return
	}
	password, err := s.master.Open(o.SealedSecret, connect.VCenterSecretContext)
	if err != nil {
		writeError(w, r, err)
		return
	}
	c, err := connect.VCenter(r.Context(), st.VCenterSpec, string(password))
	if err != nil {
		writeError(w, r, err)
		return
	}
	defer c.Logout(context.WithoutCancel(r.Context()))
	vms, err := c.VMs(r.Context())
	if err != nil {
		writeError(w, r, fmt.Errorf("listing the vCenter's VMs: %w", err))
		return
	}
	out := api.List[api.VM]{Items: []api.VM{}}
	folder := strings.TrimSuffix(q.Get("folder"), "/")
	for _, vm := range vms {
		switch {
		case q.Get("name") != "" && vm.Name != q.Get("name"),
			q.Get("inventory_path") != "" && vm.InventoryPath != q.Get("inventory_path"),
			q.Get("instance_uuid") != "" && !strings.EqualFold(vm.InstanceUUID, q.Get("instance_uuid")),
			q.Get("moref") != "" && vm.MoRef != q.Get("moref"),
			folder != "" && vm.Folder != folder && !strings.HasPrefix(vm.Folder, folder+"/"),
			q.Get("tag") != "" && !slices.Contains(vm.Tags, q.Get("tag")),
			re != nil && !re.MatchString(vm.Name):
			continue
		}
		out.Items = append(out.Items, connect.APIVM(o.ID, vm))
	}
	writeJSON(w, http.StatusOK, out)
}
