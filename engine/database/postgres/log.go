package postgres

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/database"
	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
)

// LogManifestKind is the root kind of a PostgreSQL log point: one entry,
// the files manifest of its WAL segments.
const LogManifestKind = "postgresql-log"

// RestorePoint is a named restore point (pg_create_restore_point), the
// equivalent of a marked transaction.
type RestorePoint struct {
	Name string `json:"name"`
	LSN  string `json:"lsn"`
	// Time is the last transaction end before it (the record has no
	// time of its own that pg_waldump shows).
	Time time.Time `json:"time,omitzero"`
}

// LogMeta is a log point's root meta: what its WAL covers.
type LogMeta struct {
	Engine   string `json:"engine"`
	SystemID string `json:"system_id"`
	Kind     string `json:"kind"` // database.KindLog
	// Segments are the WAL files it holds, in order; Partial says the
	// last one is not complete (a tail-log backup of a cluster's pg_wal).
	Segments []string `json:"segments"`
	Partial  bool     `json:"partial,omitempty"`
	Timeline uint32   `json:"timeline"`
	// StartLSN and EndLSN are its first and last records; FirstTime and
	// LastTime the first and last transaction ends among them, the span
	// of instants a point-in-time restore can stop at.
	StartLSN      string         `json:"start_lsn"`
	EndLSN        string         `json:"end_lsn"`
	FirstTime     time.Time      `json:"first_time,omitzero"`
	LastTime      time.Time      `json:"last_time,omitzero"`
	RestorePoints []RestorePoint `json:"restore_points,omitempty"`
	Bytes         int64          `json:"bytes"`
}

// LogRequest is one log backup: WAL segment files, consecutive, on one
// timeline.
type LogRequest struct {
	Segments []string // paths
	Partial  bool
	SystemID string
	// WALDump is the pg_waldump binary of the server's version.
	WALDump string
}

// CaptureLog stores WAL segments as a log point and records what they
// cover, read with pg_waldump: the LSN range, the span of transaction end
// times and the named restore points.
func CaptureLog(ctx context.Context, sink repo.Sink, src repo.Source, req LogRequest) (format.ID, *LogMeta, error) {
	if len(req.Segments) == 0 {
		return format.ID{}, nil, errors.New("a log backup needs at least one WAL segment")
	}
	m := &LogMeta{Engine: Engine, SystemID: req.SystemID, Kind: database.KindLog, Partial: req.Partial}
	for _, p := range req.Segments {
		m.Segments = append(m.Segments, filepath.Base(p))
	}
	first, err := parseWALFile(m.Segments[0], 16<<20) // the timeline alone is used
	if err != nil {
		return format.ID{}, nil, err
	}
	m.Timeline = first.tli
	if err := scanWAL(ctx, req.WALDump, req.Segments, m); err != nil {
		return format.ID{}, nil, err
	}
	if req.Partial {
		// Recycled segments after the end of the WAL hold none of it.
		end, err := segmentOf(m.EndLSN, m.Timeline, req.Segments[0])
		if err != nil {
			return format.ID{}, nil, err
		}
		for len(m.Segments) > 1 && m.Segments[len(m.Segments)-1] > end {
			m.Segments, req.Segments = m.Segments[:len(m.Segments)-1], req.Segments[:len(req.Segments)-1]
		}
	}
	root, st, err := files.Capture(ctx, sink, src, files.CaptureOptions{Paths: req.Segments})
	if err != nil {
		return format.ID{}, nil, err
	}
	if st.Files != int64(len(req.Segments)) || st.Warnings > 0 {
		return format.ID{}, nil, fmt.Errorf("reading WAL: %d of %d segments read", st.Files, len(req.Segments))
	}
	m.Bytes = st.Bytes
	mw := repo.NewManifest(sink, LogManifestKind)
	if err := mw.Add(ctx, Part{Path: PartWAL, Manifest: root}); err != nil {
		return format.ID{}, nil, err
	}
	id, err := mw.Close(ctx, m)
	return id, m, err
}

// segmentOf names the segment of timeline tli that holds lsn, for the
// segment size of the file at sample.
func segmentOf(lsn string, tli uint32, sample string) (string, error) {
	info, err := os.Stat(sample)
	if err != nil {
		return "", err
	}
	pos, err := parseLSN(lsn)
	if err != nil {
		return "", err
	}
	return walFile{tli: tli, seg: pos / uint64(info.Size())}.name(info.Size()), nil
}

