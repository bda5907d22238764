package dr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	engdr "github.com/havenbackup/terraform-provider-haven/engine/dr"
	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/db"
	"github.com/havenbackup/terraform-provider-haven/server/driver"
	"github.com/havenbackup/terraform-provider-haven/server/jobs"
)

// RunParams are the parameters of a dr_failover or dr_test job. RunID is
// the run the job launches or continues; a new run's id is its first
// job's.
type RunParams struct {
	PlanID              string            `json:"plan_id"`
	RunID               string            `json:"run_id,omitempty"`
	Points              map[string]string `json:"points,omitempty"`
	KeepMinutes         int               `json:"keep_minutes,omitempty"`
	ReadyTimeoutMinutes int               `json:"ready_timeout_minutes,omitempty"`
}

// CleanupParams are the parameters of a dr_cleanup job.
type CleanupParams struct {
	PlanID string `json:"plan_id"`
	RunID  string `json:"run_id"`
}

// Result keys of dr_failover and dr_test jobs.
const (
	ResultRunID      = "run_id"
	ResultMachines   = "machines"
	ResultRTOSeconds = "rto_seconds"
	ResultLeftovers  = "leftovers"
)

// Runner runs failovers, DR tests and their cleanups (dr_failover,
// dr_test and dr_cleanup jobs).
type Runner struct {
	DB     *db.DB
	Jobs   *jobs.Service
	Master *keys.MasterKey
	Log    *slog.Logger
	// Replicator copies the older points a run asks for.
	Replicator *Replicator
	// Poll is the interval between instance status checks (zero: 5 s).
	Poll time.Duration
	// Dial probes a machine's port (nil: a TCP dial).
	Dial func(ctx context.Context, address string) error
	// TerminateWait bounds how long a cleanup waits for instances to
	// terminate (zero: 10 minutes).
	TerminateWait time.Duration
}

