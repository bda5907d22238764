package api

import (
	"fmt"
	"sort"
	"time"
)

// Kinds of DR run: a failover launches a plan's VMs in production; a
// test (drill) launches them in the plan's test network and removes
// everything it created when it ends.
const (
	DRRunFailover = "failover"
	DRRunTest     = "test"
)

// States of a DR run.
const (
	// DRRunPending: the run's job has not started yet.
	DRRunPending = "pending"
	// DRRunLaunching: volumes and instances are being created and
	// checked, group by group.
	DRRunLaunching = "launching"
	// DRRunReady: every machine passed its checks. A failover stays
	// here; a test with keep_minutes stays here until its cleanup.
	DRRunReady = "ready"
	// DRRunFailed: a failover did not finish (what it created stays, and
	// is listed); run it again to continue it, or clean it up.
	DRRunFailed = "failed"
	// DRRunCleaning: the run's resources are being removed.
	DRRunCleaning = "cleaning"
	// DRRunCleaned: nothing the run created is left in AWS.
	DRRunCleaned = "cleaned"
	// DRRunCleanupFailed: the cleanup left resources behind (Leftovers).
	DRRunCleanupFailed = "cleanup_failed"
	// DRRunFailedBack: a failover's final failback pass ran: its
	// instances are stopped and their data is in VMs on vCenter. Cleaning
	// the run up (with confirm) terminates the instances.
	DRRunFailedBack = "failed_back"
)

// States of a failback.
const (
	DRFailbackSyncing   = "syncing"   // a pass is running
	DRFailbackSynced    = "synced"    // the VMs hold the instances' data as of the last pass; the instances still run
	DRFailbackCompleted = "completed" // the final pass ran: the instances are stopped
	DRFailbackFailed    = "failed"    // the last pass failed (run it again to continue)
)

// DRFailbackRequest copies a failover's instances back into VMs on
// vCenter (POST /v1/dr-runs/{id}/failback). The first pass creates the
// VMs (powered off) while the instances keep running; each later pass
// copies only the blocks that changed since the one before. The final
// pass stops the instances first, so the cut-over copies little.
type DRFailbackRequest struct {
	VCenterID    string            `json:"vcenter_id"`
	Datastore    string            `json:"datastore,omitempty"`
	ResourcePool string            `json:"resource_pool,omitempty"`
	Host         string            `json:"host,omitempty"`
	Folder       string            `json:"folder,omitempty"`
	NetworkMap   map[string]string `json:"network_map,omitempty"`
	// Names names the new VMs by machine (default: the machine's name
	// followed by "-failback").
	Names map[string]string `json:"names,omitempty"`
	// Final stops the instances before copying: the cut-over.
	Final bool `json:"final,omitempty"`
	// PowerOn powers the VMs on after the final pass.
	PowerOn bool `json:"power_on,omitempty"`
}

// Validate checks a failback request's own fields.
func (r *DRFailbackRequest) Validate() *Error {
	if r.VCenterID == "" {
		return FieldError("vcenter_id", "is required: the vCenter the VMs are written to")
	}
	if r.PowerOn && !r.Final {
		return FieldError("power_on", "needs final: the VMs start only after the final pass, once the instances are stopped")
	}
	for m, n := range r.Names {
		if err := validateName(fmt.Sprintf("names[%q]", m), n); err != nil {
			return err
		}
	}
	return nil
}

// DRFailback is how a failover's failback stands.
type DRFailback struct {
	State string `json:"state"`
	// JobID is the newest pass's job; Passes counts the passes that ran.
	JobID  string         `json:"job_id"`
	Passes int            `json:"passes"`
	Error  string         `json:"error,omitempty"`
	VMs    []DRFailbackVM `json:"vms"`
}

