package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/database"
	"github.com/havenbackup/terraform-provider-haven/engine/database/postgres"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/pgembed"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// connect opens a session with the job's database server.
func connectDatabase(ctx context.Context, w *api.DatabaseWork) (*postgres.Server, error) {
	if w.Engine != api.EnginePostgreSQL {
		return nil, fmt.Errorf("database engine %q is not served by this agent", w.Engine)
	}
	conn := w.Conn
	if w.Password != "" {
		conn += " password=" + quoteConnValue(w.Password)
	}
	return postgres.Connect(ctx, conn)
}

func quoteConnValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// detected is what a job tells the server about the database server.
func detected(id database.Identity) *api.DatabaseDetected {
	d := &api.DatabaseDetected{Version: id.Version, SystemID: id.SystemID, Timeline: id.Timeline, DataDir: id.DataDir,
		LogRefusal: id.LogRefusal, CheckedAt: time.Now().UTC()}
	for _, db := range id.Databases {
		d.Databases = append(d.Databases, db.Name)
	}
	return d
}

// databaseBackup takes a full, differential or log backup of the job's
// database server.
func (a *agent) databaseBackup(ctx context.Context, w *api.AgentWork, rep *reporter) (api.AgentComplete, error) {
	dw := w.Database
	remote, err := a.remoteFor(ctx, w)
	if err != nil {
		return api.AgentComplete{}, err
	}
	srv, err := connectDatabase(ctx, dw)
	if err != nil {
		return api.AgentComplete{}, err
	}
	defer srv.Close(context.WithoutCancel(ctx))
	id, err := srv.Identify(ctx)
	if err != nil {
		return api.AgentComplete{}, err
	}
	spool, err := a.walSpool(id)
	if err != nil {
		return api.AgentComplete{}, err
	}
	if dw.Kind == api.BackupLog {
		return a.logBackup(ctx, w, remote, srv, id, spool)
	}
	req := database.BackupRequest{Kind: dw.Kind, LastFullFailed: dw.LastFullFailed, Label: w.JobID, Warn: rep.warn,
		Progress: func(files, bytes int64) { rep.progress(ctx, api.JobProgress{FilesDone: files, BytesDone: bytes}) }}
	if dw.BaseRoot != "" {
		root, err := format.ParseID(dw.BaseRoot)
		if err != nil {
			return api.AgentComplete{}, err
		}
		m, err := postgres.ReadMeta(ctx, remote, root)
		if err != nil {
			return api.AgentComplete{}, fmt.Errorf("reading the base full: %w", err)
		}
		req.Base = &database.Base{Root: root, Meta: &m.Meta}
	}
	if req.BackupHistory, err = filepath.Glob(filepath.Join(spool, "*.backup")); err != nil {
		return api.AgentComplete{}, err
	}
	root, m, err := srv.Backup(ctx, remote, remote, req)
	if err != nil {
		return api.AgentComplete{}, err
	}
	if err := remote.Flush(ctx); err != nil {
		return api.AgentComplete{}, err
	}
	return api.AgentComplete{Root: root.String(),
		Progress: api.JobProgress{FilesDone: m.Files, BytesDone: m.Bytes, FilesTotal: m.Files, BytesTotal: m.Bytes},
		Database: &api.DatabaseResult{Kind: m.Kind, Detected: detected(id), Point: &api.DatabasePoint{Converted: m.Converted,
			SystemID: m.SystemID, Timeline: m.Timeline, StartLSN: m.StartLSN, EndLSN: m.StopLSN}}}, nil
}

// walSegment matches the names of WAL segment files.
var walSegment = regexp.MustCompile(`^[0-9A-F]{24}$`)

