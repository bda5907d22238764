package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/vmware"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/connect"
	"github.com/havenbackup/terraform-provider-haven/server/db"
)

// storedProtectedVM is the protected_vms spec column: an api.ProtectedVM
// without Meta and without the password, so that the reconcilers can read
// and write the server-maintained members next to the user's settings.
type storedProtectedVM struct {
	api.ProtectedVMSpec
	Name             string `json:"name"`
	MoRef            string `json:"moref,omitempty"`
	Status           string `json:"status"`
	RuleID           string `json:"rule_id,omitempty"`
	HasGuestPassword bool   `json:"has_guest_password"`
}

// storedVMRule is the vm_protection_rules spec column: an
// api.VMProtectionRule without Meta.
type storedVMRule struct {
	api.VMProtectionRuleSpec
	SelectedCount int `json:"selected_count"`
}

func protectedVMKind(d *db.DB, master *keys.MasterKey) objectKind[api.ProtectedVMRequest, api.ProtectedVM] {
	return objectKind[api.ProtectedVMRequest, api.ProtectedVM]{
		db: d, label: "protected VM", table: db.ProtectedVMs,
		version: func(r *api.ProtectedVMRequest) *int64 { return r.Version },
		prepare: func(ctx context.Context, req *api.ProtectedVMRequest, prev *db.Object) (storedObject, error) {
			spec := req.ProtectedVMSpec
			if err := spec.Validate(); err != nil {
				return storedObject{}, err
			}
			// Instance UUIDs are hex and vCenter writes them in lower case;
			// one spelling keeps the stored name, and so the one-protection-
			// per-VM rule, independent of how a client typed it.
			spec.InstanceUUID = strings.ToLower(spec.InstanceUUID)
			var old storedProtectedVM
			if err := mayWriteGroups(ctx, spec.Group, prev, &old, func(o *storedProtectedVM) string { return o.Group }); err != nil {
				return storedObject{}, err
			}
			refs, err := resolveVMRefs(ctx, d, spec.VCenterID, spec.PolicyID, spec.StorageID)
			if err != nil {
				return storedObject{}, err
			}
			spec.VCenterID, spec.PolicyID, spec.StorageID = refs.vcenter.ID, refs.policyID, refs.storageID
			if prev != nil {
				// Recovery points belong to the VM the object was made for:
				// pointing it at another VM would mix two machines' history.
				if spec.VCenterID != old.VCenterID {
					return storedObject{}, api.FieldError("vcenter_id", "cannot change from %q to %q: protect the VM of the other vCenter as a new protected VM", old.VCenterID, spec.VCenterID)
				}
				if spec.InstanceUUID != old.InstanceUUID {
					return storedObject{}, api.FieldError("instance_uuid", "cannot change from %q to %q: protect the other VM as a new protected VM", old.InstanceUUID, spec.InstanceUUID)
				}
			}
			name := api.ProtectedVMObjectName(spec.VCenterID, spec.InstanceUUID)
			// An update may leave the password out to keep the stored one,
			// but only for the same account: a password kept across a
			// change of user would be tried as the new user's, so it is
			// dropped instead.
			sealed := []byte(nil)
			switch {
			case spec.GuestPassword != "":
				sealed = master.Seal([]byte(spec.GuestPassword), connect.GuestPasswordContext)
			case prev != nil && prev.SealedSecret != nil && spec.GuestUsername != "" && spec.GuestUsername == old.GuestUsername:
				sealed = prev.SealedSecret
			}
			spec.GuestPassword = ""

			vm, err := findProtectedVM(ctx, master, refs.vcenter, spec)
			if err != nil {
				return storedObject{}, err
			}
			// Disk keys are a set; sorted, equal sets are stored equal.
			slices.Sort(spec.ExcludeDisks)
			// An edit of a protection a rule made takes it over (no
			// rule_id): the selection reconciler rebuilds a rule's
			// protections from the rule alone, and would otherwise undo the
			// edit, while one protected by hand it leaves to its owner.
			st := storedProtectedVM{ProtectedVMSpec: spec, Name: vm.Name, MoRef: vm.MoRef, Status: api.VMActive,
				HasGuestPassword: sealed != nil}
			b, err := json.Marshal(st)
			return storedObject{name: name, spec: b, sealed: sealed}, err
		},
		present: func(o db.Object) (api.ProtectedVM, error) {
			var st storedProtectedVM
			if err := json.Unmarshal(o.Spec, &st); err != nil {
				return api.ProtectedVM{}, err
			}
			st.GuestPassword = ""
			return api.ProtectedVM{Meta: meta(o), ProtectedVMSpec: st.ProtectedVMSpec, Name: st.Name, MoRef: st.MoRef,
				Status: st.Status, RuleID: st.RuleID, HasGuestPassword: o.SealedSecret != nil}, nil
		},
		beforeDelete: func(ctx context.Context, o db.Object) error {
			var st storedProtectedVM
			if err := json.Unmarshal(o.Spec, &st); err != nil {
				return err
			}
			if err := mayWriteGroup(ctx, st.Group); err != nil {
				return err
			}
			if err := protectedVMInPlan(ctx, d, o.ID); err != nil {
				return err
			}
			return refusedIfRuleSelects(ctx, d, st)
		},
	}
}

