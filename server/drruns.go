package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"

	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/dr"
)

// drPlanFor reads the plan a DR route names (404 when there is none).
func (s *Server) drPlanFor(r *http.Request) (db.Object, api.DRPlanSpec, error) {
	var spec api.DRPlanSpec
	o, err := s.db.Get(r.Context(), db.DRPlans, r.PathValue("id"))
	if errors.Is(err, db.ErrNotFound) {
		return o, spec, api.NotFound("DR plan", r.PathValue("id"))
	}
	if err != nil {
		return o, spec, err
	}
	return o, spec, json.Unmarshal(o.Spec, &spec)
}

// checkRunPoints refuses points that name no machine of the plan, or no
// point of the machine's protected VM (422).
func (s *Server) checkRunPoints(ctx context.Context, spec api.DRPlanSpec, points map[string]string) error {
	if len(points) == 0 {
		return nil
	}
	machines, err := dr.PlanMachines(ctx, s.db, spec)
	if err != nil {
		return err
	}
	for name, id := range points {
		field := "points[" + strconv.Quote(name) + "]"
		var vm *api.DRPlanVM
		for i := range machines {
			if machines[i].Name == name {
				vm = &machines[i]
			}
		}
		if vm == nil {
			return api.Unprocessable(field, "%q is not a machine of the plan", name)
		}
		p, err := s.db.GetPoint(ctx, id)
		if errors.Is(err, db.ErrNotFound) || (err == nil && p.AssetID != vm.ProtectedVMID) {
			return api.Unprocessable(field, "%s is not a recovery point of %s's protected VM", id, name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// startDRTest starts a DR test of a plan (POST /v1/dr-plans/{id}/test):
// 202 with the run, whose id is its job's.
func (s *Server) startDRTest(w http.ResponseWriter, r *http.Request) {
	var req api.DRTestRequest
	if !decodeValid(w, r, &req) {
		return
	}
	o, spec, err := s.drPlanFor(r)
	if err == nil && spec.TestNetwork == nil {
		err = api.Unprocessable("test_network", "DR plan %q has no test network: DR tests never launch into production subnets", spec.Name)
	}
	if err == nil {
		err = s.checkRunPoints(r.Context(), spec, req.Points)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.startDRRun(w, r, o, spec, api.DRRunTest, dr.RunParams{PlanID: o.ID, Points: req.Points, KeepMinutes: req.KeepMinutes, ReadyTimeoutMinutes: req.ReadyTimeoutMinutes})
}

// startDRFailover starts a failover of a plan (POST
// /v1/dr-plans/{id}/failover). A plan has one failover at a time: while
// one is launching it is answered; one that failed is continued (a new
// job under the same run, which finds what it launched by its tags); one
// that is up is a 409, until it is cleaned up.
func (s *Server) startDRFailover(w http.ResponseWriter, r *http.Request) {
	var req api.DRFailoverRequest
	if !decodeValid(w, r, &req) {
		return
	}
	o, spec, err := s.drPlanFor(r)
	if err == nil {
		err = s.checkRunPoints(r.Context(), spec, req.Points)
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	params := dr.RunParams{PlanID: o.ID, Points: req.Points, ReadyTimeoutMinutes: req.ReadyTimeoutMinutes}
	// The newest failover that may hold instances, not merely the newest
	// failover: a run refused because another had the plan (two requests
	// at once) is newer than the one that launched.
	last, err := s.db.LiveFailover(r.Context(), o.ID, "")
	switch {
	case errors.Is(err, db.ErrNotFound):
	case err != nil:
		writeError(w, r, err)
		return
	case last.State == api.DRRunPending || last.State == api.DRRunLaunching:
		if j, err := s.db.GetJob(r.Context(), last.JobID); err == nil && (j.State == api.JobQueued || j.State == api.JobRunning) {
			writeJSON(w, http.StatusAccepted, last)
			return
		}
		params.RunID = last.ID
	case last.State == api.DRRunFailed:
		params.RunID = last.ID
	case last.State == api.DRRunReady || last.State == api.DRRunCleaning || last.State == api.DRRunCleanupFailed:
		writeError(w, r, api.Conflict("", "DR plan %q is failed over already (run %s, %s): fail back, or clean the run up, first", spec.Name, last.ID, last.State))
		return
	}
	s.startDRRun(w, r, o, spec, api.DRRunFailover, params)
}

// startDRRun queues a run's job and answers the run (202).
func (s *Server) startDRRun(w http.ResponseWriter, r *http.Request, o db.Object, spec api.DRPlanSpec, kind string, params dr.RunParams) {
	jobKind := api.JobDRTest
	if kind == api.DRRunFailover {
		jobKind = api.JobDRFailover
	}
	j, err := s.queueJob(r, db.NewJob{Kind: jobKind, Trigger: api.TriggerOnDemand, Params: params}, nil)
	if err != nil {
		writeError(w, r, err)
		return
	}
	runID := params.RunID
	if runID == "" {
		runID = j.ID
	}
	run, err := s.db.PendingDRRun(r.Context(), api.DRRun{ID: runID, PlanID: o.ID, PlanName: spec.Name, Kind: kind, Points: params.Points, JobID: j.ID})
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, run)
}

// listDRRuns lists runs, newest first (GET /v1/dr-runs, optionally
// ?plan_id= and ?kind=).
func (s *Server) listDRRuns(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	planID, kind := q.Get("plan_id"), q.Get("kind")
	if kind != "" && kind != api.DRRunFailover && kind != api.DRRunTest {
		writeError(w, r, api.FieldError("kind", "must be %q or %q, got %q", api.DRRunFailover, api.DRRunTest, kind))
		return
	}
	if planID != "" {
		o, err := s.db.Get(r.Context(), db.DRPlans, planID)
		if errors.Is(err, db.ErrNotFound) {
			err = api.Unprocessable("plan_id", "DR plan %q does not exist", planID)
		}
		if err != nil {
			writeError(w, r, err)
			return
		}
		planID = o.ID
	}
	limit := 100
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			writeError(w, r, api.FieldError("limit", "must be 1 to 1000, got %q", v))
			return
		}
		limit = n
	}
	runs, err := s.db.DRRuns(r.Context(), planID, kind, limit)
	if err != nil {
		writeError(w, r, err)
		return
	}
	if runs == nil {
		runs = []api.DRRun{}
	}
	writeJSON(w, http.StatusOK, api.List[api.DRRun]{Items: runs})
}

// getDRRun answers one run (GET /v1/dr-runs/{id}).
func (s *Server) getDRRun(w http.ResponseWriter, r *http.Request) {
	run, err := s.drRun(r)
	if err != nil {
		writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

func (s *Server) drRun(r *http.Request) (api.DRRun, error) {
	run, err := s.db.DRRun(r.Context(), r.PathValue("id"))
	if errors.Is(err, db.ErrNotFound) {
		err = api.NotFound("DR run", r.PathValue("id"))
	}
	return run, err
}

// cleanupDRRun queues the removal of what a run created (POST
// /v1/dr-runs/{id}/cleanup): 202 with the job. A cleaned run is answered
// with its last cleanup's job; cleaning up a failover needs confirm.
func (s *Server) cleanupDRRun(w http.ResponseWriter, r *http.Request) {
	var req api.DRCleanupRequest
	if err := decodeJSON(w, r, &req); err != nil {
		writeError(w, r, err)
		return
	}
	run, err := s.drRun(r)
	if err == nil && run.Kind == api.DRRunFailover && !req.Confirm {
		err = api.FieldError("confirm", "must be true to clean up a failover: it terminates the instances the failover launched")
	}
	if err == nil && (run.State == api.DRRunPending || run.State == api.DRRunLaunching) {
		if j, jerr := s.db.GetJob(r.Context(), run.JobID); jerr == nil && (j.State == api.JobQueued || j.State == api.JobRunning) {
			err = api.Conflict("", "DR run %s is still launching (job %s): wait for it to end, or cancel the job, first", run.ID, j.ID)
		}
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	if run.State == api.DRRunCleaned && run.CleanupJobID != "" {
		if j, err := s.db.GetJob(r.Context(), run.CleanupJobID); err == nil {
			writeJSON(w, http.StatusAccepted, j)
			return
		}
	}
	s.enqueue(w, r, db.NewJob{Kind: api.JobDRCleanup, Trigger: api.TriggerOnDemand, Params: dr.CleanupParams{PlanID: run.PlanID, RunID: run.ID}})
}

// drPlanLiveRuns refuses to delete a plan with runs that may still have
// resources in AWS: they are found and removed through the plan's target.
func drPlanLiveRuns(ctx context.Context, d *db.DB, planID string) error {
	n, newest, err := d.LiveDRRuns(ctx, planID)
	switch {
	case err != nil:
		return err
	case n > 0:
		return api.Conflict("", "the DR plan has %d runs that are not cleaned up, such as %s %s (%s): clean them up first (POST /v1/dr-runs/{id}/cleanup)",
			n, newest.Kind, newest.ID, newest.State)
	}
	return nil
}

// failbackDRRun queues a failback pass of a failover (POST
// /v1/dr-runs/{id}/failback): 202 with the job.
func (s *Server) failbackDRRun(w http.ResponseWriter, r *http.Request) {
	var req api.DRFailbackRequest
	if !decodeValid(w, r, &req) {
		return
	}
	run, err := s.drRun(r)
	switch {
	case err != nil:
	case run.Kind != api.DRRunFailover:
		err = api.Conflict("", "DR run %s is a %s: only a failover's instances are failed back", run.ID, run.Kind)
	case run.State == api.DRRunFailedBack:
		err = api.Conflict("", "failover %s was failed back already (its final pass ran)", run.ID)
	case run.State != api.DRRunReady:
		err = api.Conflict("", "failover %s is %s: only a failover whose machines are all up can be failed back", run.ID, run.State)
	}
	if err == nil {
		vc, verr := s.db.Get(r.Context(), db.VCenters, req.VCenterID)
		switch {
		case errors.Is(verr, db.ErrNotFound):
			err = api.Unprocessable("vcenter_id", "vCenter %q does not exist", req.VCenterID)
		case verr != nil:
			err = verr
		default:
			// The job keeps the id: a vCenter renamed between passes is
			// still found.
			req.VCenterID = vc.ID
		}
	}
	for m := range req.Names {
		if err == nil && !slices.ContainsFunc(run.Machines, func(rm api.DRRunMachine) bool { return rm.Name == m }) {
			err = api.Unprocessable("names["+strconv.Quote(m)+"]", "%q is not a machine of the failover", m)
		}
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	s.enqueue(w, r, db.NewJob{Kind: api.JobDRFailback, Trigger: api.TriggerOnDemand, Params: dr.FailbackParams{PlanID: run.PlanID, RunID: run.ID, DRFailbackRequest: req}})
}