// DRFailbackVM is one machine's VM on vCenter and its last pass.
type DRFailbackVM struct {
	Machine        string `json:"machine"`
	VMName         string `json:"vm_name"`
	VMMoRef        string `json:"vm_moref,omitempty"`
	VMInstanceUUID string `json:"vm_instance_uuid,omitempty"`
	// VMPending: the VM is being created under VMName (checked free
	// first); a pass that finds it there after a crash takes it over.
	VMPending bool `json:"vm_pending,omitempty"`
	// PointID is the recovery point (of the machine's protected VM) the
	// last pass captured from the instance's volumes, in job PassJobID.
	PointID   string `json:"point_id,omitempty"`
	PassJobID string `json:"pass_job_id,omitempty"`
	// DoneJobID is the job of the last pass whose part for this machine
	// ended (a rerun of that job skips the machine).
	DoneJobID string `json:"done_job_id,omitempty"`
	// Snapshots are the EBS snapshots of the last pass (the next pass
	// copies what changed since them); the final pass deletes them.
	Snapshots []string `json:"snapshots,omitempty"`
	// BlocksRead and BytesRead are what the last pass read from EBS.
	BlocksRead int64      `json:"blocks_read"`
	BytesRead  int64      `json:"bytes_read"`
	CopiedAt   *time.Time `json:"copied_at,omitempty"`
	PoweredOn  bool       `json:"powered_on,omitempty"`
}

// Limits of a DR run's request.
const (
	DefaultDRReadyTimeoutMinutes = 15
	MaxDRReadyTimeoutMinutes     = 180
	MaxDRKeepMinutes             = 7 * 24 * 60
)

// DRTestRequest starts a DR test of a plan (POST
// /v1/dr-plans/{id}/test).
type DRTestRequest struct {
	// Points names, per machine of the plan, an older recovery point to
	// launch from instead of the machine's DR copy; that point is
	// replicated first (and is the machine's copy until the next
	// replication).
	Points map[string]string `json:"points,omitempty"`
	// KeepMinutes keeps the test's instances running this long after
	// they pass their checks, for inspection; 0 removes them at once.
	// Deleting the test (POST /v1/dr-runs/{id}/cleanup) removes them
	// earlier.
	KeepMinutes int `json:"keep_minutes,omitempty"`
	// ReadyTimeoutMinutes bounds how long one machine may take from
	// launch to passing its checks (default 15).
	ReadyTimeoutMinutes int `json:"ready_timeout_minutes,omitempty"`
}

// DRFailoverRequest starts a failover of a plan (POST
// /v1/dr-plans/{id}/failover).
type DRFailoverRequest struct {
	// Confirm must be true: a failover launches production instances.
	Confirm             bool              `json:"confirm"`
	Points              map[string]string `json:"points,omitempty"`
	ReadyTimeoutMinutes int               `json:"ready_timeout_minutes,omitempty"`
}

// DRCleanupRequest removes what a run created (POST
// /v1/dr-runs/{id}/cleanup).
type DRCleanupRequest struct {
	// Confirm must be true to clean up a failover: it terminates the
	// instances it launched (after a failback, say). A test needs none.
	Confirm bool `json:"confirm,omitempty"`
}

// Validate checks a test request's own fields.
func (r *DRTestRequest) Validate() *Error {
	if r.KeepMinutes < 0 || r.KeepMinutes > MaxDRKeepMinutes {
		return FieldError("keep_minutes", "must be 0 to %d (a week), got %d", MaxDRKeepMinutes, r.KeepMinutes)
	}
	if err := validateReadyTimeout(r.ReadyTimeoutMinutes); err != nil {
		return err
	}
	return validateRunPoints(r.Points)
}

// Validate checks a failover request's own fields.
func (r *DRFailoverRequest) Validate() *Error {
	if !r.Confirm {
		return FieldError("confirm", "must be true: a failover launches the plan's VMs as production instances in AWS")
	}
	if err := validateReadyTimeout(r.ReadyTimeoutMinutes); err != nil {
		return err
	}
	return validateRunPoints(r.Points)
}

