package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/havenbackup/terraform-provider-haven/engine/database"
	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
)

// ManifestKind is the root kind of a PostgreSQL point. Its entries name
// the point's two file manifests (engine/files): the data directory and
// tablespaces as the backup read them, and the WAL from start to stop.
const ManifestKind = "postgresql"

// Parts of a point, its root manifest's entries.
const (
	PartData = "data"
	PartWAL  = "wal"
)

// Part is one entry of a point's root manifest.
type Part struct {
	Path     string    `json:"path"`
	Manifest format.ID `json:"manifest"`
}

// Meta is a PostgreSQL point's root meta.
type Meta struct {
	database.Meta
	// BackupLabel and TablespaceMap are what pg_backup_stop returned; a
	// restore writes them into the data directory, where they tell
	// PostgreSQL where replay must begin.
	BackupLabel   string `json:"backup_label"`
	TablespaceMap string `json:"tablespace_map,omitempty"`
	// WALSegments names the WAL files the point carries, in order.
	WALSegments []string `json:"wal_segments"`
}

// reuseMargin is how much older than its base's start a file's times must
// be for a differential to take it on its metadata alone. Filesystem
// clocks tick in milliseconds at worst; a second is far wider, and also
// covers a clock that was stepped back a little.
const reuseMargin = time.Second

// Backup takes a full or differential backup: the non-exclusive backup API
// on a session of its own (held from start to stop, with a temporary
// replication slot that keeps the WAL from start on), the data files read
// as they are (the WAL replayed on restore repairs pages written while
// they were read), then the WAL from start to stop. A differential reads
// only the files whose size or times changed since its base full, or that
// the base saw written just before it began; a requested differential the
// base cannot vouch for is taken as a full, and Converted says why.
func (s *Server) Backup(ctx context.Context, sink repo.Sink, src repo.Source, req database.BackupRequest) (format.ID, *database.Meta, error) {
	m, root, err := s.backup(ctx, sink, src, req)
	if err != nil {
		return format.ID{}, nil, err
	}
	return root, &m.Meta, nil
}

