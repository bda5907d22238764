// Package database is the engine-neutral contract of database workloads.
// PostgreSQL (engine/database/postgres) implements it first; SQL Server
// follows behind the same contract, so its terms are the reference and
// each engine maps onto them:
//
//	SQL Server                  PostgreSQL
//	full backup                 base backup (pg_backup_start/stop) of the data directory
//	differential backup         the files changed since the base full, plus the WAL to make them consistent
//	log backup                  archived WAL segments
//	simple recovery model       wal_level=minimal or archive_mode=off: no log backups, no point in time
//	marked transaction          named restore point (pg_create_restore_point)
//	RESTORE ... WITH RECOVERY   promoted and open
//	WITH STANDBY                read-only hot standby
//	WITH NORECOVERY             held in recovery, closed
//	tail-log backup             WAL not yet archived, read from pg_wal
//	data file (mdf/ndf)         a database's directory or a tablespace
//
// Full backups are ever-incremental: every full reads all files, and dedup
// uploads only what the repository lacks. A differential reads only what
// changed since its base full and restores on its own (its manifest holds
// every file; the unchanged ones share the base's chunks). A requested
// differential becomes a full, and says why (Conversion), whenever the
// base cannot vouch for what it would skip.
package database

import (
	"context"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
)

// Kinds of a database recovery point.
const (
	KindFull         = "full"
	KindDifferential = "differential"
	KindLog          = "log"
)

// Database is one database of a server, known by a number that survives
// a rename.
type Database struct {
	OID  uint32 `json:"oid"`
	Name string `json:"name"`
}

// DataFile is where a server keeps some of its data, known by a number
// that survives a rename or a move.
type DataFile struct {
	OID      uint32 `json:"oid"`
	Name     string `json:"name"`
	Location string `json:"location"`
}

// Identity is what a server is, as a backup sees it.
type Identity struct {
	Engine  string `json:"engine"`  // "postgresql"
	Version string `json:"version"` // "15.8"
	// SystemID names the cluster: it changes when the cluster is made
	// anew (initdb), not when it is restored or promoted elsewhere, which
	// change its Timeline.
	SystemID string `json:"system_id"`
	// BootstrapRole is the superuser the server was created with, the
	// role a check of a restored copy connects as.
	BootstrapRole string `json:"bootstrap_role,omitempty"`
	Timeline      uint32 `json:"timeline"`
	DataDir       string `json:"data_dir"`
	// DataFiles are the server's data files in SQL Server's sense: for
	// PostgreSQL, its tablespaces (pg_default and pg_global live in the
	// data directory itself).
	DataFiles []DataFile `json:"data_files"`
	Databases []Database `json:"databases"`
	// LogRefusal, when not empty, says why the server cannot have log
	// backups (SQL Server's simple recovery model): no point-in-time
	// restore is offered for it.
	LogRefusal string `json:"log_refusal,omitempty"`
}

// Meta is what every database point records in its root, whatever the
// engine; an engine's own root meta embeds it.
type Meta struct {
	Identity
	Kind string `json:"kind"`
	// Converted says why a requested differential was taken as a full.
	Converted string `json:"converted,omitempty"`
	// BaseRoot is a differential's base full (its point root).
	BaseRoot format.ID `json:"base_root,omitzero"`
	Label    string    `json:"label"`
	// Started is the host's clock just before the backup began: a later
	// differential re-reads every file this one saw as written since
	// (less a margin), whatever its metadata says.
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// StartLSN and StopLSN bound the log a restore of this point must
	// replay to be consistent; the point carries that log itself.
	StartLSN string `json:"start_lsn"`
	StopLSN  string `json:"stop_lsn"`
	// Files and Bytes are the files the point holds and their size;
	// ReadBytes is what the backup read (the rest was unchanged since the
	// base, for a differential); Reused counts the files not read.
	Files     int64 `json:"files"`
	Bytes     int64 `json:"bytes"`
	ReadBytes int64 `json:"read_bytes"`
	Reused    int64 `json:"reused_files"`
	// NewBytes is what the data files added to the repository, the
	// chunks dedup had not seen (known when the backup writes to the
	// repository itself; an agent's server counts its uploads).
	NewBytes int64 `json:"new_bytes,omitempty"`
}

// Base is the last complete full a differential would build on.
type Base struct {
	Root format.ID
	Meta *Meta
}

// BackupRequest is one full or differential backup.
type BackupRequest struct {
	// Kind is what was asked: KindFull or KindDifferential.
	Kind string
	// Base is the last complete full (nil if none); LastFullFailed says
	// the last full attempt failed after it.
	Base           *Base
	LastFullFailed bool
	// Label names the backup on the server (its backup history).
	Label string
	// BackupHistory are the backup history files the log archive holds
	// from after the base full on (PostgreSQL archives one per backup
	// stopped, whoever took it): a full another tool took since the base
	// turns a differential into a full.
	BackupHistory []string
	// Warn receives files that could not be read; the backup goes on.
	Warn func(path string, err error)
	// Progress, if set, is told the files and bytes done so far.
	Progress func(files, bytes int64)
}

// Server is one database server as its host's agent sees it.
type Server interface {
	// Identify describes the server as it is now.
	Identify(ctx context.Context) (Identity, error)
	// Backup takes a full or differential backup into sink (the base's
	// manifests are read from src) and returns the point's root and its
	// meta, Kind and Converted set. The caller commits the root; nothing
	// is visible before that, and a failed backup leaves the server as it
	// found it (its backup mode ended, its WAL no longer held).
	Backup(ctx context.Context, sink repo.Sink, src repo.Source, req BackupRequest) (format.ID, *Meta, error)
	// Close ends the session.
	Close(ctx context.Context) error
}