// logBackup stores the WAL segments the spool holds after the last one
// Haven holds, and drops those Haven holds from the spool. It first asks
// the server to switch to a new segment, and waits a while for the
// archiver to push the one it closed, so that the log point reaches to
// now.
func (a *agent) logBackup(ctx context.Context, w *api.AgentWork, remote *remote, srv *postgres.Server, id database.Identity, spool string) (api.AgentComplete, error) {
	dw := w.Database
	if id.LogRefusal != "" {
		return api.AgentComplete{}, fmt.Errorf("log backups are refused: %s", id.LogRefusal)
	}
	closed, err := srv.SwitchWAL(ctx)
	if err != nil {
		return api.AgentComplete{}, err
	}
	deadline := time.Now().Add(logArchiveWait)
	for closed != "" && time.Now().Before(deadline) {
		if _, err := os.Stat(filepath.Join(spool, closed)); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return api.AgentComplete{}, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	entries, err := os.ReadDir(spool)
	if err != nil {
		return api.AgentComplete{}, err
	}
	var segments []string
	for _, e := range entries {
		name := e.Name()
		if !walSegment.MatchString(name) {
			continue
		}
		if dw.HeldThrough != "" && name <= dw.HeldThrough {
			// Haven holds it: the spool lets it go.
			if err := os.Remove(filepath.Join(spool, name)); err != nil {
				return api.AgentComplete{}, err
			}
			continue
		}
		segments = append(segments, filepath.Join(spool, name))
	}
	if len(segments) == 0 {
		if closed == "" {
			// The cluster wrote nothing since the last switch.
			return api.AgentComplete{Skipped: "the cluster wrote no WAL since the last log backup"}, nil
		}
		return api.AgentComplete{}, fmt.Errorf("WAL segment %s was not archived within %s: check the server's archive_command (haven agent wal-push)", closed, logArchiveWait)
	}
	slices.Sort(segments)
	bin, err := postgres.Binaries(id.DataDir)
	if err != nil {
		return api.AgentComplete{}, err
	}
	root, m, err := postgres.CaptureLog(ctx, remote, remote, postgres.LogRequest{Segments: segments, SystemID: id.SystemID,
		WALDump: filepath.Join(bin.Dir, "pg_waldump")})
	if err != nil {
		return api.AgentComplete{}, err
	}
	if err := remote.Flush(ctx); err != nil {
		return api.AgentComplete{}, err
	}
	res := logResult(m)
	res.Detected = detected(id)
	n := int64(len(m.Segments))
	return api.AgentComplete{Root: root.String(), Database: res,
		Progress: api.JobProgress{FilesDone: n, FilesTotal: n, BytesDone: m.Bytes, BytesTotal: m.Bytes}}, nil
}

// logArchiveWait bounds how long a log backup waits for the segment it
// closed to reach the spool.
const logArchiveWait = 30 * time.Second

// databaseRestore restores a database point (with the logs it replays)
// into a data directory, stopping the cluster first when it is the
// original's. The cluster is left stopped, with its recovery settings
// written: its next start recovers to the target and ends in the end
// state asked for.
func (a *agent) databaseRestore(ctx context.Context, w *api.AgentWork, rep *reporter) (api.AgentComplete, error) {
	dw := w.Database
	if dw.Restore == nil {
		return api.AgentComplete{}, errors.New("the server sent a database restore without its settings")
	}
	root, remote, err := a.pointFor(ctx, w)
	if err != nil {
		return api.AgentComplete{}, err
	}
	if dw.Verify {
		return verifyPoint(ctx, remote, root)
	}
	dataDir := filepath.Clean(dw.DataDir)
	if err := a.writable.Check(dataDir); err != nil {
		return api.AgentComplete{}, err
	}
	if dw.RollForward {
		return rollForward(ctx, dw, remote, dataDir)
	}
	// Files land under <parent>/haven-restore/<point>/<job> first, on the
	// data directory's file system, then the directory is renamed into
	// place.
	work := filepath.Join(filepath.Dir(dataDir), "haven-restore", root.Short(), dw.StagingID)
	if err := os.MkdirAll(filepath.Dir(work), 0o711); err != nil {
		return api.AgentComplete{}, err
	}
	owner := os.Geteuid() == 0
	var tail []string
	if dw.Original {
		if err := stopOriginal(ctx, dw, dataDir); err != nil {
			return api.AgentComplete{}, err
		}
		if dw.Kind == api.BackupLog {
			if tail, err = a.tailLog(ctx, w, remote, dataDir); err != nil {
				return api.AgentComplete{}, fmt.Errorf("tail-log backup: %w", err)
			}
			if !dw.ReplayTail {
				tail = nil
			}
		}
	}
	rec := recoveryOf(dw.Restore)
	if len(dw.LogRoots) > 0 || len(tail) > 0 {
		walDir := work + "-wal"
		if err := restoreLogs(ctx, remote, dw.LogRoots, walDir, owner); err != nil {
			return api.AgentComplete{}, err
		}
		if err := postgres.AddLogs(walDir, tail, owner); err != nil {
			return api.AgentComplete{}, fmt.Errorf("adding the tail of the log: %w", err)
		}
		rec.RestoreCommand = "cp " + walDir + "/%f %p"
	}
	st, err := postgres.Restore(ctx, remote, root, postgres.RestoreOptions{DataDir: dataDir, Overwrite: dw.Restore.Overwrite,
		Staging: work, Recovery: rec, Owner: owner, Warn: rep.warn, Attempt: w.JobID})
	var fe *postgres.FieldError
	if errors.As(err, &fe) {
		return api.AgentComplete{}, fmt.Errorf("database.%s: %s", fe.Field, fe.Reason)
	}
	if err != nil {
		return api.AgentComplete{}, err
	}
	return api.AgentComplete{Progress: api.JobProgress{FilesDone: st.Files, BytesDone: st.Bytes, FilesTotal: st.Files, BytesTotal: st.Bytes}}, nil
}

// stopOriginal ends the connections to the original cluster and stops it
// (fast shutdown, as its owner), so that its data directory can be
// replaced. A cluster already down is left as it is.
func stopOriginal(ctx context.Context, dw *api.DatabaseWork, dataDir string) error {
	if _, alive := postgres.RunningPostmaster(dataDir); !alive {
		return nil // down, crashed, or gone with its files
	}
	srv, err := connectDatabase(ctx, dw)
	if err != nil {
		return err
	}
	err = srv.TerminateConnections(ctx)
	srv.Close(context.WithoutCancel(ctx))
	if err != nil {
		return err
	}
	return postgres.StopCluster(ctx, dataDir)
}

// tailLog backs up the WAL of the original cluster Haven does not hold
// yet (what its archive_command put in the spool since the last log
// backup, then what pg_wal holds after that, the last segment partial),
// commits it as a log point of the set, and returns the files, which the
// restore may replay. It reads files only, so it works whether or not the
// cluster runs or can start. With nothing to take it returns none.
func (a *agent) tailLog(ctx context.Context, w *api.AgentWork, remote *remote, dataDir string) ([]string, error) {
	dw := w.Database
	systemID := dw.SystemID
	if systemID == "" {
		var err error
		if systemID, err = controlSystemID(dataDir); err != nil {
			return nil, err
		}
	}
	var segments []string
	spool := walSpoolDir(a.cfg.StateDir, systemID)
	if entries, err := os.ReadDir(spool); err == nil {
		for _, e := range entries {
			if walSegment.MatchString(e.Name()) && e.Name() > dw.HeldThrough {
				segments = append(segments, filepath.Join(spool, e.Name()))
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	slices.Sort(segments)
	after := dw.HeldThrough
	if len(segments) > 0 {
		after = filepath.Base(segments[len(segments)-1])
	}
	if after == "" {
		// Haven holds no log of it yet: pg_wal from its oldest segment.
		entries, err := os.ReadDir(filepath.Join(dataDir, "pg_wal"))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if walSegment.MatchString(e.Name()) {
				segments = append(segments, filepath.Join(dataDir, "pg_wal", e.Name()))
				after = e.Name()
				break
			}
		}
	}
	if after == "" {
		return nil, nil
	}
	more, err := postgres.TailSegments(dataDir, after)
	if err != nil {
		return nil, err
	}
	segments = append(segments, more...)
	if len(segments) == 0 {
		return nil, nil
	}
	var major int
	if _, err := fmt.Sscanf(dw.Version, "%d", &major); err != nil {
		return nil, fmt.Errorf("the server's version %q (detected at its last backup): %w", dw.Version, err)
	}
	bin, err := pgembed.FindBinariesFor(major)
	if err != nil {
		return nil, err
	}
	root, m, err := postgres.CaptureLog(ctx, remote, remote, postgres.LogRequest{Segments: segments, Partial: len(more) > 0,
		SystemID: systemID, WALDump: filepath.Join(bin.Dir, "pg_waldump")})
	if err != nil {
		return nil, err
	}
	if err := remote.Flush(ctx); err != nil {
		return nil, err
	}
	res := logResult(m)
	n := int64(len(m.Segments))
	var tailed api.AgentTailed
	if err := a.client.Do(ctx, http.MethodPost, "/v1/agent/jobs/"+w.JobID+"/tail", nil,
		api.AgentTail{Root: root.String(), Database: res, Progress: api.JobProgress{FilesDone: n, FilesTotal: n, BytesDone: m.Bytes, BytesTotal: m.Bytes}}, &tailed); err != nil {
		return nil, err
	}
	return segments[:len(m.Segments)], nil
}

// logResult is what a log point records, from what CaptureLog found.
func logResult(m *postgres.LogMeta) *api.DatabaseResult {
	res := &api.DatabaseResult{Kind: api.BackupLog, Point: &api.DatabasePoint{SystemID: m.SystemID,
		Timeline: m.Timeline, StartLSN: m.StartLSN, EndLSN: m.EndLSN, LastSegment: m.Segments[len(m.Segments)-1], Partial: m.Partial}}
	for _, rp := range m.RestorePoints {
		res.Point.RestorePoints = append(res.Point.RestorePoints, api.DatabaseRestorePoint{Name: rp.Name, LSN: rp.LSN, Time: rp.Time})
	}
	if !m.FirstTime.IsZero() {
		first, last := m.FirstTime.UTC(), m.LastTime.UTC()
		res.LogStart, res.LogEnd = &first, &last
	}
	return res
}

// verifyPoint restores a point into a scratch cluster under the host's
// temporary directory, starts and checks it (postgres.Verify), and
// reports the result for the point.
func verifyPoint(ctx context.Context, remote *remote, root format.ID) (api.AgentComplete, error) {
	scratch := os.TempDir()
	if len(scratch) > 40 {
		// The scratch cluster's socket lives in it, within the socket
		// path limit.
		scratch = "/tmp"
	}
	v, err := postgres.Verify(ctx, remote, root, postgres.VerifyOptions{Scratch: filepath.Join(scratch, "haven-verify")})
	if err != nil {
		return api.AgentComplete{}, err
	}
	res := &api.DatabaseVerification{OK: v.Passed, Problem: v.Problem, Tables: len(v.Tables),
		Seconds: v.Finished.Sub(v.Started).Seconds(), At: v.Finished.UTC()}
	for _, t := range v.Tables {
		res.Rows += t.Rows
	}
	return api.AgentComplete{Database: &api.DatabaseResult{Point: &api.DatabasePoint{Verified: res}},
		Progress: api.JobProgress{FilesDone: int64(res.Tables), FilesTotal: int64(res.Tables)}}, nil
}

// recoveryOf is how a restored cluster recovers, as the request says.
func recoveryOf(r *api.DatabaseRestore) postgres.Recovery {
	rec := postgres.Recovery{EndState: r.EndState, TargetName: r.RestorePoint, TargetLSN: r.LSN, TargetXID: r.XID, Port: r.Port}
	if r.PointInTime != nil {
		rec.TargetTime = *r.PointInTime
	}
	return rec
}

// restoreLogs writes the WAL of log points into an archive directory a
// restore_command copies from.
func restoreLogs(ctx context.Context, remote *remote, logRoots []string, walDir string, owner bool) error {
	var roots []format.ID
	for _, s := range logRoots {
		id, err := format.ParseID(s)
		if err != nil {
			return err
		}
		roots = append(roots, id)
	}
	if err := postgres.RestoreLogs(ctx, remote, roots, walDir, owner); err != nil {
		return fmt.Errorf("restoring the logs: %w", err)
	}
	return nil
}

// rollForward gives a standby or no_recovery restore in dataDir the set's
// logs and a new recovery target and end state; it is stopped first if
// it runs, and recovers on to them at its next start.
func rollForward(ctx context.Context, dw *api.DatabaseWork, remote *remote, dataDir string) (api.AgentComplete, error) {
	if _, err := os.Stat(filepath.Join(dataDir, "standby.signal")); err != nil {
		return api.AgentComplete{}, fmt.Errorf("database.roll_forward: %s holds no standby or no_recovery restore (no standby.signal): %w", dataDir, err)
	}
	if _, alive := postgres.RunningPostmaster(dataDir); alive {
		if err := postgres.StopCluster(ctx, dataDir); err != nil {
			return api.AgentComplete{}, err
		}
	}
	walDir := filepath.Join(filepath.Dir(dataDir), "haven-restore", "roll-forward", dw.StagingID+"-wal")
	if err := os.MkdirAll(filepath.Dir(walDir), 0o711); err != nil {
		return api.AgentComplete{}, err
	}
	if err := restoreLogs(ctx, remote, dw.LogRoots, walDir, os.Geteuid() == 0); err != nil {
		return api.AgentComplete{}, err
	}
	rec := recoveryOf(dw.Restore)
	rec.RestoreCommand = "cp " + walDir + "/%f %p"
	if err := postgres.Reconfigure(dataDir, rec); err != nil {
		return api.AgentComplete{}, err
	}
	n := int64(len(dw.LogRoots))
	return api.AgentComplete{Progress: api.JobProgress{FilesDone: n, FilesTotal: n}}, nil
}
