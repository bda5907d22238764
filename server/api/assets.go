package api

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/havenbackup/terraform-provider-haven/internal/pathtext"
)

// Where a file server's paths are read.
const (
	LocationServer = "server" // on the Haven server host itself
	LocationAgent  = "agent"  // through a registered haven agent
)

// Operating system families of file servers.
const (
	OSLinux   = "linux"
	OSWindows = "windows"
)

// FileServerSpec is the writable part of a file server.
type FileServerSpec struct {
	Name     string `json:"name"`
	Hostname string `json:"hostname"`
	OS       string `json:"os"`
	Location string `json:"location"`
	// Group is the administrative group: group_admin tokens of that group
	// may restore onto this file server.
	Group string `json:"group,omitempty"`
	// RestoreRoots are directories a restore may write under on this host,
	// besides the include paths of the host's filesets.
	RestoreRoots []string `json:"restore_roots,omitempty"`
}

// FileServerRequest is the body of create and update calls.
type FileServerRequest struct {
	FileServerSpec
	Version *int64 `json:"version,omitempty"`
}

// FileServer is a stored file server. ActivationToken is set only in the
// answer to the create of an agent file server: it is shown once, and the
// agent trades it for its own credential.
type FileServer struct {
	Meta
	FileServerSpec
	AgentStatus     string     `json:"agent_status,omitempty"` // pending, online, offline
	AgentLastSeen   *time.Time `json:"agent_last_seen,omitempty"`
	ActivationToken string     `json:"activation_token,omitempty"`
}

// FileServerActivation is the one-time activation token for the agent of a
// file server (POST /v1/file-servers/{id}/activation). While it is unused
// and unexpired, every call answers with the same token; the agent already
// activated keeps its credential until an agent activates with it.
type FileServerActivation struct {
	FileServerID    string    `json:"file_server_id"`
	ActivationToken string    `json:"activation_token"`
	ExpiresAt       time.Time `json:"expires_at"`
}

// IssueActivationRequest is the optional body of POST
// /v1/file-servers/{id}/activation.
type IssueActivationRequest struct {
	// Replace issues a new token even though one is pending (one that may
	// have leaked); the pending one stops working.
	Replace bool `json:"replace,omitempty"`
}

// FilesetSpec is the writable part of a fileset: what to back up on a file
// server, under which policy, into which storage.
type FilesetSpec struct {
	Name         string   `json:"name"`
	FileServerID string   `json:"file_server_id"`
	IncludePaths []string `json:"include_paths"`
	ExcludeGlobs []string `json:"exclude_globs,omitempty"`
	PolicyID     string   `json:"policy_id"`
	StorageID    string   `json:"storage_id"`
	// Group is the administrative group; group_admin tokens of that group
	// may manage the fileset and run its backups and restores.
	Group string `json:"group,omitempty"`
}

// FilesetRequest is the body of create and update calls.
type FilesetRequest struct {
	FilesetSpec
	Version *int64 `json:"version,omitempty"`
}

// Fileset is a stored fileset.
type Fileset struct {
	Meta
	FilesetSpec
}

// Job kinds and states.
const (
	JobBackup  = "backup"
	JobRestore = "restore"
	// JobRestorePlan is a restore's dry run onto an agent's host: only
	// the agent sees the target, so it computes the plan, and the job
	// keeps it (GET /v1/jobs/{id}/plan). It writes nothing.
	JobRestorePlan = "restore_plan"
	JobVerify      = "verify"
	JobGC          = "gc"
	// JobImport rebuilds an imported storage's chunk index from its packs
	// and adds its recovery points to the catalog (POST /v1/storages/import).
	JobImport = "import"
	// JobDRReplicate copies a DR plan's VMs' newest points to EBS
	// snapshots (POST /v1/dr-plans/{id}/replicate, and the DR reconciler).
	JobDRReplicate = "dr_replicate"
	// JobDRFailover and JobDRTest launch a DR plan's VMs in AWS (POST
	// /v1/dr-plans/{id}/failover and /test); the run's id is the job's.
	JobDRFailover = "dr_failover"
	JobDRTest     = "dr_test"
	// JobDRCleanup removes what a run created (POST
	// /v1/dr-runs/{id}/cleanup, and the DR reconciler when a kept test's
	// time is up).
	JobDRCleanup = "dr_cleanup"
	// JobDRFailback copies a failover's instances back into new VMs on
	// vCenter (POST /v1/dr-runs/{id}/failback).
	JobDRFailback = "dr_failback"

	JobQueued    = "queued"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
	JobCanceled  = "canceled"
	JobSkipped   = "skipped"

	TriggerScheduled = "scheduled"
	TriggerOnDemand  = "on_demand"

	BackupFull        = "full"
	BackupIncremental = "incremental"
)