// Launch runs a dr_failover or dr_test job: it launches the plan's VMs
// from their copies (after replicating the points the run asks for),
// group by group, and records every resource, step and the achieved RTO
// on the run. A test then removes what it created, whether it passed or
// not, unless it is kept for a while. Run again after a crash, the job
// continues its run: machines launched already are found by their tags,
// so none is launched twice.
func (r *Runner) Launch(ctx context.Context, j *api.Job) error {
	var params RunParams
	if _, err := r.DB.JobParams(ctx, j.ID, &params); err != nil {
		return err
	}
	if params.RunID == "" {
		params.RunID = j.ID
	}
	kind := api.DRRunFailover
	if j.Kind == api.JobDRTest {
		kind = api.DRRunTest
	}
	o, spec, release, err := holdPlan(ctx, r.DB, r.Jobs, params.PlanID)
	if err != nil {
		return err
	}
	defer release()
	if kind == api.DRRunFailover {
		// Two failover requests at once (with different idempotency keys)
		// each queue a run; the first to hold the plan launches, and the
		// other must not launch the plan's machines a second time.
		other, err := r.DB.LiveFailover(ctx, o.ID, params.RunID)
		if err == nil {
			run := api.DRRun{ID: params.RunID, PlanID: o.ID, PlanName: spec.Name, Kind: kind, Points: params.Points, JobID: j.ID}
			now := time.Now()
			passed := false
			run.State, run.Passed, run.FinishedAt, run.CleanedAt = api.DRRunCleaned, &passed, &now, &now
			run.Error = fmt.Sprintf("DR plan %q is failed over by run %s (%s) already: this run launched nothing", spec.Name, other.ID, other.State)
			if _, err := r.DB.StartDRRun(ctx, run); err != nil {
				return err
			}
			if err := r.DB.SaveDRRun(ctx, run); err != nil {
				return err
			}
			return driver.Failed{Err: errors.New(run.Error)}
		} else if !errors.Is(err, db.ErrNotFound) {
			return err
		}
	}
	run, err := r.DB.StartDRRun(ctx, api.DRRun{ID: params.RunID, PlanID: o.ID, PlanName: spec.Name, Kind: kind, Points: params.Points, JobID: j.ID})
	if err != nil {
		return err
	}
	run.JobID, run.PlanName, run.Error = j.ID, spec.Name, ""
	c, target, err := targetClients(ctx, r.DB, r.Master, spec)
	if err != nil {
		return r.launchFailed(ctx, run, err)
	}
	progress := r.Jobs.Progress(j.ID)
	if err := r.replicatePoints(ctx, c, o.ID, spec, params.Points, progress.Note); err != nil {
		return r.launchFailed(ctx, run, err)
	}
	machines, err := r.machines(ctx, c, o.ID, spec, target, kind, params.Points)
	if err != nil {
		return r.launchFailed(ctx, run, err)
	}
	if run.StartedAt == nil {
		now := time.Now()
		run.StartedAt = &now
	}
	run.Machines = run.Machines[:0]
	for _, m := range machines {
		run.Machines = append(run.Machines, api.DRRunMachine{Name: m.machine.Name, PointID: m.pointID, InstanceType: m.machine.InstanceType, SubnetID: m.machine.SubnetID})
	}
	if err := r.DB.SaveDRRun(ctx, run); err != nil {
		return err
	}
	ready := time.Duration(params.ReadyTimeoutMinutes) * time.Minute
	if ready <= 0 {
		ready = api.DefaultDRReadyTimeoutMinutes * time.Minute
	}
	ms := make([]engdr.Machine, len(machines))
	for i, m := range machines {
		ms[i] = m.machine
	}
	res, launchErr := engdr.Launch(ctx, c.ec2, engdr.LaunchOptions{
		Run: run.ID, Machines: ms, Ready: ready, Poll: r.Poll, Dial: r.Dial, Started: *run.StartedAt,
		Tags: map[string]string{"haven:plan": o.ID, "haven:kind": kind},
		Created: func(res engdr.Resource) {
			if err := r.DB.AddDRRunResource(context.WithoutCancel(ctx), run.ID, api.DRResource(res)); err != nil {
				r.Log.Warn("recording a DR resource", "run_id", run.ID, "resource", res.ID, "error", err.Error())
			}
		},
	})
	if ctx.Err() != nil {
		// The job was stopped (the server is shutting down): it runs
		// again, and continues.
		return ctx.Err()
	}
	fillLaunch(&run, res)
	passed := launchErr == nil
	run.Passed = &passed
	now := time.Now()
	run.FinishedAt = &now
	if launchErr == nil {
		// The instances hold their volumes now: the images go, so that the
		// copies they were registered over can be replaced.
		launchErr = engdr.DropImages(ctx, c.ec2, run.ID)
	}
	if launchErr != nil {
		run.Error = launchErr.Error()
	}
	result := map[string]string{ResultRunID: run.ID, ResultMachines: strconv.Itoa(len(res.Machines))}
	if run.RTOSeconds != nil {
		result[ResultRTOSeconds] = strconv.FormatFloat(*run.RTOSeconds, 'f', 3, 64)
	}
	switch {
	case kind == api.DRRunTest && launchErr == nil && params.KeepMinutes > 0:
		run.State = api.DRRunReady
		after := now.Add(time.Duration(params.KeepMinutes) * time.Minute)
		run.CleanAfter = &after
	case kind == api.DRRunTest:
		// A test ends here, passed, failed or timed out: what it created
		// goes.
		run.State = api.DRRunCleaning
		if err := r.DB.SaveDRRun(ctx, run); err != nil {
			return err
		}
		cleanErr := r.cleanup(ctx, c, &run)
		result[ResultLeftovers] = strconv.Itoa(len(run.Leftovers))
		if err := r.DB.SetJobResult(context.WithoutCancel(ctx), r.DB.Pool, j.ID, result); err != nil {
			return err
		}
		switch {
		case launchErr != nil && cleanErr != nil:
			return driver.Failed{Err: fmt.Errorf("the DR test failed: %v; and its cleanup left %d resources behind: %w", launchErr, len(run.Leftovers), cleanErr)}
		case launchErr != nil:
			return driver.Failed{Err: fmt.Errorf("the DR test failed (everything it created was removed): %w", launchErr)}
		case cleanErr != nil:
			return driver.Failed{Err: fmt.Errorf("the DR test passed, but its cleanup left %d resources behind: %w", len(run.Leftovers), cleanErr)}
		}
		return nil
	case launchErr == nil:
		run.State = api.DRRunReady
	default:
		run.State = api.DRRunFailed
	}
	if err := r.DB.SaveDRRun(context.WithoutCancel(ctx), run); err != nil {
		return err
	}
	if err := r.DB.SetJobResult(context.WithoutCancel(ctx), r.DB.Pool, j.ID, result); err != nil {
		return err
	}
	if launchErr != nil {
		return driver.Failed{Err: fmt.Errorf("the failover did not finish (what it launched stays; start the failover again to continue it): %w", launchErr)}
	}
	return nil
}

// launchFailed ends a run that could not start launching.
func (r *Runner) launchFailed(ctx context.Context, run api.DRRun, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	passed := false
	now := time.Now()
	run.Passed, run.FinishedAt, run.Error = &passed, &now, err.Error()
	run.State = api.DRRunFailed
	if run.Kind == api.DRRunTest {
		// Nothing was launched, so there is nothing to remove.
		run.State = api.DRRunCleaned
		run.CleanedAt = &now
	}
	if serr := r.DB.SaveDRRun(context.WithoutCancel(ctx), run); serr != nil {
		return serr
	}
	var fe *engdr.FieldError
	if errors.As(err, &fe) || errors.As(err, new(driver.Failed)) {
		return driver.Failed{Err: err}
	}
	return err
}

