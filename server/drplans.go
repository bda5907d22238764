package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/dr"
)

// drPlanKind serves /v1/dr-plans. The spec is stored with its references
// resolved to ids and each VM's name filled; the status is read at each
// answer from the copies (dr_copies), the VMs' points and the plan's jobs.
func drPlanKind(d *db.DB, now func() time.Time, deleteCopies func(ctx context.Context, planID string) (int, error)) objectKind[api.DRPlanRequest, api.DRPlan] {
	return objectKind[api.DRPlanRequest, api.DRPlan]{
		db: d, label: "DR plan", table: db.DRPlans,
		version: func(r *api.DRPlanRequest) *int64 { return r.Version },
		prepare: func(ctx context.Context, req *api.DRPlanRequest, prev *db.Object) (storedObject, error) {
			spec := req.DRPlanSpec
			if err := spec.Validate(); err != nil {
				return storedObject{}, err
			}
			target, err := d.Get(ctx, db.AWSTargets, spec.TargetID)
			if errors.Is(err, db.ErrNotFound) {
				return storedObject{}, api.Unprocessable("target_id", "AWS target %q does not exist", spec.TargetID)
			}
			if err != nil {
				return storedObject{}, err
			}
			spec.TargetID = target.ID
			for i := range spec.VMs {
				v := &spec.VMs[i]
				if v.ProtectionRuleID != "" {
					rule, err := d.Get(ctx, db.VMProtectionRules, v.ProtectionRuleID)
					if errors.Is(err, db.ErrNotFound) {
						return storedObject{}, api.Unprocessable(fmt.Sprintf("vms[%d].protection_rule_id", i), "VM protection rule %q does not exist", v.ProtectionRuleID)
					}
					if err != nil {
						return storedObject{}, err
					}
					v.ProtectionRuleID = rule.ID
					if v.Name == "" {
						v.Name = rule.Name
					}
					if v.InstanceType == "" {
						v.InstanceType = api.InstanceTypeAuto
					}
					continue
				}
				pv, err := findProtectedVMRef(ctx, d, v.ProtectedVMID)
				if err != nil {
					var ae *api.Error
					if errors.As(err, &ae) {
						ae.Field = fmt.Sprintf("vms[%d].protected_vm_id", i)
					}
					return storedObject{}, err
				}
				v.ProtectedVMID = pv.id
				if v.Name == "" {
					v.Name = pv.name
					if err := api.ValidateMachineName(fmt.Sprintf("vms[%d].name", i), v.Name); err != nil {
						return storedObject{}, api.FieldError(err.Field, "defaults to the protected VM's name %q, which cannot name a machine of the plan: set one", pv.name)
					}
				}
				if v.InstanceType == "" {
					v.InstanceType = api.InstanceTypeAuto
				}
			}
			// Protected VMs may have been given twice under two spellings
			// (id and name): compare what they resolved to.
			for i := range spec.VMs {
				for j := range i {
					if spec.VMs[i].ProtectedVMID != "" && spec.VMs[j].ProtectedVMID == spec.VMs[i].ProtectedVMID {
						return storedObject{}, api.FieldError(fmt.Sprintf("vms[%d].protected_vm_id", i), "is the protected VM of vms[%d] too", j)
					}
				}
			}
			if err := spec.ValidateGraph(); err != nil {
				return storedObject{}, err
			}
			b, err := json.Marshal(spec)
			return storedObject{name: spec.Name, spec: b}, err
		},
		beforeDelete: func(ctx context.Context, o db.Object) error { return drPlanLiveRuns(ctx, d, o.ID) },
		// The plan's EBS copies go with it; if AWS cannot be reached, the
		// plan stays, so that its copies are not left unrecorded.
		destroy: func(ctx context.Context, o db.Object) (any, error) {
			_, err := deleteCopies(ctx, o.ID)
			switch {
			case errors.Is(err, dr.ErrPlanBusy):
				return nil, api.Conflict("", "a DR job of the plan is running: delete the plan once it ends")
			case err != nil:
				return nil, api.Conflict("", "the plan's EBS snapshots could not be deleted, so the plan is kept: %v", err)
			}
			return nil, nil
		},
		present: func(o db.Object) (api.DRPlan, error) {
			var spec api.DRPlanSpec
			if err := json.Unmarshal(o.Spec, &spec); err != nil {
				return api.DRPlan{}, err
			}
			st, err := drPlanStatus(context.Background(), d, o.ID, spec, now())
			if err != nil {
				return api.DRPlan{}, err
			}
			return api.DRPlan{Meta: meta(o), DRPlanSpec: spec, Status: st}, nil
		},
	}
}

type protectedVMRef struct{ id, name string }

