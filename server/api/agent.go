package api

// The agent protocol. An agent dials out only: it activates once with the
// one-time token of its file server, then long-polls for work with the
// credential it received, and moves data through job-scoped calls:
//
//	POST /v1/agents/activate            ActivateRequest → Activation (no bearer token)
//	GET  /v1/agent/work?instance=I      AgentWork, or 204 after the long poll
//	POST /v1/agent/jobs/{id}/has        HasRequest → HasResponse (ids the repository lacks)
//	POST /v1/agent/jobs/{id}/chunks     frames of type(1) id(32) length(uint32 LE) data; stored and indexed before 200
//	POST /v1/agent/jobs/{id}/load       LoadRequest → frames of position(uint32 LE) length(uint32 LE) data
//	POST /v1/agent/jobs/{id}/progress   AgentProgress
//	POST /v1/agent/jobs/{id}/complete   AgentComplete
//	POST /v1/agent/jobs/{id}/fail       AgentFail
//	POST /v1/agent/jobs/{id}/tail       AgentTail → AgentTailed (a restore over a database's original)
//
// Chunk data travels in plaintext over the (TLS) connection; the server
// compresses, encrypts and packs it, so storage data keys never leave the
// server. The agent receives only the storage's id key, to name chunks and
// deduplicate before transfer.

// ActivateRequest trades a one-time activation token for a credential.
type ActivateRequest struct {
	ActivationToken string `json:"activation_token"`
	Hostname        string `json:"hostname"`
}

// Activation is the agent's own credential.
type Activation struct {
	FileServerID string `json:"file_server_id"`
	Token        string `json:"token"`
}

// AgentWork is a job handed to an agent.
type AgentWork struct {
	JobID string `json:"job_id"`
	Kind  string `json:"kind"` // backup, restore or restore_plan
	// IDKey is the storage's chunk-id key: a backup names chunks with it,
	// a restore checks what it wrote against the point's chunk ids.
	IDKey []byte `json:"id_key,omitempty"`
	// Backup.
	IncludePaths []string `json:"include_paths,omitempty"`
	ExcludeGlobs []string `json:"exclude_globs,omitempty"`
	ParentRoot   string   `json:"parent_root,omitempty"`
	// Restore, and restore_plan: the same restore's dry run, which reads
	// the point's manifests and looks at the target, and writes nothing.
	Root       string   `json:"root,omitempty"`
	TargetPath string   `json:"target_path,omitempty"`
	Paths      []string `json:"paths,omitempty"`
	Conflict   string   `json:"conflict,omitempty"`
	Resume     bool     `json:"resume,omitempty"`
	// RestoreInclude and RestoreExclude narrow a restore by glob (see
	// RestoreRequest.Include and Exclude).
	RestoreInclude []string `json:"restore_include,omitempty"`
	RestoreExclude []string `json:"restore_exclude,omitempty"`
	// Database is the work of a database set's job (and only such).
	Database *DatabaseWork `json:"database,omitempty"`
	// NAS is the work of a NAS share's job (and only such).
	NAS *NASWork `json:"nas,omitempty"`
}

// HasRequest asks which chunk ids (hex) the repository lacks.
type HasRequest struct {
	IDs []string `json:"ids"`
}

// HasResponse lists the missing ids.
type HasResponse struct {
	Missing []string `json:"missing"`
}

// LoadRequest asks for chunks' plaintext.
type LoadRequest struct {
	IDs []string `json:"ids"`
}

// AgentProgress reports a running job's progress and new warnings.
type AgentProgress struct {
	Progress JobProgress `json:"progress"`
	Warnings []string    `json:"warnings,omitempty"`
}

// AgentComplete ends a job successfully; Root is a backup's manifest
// root, Plan a restore_plan job's plan.
type AgentComplete struct {
	Root string `json:"root,omitempty"`
	// Skipped ends a backup that found nothing to back up (a log backup
	// of a cluster that wrote no WAL since the last one), saying so: the
	// job ends skipped, with no point.
	Skipped string `json:"skipped,omitempty"`
	// Database is what a database backup made, or what a database
	// restore found.
	Database *DatabaseResult `json:"database,omitempty"`
	Plan     *RestorePlan    `json:"plan,omitempty"`
	Progress JobProgress     `json:"progress"`
	Warnings []string        `json:"warnings,omitempty"`
}

// MaxCompleteBody bounds the body of an agent's complete call, which may
// carry a plan of PlanItemsMax items; an agent drops items (setting
// truncated) to stay within it.
const MaxCompleteBody = 16 << 20

// AgentFail ends an attempt with an error; the server decides on retries.
type AgentFail struct {
	Error    string   `json:"error"`
	Warnings []string `json:"warnings,omitempty"`
}

// Validate refuses counts no job can reach; field prefixes the names.
func (p JobProgress) Validate(field string) *Error {
	for _, c := range []struct {
		name  string
		value int64
	}{{"bytes_done", p.BytesDone}, {"bytes_total", p.BytesTotal}, {"files_done", p.FilesDone}, {"files_total", p.FilesTotal}} {
		if c.value < 0 {
			return FieldError(field+"."+c.name, "must not be negative, got %d", c.value)
		}
	}
	return nil
}

// Validate checks the reported progress.
func (p *AgentProgress) Validate() *Error { return p.Progress.Validate("progress") }

// Validate checks the final progress, and the plan.
func (c *AgentComplete) Validate() *Error {
	if err := c.Progress.Validate("progress"); err != nil {
		return err
	}
	if c.Plan != nil {
		return c.Plan.Validate("plan")
	}
	return nil
}

// AgentTail commits the tail-log backup a restore over a database's
// original takes before it replaces the data directory: the WAL Haven did
// not hold yet, uploaded through the restore job's session, becomes a log
// point of the set while the restore goes on.
type AgentTail struct {
	Root     string          `json:"root"`
	Database *DatabaseResult `json:"database"`
	Progress JobProgress     `json:"progress"`
}

// Validate checks the tail's report.
func (t *AgentTail) Validate() *Error {
	if t.Root == "" {
		return FieldError("root", "is required")
	}
	if t.Database == nil || t.Database.Point == nil || t.Database.Kind != BackupLog {
		return FieldError("database", "must describe a log point")
	}
	return t.Progress.Validate("progress")
}

// AgentTailed names the log point a tail-log backup became.
type AgentTailed struct {
	PointID string `json:"point_id"`
}