func validateReadyTimeout(m int) *Error {
	if m < 0 || m > MaxDRReadyTimeoutMinutes {
		return FieldError("ready_timeout_minutes", "must be 1 to %d (0 for the default, %d), got %d", MaxDRReadyTimeoutMinutes, DefaultDRReadyTimeoutMinutes, m)
	}
	return nil
}

func validateRunPoints(points map[string]string) *Error {
	names := make([]string, 0, len(points))
	for n := range points {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if points[n] == "" {
			return FieldError(fmt.Sprintf("points[%q]", n), "must be a recovery point id of the machine's protected VM")
		}
	}
	return nil
}

// DRRun is one failover or DR test of a plan. Its id is the id of the
// job that launched it.
type DRRun struct {
	ID       string `json:"id"`
	PlanID   string `json:"plan_id"`
	PlanName string `json:"plan_name"`
	Kind     string `json:"kind"`
	State    string `json:"state"`
	// Passed says whether every machine launched and passed its checks
	// (set once the launch ends).
	Passed *bool `json:"passed,omitempty"`
	// Error is why the launch or the cleanup failed.
	Error string `json:"error,omitempty"`
	// Points are the points the run asked for, by machine.
	Points   map[string]string `json:"points,omitempty"`
	Machines []DRRunMachine    `json:"machines"`
	Steps    []DRRunStep       `json:"steps"`
	// RTOSeconds is the achieved recovery time: from the run's start
	// until its last machine passed its checks.
	RTOSeconds *float64 `json:"rto_seconds,omitempty"`
	// Created lists every resource the run created in AWS; Leftovers
	// what a failed cleanup left.
	Created   []DRResource `json:"created"`
	Leftovers []DRResource `json:"leftovers,omitempty"`
	// JobID is the run's newest launch job (a failed failover run again
	// continues under a new job); CleanupJobID the newest cleanup's.
	JobID string `json:"job_id,omitempty"`
	// CleanupJobID is the newest cleanup's job.
	CleanupJobID string `json:"cleanup_job_id,omitempty"`
	// Failback is a failover's copy back to vCenter, once started.
	Failback  *DRFailback `json:"failback,omitempty"`
	CreatedAt time.Time   `json:"created_at"`
	// StartedAt is when the run's first launch began (the RTO counts
	// from it, across reruns after a crash).
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	// CleanAfter is when a kept test is removed.
	CleanAfter *time.Time `json:"clean_after,omitempty"`
	CleanedAt  *time.Time `json:"cleaned_at,omitempty"`
}

// DRRunMachine is one machine of a run: what it launched from and where.
type DRRunMachine struct {
	Name         string     `json:"name"`
	PointID      string     `json:"point_id"`
	InstanceType string     `json:"instance_type"`
	SubnetID     string     `json:"subnet_id,omitempty"`
	ImageID      string     `json:"image_id,omitempty"`
	InstanceID   string     `json:"instance_id,omitempty"`
	PrivateIP    string     `json:"private_ip,omitempty"`
	LaunchedAt   *time.Time `json:"launched_at,omitempty"`
	RunningAt    *time.Time `json:"running_at,omitempty"`
	ReadyAt      *time.Time `json:"ready_at,omitempty"`
}

// DRRunStep is one timed step of a run (image, launch, running, ready).
type DRRunStep struct {
	Machine string    `json:"machine"`
	Step    string    `json:"step"`
	At      time.Time `json:"at"`
}

// DRResource is something a run created in AWS.
type DRResource struct {
	Kind    string `json:"kind"` // image, instance, volume, snapshot
	ID      string `json:"id"`
	Machine string `json:"machine,omitempty"`
}

// DRRunRef names a plan's newest run of a kind and how it stands.
type DRRunRef struct {
	ID         string     `json:"id"`
	State      string     `json:"state"`
	Passed     *bool      `json:"passed,omitempty"`
	RTOSeconds *float64   `json:"rto_seconds,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
}
