// Package postgres is the PostgreSQL engine of the database contract
// (engine/database), run by the agent on the database host: physical
// backups through the non-exclusive backup API on a held session, with
// the data files read straight from the data directory, and restores that
// rebuild a data directory a postmaster can start from.
//
// A point is self-contained: besides the data files it holds the WAL from
// the backup's start to its stop, kept from recycling by a temporary
// replication slot for the length of the backup, so a full or a
// differential restores to a consistent cluster without any log backup.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/engine/database"
)

// Engine is the engine name points and identities carry.
const Engine = "postgresql"

// MinVersion is the oldest server supported: 14, the first with the
// non-exclusive backup API as the only one documented going forward.
const MinVersion = 140000

// Server is a session with one PostgreSQL cluster. Its connection string
// names a superuser, or a role with REPLICATION and the backup functions
// granted, through the local socket or TCP; the host's agent also reads
// the cluster's files, so it runs as the cluster's owner or as root.
type Server struct {
	connString string
	conn       *pgx.Conn
	version    int // server_version_num
}

var _ database.Server = (*Server)(nil)

// Connect opens a session with the cluster.
func Connect(ctx context.Context, connString string) (*Server, error) {
	conn, err := pgx.Connect(ctx, connString)
	if err != nil {
		return nil, fmt.Errorf("connecting to the database server: %w", err)
	}
	s := &Server{connString: connString, conn: conn}
	var num string
	if err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')").Scan(&num); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	if s.version, err = strconv.Atoi(num); err != nil {
		conn.Close(ctx)
		return nil, fmt.Errorf("server_version_num %q: %w", num, err)
	}
	if s.version < MinVersion {
		conn.Close(ctx)
		return nil, fmt.Errorf("PostgreSQL %d.%d is not supported: Haven backs up PostgreSQL 14 and later", s.version/10000, s.version%10000)
	}
	return s, nil
}

// Close ends the session.
func (s *Server) Close(ctx context.Context) error { return s.conn.Close(ctx) }

// Identify describes the cluster as it is now. Backups are taken from a
// primary: a server in recovery is refused.
func (s *Server) Identify(ctx context.Context) (database.Identity, error) {
	id := database.Identity{Engine: Engine}
	var inRecovery bool
	var walFile, walLevel, archiveMode string
	err := s.conn.QueryRow(ctx, `SELECT current_setting('server_version'), system_identifier::text, pg_is_in_recovery(),
		current_setting('data_directory'), current_setting('wal_level'), current_setting('archive_mode'),
		(SELECT rolname FROM pg_roles WHERE oid = 10)
		FROM pg_control_system()`).Scan(&id.Version, &id.SystemID, &inRecovery, &id.DataDir, &walLevel, &archiveMode, &id.BootstrapRole)
	if err != nil {
		return id, fmt.Errorf("identifying the database server: %w", err)
	}
	id.Version, _, _ = strings.Cut(id.Version, " ")
	if inRecovery {
		return id, errors.New("the server is in recovery (a standby): back up its primary")
	}
	if err := s.conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_current_wal_lsn())").Scan(&walFile); err != nil {
		return id, err
	}
	tli, err := strconv.ParseUint(walFile[:8], 16, 32)
	if err != nil {
		return id, fmt.Errorf("WAL file name %q: %w", walFile, err)
	}
	id.Timeline = uint32(tli)
	rows, err := s.conn.Query(ctx, "SELECT oid::int8, datname FROM pg_database ORDER BY oid")
	if err != nil {
		return id, err
	}
	id.Databases, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (database.Database, error) {
		var d database.Database
		var oid int64
		err := r.Scan(&oid, &d.Name)
		d.OID = uint32(oid)
		return d, err
	})
	if err != nil {
		return id, err
	}
	rows, err = s.conn.Query(ctx, "SELECT oid::int8, spcname, pg_tablespace_location(oid) FROM pg_tablespace ORDER BY oid")
	if err != nil {
		return id, err
	}
	id.DataFiles, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (database.DataFile, error) {
		var f database.DataFile
		var oid int64
		err := r.Scan(&oid, &f.Name, &f.Location)
		f.OID = uint32(oid)
		if f.Location == "" {
			f.Location = id.DataDir
		}
		return f, err
	})
	if err != nil {
		return id, err
	}
	switch {
	case walLevel == "minimal":
		id.LogRefusal = "wal_level is minimal, so the server writes too little WAL to archive: set wal_level to replica and restart it"
	case archiveMode == "off":
		id.LogRefusal = "archive_mode is off, so the server archives no WAL: set archive_mode to on, archive_command to Haven's, and restart it"
	}
	return id, nil
}