func (s *Server) backup(ctx context.Context, sink repo.Sink, src repo.Source, req database.BackupRequest) (*Meta, format.ID, error) {
	id, err := s.Identify(ctx)
	if err != nil {
		return nil, format.ID{}, err
	}
	var walLevel string
	if err := s.conn.QueryRow(ctx, "SELECT current_setting('wal_level')").Scan(&walLevel); err != nil {
		return nil, format.ID{}, err
	}
	if walLevel == "minimal" {
		return nil, format.ID{}, errors.New("wal_level is minimal, which allows no online backup: set wal_level to replica and restart the server")
	}
	m := &Meta{Meta: database.Meta{Identity: id, Kind: database.KindFull, Label: req.Label}}
	var parent format.ID
	if req.Kind == database.KindDifferential {
		m.Converted = database.Conversion(req.Base, req.LastFullFailed, id)
		if m.Converted == "" {
			var err error
			if parent, err = baseData(ctx, src, req.Base.Root); err != nil {
				m.Converted = "stored metadata and the files disagree: the base full's manifest cannot be read (" + err.Error() + ")"
			}
		}
		if m.Converted == "" {
			m.Converted = otherFull(id.DataDir, req.BackupHistory, req.Base.Meta)
		}
		if m.Converted == "" {
			m.Kind, m.BaseRoot = database.KindDifferential, req.Base.Root
		}
	}
	// Haven's labels start with "haven ", which is how a later backup
	// tells them from other tools' in the backup history.
	if !strings.HasPrefix(m.Label, "haven ") {
		m.Label = strings.TrimSpace("haven " + m.Kind + " " + m.Label)
	}

	// The backup's own session: the backup and the slot end with it,
	// whatever happens to this process.
	conn, err := pgx.Connect(ctx, s.connString)
	if err != nil {
		return nil, format.ID{}, fmt.Errorf("connecting for the backup: %w", err)
	}
	defer conn.Close(context.Background())
	slot := "haven_backup_" + randomHex(6)
	if _, err := conn.Exec(ctx, "SELECT pg_create_physical_replication_slot($1, true, true)", slot); err != nil {
		return nil, format.ID{}, fmt.Errorf("reserving WAL with a temporary replication slot (max_replication_slots must allow one more): %w", err)
	}
	m.Started = time.Now()
	start := "SELECT pg_backup_start($1, true)::text"
	if s.version < 150000 {
		start = "SELECT pg_start_backup($1, true, false)::text"
	}
	if err := conn.QueryRow(ctx, start, m.Label).Scan(&m.StartLSN); err != nil {
		return nil, format.ID{}, fmt.Errorf("starting the backup: %w", err)
	}

	paths := []string{id.DataDir}
	for _, f := range id.DataFiles {
		if f.Location != id.DataDir {
			paths = append(paths, f.Location)
		}
	}
	exclude := excluded(id.DataDir)
	for _, p := range paths {
		unlogged, err := unloggedForks(p)
		if err != nil {
			return nil, format.ID{}, err
		}
		exclude = append(exclude, unlogged...)
	}
	opts := files.CaptureOptions{Paths: paths, Exclude: exclude, Parent: parent, Fuzzy: true, Warn: req.Warn}
	if !parent.IsZero() {
		opts.ReuseBefore = req.Base.Meta.Started.Add(-reuseMargin)
	}
	if req.Progress != nil {
		opts.Progress = func(p files.CaptureProgress) { req.Progress(p.Files, p.Bytes) }
	}
	dataRoot, dataStats, err := files.Capture(ctx, sink, src, opts)
	if err != nil {
		return nil, format.ID{}, fmt.Errorf("reading the data files: %w", err)
	}

	stop := "SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_backup_stop(false)"
	if s.version < 150000 {
		stop = "SELECT lsn::text, labelfile, coalesce(spcmapfile, '') FROM pg_stop_backup(false, false)"
	}
	if err := conn.QueryRow(ctx, stop).Scan(&m.StopLSN, &m.BackupLabel, &m.TablespaceMap); err != nil {
		return nil, format.ID{}, fmt.Errorf("stopping the backup: %w", err)
	}
	if m.WALSegments, err = s.walBetween(ctx, conn, m.StartLSN, m.StopLSN); err != nil {
		return nil, format.ID{}, err
	}
	walPaths := make([]string, len(m.WALSegments))
	for i, seg := range m.WALSegments {
		walPaths[i] = filepath.Join(id.DataDir, "pg_wal", seg)
	}
	walRoot, walStats, err := files.Capture(ctx, sink, src, files.CaptureOptions{Paths: walPaths})
	if err != nil {
		return nil, format.ID{}, fmt.Errorf("reading the backup's WAL: %w", err)
	}
	if walStats.Warnings > 0 || walStats.Files != int64(len(walPaths)) {
		return nil, format.ID{}, fmt.Errorf("reading the backup's WAL: %d of %d segments read", walStats.Files, len(walPaths))
	}
	m.Finished = time.Now()
	m.Files, m.Bytes, m.Reused = dataStats.Files, dataStats.Bytes, dataStats.Reused
	m.ReadBytes, m.NewBytes = dataStats.Bytes-dataStats.ReusedBytes, dataStats.Repo.NewBytes
	mw := repo.NewManifest(sink, ManifestKind)
	for _, p := range []Part{{Path: PartData, Manifest: dataRoot}, {Path: PartWAL, Manifest: walRoot}} {
		if err := mw.Add(ctx, p); err != nil {
			return nil, format.ID{}, err
		}
	}
	root, err := mw.Close(ctx, m)
	return m, root, err
}

// walBetween names the WAL segments from the one holding start to the one
// holding stop, on the server's current timeline.
func (s *Server) walBetween(ctx context.Context, conn *pgx.Conn, start, stop string) ([]string, error) {
	var first, last string
	var segSize int64
	err := conn.QueryRow(ctx, `SELECT pg_walfile_name($1::pg_lsn), pg_walfile_name($2::pg_lsn),
		(SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size')`, start, stop).Scan(&first, &last, &segSize)
	if err != nil {
		return nil, fmt.Errorf("naming the backup's WAL: %w", err)
	}
	return segmentsBetween(first, last, segSize)
}

// excluded are what a backup never takes from a data directory: the
// contents of directories PostgreSQL rebuilds or empties at start
// (pg_basebackup leaves out the same), the WAL (the point carries the
// WAL it needs apart), and files that describe a running postmaster or
// another backup. The directories themselves are kept: PostgreSQL
// refuses to start without some of them.
func excluded(dataDir string) []string {
	dd := escapeGlob(filepath.ToSlash(dataDir))
	var out []string
	for _, dir := range []string{"pg_wal", "pg_stat_tmp", "pg_replslot", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_subtrans"} {
		out = append(out, dd+"/"+dir+"/*")
	}
	for _, f := range []string{"postmaster.pid", "postmaster.opts", "backup_label", "backup_label.old", "tablespace_map",
		"tablespace_map.old", "current_logfiles", "postgresql.auto.conf.tmp", "recovery.signal", "standby.signal"} {
		out = append(out, dd+"/"+f)
	}
	// Relation cache files and temporary files, wherever they are.
	return append(out, "pg_internal.init", "pgsql_tmp*")
}