// refusedIfRuleSelects refuses to delete a protection that a rule made and
// still selects: the rule's next run would only protect the VM again, as a
// new asset apart from its recovery points.
func refusedIfRuleSelects(ctx context.Context, d *db.DB, st storedProtectedVM) error {
	if st.RuleID == "" || st.Status != api.VMActive {
		return nil
	}
	rule, err := d.Get(ctx, db.VMProtectionRules, st.RuleID)
	if errors.Is(err, db.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return api.Conflict("rule_id", "VM protection rule %q protects VM %q: exclude the VM from the rule (exclude_instance_uuids) or change the rule; "+
		"deleting this protection would only make the rule protect the VM again", rule.Name, st.Name)
}

func vmProtectionRuleKind(d *db.DB, js *engine) objectKind[api.VMProtectionRuleRequest, api.VMProtectionRule] {
	return objectKind[api.VMProtectionRuleRequest, api.VMProtectionRule]{
		db: d, label: "VM protection rule", table: db.VMProtectionRules,
		version: func(r *api.VMProtectionRuleRequest) *int64 { return r.Version },
		prepare: func(ctx context.Context, req *api.VMProtectionRuleRequest, prev *db.Object) (storedObject, error) {
			spec := req.VMProtectionRuleSpec
			if err := spec.Validate(); err != nil {
				return storedObject{}, err
			}
			for i, u := range spec.ExcludeInstanceUUIDs {
				spec.ExcludeInstanceUUIDs[i] = strings.ToLower(u)
			}
			var old storedVMRule
			if err := mayWriteGroups(ctx, spec.Group, prev, &old, func(o *storedVMRule) string { return o.Group }); err != nil {
				return storedObject{}, err
			}
			refs, err := resolveVMRefs(ctx, d, spec.VCenterID, spec.PolicyID, spec.StorageID)
			if err != nil {
				return storedObject{}, err
			}
			spec.VCenterID, spec.PolicyID, spec.StorageID = refs.vcenter.ID, refs.policyID, refs.storageID
			// The count is the reconciler's; an edit does not reset it.
			b, err := json.Marshal(storedVMRule{VMProtectionRuleSpec: spec, SelectedCount: old.SelectedCount})
			return storedObject{name: spec.Name, spec: b}, err
		},
		present: func(o db.Object) (api.VMProtectionRule, error) {
			var st storedVMRule
			if err := json.Unmarshal(o.Spec, &st); err != nil {
				return api.VMProtectionRule{}, err
			}
			return api.VMProtectionRule{Meta: meta(o), VMProtectionRuleSpec: st.VMProtectionRuleSpec, SelectedCount: st.SelectedCount}, nil
		},
		// A new or changed rule is applied to the inventory now rather than
		// at the reconciler's next period.
		afterCreate: func(ctx context.Context, _ db.Object, _ *api.VMProtectionRule) error {
			js.QueueSelection(context.WithoutCancel(ctx))
			return nil
		},
		afterUpdate: func(ctx context.Context, _ db.Object) {
			js.QueueSelection(context.WithoutCancel(ctx))
		},
		beforeDelete: func(ctx context.Context, o db.Object) error {
			var st storedVMRule
			if err := json.Unmarshal(o.Spec, &st); err != nil {
				return err
			}
			return mayWriteGroup(ctx, st.Group)
		},
		// The protections the rule made go with it (their points live on,
		// retained under the policy they were made under), so that the
		// rule's policy, storage and vCenter can be deleted next, as
		// terraform destroy does. A VM another rule selects is protected
		// again by that rule on the selection run queued here.
		afterDelete: func(ctx context.Context, o db.Object) {
			ctx = context.WithoutCancel(ctx)
			_ = js.RetireRuleMade(ctx, "rule_id", o.ID)
			js.QueueSelection(ctx)
		},
	}
}

type vmRefs struct {
	vcenter             db.Object
	policyID, storageID string
}

// resolveVMRefs finds the vCenter, policy and storage a protection names,
// by id or name, and reports a missing one on its field as filesets do.
func resolveVMRefs(ctx context.Context, d *db.DB, vcenterID, policyID, storageID string) (vmRefs, error) {
	var out vmRefs
	for _, ref := range []struct {
		field, id string
		table     db.Table
		into      func(db.Object)
	}{
		{"vcenter_id", vcenterID, db.VCenters, func(o db.Object) { out.vcenter = o }},
		{"policy_id", policyID, db.BackupPolicies, func(o db.Object) { out.policyID = o.ID }},
		{"storage_id", storageID, db.Storages, func(o db.Object) { out.storageID = o.ID }},
	} {
		o, err := d.Get(ctx, ref.table, ref.id)
		if errors.Is(err, db.ErrNotFound) {
			return out, api.Unprocessable(ref.field, "%q does not exist", ref.id)
		}
		if err != nil {
			return out, err
		}
		ref.into(o)
	}
	return out, nil
}

// createProtectedVM is objectKind.create, except that the store's name
// conflict, which for protected VMs means the VM is protected already, is
// answered with who protects it. The store decides, not a check before the
// insert, so that two concurrent creates get the same answer and a retried
// create (same Idempotency-Key) still gets the object it made.
func createProtectedVM(k objectKind[api.ProtectedVMRequest, api.ProtectedVM]) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st, err := k.readCreate(w, r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		o, created, err := k.db.Create(r.Context(), k.table, st.name, st.spec, st.sealed, r.Header.Get("Idempotency-Key"))
		if errors.Is(err, db.ErrNameTaken) {
			err = alreadyProtected(r.Context(), k.db, st.name)
		}
		if err != nil {
			writeError(w, r, k.mapErr(err, ""))
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		k.answer(w, r, status, o)
	}
}

// alreadyProtected is the 409 for a second protection of a VM.
func alreadyProtected(ctx context.Context, d *db.DB, name string) error {
	o, err := d.Get(ctx, db.ProtectedVMs, name)
	if errors.Is(err, db.ErrNotFound) {
		return api.Conflict("instance_uuid", "the VM was being protected by another request at the same time; try again")
	}
	if err != nil {
		return err
	}
	var st storedProtectedVM
	if err := json.Unmarshal(o.Spec, &st); err != nil {
		return err
	}
	by := "protected VM " + o.ID
	if st.RuleID != "" {
		by += " (created by VM protection rule " + st.RuleID + ")"
	}
	return api.Conflict("instance_uuid", "VM %q (%s) is already protected by %s: a VM is protected at most once; change that protection instead",
		st.Name, st.InstanceUUID, by)
}

// findProtectedVM logs in to the vCenter with its stored credentials and
// finds the VM a protection names, checking the disks it excludes.
func findProtectedVM(ctx context.Context, master *keys.MasterKey, vc db.Object, spec api.ProtectedVMSpec) (vmware.VM, error) {
	var reg storedVCenter
	if err := json.Unmarshal(vc.Spec, &reg); err != nil {
		return vmware.VM{}, err
	}
	password, err := master.Open(vc.SealedSecret, connect.VCenterSecretContext)
	if err != nil {
		return vmware.VM{}, err
	}
	c, err := connect.VCenter(ctx, reg.VCenterSpec, string(password))
	if err != nil {
		// The fix is in the vCenter's registration, not in this request.
		var ae *api.Error
		if errors.As(err, &ae) {
			return vmware.VM{}, api.Unprocessable("vcenter_id", "the server cannot log in to vCenter %q with its registration (%s: %s): fix the vCenter first",
				reg.Name, ae.Field, ae.Message)
		}
		return vmware.VM{}, err
	}
	defer c.Logout(context.WithoutCancel(ctx))
	vm, err := c.VMByInstanceUUID(ctx, spec.InstanceUUID)
	switch {
	case errors.Is(err, vmware.ErrNotFound):
		return vm, api.Unprocessable("instance_uuid", "vCenter %q has no VM with instance UUID %s (see the haven_vm data source)", reg.Name, spec.InstanceUUID)
	case errors.Is(err, vmware.ErrAmbiguous):
		return vm, api.Unprocessable("instance_uuid", "vCenter %q has several VMs with instance UUID %s: %v", reg.Name, spec.InstanceUUID, err)
	case err != nil:
		return vm, fmt.Errorf("looking up VM %s in vCenter %q: %w", spec.InstanceUUID, reg.Name, err)
	}
	has := map[int32]bool{}
	var diskList []string
	for _, disk := range vm.Disks {
		has[disk.Key] = true
		diskList = append(diskList, fmt.Sprintf("%d (%s)", disk.Key, disk.Label))
	}
	for i, k := range spec.ExcludeDisks {
		if !has[k] {
			return vm, api.Unprocessable("exclude_disks["+strconv.Itoa(i)+"]", "VM %q has no disk with key %d; its disks are %s",
				vm.Name, k, strings.Join(diskList, ", "))
		}
	}
	// Validate refused repeated keys, so this many keys are all the disks.
	if len(vm.Disks) > 0 && len(spec.ExcludeDisks) == len(vm.Disks) {
		return vm, api.Unprocessable("exclude_disks", "excludes every disk of VM %q, so its backups would hold nothing", vm.Name)
	}
	return vm, nil
}

// vcenterInUse refuses to delete a vCenter that protected VMs or selection
// rules still refer to: they would be left pointing at nothing.
func vcenterInUse(ctx context.Context, d *db.DB, id string) error {
	for _, t := range []struct {
		table db.Table
		what  string
		label string // the spec member that names an object to a user
	}{{db.ProtectedVMs, "protected VM", "name"}, {db.VMProtectionRules, "VM protection rule", "name"}} {
		var n int
		var example string
		// Protections a rule made do not hold the vCenter: their rule does
		// while it exists, and once it is gone they are leftovers, retired
		// with the vCenter (their points stay restorable elsewhere).
		err := d.Pool.QueryRow(ctx, fmt.Sprintf(
			`SELECT count(*) OVER (), spec->>'%s' FROM %s WHERE spec->>'vcenter_id' = $1 AND coalesce(spec->>'rule_id', '') = ''
			 ORDER BY name LIMIT 1`, t.label, t.table), id).Scan(&n, &example)
		if errors.Is(err, pgx.ErrNoRows) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 1 {
			return api.Conflict("", "the vCenter is used by %s %q: delete it first", t.what, example)
		}
		return api.Conflict("", "the vCenter is used by %d %ss, such as %q: delete them first", n, t.what, example)
	}
	return nil
}

// mayWriteGroups checks that the caller may write an object's new group
// and, on an update, the group it is in now (decoding prev into old, which
// the caller also uses).
func mayWriteGroups[T any](ctx context.Context, group string, prev *db.Object, old *T, groupOf func(*T) string) error {
	if err := mayWriteGroup(ctx, group); err != nil {
		return err
	}
	if prev == nil {
		return nil
	}
	if err := json.Unmarshal(prev.Spec, old); err != nil {
		return err
	}
	return mayWriteGroup(ctx, groupOf(old))
}