// A pg_waldump line: "rmgr: Transaction len (rec/tot): 34/ 34, tx: 735,
// lsn: 0/0155E2A0, prev 0/0155E268, desc: COMMIT 2026-12-05 03:53:01.123456 UTC".
// Lines are split by parseWALLine; only descriptions are matched with
// these.
var (
	xactEnd   = regexp.MustCompile(`^(?:COMMIT|ABORT|COMMIT_PREPARED|ABORT_PREPARED) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [A-Za-z0-9+:-]+)`)
	restorePt = regexp.MustCompile(`^RESTORE_POINT (.*)$`)
)

// scanWAL runs pg_waldump over consecutive segments and records their
// range, transaction end times and restore points in m. pg_waldump ends
// with an error where the WAL does (a record it cannot read at the end of
// the last segment); that is not a failure when records were read.
func scanWAL(ctx context.Context, waldump string, segments []string, m *LogMeta) error {
	dir := filepath.Dir(segments[0])
	args := []string{"--path", dir, filepath.Base(segments[0])}
	if len(segments) > 1 {
		args = append(args, filepath.Base(segments[len(segments)-1]))
	}
	cmd := exec.CommandContext(ctx, waldump, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running pg_waldump: %w", err)
	}
	records, perr := parseWALDump(out, m)
	if perr != nil {
		// pg_waldump would block on a pipe no one reads any more.
		cmd.Process.Kill()
		io.Copy(io.Discard, out)
	}
	werr := cmd.Wait()
	if perr != nil {
		return fmt.Errorf("reading pg_waldump's output: %w", perr)
	}
	if records == 0 {
		return fmt.Errorf("pg_waldump read no WAL record from %s: %v %s", segments[0], werr, strings.TrimSpace(stderr.String()))
	}
	if werr != nil && !strings.Contains(stderr.String(), "error in WAL record") {
		return fmt.Errorf("pg_waldump: %v: %s", werr, strings.TrimSpace(stderr.String()))
	}
	return nil
}

func parseWALDump(r io.Reader, m *LogMeta) (int, error) {
	sc := bufio.NewScanner(r)
	// A commit of a transaction that changed many catalog entries lists
	// them all on its one line.
	sc.Buffer(make([]byte, 64<<10), 256<<20)
	records := 0
	var last time.Time
	for sc.Scan() {
		rmgr, lsn, desc, ok := parseWALLine(sc.Text())
		if !ok {
			continue
		}
		records++
		if m.StartLSN == "" {
			m.StartLSN = lsn
		}
		m.EndLSN = lsn
		switch rmgr {
		case "Transaction":
			if t := xactEnd.FindStringSubmatch(desc); t != nil {
				at, err := parseWALTime(t[1])
				if err != nil {
					return records, err
				}
				if m.FirstTime.IsZero() {
					m.FirstTime = at
				}
				m.LastTime, last = at, at
			}
		case "XLOG":
			if rp := restorePt.FindStringSubmatch(desc); rp != nil {
				m.RestorePoints = append(m.RestorePoints, RestorePoint{Name: rp[1], LSN: lsn, Time: last})
			}
		}
	}
	return records, sc.Err()
}

// parseWALLine splits a pg_waldump record line into its resource manager,
// LSN and description; ok is false for any other line. It cuts the line
// with string searches, not a regular expression: a log backup prints
// millions of records, and matching each with one took longer than
// pg_waldump took to print them (3.6 s per million lines).
func parseWALLine(line string) (rmgr, lsn, desc string, ok bool) {
	rest, found := strings.CutPrefix(line, "rmgr: ")
	if !found {
		return "", "", "", false
	}
	end := strings.IndexAny(rest, " \t")
	if end <= 0 {
		return "", "", "", false
	}
	rmgr = rest[:end]
	_, rest, found = strings.Cut(rest[end:], "lsn: ")
	if !found {
		return "", "", "", false
	}
	lsn, rest, found = strings.Cut(rest, ", prev ")
	if !found || !isWALPosition(lsn) {
		return "", "", "", false
	}
	prev, desc, found := strings.Cut(rest, ", desc: ")
	if !found || !isWALPosition(prev) {
		return "", "", "", false
	}
	return rmgr, lsn, desc, true
}