// BackupRequest is the optional body of a backup now. Type "full" makes
// the backup read and store everything again, ignoring the asset's latest
// point; empty (or no body) leaves the choice to the server: full for an
// asset's first point, incremental after.
type BackupRequest struct {
	Type string `json:"type,omitempty"`
}

// Validate accepts only the backup types an on-demand backup can ask for.
func (b *BackupRequest) Validate() *Error {
	switch b.Type {
	case "", BackupFull, BackupIncremental, BackupDifferential, BackupLog:
		return nil
	}
	return FieldError("type", "must be %q, %q, %q or %q, got %q", BackupFull, BackupIncremental, BackupDifferential, BackupLog, b.Type)
}

// JobProgress counts work done and to do; zero totals are unknown. Files
// count what the job's kind works through: files of a fileset, disks of a
// VM, packs of a storage import (whose bytes are those packs' sizes).
type JobProgress struct {
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
	FilesDone  int64 `json:"files_done"`
	FilesTotal int64 `json:"files_total"`
	// Scanning: the totals are still being counted beside the work (a
	// full file backup scans its selection as it captures it) and may
	// grow. Agents that predate the scan never send it, nor totals.
	Scanning bool `json:"scanning,omitempty"`
	// Estimated: the totals are the previous point's, an estimate (the
	// selection may have grown or shrunk since) until the backup's walk
	// has seen the whole selection: a backup with a parent estimates
	// instead of scanning. With Scanning and Estimated absent or false,
	// known totals are final.
	Estimated bool `json:"estimated,omitempty"`
	// PointsDone and PointsTotal count the point records a storage import
	// has read, of those the store holds.
	PointsDone  int64 `json:"points_done,omitempty"`
	PointsTotal int64 `json:"points_total,omitempty"`
}

// Job is one unit of engine work and its outcome.
type Job struct {
	ID         string      `json:"id"`
	Kind       string      `json:"kind"`
	State      string      `json:"state"`
	AssetID    string      `json:"asset_id,omitempty"`
	StorageID  string      `json:"storage_id,omitempty"`
	Trigger    string      `json:"trigger,omitempty"`
	BackupType string      `json:"backup_type,omitempty"`
	Slot       *time.Time  `json:"slot,omitempty"`
	Progress   JobProgress `json:"progress"`
	Warnings   []string    `json:"warnings,omitempty"`
	Error      string      `json:"error,omitempty"`
	// PointID is the recovery point a backup made, or the one a restore
	// (or its dry run) reads.
	PointID string `json:"point_id,omitempty"`
	// Result is what the job made besides a point: a VM restore's new VM
	// ("vm_name", "vm_instance_uuid", "vm_moref"); what a storage import
	// added (the ImportResult* keys, counts in decimal).
	Result     map[string]string `json:"result,omitempty"`
	Attempt    int               `json:"attempt"`
	CreatedAt  time.Time         `json:"created_at"`
	StartedAt  *time.Time        `json:"started_at,omitempty"`
	FinishedAt *time.Time        `json:"finished_at,omitempty"`
}

// Finished reports whether the job reached a final state.
func (j *Job) Finished() bool {
	return slices.Contains([]string{JobSucceeded, JobFailed, JobCanceled, JobSkipped}, j.State)
}

