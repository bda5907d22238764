package api

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Database engines Haven protects.
const EnginePostgreSQL = "postgresql"

// DatabaseServerSpec is the writable part of a database server: a cluster
// on a host whose Haven agent (FileServerID, a file server of location
// agent) connects to it, backs it up and restores it.
type DatabaseServerSpec struct {
	Name         string `json:"name"`
	FileServerID string `json:"file_server_id"`
	Engine       string `json:"engine"`
	// Host is a Unix socket directory (/var/run/postgresql) or a host
	// name or address the agent reaches the server at; Port defaults to
	// 5432.
	Host     string `json:"host"`
	Port     int    `json:"port,omitempty"`
	User     string `json:"user"`
	Database string `json:"database,omitempty"` // to connect to; default postgres
	// Password is write-only: stored sealed with the master key, handed
	// to the agent with each job, never returned or logged. None: the
	// host's own authentication (peer, .pgpass).
	Password string `json:"password,omitempty" api:"writeonly"`
	// Group is the administrative group: group_admin tokens of that group
	// may restore onto this server.
	Group string `json:"group,omitempty"`
}

// DatabaseServerRequest is the body of create and update calls.
type DatabaseServerRequest struct {
	DatabaseServerSpec
	Version *int64 `json:"version,omitempty"`
}

// DatabaseServer is a stored database server. Detected is what its agent
// found at the last backup: nil until one ran.
type DatabaseServer struct {
	Meta
	DatabaseServerSpec
	HasPassword bool              `json:"has_password"`
	Detected    *DatabaseDetected `json:"detected,omitempty"`
}

// DatabaseDetected is what an agent found on a database server.
type DatabaseDetected struct {
	Version  string `json:"version"`
	SystemID string `json:"system_id"`
	Timeline uint32 `json:"timeline"`
	DataDir  string `json:"data_dir"`
	// LogRefusal, when not empty, says why the server cannot have log
	// backups (archive_mode off, wal_level minimal): no point-in-time
	// restore is offered for it.
	LogRefusal string    `json:"log_refusal,omitempty"`
	Databases  []string  `json:"databases"`
	CheckedAt  time.Time `json:"checked_at"`
}

// DatabaseSetSpec is the writable part of a database set: what to back up
// on a database server, under which policy, into which storage. A
// PostgreSQL set is the whole cluster (its physical backup holds every
// database and tablespace).
type DatabaseSetSpec struct {
	Name             string `json:"name"`
	DatabaseServerID string `json:"database_server_id"`
	PolicyID         string `json:"policy_id"`
	StorageID        string `json:"storage_id"`
	// VerifyRestore restores each full and differential point into a
	// scratch cluster on the agent's host, checks it (pg_amcheck, a row
	// count per table) and records the result on the point.
	VerifyRestore bool `json:"verify_restore,omitempty"`
	// Group is the administrative group; group_admin tokens of that group
	// may manage the set and run its backups and restores.
	Group string `json:"group,omitempty"`
}

// DatabaseSetRequest is the body of create and update calls.
type DatabaseSetRequest struct {
	DatabaseSetSpec
	Version *int64 `json:"version,omitempty"`
}

// DatabaseSet is a stored database set.
type DatabaseSet struct {
	Meta
	DatabaseSetSpec
}

// Backup types of database sets, besides full: a differential stores what
// changed since the last full; a log backup stores the WAL archived since
// the last one.
const (
	BackupDifferential = "differential"
	BackupLog          = "log"
)

// End states of a database restore (SQL Server's WITH RECOVERY, STANDBY
// and NORECOVERY).
const (
	EndRecovery   = "recovery"
	EndStandby    = "standby"
	EndNoRecovery = "no_recovery"
)

// DatabaseRestore says how to restore a point of a database set (and only
// such). Without a target (point_in_time, restore_point, lsn, xid) the
// point itself is restored: a full, a differential, or a log point's end.
type DatabaseRestore struct {
	// TargetDatabaseServerID is the database server restored onto (its
	// agent does the restore); default the set's own.
	TargetDatabaseServerID string `json:"target_database_server_id,omitempty"`
	// DataDir is where the data directory is made; default the target
	// server's detected data directory (the original: then Overwrite is
	// required, connections are terminated and the cluster stopped).
	DataDir string `json:"data_dir,omitempty"`
	// Port, if set, is written into the restored cluster's settings, so
	// it can start beside the original.
	Port int `json:"port,omitempty"`
	// At most one target: an instant the logs cover, a named restore
	// point, an LSN or a transaction id.
	PointInTime  *time.Time `json:"point_in_time,omitempty"`
	RestorePoint string     `json:"restore_point,omitempty"`
	LSN          string     `json:"lsn,omitempty"`
	XID          string     `json:"xid,omitempty"`
	// EndState is recovery (default: promoted and open), standby
	// (read-only; more logs can be applied later) or no_recovery.
	EndState  string `json:"end_state,omitempty"`
	Overwrite bool   `json:"overwrite,omitempty"`
	// Verify restores a full or differential point into a scratch
	// cluster on the target server's host instead, starts it, checks it
	// (pg_amcheck, a row count per table), records the result on the
	// point and removes it: no data directory is touched.
	Verify bool `json:"verify,omitempty"`
	// RollForward applies more logs to a standby or no_recovery restore
	// in DataDir (stopped first if it runs) instead of restoring a point:
	// its recovery goes on to the new target, or to the end of the logs,
	// and ends in EndState (recovery promotes it).
	RollForward bool `json:"roll_forward,omitempty"`
}

