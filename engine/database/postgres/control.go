package postgres

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/havenbackup/terraform-provider-haven/internal/pgembed"
)

// SwitchWAL closes the current WAL segment, so that the archiver hands it
// on, and names it; "" when nothing was written since the last switch.
func (s *Server) SwitchWAL(ctx context.Context) (string, error) {
	var closed string
	err := s.conn.QueryRow(ctx, `SELECT CASE WHEN pg_current_wal_lsn() = l THEN '' ELSE pg_walfile_name(l) END
		FROM (SELECT pg_switch_wal() AS l) s`).Scan(&closed)
	if err != nil {
		return "", fmt.Errorf("switching to a new WAL segment: %w", err)
	}
	return closed, nil
}

// TerminateConnections ends every other session with the cluster (a
// restore over it is about to stop it).
func (s *Server) TerminateConnections(ctx context.Context) error {
	_, err := s.conn.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'`)
	if err != nil {
		return fmt.Errorf("terminating the cluster's connections: %w", err)
	}
	return nil
}

// Binaries finds the programs of the major version of the cluster in
// dataDir (its PG_VERSION).
func Binaries(dataDir string) (pgembed.Binaries, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return pgembed.Binaries{}, err
	}
	major, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return pgembed.Binaries{}, fmt.Errorf("%s/PG_VERSION: %w", dataDir, err)
	}
	return pgembed.FindBinariesFor(major)
}

// StopCluster stops the cluster in dataDir with a fast shutdown (open
// transactions are rolled back, what was committed stays), as its owner.
func StopCluster(ctx context.Context, dataDir string) error {
	bin, err := Binaries(dataDir)
	if err != nil {
		return err
	}
	uid, gid, err := fileOwner(dataDir)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin.Dir, "pg_ctl"), "stop", "-D", dataDir, "-m", "fast", "-w", "-t", "300")
	runAs(cmd, uid, gid)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("stopping the cluster in %s: %v: %s", dataDir, err, strings.TrimSpace(string(out)))
	}
	return nil
}