// RestoreRequest starts a restore of a recovery point.
type RestoreRequest struct {
	PointID string `json:"point_id"`
	// TargetFileServerID defaults to the point's own file server.
	TargetFileServerID string `json:"target_file_server_id,omitempty"`
	// TargetPath is a directory to restore into; empty restores every path
	// to its original location.
	TargetPath string `json:"target_path,omitempty"`
	// Paths limits the restore to these paths (absolute, as backed up). A
	// path that is not valid UTF-8 is written Go-quoted, as warnings show
	// it: "\"/data/x_\\xff.txt\"".
	Paths []string `json:"paths,omitempty"`
	// Conflict is overwrite (default), skip or rename.
	Conflict string `json:"conflict,omitempty"`
	// Include, when not empty, restores only the entries (within Paths)
	// that match one of these globs or lie below a directory that does;
	// Exclude leaves out those that match and everything below them.
	// Globs are doublestar's: path.Match syntax plus "**" (any number of
	// directories) and "{a,b}", matched against each absolute path and
	// each base name ("*.pdf", "/data/**/reports").
	Include []string `json:"include,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
	// DryRun answers with the plan (RestorePlan) instead of a restore:
	// what would be written, overwritten, renamed or skipped, and the
	// bytes. Nothing is written. Onto the Haven host the plan comes at
	// once (200); onto an agent's host only the agent sees the target, so
	// the answer is a restore_plan job (202) whose plan is read, once it
	// succeeded, with GET /v1/jobs/{id}/plan.
	DryRun bool `json:"dry_run,omitempty"`
	// VM says how to restore a point of a protected VM (and only such).
	VM *VMRestore `json:"vm,omitempty"`
	// Database says how to restore a point of a database set (and only
	// such).
	Database *DatabaseRestore `json:"database,omitempty"`
	// NAS says how to restore a point of a NAS share (and only such).
	NAS *NASRestore `json:"nas,omitempty"`
}

// VM restore modes.
const (
	VMRestoreNew      = "new_vm"   // a new VM, alternate location
	VMRestoreOriginal = "original" // over the original VM: powered off and Overwrite
	VMRestoreDisk     = "disk"     // one disk attached to a chosen VM as a new disk
)

// VMRestore is where and how a VM point is restored. Inventory paths name
// the folder, resource pool and host; empty ones take the original VM's.
type VMRestore struct {
	Mode string `json:"mode,omitempty"` // new_vm (default), original, disk
	// VCenterID defaults to the protected VM's vCenter.
	VCenterID    string `json:"vcenter_id,omitempty"`
	Name         string `json:"name,omitempty"`          // new_vm: the new VM's name (required)
	Datastore    string `json:"datastore,omitempty"`     // datastore name for the disks
	ResourcePool string `json:"resource_pool,omitempty"` // inventory path
	Host         string `json:"host,omitempty"`          // inventory path of an ESXi host
	Folder       string `json:"folder,omitempty"`        // inventory path of a VM folder
	// NetworkMap maps the backed-up VM's network names to target networks;
	// unmapped networks keep their names.
	NetworkMap map[string]string `json:"network_map,omitempty"`
	PowerOn    bool              `json:"power_on,omitempty"`
	// Overwrite must be true to restore over the original VM.
	Overwrite bool `json:"overwrite,omitempty"`
	// DiskKey is the point's disk to restore (mode disk), and
	// TargetInstanceUUID the VM it is attached to.
	DiskKey            int32  `json:"disk_key,omitempty"`
	TargetInstanceUUID string `json:"target_instance_uuid,omitempty"`
}

// Point is a recovery point as the catalog lists it.
type Point struct {
	ID      string `json:"id"`
	AssetID string `json:"asset_id"`
	// AssetName is the fileset's name or the protected VM's VM name, also
	// once the asset is deleted (then AssetDeleted is true): points outlive
	// their asset and stay restorable until their retention ends.
	AssetName    string     `json:"asset_name"`
	AssetDeleted bool       `json:"asset_deleted"`
	StorageID    string     `json:"storage_id"`
	Kind         string     `json:"kind"` // full, incremental
	ParentID     string     `json:"parent_id,omitempty"`
	StartedAt    time.Time  `json:"started_at"`
	CompletedAt  time.Time  `json:"completed_at"`
	LogicalBytes int64      `json:"logical_bytes"`
	NewBytes     int64      `json:"new_bytes"`
	StoredBytes  int64      `json:"stored_bytes"`
	Files        int64      `json:"files"`
	JobID        string     `json:"job_id,omitempty"`
	DeletedAt    *time.Time `json:"deleted_at,omitempty"`
	// Retention: the tier the point's data is in; RestorableUntil, the
	// first instant at which no retention rule keeps it any more ("kept
	// until 23:59:59 of day D+n" is a RestorableUntil of 00:00 of the next
	// day; absent while only a legal hold or a dependent point keeps it);
	// every reason it is kept; and whether it is on legal hold.
	Tier            string     `json:"tier"`
	RestorableUntil *time.Time `json:"restorable_until,omitempty"`
	Reasons         []string   `json:"reasons,omitempty"`
	LegalHold       bool       `json:"legal_hold"`
	// LogStart and LogEnd bound the time a log backup covers.
	LogStart *time.Time `json:"log_start,omitempty"`
	LogEnd   *time.Time `json:"log_end,omitempty"`
	// Database is what a database set's point records besides.
	Database *DatabasePoint `json:"database,omitempty"`
}

// PointFilter narrows a point listing.
type PointFilter struct {
	AssetID       string
	Kind          string
	Tier          string
	CreatedAfter  *time.Time
	CreatedBefore *time.Time
}

// LegalHoldRequest sets or clears a point's legal hold.
type LegalHoldRequest struct {
	LegalHold bool `json:"legal_hold"`
}

// RetentionPreview is the dry run of a policy change: what it would
// expire and move, were it applied now.
type RetentionPreview struct {
	Expiring       int        `json:"expiring"`
	ExpiringAssets int        `json:"expiring_assets"`
	OldestExpiring *time.Time `json:"oldest_expiring,omitempty"`
	ToCold         int        `json:"to_cold"`
	ToWarm         int        `json:"to_warm"`
	// PointIDs lists the points that would expire (at most 1000).
	PointIDs []string `json:"point_ids,omitempty"`
}

// Summary is the one-line description plan warnings use.
func (p *RetentionPreview) Summary() string {
	msg := fmt.Sprintf("this change expires %d recovery points on %d assets", p.Expiring, p.ExpiringAssets)
	if p.OldestExpiring != nil {
		msg += fmt.Sprintf(" (oldest %s)", p.OldestExpiring.UTC().Format("2006-01-02"))
	}
	return msg + fmt.Sprintf("; %d move to cold", p.ToCold)
}

// Validate reports the first invalid field of a file server.
func (f *FileServerSpec) Validate() *Error {
	if err := validateName("name", f.Name); err != nil {
		return err
	}
	if f.Hostname == "" || len(f.Hostname) > 253 || strings.ContainsAny(f.Hostname, " /\\") {
		return FieldError("hostname", "must be a host name (1-253 characters, no spaces or slashes), got %q", f.Hostname)
	}
	if f.OS != OSLinux && f.OS != OSWindows {
		return FieldError("os", "must be %q or %q, got %q", OSLinux, OSWindows, f.OS)
	}
	if f.Location != LocationServer && f.Location != LocationAgent {
		return FieldError("location", "must be %q or %q, got %q", LocationServer, LocationAgent, f.Location)
	}
	if f.Group != "" {
		if err := validateName("group", f.Group); err != nil {
			return err
		}
	}
	for i, p := range f.RestoreRoots {
		if !IsAbsPath(p) {
			return FieldError("restore_roots["+strconv.Itoa(i)+"]", "must be an absolute path, got %q", p)
		}
		f.RestoreRoots[i] = cleanPath(p)
	}
	return nil
}

func cleanPath(p string) string {
	if strings.HasPrefix(p, "/") {
		return path.Clean(p)
	}
	return p
}

// PathWithin reports whether p is root or below it, comparing cleaned
// paths (a host's restore roots, whose symlinks the server cannot see).
func PathWithin(p, root string) bool {
	p, root = cleanPath(p), cleanPath(root)
	return p == root || root == "/" || strings.HasPrefix(p, strings.TrimSuffix(root, "/")+"/")
}

// Normalize cleans a fileset's paths and globs.
func (f *FilesetSpec) Normalize() {
	for i, p := range f.IncludePaths {
		f.IncludePaths[i] = cleanPath(p)
	}
}

// Validate reports the first invalid field of a fileset.
func (f *FilesetSpec) Validate() *Error {
	if err := validateName("name", f.Name); err != nil {
		return err
	}
	for field, v := range map[string]string{"file_server_id": f.FileServerID, "policy_id": f.PolicyID, "storage_id": f.StorageID} {
		if v == "" {
			return FieldError(field, "is required")
		}
	}
	if len(f.IncludePaths) == 0 {
		return FieldError("include_paths", "needs at least one absolute path")
	}
	for i, p := range f.IncludePaths {
		if !IsAbsPath(p) {
			return FieldError("include_paths["+strconv.Itoa(i)+"]", "must be an absolute path, got %q", p)
		}
	}
	for i, g := range f.ExcludeGlobs {
		if !ValidGlob(g) {
			return FieldError("exclude_globs["+strconv.Itoa(i)+"]", "is not a valid glob: %q", g)
		}
	}
	if f.Group != "" {
		if err := validateName("group", f.Group); err != nil {
			return err
		}
	}
	return nil
}

// IsAbsPath reports whether p is an absolute path on a file server of
// either OS family: /... or a Windows drive path (C:\... or C:/...).
func IsAbsPath(p string) bool {
	return strings.HasPrefix(p, "/") || len(p) >= 3 && p[1] == ':' && (p[2] == '\\' || p[2] == '/')
}

// IsRestoreSelection reports whether p can be one of a restore's Paths:
// absolute, and Go-quoted when the name is not UTF-8.
func IsRestoreSelection(p string) bool { return pathtext.IsAbs(p) }

// Validate reports the first invalid field of a restore request.
func (r *RestoreRequest) Validate() *Error {
	if r.PointID == "" {
		return FieldError("point_id", "is required")
	}
	if r.TargetPath != "" && !IsAbsPath(r.TargetPath) {
		return FieldError("target_path", "must be an absolute path (/... or, on Windows, C:\\...), got %q", r.TargetPath)
	}
	for i, p := range r.Paths {
		if !IsRestoreSelection(p) {
			return FieldError("paths["+strconv.Itoa(i)+"]", "must be an absolute path as backed up (Go-quoted if it is not UTF-8), got %q", p)
		}
	}
	switch r.Conflict {
	case "", "overwrite", "skip", "rename":
	default:
		return FieldError("conflict", "must be overwrite, skip or rename, got %q", r.Conflict)
	}
	for _, globs := range []struct {
		field string
		list  []string
	}{{"include", r.Include}, {"exclude", r.Exclude}} {
		for i, g := range globs.list {
			if !ValidGlob(g) {
				return FieldError(globs.field+"["+strconv.Itoa(i)+"]", "is not a valid glob: %q", g)
			}
		}
	}
	if r.NAS != nil {
		if r.VM != nil || r.Database != nil || r.TargetFileServerID != "" || r.TargetPath != "" || r.Conflict != "" {
			return FieldError("nas", "a NAS restore takes no vm, database, target_file_server_id, target_path or conflict (name nas.share_id, nas.path and nas.conflict)")
		}
		return r.NAS.Validate()
	}
	if r.Database != nil {
		if r.VM != nil || r.TargetPath != "" || len(r.Paths) > 0 || r.TargetFileServerID != "" || len(r.Include) > 0 || len(r.Exclude) > 0 || r.Conflict != "" {
			return FieldError("database", "a database restore takes no vm, target_file_server_id, target_path, paths, conflict, include or exclude (name database.target_database_server_id and database.data_dir)")
		}
		if r.DryRun {
			return FieldError("dry_run", "a database restore has no dry run: it writes a whole data directory")
		}
		return r.Database.Validate()
	}
	if r.VM != nil {
		if r.TargetPath != "" || len(r.Paths) > 0 || r.TargetFileServerID != "" || len(r.Include) > 0 || len(r.Exclude) > 0 {
			return FieldError("vm", "a VM restore takes no file server, target_path, paths, include or exclude")
		}
		if r.DryRun {
			return FieldError("dry_run", "a VM restore has no dry run: it writes whole disks")
		}
		return r.VM.Validate()
	}
	return nil
}

// Validate reports the first invalid field of a VM restore (field names
// are prefixed with "vm.").
func (v *VMRestore) Validate() *Error {
	if v.Mode == "" {
		v.Mode = VMRestoreNew
	}
	for _, f := range []struct{ name, v string }{{"folder", v.Folder}, {"resource_pool", v.ResourcePool}, {"host", v.Host}} {
		if f.v != "" && !strings.HasPrefix(f.v, "/") {
			return FieldError("vm."+f.name, "must be an inventory path such as /DC0/vm/restored, got %q", f.v)
		}
	}
	switch v.Mode {
	case VMRestoreNew:
		if strings.TrimSpace(v.Name) == "" {
			return FieldError("vm.name", "is required for a restore as a new VM")
		}
		if len(v.Name) > 80 || strings.ContainsAny(v.Name, "/\\%") {
			return FieldError("vm.name", "must be at most 80 characters without /, \\ or %%, got %q", v.Name)
		}
	case VMRestoreOriginal:
		if !v.Overwrite {
			return FieldError("vm.overwrite", "must be true to restore over the original VM (which must be powered off)")
		}
	case VMRestoreDisk:
		if v.DiskKey <= 0 {
			return FieldError("vm.disk_key", "must name the point's disk by its device key (such as 2000)")
		}
		if !instanceUUIDPattern.MatchString(v.TargetInstanceUUID) {
			return FieldError("vm.target_instance_uuid", "must be the instance UUID of the VM that gets the disk, got %q", v.TargetInstanceUUID)
		}
	default:
		return FieldError("vm.mode", "must be new_vm, original or disk, got %q", v.Mode)
	}
	return nil
}
