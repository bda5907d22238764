package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
)

// End states of a restored cluster (SQL Server's WITH RECOVERY, STANDBY
// and NORECOVERY).
const (
	// EndRecovery: promoted and open for writes.
	EndRecovery = "recovery"
	// EndStandby: a read-only hot standby; more WAL can be applied later.
	EndStandby = "standby"
	// EndNoRecovery: held in recovery and closed to connections.
	EndNoRecovery = "no_recovery"
)

// Recovery is what a restored cluster does when it starts.
type Recovery struct {
	// EndState is EndRecovery (the default), EndStandby or EndNoRecovery.
	EndState string
	// RestoreCommand fetches archived WAL beyond what the point carries
	// (PostgreSQL's restore_command, with %f and %p). Empty: the point's
	// own WAL only, which makes it consistent and no more.
	RestoreCommand string
	// At most one target; none replays all the WAL there is.
	TargetTime time.Time
	TargetName string // a named restore point
	TargetLSN  string
	TargetXID  string
	// Port, if set, is the port the restored cluster listens on (beside
	// the original, on the same host).
	Port int
}

// targets counts the targets set.
func (r Recovery) targets() int {
	n := 0
	for _, set := range []bool{!r.TargetTime.IsZero(), r.TargetName != "", r.TargetLSN != "", r.TargetXID != ""} {
		if set {
			n++
		}
	}
	return n
}

func (r Recovery) hasTarget() bool { return r.targets() > 0 }

// RestoreOptions configure a restore of a PostgreSQL point.
type RestoreOptions struct {
	// DataDir is where the restored data directory ends up. It must not
	// exist, or be empty, unless Overwrite is set; a cluster running
	// there must have been stopped first.
	DataDir   string
	Overwrite bool
	// Staging is where the files land first, on DataDir's filesystem
	// (<target>/<point>/<restore job>); it is removed once the data
	// directory is in place.
	Staging  string
	Recovery Recovery
	// Owner restores ownership (as root: the cluster's owner).
	Owner bool
	Warn  func(path string, err error)
	// Attempt names the restore job: the data directory it places is
	// marked with it (restoreMark), so that a retry of the same job may
	// replace what an interrupted attempt already put in place, and
	// nothing else.
	Attempt string
}

// restoreMark is the file a restore leaves in the data directory it made,
// holding its job's id.
const restoreMark = "haven_restore_job"

// RestoreStats summarise a restore.
type RestoreStats struct {
	Files, Bytes int64
	// Replaced is where the data directory that was overwritten went
	// while the new one was put in place (removed afterwards).
	Replaced string
}