// isWALPosition says whether s is an LSN as pg_waldump prints one:
// upper-case hex digits, a slash, upper-case hex digits.
func isWALPosition(s string) bool {
	hi, lo, found := strings.Cut(s, "/")
	return found && isUpperHex(hi) && isUpperHex(lo)
}

func isUpperHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'A' || c > 'F') {
			return false
		}
	}
	return true
}

// parseWALTime reads pg_waldump's timestamps ("2026-12-05 03:53:01.123456
// UTC", the server's log_timezone abbreviation or offset).
func parseWALTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999 MST", "2006-01-02 15:04:05.999999 -07", "2006-01-02 15:04:05.999999 -0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("pg_waldump time %q", s)
}

// RestoreLogs writes the WAL segments of log points into dir (an archive
// a restore_command copies from), each segment once; owner restores their
// ownership (as root: the cluster's owner, who must read them).
func RestoreLogs(ctx context.Context, src files.Source, roots []format.ID, dir string, owner bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	owned := false
	for _, root := range roots {
		mr, err := repo.OpenManifest(ctx, src, root)
		if err != nil {
			return err
		}
		if mr.Root.Kind != LogManifestKind {
			return fmt.Errorf("point %s is a %q point, not a PostgreSQL log point", root.Short(), mr.Root.Kind)
		}
		var p Part
		if err := mr.Next(&p); err != nil {
			return fmt.Errorf("log point %s: %w", root.Short(), err)
		}
		var m LogMeta
		if err := json.Unmarshal(mr.Root.Meta, &m); err != nil {
			return err
		}
		staging := filepath.Join(dir, ".restoring-"+root.Short())
		if _, err := files.Restore(ctx, src, p.Manifest, files.RestoreOptions{Target: staging, Owner: owner}); err != nil {
			return err
		}
		err = filepath.WalkDir(staging, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !slices.Contains(m.Segments, d.Name()) {
				return err
			}
			if owner && !owned {
				// The archive directory belongs to whoever owns the
				// segments, the cluster's user who reads them.
				uid, gid, err := fileOwner(path)
				if err != nil {
					return err
				}
				if err := os.Chown(dir, uid, gid); err != nil {
					return err
				}
				owned = true
			}
			return os.Rename(path, filepath.Join(dir, d.Name()))
		})
		if err != nil {
			return err
		}
		if err := os.RemoveAll(staging); err != nil {
			return err
		}
	}
	return nil
}

// TailSegments lists the WAL segments in a data directory's pg_wal that
// come after the segment named after (the last one Haven holds), in
// order, as far as they run on without a gap: the WAL a tail-log backup
// takes before a restore over the cluster, which can be read whether or
// not the cluster runs. The last ones may be recycled segments that hold
// no WAL yet; CaptureLog with Partial keeps only those that do.
func TailSegments(dataDir, after string) ([]string, error) {
	dir := filepath.Join(dataDir, "pg_wal")
	info, err := os.Stat(filepath.Join(dir, after))
	segSize := int64(16 << 20)
	if err == nil {
		segSize = info.Size()
	}
	f, err := parseWALFile(after, segSize)
	if err != nil {
		return nil, err
	}
	var out []string
	for {
		f.seg++
		p := filepath.Join(dir, f.name(segSize))
		if _, err := os.Stat(p); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return out, nil
			}
			return nil, err
		}
		out = append(out, p)
	}
}

// AddLogs copies WAL files the host holds (a tail-log backup's) into an
// archive directory RestoreLogs made, beside the restored ones; owner
// gives them to the cluster's user (the owner of the originals).
func AddLogs(dir string, paths []string, owner bool) error {
	if len(paths) == 0 {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, p := range paths {
		dst := filepath.Join(dir, filepath.Base(p))
		if err := copyFile(p, dst); err != nil {
			return err
		}
		if owner {
			uid, gid, err := fileOwner(p)
			if err != nil {
				return err
			}
			if err := os.Chown(dst, uid, gid); err != nil {
				return err
			}
			if err := os.Chown(dir, uid, gid); err != nil {
				return err
			}
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