var lsnPattern = regexp.MustCompile(`^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$`)

// Targets counts the recovery targets set.
func (d *DatabaseRestore) Targets() int {
	n := 0
	for _, set := range []bool{d.PointInTime != nil, d.RestorePoint != "", d.LSN != "", d.XID != ""} {
		if set {
			n++
		}
	}
	return n
}

// Validate reports the first invalid field of a database restore (field
// names are prefixed with "database.").
func (d *DatabaseRestore) Validate() *Error {
	if d.EndState == "" {
		d.EndState = EndRecovery
	}
	if !slices.Contains([]string{EndRecovery, EndStandby, EndNoRecovery}, d.EndState) {
		return FieldError("database.end_state", "must be recovery, standby or no_recovery, got %q", d.EndState)
	}
	if d.DataDir != "" && (!path.IsAbs(d.DataDir) || path.Clean(d.DataDir) != d.DataDir) {
		return FieldError("database.data_dir", "must be a clean absolute path, got %q", d.DataDir)
	}
	if d.Port < 0 || d.Port > 65535 {
		return FieldError("database.port", "must be between 1 and 65535, got %d", d.Port)
	}
	if d.Verify && (d.DataDir != "" || d.Port != 0 || d.Targets() > 0 || d.Overwrite || d.EndState != EndRecovery) {
		return FieldError("database.verify", "a verification restores into a scratch cluster of its own: it takes no data_dir, port, target, end_state or overwrite")
	}
	if d.RollForward && (d.DataDir == "" || d.Verify || d.Overwrite || d.Port != 0) {
		return FieldError("database.roll_forward", "rolls a standby or no_recovery restore forward: it needs its data_dir, and takes no verify, overwrite or port")
	}
	if d.Targets() > 1 {
		return FieldError("database", "name at most one of point_in_time, restore_point, lsn and xid")
	}
	if d.LSN != "" && !lsnPattern.MatchString(d.LSN) {
		return FieldError("database.lsn", "must be an LSN like 0/16B3740, got %q", d.LSN)
	}
	if d.XID != "" {
		if _, err := strconv.ParseUint(d.XID, 10, 32); err != nil {
			return FieldError("database.xid", "must be a transaction id (a number), got %q", d.XID)
		}
	}
	if len(d.RestorePoint) > 63 {
		return FieldError("database.restore_point", "is at most 63 bytes long (PostgreSQL's limit), got %d", len(d.RestorePoint))
	}
	return nil
}

// DatabasePoint is what a database recovery point records besides the
// common fields.
type DatabasePoint struct {
	// Converted says why a requested differential was taken as a full.
	Converted string `json:"converted,omitempty"`
	SystemID  string `json:"system_id"`
	Timeline  uint32 `json:"timeline"`
	// StartLSN and EndLSN bound the WAL the point holds (for a full or a
	// differential: what a restore replays to make it consistent).
	StartLSN string `json:"start_lsn"`
	EndLSN   string `json:"end_lsn"`
	// LastSegment is the last WAL segment a log point holds; Partial says
	// it is incomplete (a tail-log backup).
	LastSegment   string                 `json:"last_segment,omitempty"`
	Partial       bool                   `json:"partial,omitempty"`
	RestorePoints []DatabaseRestorePoint `json:"restore_points,omitempty"`
	// Verified is the result of verify_restore, once it ran.
	Verified *DatabaseVerification `json:"verified,omitempty"`
}

// DatabaseRestorePoint is a named restore point inside a log point.
type DatabaseRestorePoint struct {
	Name string    `json:"name"`
	LSN  string    `json:"lsn"`
	Time time.Time `json:"time,omitzero"`
}

// DatabaseVerification is the check of a point restored into a scratch
// cluster: it started, pg_amcheck found nothing, and every table was
// counted.
type DatabaseVerification struct {
	OK      bool      `json:"ok"`
	Problem string    `json:"problem,omitempty"`
	Tables  int       `json:"tables"`
	Rows    int64     `json:"rows"`
	Seconds float64   `json:"seconds"`
	At      time.Time `json:"at"`
}