// Restore rebuilds a data directory from a point: its files and its WAL
// land under Staging, backup_label (and the tablespace map) and the
// recovery settings are written, and the directory is renamed into place.
// Free space is checked before anything is written.
func Restore(ctx context.Context, src files.Source, root format.ID, opts RestoreOptions) (RestoreStats, error) {
	var st RestoreStats
	parts, r, err := readParts(ctx, src, root)
	if err != nil {
		return st, err
	}
	var m Meta
	if err := json.Unmarshal(r.Meta, &m); err != nil {
		return st, fmt.Errorf("point %s: %w", root.Short(), err)
	}
	if err := checkRecovery(opts.Recovery); err != nil {
		return st, err
	}
	if opts.DataDir == "" || !filepath.IsAbs(opts.DataDir) {
		return st, fieldError("data_dir", "must be an absolute path")
	}
	if opts.Staging == "" || !filepath.IsAbs(opts.Staging) {
		return st, fieldError("staging", "must be an absolute path")
	}
	for _, f := range m.DataFiles {
		if f.Location != m.DataDir && opts.DataDir != m.DataDir {
			return st, fieldError("data_dir", fmt.Sprintf("the point has tablespace %q at %s, outside its data directory; it restores only to its original data directory %s", f.Name, f.Location, m.DataDir))
		}
	}
	overwrite := opts.Overwrite
	if mark, err := os.ReadFile(filepath.Join(opts.DataDir, restoreMark)); err == nil && opts.Attempt != "" && string(mark) == opts.Attempt {
		overwrite = true // an earlier attempt of this job put it there
	}
	if err := checkTarget(opts.DataDir, overwrite); err != nil {
		return st, err
	}
	if err := os.MkdirAll(opts.Staging, 0o700); err != nil {
		return st, err
	}
	if err := checkSpace(opts.Staging, m.Bytes+int64(len(m.WALSegments))*16<<20); err != nil {
		return st, err
	}
	for _, p := range parts {
		fst, err := files.Restore(ctx, src, p.Manifest, files.RestoreOptions{Target: opts.Staging, Owner: opts.Owner, Warn: opts.Warn})
		if err != nil {
			return st, fmt.Errorf("restoring the %s files: %w", p.Path, err)
		}
		if len(fst.Failed) > 0 {
			return st, fmt.Errorf("restoring the %s files: %d could not be written, the first %s", p.Path, len(fst.Failed), fst.Failed[0])
		}
		st.Files, st.Bytes = st.Files+fst.Files, st.Bytes+fst.Bytes
	}
	staged := filepath.Join(opts.Staging, m.DataDir)
	if err := writeControlFiles(staged, &m, opts.Recovery); err != nil {
		return st, err
	}
	if err := os.Chmod(staged, 0o700); err != nil {
		return st, err
	}
	if opts.Attempt != "" {
		if err := os.WriteFile(filepath.Join(staged, restoreMark), []byte(opts.Attempt), 0o600); err != nil {
			return st, err
		}
	}
	if st.Replaced, err = place(staged, opts.DataDir); err != nil {
		return st, err
	}
	if st.Replaced != "" {
		if err := os.RemoveAll(st.Replaced); err != nil {
			return st, fmt.Errorf("removing the replaced data directory %s: %w", st.Replaced, err)
		}
	}
	return st, os.RemoveAll(opts.Staging)
}

// FieldError is a restore option that cannot work, naming the option.
type FieldError struct{ Field, Reason string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldError(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

func checkRecovery(r Recovery) error {
	switch r.EndState {
	case "", EndRecovery, EndStandby, EndNoRecovery:
	default:
		return fieldError("end_state", fmt.Sprintf("%q is not one of recovery, standby, no_recovery", r.EndState))
	}
	n := r.targets()
	if n > 1 {
		return fieldError("target", "give one of a time, a restore point name, an LSN or a transaction id")
	}
	if r.TargetLSN != "" {
		if _, err := parseLSN(r.TargetLSN); err != nil {
			return fieldError("target_lsn", err.Error())
		}
	}
	if r.TargetXID != "" {
		if _, err := strconv.ParseUint(r.TargetXID, 10, 64); err != nil {
			return fieldError("target_xid", "must be a transaction id (a number)")
		}
	}
	if n > 0 && r.RestoreCommand == "" {
		return fieldError("target", "a point-in-time target needs the archived WAL (a restore command)")
	}
	return nil
}

// checkTarget refuses a data directory that holds anything, unless told to
// overwrite it, and one a postmaster runs in.
func checkTarget(dir string, overwrite bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fieldError("data_dir", err.Error())
	}
	if len(entries) == 0 {
		return nil
	}
	if !overwrite {
		return fieldError("data_dir", dir+" is not empty: restore elsewhere, or set overwrite to replace it")
	}
	if pid, ok := RunningPostmaster(dir); ok {
		return fieldError("data_dir", fmt.Sprintf("a postmaster (pid %d) runs in %s: stop the cluster first", pid, dir))
	}
	return nil
}

// RunningPostmaster reads postmaster.pid and tells whether its process is
// alive.
func RunningPostmaster(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, processAlive(pid)
}

// checkSpace refuses a restore the staging filesystem has no room for.
func checkSpace(dir string, need int64) error {
	free, err := freeBytes(dir)
	if err != nil {
		return err
	}
	if free < need {
		return fieldError("data_dir", fmt.Sprintf("%s has %d bytes free, the point needs %d", dir, free, need))
	}
	return nil
}

// writeControlFiles writes what tells the restored cluster where replay
// begins (backup_label, tablespace_map) and how recovery ends.
func writeControlFiles(dir string, m *Meta, r Recovery) error {
	write := func(name, text string) error {
		return os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600)
	}
	if err := write("backup_label", m.BackupLabel); err != nil {
		return err
	}
	if m.TablespaceMap != "" {
		if err := write("tablespace_map", m.TablespaceMap); err != nil {
			return err
		}
	}
	return Reconfigure(dir, r)
}