// findProtectedVMRef finds a protected VM by id, stored name, or VM name
// (when one protected VM alone has it): 422 when there is none.
func findProtectedVMRef(ctx context.Context, d *db.DB, ref string) (protectedVMRef, error) {
	o, err := d.Get(ctx, db.ProtectedVMs, ref)
	if err == nil {
		var st storedProtectedVM
		if err := json.Unmarshal(o.Spec, &st); err != nil {
			return protectedVMRef{}, err
		}
		return protectedVMRef{o.ID, st.Name}, nil
	}
	if !errors.Is(err, db.ErrNotFound) {
		return protectedVMRef{}, err
	}
	rows, err := d.Pool.Query(ctx, `SELECT id::text FROM protected_vms WHERE spec->>'name' = $1 ORDER BY id LIMIT 2`, ref)
	if err != nil {
		return protectedVMRef{}, err
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return protectedVMRef{}, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	switch len(ids) {
	case 0:
		return protectedVMRef{}, api.Unprocessable("protected_vm_id", "protected VM %q does not exist", ref)
	case 1:
		return protectedVMRef{ids[0], ref}, nil
	}
	return protectedVMRef{}, api.Unprocessable("protected_vm_id", "%q names more than one protected VM: give its id", ref)
}

// drPlanStatus reads where each VM's copy stands.
func drPlanStatus(ctx context.Context, d *db.DB, planID string, spec api.DRPlanSpec, now time.Time) (api.DRPlanStatus, error) {
	st := api.DRPlanStatus{VMs: []api.DRVMStatus{}}
	copies, err := d.DRCopies(ctx, planID)
	if err != nil {
		return st, err
	}
	types, err := d.DRInstanceTypes(ctx, planID)
	if err != nil {
		return st, err
	}
	interval := time.Duration(spec.ReplicationIntervalMinutes) * time.Minute
	machines, err := dr.PlanMachines(ctx, d, spec)
	if err != nil {
		return st, err
	}
	for _, v := range machines {
		vs := api.DRVMStatus{Name: v.Name, ProtectedVMID: v.ProtectedVMID, InstanceType: v.InstanceType}
		if v.InstanceType == api.InstanceTypeAuto {
			if t, ok := types[v.ProtectedVMID]; ok && t.Type != "" {
				vs.InstanceType, vs.InstanceTypeReason = t.Type, t.Reason
			}
		}
		for _, c := range copies {
			if c.ProtectedVMID != v.ProtectedVMID || c.Superseded {
				continue
			}
			vs.PointID = c.PointID
			pt, ca := c.PointTime, c.CopiedAt
			vs.PointTime = &pt
			if vs.CopiedAt == nil || ca.After(*vs.CopiedAt) {
				vs.CopiedAt = &ca
			}
			vs.Disks = append(vs.Disks, api.DRDiskCopy{DiskKey: c.DiskKey, SnapshotID: c.SnapshotID, VolumeGiB: c.VolumeGiB})
		}
		newest, err := d.LatestPoint(ctx, v.ProtectedVMID)
		hasPoint := err == nil
		if err != nil && !errors.Is(err, db.ErrNotFound) {
			return st, err
		}
		if hasPoint {
			vs.NewestPointID = newest.ID
		}
		switch {
		case vs.CopiedAt != nil:
			age := int64(now.Sub(*vs.CopiedAt) / time.Second)
			lag := int64(now.Sub(*vs.PointTime) / time.Second)
			vs.AgeSeconds, vs.LagSeconds = &age, &lag
			vs.Late = hasPoint && newest.ID != vs.PointID && now.Sub(*vs.CopiedAt) > interval
		case hasPoint:
			lag := int64(now.Sub(newest.StartedAt) / time.Second)
			vs.LagSeconds = &lag
			vs.Late = now.Sub(newest.StartedAt) > interval
		}
		st.VMs = append(st.VMs, vs)
	}
	j, err := d.LastDRJob(ctx, planID, api.JobDRReplicate)
	switch {
	case err == nil:
		st.LastReplicationJob = &api.DRJobRef{ID: j.ID, State: j.State, Error: j.Error, CreatedAt: j.CreatedAt, FinishedAt: j.FinishedAt}
	case !errors.Is(err, db.ErrNotFound):
		return st, err
	}
	for kind, ref := range map[string]**api.DRRunRef{api.DRRunFailover: &st.LastFailover, api.DRRunTest: &st.LastTest} {
		run, err := d.LastDRRun(ctx, planID, kind)
		switch {
		case err == nil:
			*ref = &api.DRRunRef{ID: run.ID, State: run.State, Passed: run.Passed, RTOSeconds: run.RTOSeconds, CreatedAt: run.CreatedAt, FinishedAt: run.FinishedAt}
		case !errors.Is(err, db.ErrNotFound):
			return st, err
		}
	}
	return st, nil
}

// awsTargetInUse refuses to delete an AWS target a DR plan uses.
func awsTargetInUse(ctx context.Context, d *db.DB, id string) error {
	n, first, err := d.PlansUsing(ctx, "target_id", id)
	switch {
	case err != nil:
		return err
	case n == 1:
		return api.Conflict("", "the AWS target is used by DR plan %q: delete it first", first)
	case n > 1:
		return api.Conflict("", "the AWS target is used by %d DR plans, such as %q: delete them first", n, first)
	}
	return nil
}

// replicateDRPlan queues a replication of a plan now (POST
// /v1/dr-plans/{id}/replicate); one already queued or running is answered
// instead.
func (s *Server) replicateDRPlan(w http.ResponseWriter, r *http.Request) {
	o, err := s.db.Get(r.Context(), db.DRPlans, r.PathValue("id"))
	if errors.Is(err, db.ErrNotFound) {
		err = api.NotFound("DR plan", r.PathValue("id"))
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.enqueue(w, r, db.NewJob{Kind: api.JobDRReplicate, Trigger: api.TriggerOnDemand, Params: dr.ReplicateParams{PlanID: o.ID}})
}

// protectedVMInPlan refuses to delete a protected VM a DR plan lists.
func protectedVMInPlan(ctx context.Context, d *db.DB, id string) error {
	n, first, err := d.PlansWithVM(ctx, id)
	switch {
	case err != nil:
		return err
	case n == 1:
		return api.Conflict("", "the protected VM is in DR plan %q: remove it from the plan first", first)
	case n > 1:
		return api.Conflict("", "the protected VM is in %d DR plans, such as %q: remove it from them first", n, first)
	}
	return nil
}