func fillLaunch(run *api.DRRun, res engdr.LaunchResult) {
	byName := map[string]engdr.Launched{}
	for _, m := range res.Machines {
		byName[m.Name] = m
	}
	for i := range run.Machines {
		m := &run.Machines[i]
		l, ok := byName[m.Name]
		if !ok {
			continue
		}
		m.ImageID, m.InstanceID, m.PrivateIP = l.ImageID, l.InstanceID, l.PrivateIP
		m.LaunchedAt, m.RunningAt, m.ReadyAt = timePtr(l.Launched), timePtr(l.Running), timePtr(l.Ready)
	}
	// Steps of earlier attempts stay: a rerun adds its own.
	for _, s := range res.Steps {
		run.Steps = append(run.Steps, api.DRRunStep{Machine: s.Machine, Step: s.Step, At: s.At})
	}
	if !res.Finished.IsZero() {
		rto := time.Duration(res.RTO).Seconds()
		run.RTOSeconds = &rto
	}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Cleanup runs a dr_cleanup job: everything the run created is removed
// (found by its tag), and the run records what is left, if anything.
func (r *Runner) Cleanup(ctx context.Context, j *api.Job) error {
	var params CleanupParams
	if _, err := r.DB.JobParams(ctx, j.ID, &params); err != nil {
		return err
	}
	run, err := r.DB.DRRun(ctx, params.RunID)
	if errors.Is(err, db.ErrNotFound) {
		return driver.Skipf("DR run %s does not exist", params.RunID)
	}
	if err != nil {
		return err
	}
	if run.State == api.DRRunCleaned {
		return nil
	}
	_, spec, release, err := holdPlan(ctx, r.DB, r.Jobs, run.PlanID)
	if err != nil {
		return err
	}
	defer release()
	c, _, err := targetClients(ctx, r.DB, r.Master, spec)
	if err != nil {
		return err
	}
	run.State, run.CleanupJobID = api.DRRunCleaning, j.ID
	if err := r.DB.SaveDRRun(ctx, run); err != nil {
		return err
	}
	cleanErr := r.cleanup(ctx, c, &run)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err := r.DB.SetJobResult(context.WithoutCancel(ctx), r.DB.Pool, j.ID, map[string]string{
		ResultRunID: run.ID, ResultLeftovers: strconv.Itoa(len(run.Leftovers))}); err != nil {
		return err
	}
	if cleanErr != nil {
		return driver.Failed{Err: fmt.Errorf("the cleanup left %d resources behind: %w", len(run.Leftovers), cleanErr)}
	}
	return nil
}

// cleanup removes what run created and saves how that went.
func (r *Runner) cleanup(ctx context.Context, c clients, run *api.DRRun) error {
	wait := r.TerminateWait
	if wait <= 0 {
		wait = 10 * time.Minute
	}
	left, err := engdr.Cleanup(ctx, c.ec2, run.ID, wait, r.Poll)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	run.Leftovers = run.Leftovers[:0]
	for _, l := range left {
		run.Leftovers = append(run.Leftovers, api.DRResource(l))
	}
	now := time.Now()
	if err != nil {
		run.State = api.DRRunCleanupFailed
		cleanup := "cleanup: " + err.Error()
		if run.Error == "" {
			run.Error = cleanup
		} else {
			run.Error += "; " + cleanup
		}
	} else {
		run.State, run.CleanedAt, run.CleanAfter = api.DRRunCleaned, &now, nil
	}
	if serr := r.DB.SaveDRRun(context.WithoutCancel(ctx), *run); serr != nil {
		return serr
	}
	return err
}

// replicatePoints copies the older points a run asks for, where they are
// not the machines' copies already.
func (r *Runner) replicatePoints(ctx context.Context, c clients, planID string, spec api.DRPlanSpec, points map[string]string, warn func(string)) error {
	if len(points) == 0 {
		return nil
	}
	machines, err := PlanMachines(ctx, r.DB, spec)
	if err != nil {
		return err
	}
	for _, v := range machines {
		id, ok := points[v.Name]
		if !ok {
			continue
		}
		p, err := r.DB.GetPoint(ctx, id)
		if errors.Is(err, db.ErrNotFound) || (err == nil && p.AssetID != v.ProtectedVMID) {
			return &engdr.FieldError{Field: fmt.Sprintf("points[%q]", v.Name), Reason: fmt.Sprintf("%s is not a recovery point of the machine's protected VM", id)}
		}
		if err != nil {
			return err
		}
		var t tally
		if _, err := r.Replicator.replicateVM(ctx, c, planID, spec, v, p, &t, func(int64, bool) {}, warn); err != nil {
			return fmt.Errorf("replicating point %s of %s: %w", id, v.Name, err)
		}
	}
	return nil
}

// runMachine is one machine of a run and the point its copy holds.
type runMachine struct {
	machine engdr.Machine
	pointID string
}

// machines builds the run's machines from the plan and the VMs' copies:
// a test launches into the plan's test network (keeping a machine's
// private address only where it lies in the test subnet), a failover
// where the plan says, or the target's defaults.
func (r *Runner) machines(ctx context.Context, c clients, planID string, spec api.DRPlanSpec, target api.AWSTarget, kind string, points map[string]string) ([]runMachine, error) {
	copies, err := r.DB.DRCopies(ctx, planID)
	if err != nil {
		return nil, err
	}
	types, err := r.DB.DRInstanceTypes(ctx, planID)
	if err != nil {
		return nil, err
	}
	var testPrefix netip.Prefix
	if kind == api.DRRunTest {
		if spec.TestNetwork == nil {
			return nil, &engdr.FieldError{Field: "test_network", Reason: "the plan has no test network: DR tests never launch into production subnets"}
		}
		out, err := c.ec2.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{spec.TestNetwork.SubnetID}})
		if err != nil {
			return nil, fmt.Errorf("the test subnet %s: %w", spec.TestNetwork.SubnetID, err)
		}
		if len(out.Subnets) != 1 || aws.ToString(out.Subnets[0].VpcId) != spec.TestNetwork.VPCID {
			return nil, &engdr.FieldError{Field: "test_network.subnet_id", Reason: fmt.Sprintf("subnet %s is not in VPC %s", spec.TestNetwork.SubnetID, spec.TestNetwork.VPCID)}
		}
		testPrefix, _ = netip.ParsePrefix(aws.ToString(out.Subnets[0].CidrBlock))
	}
	planned, err := PlanMachines(ctx, r.DB, spec)
	if err != nil {
		return nil, err
	}
	var out []runMachine
	for _, v := range planned {
		m := engdr.Machine{Name: v.Name, InstanceType: v.InstanceType, SubnetID: v.SubnetID, PrivateIP: v.PrivateIP,
			SecurityGroupIDs: v.SecurityGroupIDs, Tags: v.Tags, UserData: v.UserData, Group: v.BootGroup, DependsOn: v.DependsOn, ProbePort: v.ProbePort}
		var vmCopies []db.DRCopy
		for _, cp := range copies {
			if cp.ProtectedVMID == v.ProtectedVMID && !cp.Superseded {
				vmCopies = append(vmCopies, cp)
			}
		}
		slices.SortFunc(vmCopies, func(a, b db.DRCopy) int { return int(a.DiskKey - b.DiskKey) })
		pointID := ""
		for _, cp := range vmCopies {
			if pointID != "" && cp.PointID != pointID {
				return nil, &engdr.FieldError{Field: v.Name + ".disks", Reason: "the VM's disks hold copies of different points (a replication was cut short): replicate the plan"}
			}
			pointID, m.BootMode = cp.PointID, cp.BootMode
			m.Disks = append(m.Disks, engdr.DiskCopy{SnapshotID: cp.SnapshotID, VolumeGiB: cp.VolumeGiB, BlockSize: cp.BlockSize})
		}
		if want, ok := points[v.Name]; ok && pointID != want {
			return nil, &engdr.FieldError{Field: fmt.Sprintf("points[%q]", v.Name), Reason: "the point's copy is not complete"}
		}
		if len(m.Disks) == 0 {
			return nil, &engdr.FieldError{Field: v.Name + ".disks", Reason: "the VM has no copy in AWS yet: replicate the plan first"}
		}
		if m.InstanceType == api.InstanceTypeAuto {
			t := types[v.ProtectedVMID]
			if t.Type == "" {
				reason := t.Reason
				if reason == "" {
					reason = "the plan has not been replicated since"
				}
				return nil, &engdr.FieldError{Field: v.Name + ".instance_type", Reason: "auto has no pick yet: " + reason}
			}
			m.InstanceType = t.Type
		}
		if m.SubnetID == "" {
			m.SubnetID = target.SubnetID
		}
		if len(m.SecurityGroupIDs) == 0 {
			m.SecurityGroupIDs = target.SecurityGroupIDs
		}
		if kind == api.DRRunTest {
			m.SubnetID, m.SecurityGroupIDs = spec.TestNetwork.SubnetID, spec.TestNetwork.SecurityGroupIDs
			if a, err := netip.ParseAddr(m.PrivateIP); err != nil || !testPrefix.Contains(a) {
				m.PrivateIP = ""
			}
		}
		out = append(out, runMachine{machine: m, pointID: pointID})
	}
	return out, nil
}
