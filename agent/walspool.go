package agent

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/havenbackup/terraform-provider-haven/engine/database"
)

// The WAL spool. A cluster's archive_command (haven agent wal-push %p)
// hands each WAL segment to the agent of its host by putting it in the
// spool, <state-dir>/wal/<system id>/; the cluster may recycle the segment
// once the command succeeded. Log backups store what the spool holds and
// drop from it what Haven holds. The spool directory of a cluster is
// made by the agent at the cluster's first backup, owned by the
// cluster's owner (who runs archive_command), and nobody else may write
// there.

// walSpoolDir is the spool of one cluster under a state directory.
func walSpoolDir(stateDir, systemID string) string {
	return filepath.Join(stateDir, "wal", systemID)
}

// walSpool makes (or checks) the spool of the cluster a job is about.
func (a *agent) walSpool(id database.Identity) (string, error) {
	dir := walSpoolDir(a.cfg.StateDir, id.SystemID)
	uid, gid, err := ownerOf(id.DataDir)
	if err != nil {
		return "", fmt.Errorf("the data directory %s: %w", id.DataDir, err)
	}
	// The cluster's owner passes through the state directory (whose
	// credential file stays its owner's alone) to its own spool.
	for _, d := range []string{a.cfg.StateDir, filepath.Dir(dir)} {
		if err := os.MkdirAll(d, 0o711); err != nil {
			return "", err
		}
		if err := os.Chmod(d, 0o711); err != nil {
			return "", err
		}
	}
	if err := os.Mkdir(dir, 0o700); err == nil {
		if err := chown(dir, uid, gid); err != nil {
			os.Remove(dir)
			return "", err
		}
	} else if !errors.Is(err, os.ErrExist) {
		return "", err
	}
	if got, _, err := ownerOf(dir); err != nil {
		return "", err
	} else if got != uid {
		return "", fmt.Errorf("the WAL spool %s is owned by user %d, not by the cluster's owner %d: remove it and run the backup again", dir, got, uid)
	}
	return dir, nil
}

// WALPush puts one WAL segment (or history or backup history file) into
// the spool of the cluster whose data directory is dataDir: what
// `haven agent wal-push %p` does as a cluster's archive_command, with
// PostgreSQL's working directory, the data directory. It is safe under
// concurrent and repeated calls: the file is written under a name of its
// own, synced, and linked into place, which fails if the name exists;
// an existing file with the same content is a repeated push and
// succeeds, one with other content is an error (PostgreSQL keeps the
// segment and retries, and the log says why).
func WALPush(stateDir, dataDir, path string) error {
	systemID, err := controlSystemID(dataDir)
	if err != nil {
		return err
	}
	spool := walSpoolDir(stateDir, systemID)
	if _, err := os.Stat(spool); err != nil {
		return fmt.Errorf("the WAL spool %s is not there yet: the agent makes it at the cluster's first backup (%v)", spool, err)
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(dataDir, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dst := filepath.Join(spool, filepath.Base(path))
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	tmp := dst + ".tmp-" + strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(suffix[:])
	if err := writeSynced(tmp, data); err != nil {
		os.Remove(tmp)
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, dst); err != nil {
		if !errors.Is(err, os.ErrExist) {
			return err
		}
		have, err := os.ReadFile(dst)
		if err != nil {
			return err
		}
		if !bytes.Equal(have, data) {
			return fmt.Errorf("%s is already in the spool with other content: not replaced", filepath.Base(path))
		}
		return nil
	}
	return syncDir(spool)
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// controlSystemID reads the system identifier of the cluster in dataDir
// from its control file, whose first field it is (a uint64 in the host's
// byte order).
func controlSystemID(dataDir string) (string, error) {
	f, err := os.Open(filepath.Join(dataDir, "global", "pg_control"))
	if err != nil {
		return "", fmt.Errorf("reading the cluster's control file (wal-push runs in the data directory, as archive_command does): %w", err)
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return "", err
	}
	return strconv.FormatUint(binary.NativeEndian.Uint64(b[:]), 10), nil
}