// Validate reports the first invalid field of a database server.
func (s *DatabaseServerSpec) Validate() *Error {
	if s.Engine == "" {
		s.Engine = EnginePostgreSQL
	}
	if s.Database == "" {
		s.Database = "postgres"
	}
	if err := validateName("name", s.Name); err != nil {
		return err
	}
	switch {
	case s.FileServerID == "":
		return FieldError("file_server_id", "is required: the agent file server of the database's host")
	case s.Engine != EnginePostgreSQL:
		return FieldError("engine", "must be %q (the one engine Haven protects so far), got %q", EnginePostgreSQL, s.Engine)
	case s.Host == "":
		return FieldError("host", "is required: a Unix socket directory (/var/run/postgresql) or a host name")
	case s.Port < 0 || s.Port > 65535:
		return FieldError("port", "must be between 1 and 65535, got %d", s.Port)
	case s.User == "":
		return FieldError("user", "is required: a role with REPLICATION, or a superuser")
	}
	return nil
}

// Validate reports the first invalid field of a database set.
func (s *DatabaseSetSpec) Validate() *Error {
	if err := validateName("name", s.Name); err != nil {
		return err
	}
	switch {
	case s.DatabaseServerID == "":
		return FieldError("database_server_id", "is required")
	case s.PolicyID == "":
		return FieldError("policy_id", "is required")
	case s.StorageID == "":
		return FieldError("storage_id", "is required")
	}
	return nil
}

// ConnString is the agent's connection string for a database server
// (without its password, which travels apart).
func (s *DatabaseServerSpec) ConnString() string {
	port := s.Port
	if port == 0 {
		port = 5432
	}
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s", quoteConnValue(s.Host), port, quoteConnValue(s.User), quoteConnValue(s.Database))
}

// quoteConnValue quotes a libpq keyword/value connection string value.
func quoteConnValue(v string) string {
	out := []byte{'\''}
	for i := 0; i < len(v); i++ {
		if v[i] == '\'' || v[i] == '\\' {
			out = append(out, '\\')
		}
		out = append(out, v[i])
	}
	return string(append(out, '\''))
}

// DatabaseWork is a database set's job as its agent receives it.
type DatabaseWork struct {
	Engine string `json:"engine"`
	// Conn is the libpq connection string, without the password, which
	// comes apart (never stored in the job: filled in as the work is
	// handed out).
	Conn     string `json:"conn"`
	Password string `json:"password,omitempty"`
	// Backup: Kind is full, differential or log (a restore over the
	// original: log, its tail-log backup). A differential builds on
	// BaseRoot (the last full's root; none: it is taken as a full);
	// LastFullFailed says a full attempt failed since.
	Kind           string `json:"kind,omitempty"`
	BaseRoot       string `json:"base_root,omitempty"`
	LastFullFailed bool   `json:"last_full_failed,omitempty"`
	// HeldThrough is the last WAL segment Haven holds already (a log
	// backup stores what the agent's spool has after it, and drops the
	// rest from the spool).
	HeldThrough string `json:"held_through,omitempty"`
	// SystemID and Version are what the last backup detected of the
	// server: a tail-log backup of a cluster whose control file is gone
	// still finds its spool and its programs.
	SystemID string `json:"system_id,omitempty"`
	Version  string `json:"version,omitempty"`
	// Restore: the point's root is AgentWork.Root; LogRoots are the log
	// points replayed after it, oldest first.
	LogRoots []string `json:"log_roots,omitempty"`
	// ReplayTail: a restore over the original takes a tail-log backup
	// first (Kind log, HeldThrough) and, restoring to the end or to a
	// target, replays it too.
	ReplayTail  bool             `json:"replay_tail,omitempty"`
	Restore     *DatabaseRestore `json:"restore,omitempty"`
	Verify      bool             `json:"verify,omitempty"`
	RollForward bool             `json:"roll_forward,omitempty"`
	DataDir     string           `json:"data_dir,omitempty"`
	Original    bool             `json:"original,omitempty"`
	StagingID   string           `json:"staging_id,omitempty"`
}

// DatabaseResult is what an agent reports at the end of a database job.
type DatabaseResult struct {
	// Kind is the point's kind as taken (a differential may have been
	// converted to a full: Point.Converted says why).
	Kind     string            `json:"kind,omitempty"`
	Point    *DatabasePoint    `json:"point,omitempty"`
	LogStart *time.Time        `json:"log_start,omitempty"`
	LogEnd   *time.Time        `json:"log_end,omitempty"`
	Detected *DatabaseDetected `json:"detected,omitempty"`
}