// Markers around the settings Haven writes into postgresql.auto.conf, so
// a later Reconfigure replaces them.
const (
	confBegin = "# Haven recovery settings: begin"
	confEnd   = "# Haven recovery settings: end"
)

// Reconfigure sets how a restored cluster's recovery ends: at its first
// start, or later to roll a standby or held restore forward to a later
// target, or to promote it (EndRecovery). The cluster must be stopped;
// it applies the settings when next started.
func Reconfigure(dataDir string, r Recovery) error {
	if err := checkRecovery(r); err != nil {
		return err
	}
	var conf []string
	set := func(k, v string) { conf = append(conf, fmt.Sprintf("%s = '%s'", k, strings.ReplaceAll(v, "'", "''"))) }
	if r.RestoreCommand != "" {
		set("restore_command", r.RestoreCommand)
	}
	if r.Port != 0 {
		set("port", strconv.Itoa(r.Port))
	}
	switch {
	case !r.TargetTime.IsZero():
		set("recovery_target_time", r.TargetTime.UTC().Format("2006-01-02 15:04:05.999999-07:00"))
	case r.TargetName != "":
		set("recovery_target_name", r.TargetName)
	case r.TargetLSN != "":
		set("recovery_target_lsn", r.TargetLSN)
	case r.TargetXID != "":
		set("recovery_target_xid", r.TargetXID)
	}
	var signal string
	switch r.EndState {
	case EndStandby, EndNoRecovery:
		signal = "standby.signal"
		set("hot_standby", strconv.FormatBool(r.EndState == EndStandby))
		if r.hasTarget() {
			// Stop at the target and wait there, to be rolled forward to
			// a later one or promoted.
			set("recovery_target_action", "pause")
		}
	default:
		if r.RestoreCommand != "" {
			// Archive recovery; without a restore command, the point's own
			// WAL in pg_wal is replayed as after a crash, from backup_label.
			signal = "recovery.signal"
			set("recovery_target_action", "promote")
		}
	}
	auto := filepath.Join(dataDir, "postgresql.auto.conf")
	old, err := os.ReadFile(auto)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	text := withoutBlock(string(old))
	if len(conf) > 0 {
		text += confBegin + "\n" + strings.Join(conf, "\n") + "\n" + confEnd + "\n"
	}
	if err := os.WriteFile(auto, []byte(text), 0o600); err != nil {
		return err
	}
	for _, name := range []string{"recovery.signal", "standby.signal"} {
		if err := os.Remove(filepath.Join(dataDir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if signal != "" {
		return os.WriteFile(filepath.Join(dataDir, signal), nil, 0o600)
	}
	return nil
}

// withoutBlock is postgresql.auto.conf without Haven's settings.
func withoutBlock(text string) string {
	var keep []string
	in := false
	for _, line := range strings.SplitAfter(text, "\n") {
		switch strings.TrimSpace(line) {
		case confBegin:
			in = true
			continue
		case confEnd:
			in = false
			continue
		}
		if !in && line != "" {
			keep = append(keep, line)
		}
	}
	out := strings.Join(keep, "")
	if out != "" && !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	return out
}

// place renames the staged data directory to dir. A directory already
// there is renamed aside first and its new name returned; the caller
// removes it once the new one is in place.
func place(staged, dir string) (replaced string, err error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	if entries, err := os.ReadDir(dir); err == nil {
		if len(entries) == 0 {
			if err := os.Remove(dir); err != nil {
				return "", err
			}
		} else {
			replaced = fmt.Sprintf("%s.haven-replaced-%d", dir, time.Now().UnixNano())
			if err := os.Rename(dir, replaced); err != nil {
				return "", err
			}
		}
	}
	if err := os.Rename(staged, dir); err != nil {
		if errors.Is(err, syscall.EXDEV) {
			err = fieldError("staging", fmt.Sprintf("%s is not on the filesystem of %s", staged, dir))
		}
		if replaced != "" {
			os.Rename(replaced, dir)
		}
		return "", err
	}
	return replaced, nil
}