// unloggedForks are globs for the data of unlogged relations under root
// (the data directory or a tablespace): every fork of a relation that has
// an init fork ("NNN_init") but the init fork itself. PostgreSQL resets
// such relations from their init forks when it recovers, so their data is
// never restored and need not be read (pg_basebackup leaves it out too).
func unloggedForks(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // dropped while we looked
			}
			return err
		}
		if d.IsDir() {
			if p != root && d.Name() == "pg_wal" {
				return fs.SkipDir
			}
			return nil
		}
		rel, ok := strings.CutSuffix(d.Name(), "_init")
		if !ok || rel == "" || strings.Trim(rel, "0123456789") != "" {
			return nil
		}
		base := escapeGlob(filepath.ToSlash(filepath.Join(filepath.Dir(p), rel)))
		out = append(out, base, base+".*", base+"_fsm", base+"_fsm.*", base+"_vm", base+"_vm.*")
		return nil
	})
	return out, err
}

// escapeGlob quotes the characters a glob (engine/files) gives a meaning.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[]{}\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// baseData is the data manifest of a base full's root.
func baseData(ctx context.Context, src repo.Source, root format.ID) (format.ID, error) {
	parts, _, err := readParts(ctx, src, root)
	if err != nil {
		return format.ID{}, err
	}
	for _, p := range parts {
		if p.Path == PartData {
			return p.Manifest, nil
		}
	}
	return format.ID{}, errors.New("it has no data part")
}

// readParts reads a point's root manifest: its parts and its meta.
func readParts(ctx context.Context, src repo.Source, root format.ID) ([]Part, *repo.Root, error) {
	mr, err := repo.OpenManifest(ctx, src, root)
	if err != nil {
		return nil, nil, err
	}
	if mr.Root.Kind != ManifestKind {
		return nil, nil, fmt.Errorf("point %s is a %q point, not a PostgreSQL one", root.Short(), mr.Root.Kind)
	}
	var parts []Part
	for {
		var p Part
		err := mr.Next(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		parts = append(parts, p)
	}
	return parts, mr.Root, nil
}

// otherFull says a full was taken by another tool since the base full, if
// a backup history file (one per backup stopped, whoever took it: from the
// log archive, and those still in pg_wal, where PostgreSQL keeps them
// until they are archived) shows one that started after the base and is
// not Haven's.
func otherFull(dataDir string, archived []string, base *database.Meta) string {
	texts := slices.Clone(archived)
	names, _ := filepath.Glob(filepath.Join(dataDir, "pg_wal", "*.backup"))
	for _, name := range names {
		if b, err := os.ReadFile(name); err == nil {
			texts = append(texts, string(b))
		}
	}
	for _, text := range texts {
		h := parseHistory(text)
		if h.label == "" || strings.HasPrefix(h.label, "haven ") {
			continue
		}
		if after, err := lsnAfter(h.start, base.StopLSN); err == nil && after {
			return fmt.Sprintf("a full was taken by another tool since the base full (backup %q, started at %s)", h.label, h.start)
		}
	}
	return ""
}

// history is what a backup history file says of one backup.
type history struct{ label, start string }

func parseHistory(text string) history {
	var h history
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		switch k {
		case "LABEL":
			h.label = v
		case "START WAL LOCATION":
			h.start, _, _ = strings.Cut(v, " ")
		}
	}
	return h
}

// lsnAfter tells whether LSN a ("16/B374D848") is after b.
func lsnAfter(a, b string) (bool, error) {
	x, err := parseLSN(a)
	if err != nil {
		return false, err
	}
	y, err := parseLSN(b)
	if err != nil {
		return false, err
	}
	return x > y, nil
}

func parseLSN(s string) (uint64, error) {
	var hi, lo uint64
	if _, err := fmt.Sscanf(s, "%X/%X", &hi, &lo); err != nil {
		return 0, fmt.Errorf("LSN %q: %w", s, err)
	}
	return hi<<32 | lo, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// ReadMeta reads a full or differential point's meta.
func ReadMeta(ctx context.Context, src repo.Source, root format.ID) (*Meta, error) {
	r, err := repo.ReadRoot(ctx, src, root)
	if err != nil {
		return nil, err
	}
	if r.Kind != ManifestKind {
		return nil, fmt.Errorf("point %s is a %q point, not a PostgreSQL one", root.Short(), r.Kind)
	}
	var m Meta
	if err := json.Unmarshal(r.Meta, &m); err != nil {
		return nil, fmt.Errorf("point %s: %v: %w", root.Short(), err, format.ErrCorrupt)
	}
	return &m, nil
}
