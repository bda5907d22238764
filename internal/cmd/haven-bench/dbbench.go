package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/database"
	"github.com/havenbackup/terraform-provider-haven/engine/database/postgres"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/internal/pgembed"
)

// dbBench is make bench-db: Haven's PostgreSQL engine and pgBackRest side
// by side on one pgbench cluster, in one run. Both archive the same WAL
// (the cluster's archive_command hands each segment to pgBackRest and
// copies it for Haven's log backup), both compress with zstd at level 3
// and run two processes, so no compression or parallelism difference is
// hidden. Haven's figures are its engine in-process (what the agent on the
// database host runs); pgBackRest's are whole-process timings.
type dbBench struct {
	work, arch, pgbrConf string
	cluster              *pgembed.Cluster
	owner                *syscall.Credential // the cluster's owner, whom pgBackRest runs as
	r                    *repo.Repository
	rows                 []dbRow
}

type dbRow struct {
	name           string
	haven, pgbr    float64
	unit, settings string
}

func runDBBench(ctx context.Context, r *repo.Repository, state string, scale int, minutes float64) error {
	if _, err := exec.LookPath("pgbackrest"); err != nil {
		return fmt.Errorf("pgbackrest is not installed: apt-get install pgbackrest (the benchmark's anchor, 2.45 on Debian 12)")
	}
	b := &dbBench{work: state, arch: filepath.Join(state, "archive"), r: r}
	for _, d := range []string{b.arch, filepath.Join(state, "pgbr-repo"), filepath.Join(state, "pgbr-log"), filepath.Join(state, "pgbr-lock"), filepath.Join(state, "restore")} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			return err
		}
		os.Chmod(d, 0o777)
	}
	os.Chmod(state, 0o755)
	b.pgbrConf = filepath.Join(state, "pgbackrest.conf")
	clusterDir := filepath.Join(state, "c")
	conf := fmt.Sprintf(`[global]
repo1-path=%s/pgbr-repo
repo1-retention-full=10
log-path=%s/pgbr-log
lock-path=%s/pgbr-lock
compress-type=zst
compress-level=3
process-max=2
start-fast=y
log-level-console=warn

[bench]
pg1-path=%s/data
pg1-socket-path=%s
pg1-user=%s
`, state, state, state, clusterDir, clusterDir, pgembed.Superuser)
	if err := os.WriteFile(b.pgbrConf, []byte(conf), 0o644); err != nil {
		return err
	}
	push := fmt.Sprintf("pgbackrest --config=%s --stanza=bench archive-push %%p && cp %%p %s/%%f.part && mv %s/%%f.part %s/%%f", b.pgbrConf, b.arch, b.arch, b.arch)
	var err error
	b.cluster, err = pgembed.Start(ctx, pgembed.Options{Dir: clusterDir, Database: "postgres", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Settings: []string{"archive_mode=on", "archive_command=" + push, "max_wal_size=4GB", "shared_buffers=256MB"}})
	if err != nil {
		return err
	}
	defer b.cluster.Stop(context.WithoutCancel(ctx))
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(clusterDir, "data"), &st); err != nil {
		return err
	}
	if os.Geteuid() == 0 {
		b.owner = &syscall.Credential{Uid: st.Uid, Gid: st.Gid}
		filepath.WalkDir(state, func(p string, d fs.DirEntry, err error) error {
			if err == nil && (p == b.pgbrConf || slices.Contains([]string{"archive", "pgbr-repo", "pgbr-log", "pgbr-lock"}, d.Name())) {
				os.Chown(p, int(st.Uid), int(st.Gid))
			}
			return nil
		})
	}
	fmt.Fprintf(os.Stderr, "bench-db: pgbench -i -s %d\n", scale)
	if _, err := b.client(ctx, "pgbench", "-i", "-q", "-s", strconv.Itoa(scale), "postgres"); err != nil {
		return err
	}
	if _, err := b.pgbr(ctx, "stanza-create"); err != nil {
		return err
	}
	b.add(dbRow{name: "settings", unit: "", settings: "both: zstd level 3, 2 processes; pgBackRest 2.45 (one repository, file-level), Haven engine in-process"})

	// Full backups.
	havenFull, havenSecs, err := b.havenBackup(ctx, database.BackupRequest{Kind: database.KindFull})
	if err != nil {
		return err
	}
	pgbrSecs, err := b.timed(ctx, "backup", "--type=full")
	if err != nil {
		return err
	}
	b.add(dbRow{name: "full backup (s)", haven: havenSecs, pgbr: pgbrSecs, unit: "s"})

	fmt.Fprintf(os.Stderr, "bench-db: %.1f minutes of pgbench\n", minutes)
	if _, err := b.client(ctx, "pgbench", "-n", "-c", "2", "-T", strconv.Itoa(int(minutes*60+0.5)), "postgres"); err != nil {
		return err
	}
	var instant time.Time
	if err := b.query(ctx, "SELECT clock_timestamp()", &instant); err != nil {
		return err
	}
	if _, err := b.client(ctx, "pgbench", "-n", "-c", "2", "-t", "200", "postgres"); err != nil {
		return err
	}
	_, diffSecs, err := b.havenBackup(ctx, database.BackupRequest{Kind: database.KindDifferential, Base: havenFull})
	if err != nil {
		return err
	}
	pgbrDiff, err := b.timed(ctx, "backup", "--type=diff")
	if err != nil {
		return err
	}
	b.add(dbRow{name: "differential after pgbench (s)", haven: diffSecs, pgbr: pgbrDiff, unit: "s"})
	var seg string
	if err := b.query(ctx, "SELECT pg_walfile_name(pg_switch_wal())", &seg); err != nil {
		return err
	}
	if err := b.waitArchived(ctx, seg); err != nil {
		return err
	}

	// Restores of the full: Haven's engine and pgBackRest's, twice each,
	// alternated (Haven first, then pgBackRest first), each after a sync,
	// from repositories dropped from the page cache, with the source
	// cluster stopped (what is left needs only its archive). Run once,
	// straight after the backups with the cluster up, the first restore
	// measured the disk's backlog (the cluster's vacuum and checkpoints,
	// the backups' writes) whichever tool it was: it took up to twice as
	// long as the next.
	if err := b.cluster.Stop(ctx); err != nil {
		return err
	}
	restoreDir := filepath.Join(state, "restore")
	var havenRestores, pgbrRestores []float64
	for round := range 2 {
		for _, tool := range [][2]string{{"haven", "pgbr"}, {"pgbr", "haven"}}[round] {
			if err := b.quiesce(ctx); err != nil {
				return err
			}
			dir := filepath.Join(restoreDir, fmt.Sprintf("%s-full-%d", tool, round))
			if tool == "haven" {
				start := time.Now()
				if _, err := postgres.Restore(ctx, r, havenFull.Root, postgres.RestoreOptions{DataDir: dir,
					Staging: filepath.Join(restoreDir, "staging"), Owner: os.Geteuid() == 0}); err != nil {
					return err
				}
				havenRestores = append(havenRestores, time.Since(start).Seconds())
			} else {
				secs, err := b.timed(ctx, "restore", "--set="+b.pgbrSet(ctx, 0), "--type=immediate", "--pg1-path="+dir)
				if err != nil {
					return err
				}
				pgbrRestores = append(pgbrRestores, secs)
			}
		}
	}
	restored, err := dirSize(filepath.Join(restoreDir, "haven-full-0"))
	if err != nil {
		return err
	}
	for round := range 2 {
		os.RemoveAll(filepath.Join(restoreDir, fmt.Sprintf("pgbr-full-%d", round)))
		os.RemoveAll(filepath.Join(restoreDir, fmt.Sprintf("haven-full-%d", round)))
	}
	// The physical limit, in the same run: the disk's own write rate for
	// the restored bytes (direct I/O from memory on every core, then
	// fdatasync), which no restore can beat. Best of 2 as the restores
	// are: this disk's rate varies by a fifth from one write to the next.
	floor, how := math.Inf(1), ""
	for range 2 {
		if err := b.quiesce(ctx); err != nil {
			return err
		}
		secs, w, err := diskWriteFloor(filepath.Join(restoreDir, "floor"), restored)
		if err != nil {
			return err
		}
		floor, how = min(floor, secs), w
	}
	havenRestore, pgbrRestore := slices.Min(havenRestores), slices.Min(pgbrRestores)
	b.add(dbRow{name: "full restore (s)", haven: havenRestore, pgbr: pgbrRestore, unit: "s",
		settings: fmt.Sprintf("best of 2 alternated runs each (Haven %.2f, %.2f; pgBackRest %.2f, %.2f), source cluster stopped, after a sync, repositories not cached; "+
			"disk write floor %.2f s (%.0f MB at %.0f MB/s, %s): Haven at %.0f%% of it, pgBackRest at %.0f%%",
			havenRestores[0], havenRestores[1], pgbrRestores[0], pgbrRestores[1],
			floor, mb(restored), mb(restored)/floor, how, 100*floor/havenRestore, 100*floor/pgbrRestore)})

	// Point in time: the full plus the archived WAL up to the instant.
	fullMeta, err := postgres.ReadMeta(ctx, r, havenFull.Root)
	if err != nil {
		return err
	}
	start := time.Now()
	segs, err := postgres.ArchivedSegments(b.arch, fullMeta.WALSegments[len(fullMeta.WALSegments)-1])
	if err != nil {
		return err
	}
	w, err := r.NewWriter(ctx, "")
	if err != nil {
		return err
	}
	logRoot, _, err := postgres.CaptureLog(ctx, w, r, postgres.LogRequest{Segments: segs, SystemID: fullMeta.SystemID,
		WALDump: filepath.Join(b.cluster.Binaries().Dir, "pg_waldump")})
	if err != nil {
		w.Abort(ctx)
		return err
	}
	if err := w.Commit(ctx, "bench-log", logRoot); err != nil {
		return err
	}
	logSecs := time.Since(start).Seconds()
	b.add(dbRow{name: "log backup of the archived WAL (s)", haven: logSecs, unit: "s", settings: fmt.Sprintf("%d segments; pgBackRest's archive-push ran inside archive_command", len(segs))})

	pitrDir := filepath.Join(state, "restore", "haven-pitr", "data")
	start = time.Now()
	logs := filepath.Join(state, "restore", "haven-wal")
	if err := postgres.RestoreLogs(ctx, r, []format.ID{logRoot}, logs, os.Geteuid() == 0); err != nil {
		return err
	}
	if _, err := postgres.Restore(ctx, r, havenFull.Root, postgres.RestoreOptions{DataDir: pitrDir, Staging: filepath.Join(state, "restore", "staging"),
		Owner: os.Geteuid() == 0, Recovery: postgres.Recovery{TargetTime: instant, RestoreCommand: "cp " + logs + "/%f %p"}}); err != nil {
		return err
	}
	havenPITR, err := b.replay(ctx, filepath.Dir(pitrDir), start)
	if err != nil {
		return err
	}
	start = time.Now()
	// pgBackRest's restore_command finds its options by the data
	// directory, so the cluster starts where it was restored.
	pgbrDir := filepath.Join(state, "restore", "pgbr-pitr", "data")
	if err := os.MkdirAll(filepath.Dir(pgbrDir), 0o755); err != nil {
		return err
	}
	if b.owner != nil {
		if err := os.Chown(filepath.Dir(pgbrDir), int(b.owner.Uid), int(b.owner.Gid)); err != nil {
			return err
		}
	}
	if _, err := b.pgbr(ctx, "restore", "--set="+b.pgbrSet(ctx, 0), "--type=time", "--target="+instant.UTC().Format("2006-01-02 15:04:05.999999-07"),
		"--target-action=promote", "--pg1-path="+pgbrDir); err != nil {
		return err
	}
	pgbrPITR, err := b.replay(ctx, filepath.Dir(pgbrDir), start)
	if err != nil {
		return err
	}
	b.add(dbRow{name: "point-in-time restore, replayed and promoted (s)", haven: havenPITR, pgbr: pgbrPITR, unit: "s"})

	havenSize, _ := dirSize(filepath.Join(state, "store"))
	pgbrSize, _ := dirSize(filepath.Join(state, "pgbr-repo"))
	b.add(dbRow{name: "repository size (MB)", haven: float64(havenSize) / 1e6, pgbr: float64(pgbrSize) / 1e6, unit: "MB",
		settings: "both: the two backups and the WAL archive"})
	b.print(scale, minutes)
	return nil
}

// havenBackup takes a backup with the engine and commits it.
func (b *dbBench) havenBackup(ctx context.Context, req database.BackupRequest) (*database.Base, float64, error) {
	start := time.Now()
	s, err := postgres.Connect(ctx, b.cluster.URL("postgres"))
	if err != nil {
		return nil, 0, err
	}
	defer s.Close(ctx)
	w, err := b.r.NewWriter(ctx, "")
	if err != nil {
		return nil, 0, err
	}
	root, m, err := s.Backup(ctx, w, b.r, req)
	if err != nil {
		w.Abort(ctx)
		return nil, 0, err
	}
	if err := w.Commit(ctx, "bench-"+m.Kind+"-"+root.Short(), root); err != nil {
		return nil, 0, err
	}
	return &database.Base{Root: root, Meta: m}, time.Since(start).Seconds(), nil
}

// replay starts the cluster restored into dir/data, waits for it to leave
// recovery, stops it, and returns the seconds since start.
func (b *dbBench) replay(ctx context.Context, dir string, start time.Time) (float64, error) {
	c, err := pgembed.Start(ctx, pgembed.Options{Dir: dir, Database: "postgres", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Settings: []string{"archive_mode=off"}})
	if err != nil {
		return 0, err
	}
	defer c.Stop(context.WithoutCancel(ctx))
	for deadline := time.Now().Add(10 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			continue
		}
		var inRecovery bool
		err = conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&inRecovery)
		conn.Close(ctx)
		if err == nil && !inRecovery {
			return time.Since(start).Seconds(), nil
		}
	}
	return 0, fmt.Errorf("the cluster in %s did not leave recovery", dir)
}

func (b *dbBench) add(r dbRow) { b.rows = append(b.rows, r) }

func (b *dbBench) print(scale int, minutes float64) {
	fmt.Printf("\nPostgreSQL: Haven's engine and pgBackRest, pgbench scale %d, %.1f minutes of pgbench before the differential\n", scale, minutes)
	fmt.Printf("%-50s %10s %10s %8s  %s\n", "measure", "Haven", "pgBackRest", "speedup", "notes")
	for _, r := range b.rows {
		if r.unit == "" {
			fmt.Printf("%-50s %10s %10s %8s  %s\n", r.name, "", "", "", r.settings)
			continue
		}
		pg, ratio := "", ""
		if r.pgbr > 0 {
			pg = fmt.Sprintf("%.2f", r.pgbr)
			ratio = fmt.Sprintf("%.2fx", r.pgbr/r.haven)
			if r.unit == "MB" {
				ratio = fmt.Sprintf("%.0f%%", 100*r.haven/r.pgbr)
			}
		}
		fmt.Printf("%-50s %10.2f %10s %8s  %s\n", r.name, r.haven, pg, ratio, r.settings)
	}
	fmt.Println("(speedup: pgBackRest's time over Haven's, target >= 1.5x for full backup and restore; size: Haven's share of pgBackRest's, target <= 100%)")
}

// timed runs a pgBackRest command and returns its wall time.
func (b *dbBench) timed(ctx context.Context, args ...string) (float64, error) {
	start := time.Now()
	_, err := b.pgbr(ctx, args...)
	return time.Since(start).Seconds(), err
}

func (b *dbBench) pgbr(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "pgbackrest", append([]string{"--config=" + b.pgbrConf, "--stanza=bench"}, args...)...)
	return b.run(cmd)
}

func (b *dbBench) client(ctx context.Context, program string, args ...string) ([]byte, error) {
	all := append([]string{"-h", b.cluster.Dir(), "-U", pgembed.Superuser}, args...)
	return b.run(exec.CommandContext(ctx, filepath.Join(b.cluster.Binaries().Dir, program), all...))
}

func (b *dbBench) run(cmd *exec.Cmd) ([]byte, error) {
	if b.owner != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: b.owner}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s: %v: %s", filepath.Base(cmd.Path), err, out.String())
	}
	return out.Bytes(), nil
}

func (b *dbBench) query(ctx context.Context, sql string, dest any) error {
	conn, err := pgx.Connect(ctx, b.cluster.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	return conn.QueryRow(ctx, sql).Scan(dest)
}

var pgbrLabel = regexp.MustCompile(`(?m)^\s+full backup: (\S+)`)

// pgbrSet names pgBackRest's i-th full backup.
func (b *dbBench) pgbrSet(ctx context.Context, i int) string {
	out, _ := b.pgbr(ctx, "info")
	m := pgbrLabel.FindAllStringSubmatch(string(out), -1)
	if i < len(m) {
		return m[i][1]
	}
	return "latest"
}

func (b *dbBench) waitArchived(ctx context.Context, seg string) error {
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(b.arch, seg)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("WAL segment %s was not archived", seg)
}

func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n, err
}

// quiesce syncs every filesystem and drops both repositories' files from
// the page cache, so that a timed restore starts with no writes draining
// and reads what it restores from disk.
func (b *dbBench) quiesce(ctx context.Context) error {
	if err := exec.CommandContext(ctx, "sync").Run(); err != nil {
		return err
	}
	for _, dir := range []string{filepath.Join(b.work, "store"), filepath.Join(b.work, "pgbr-repo")} {
		if err := dropCached(dir); err != nil {
			return err
		}
	}
	return nil
}

// diskWriteFloor writes total bytes under dir from memory, one file per
// core in 8 MiB blocks, each ended by fsync, with direct I/O where the
// filesystem takes it: the disk's own write rate, which no restore of
// total bytes can beat. how says how it wrote. The files are removed.
func diskWriteFloor(dir string, total int64) (secs float64, how string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, "", err
	}
	defer os.RemoveAll(dir)
	const block = 8 << 20
	buf, release, err := floorBlock(block)
	if err != nil {
		return 0, "", err
	}
	defer release()
	rand.NewChaCha8([32]byte{1}).Read(buf) //nolint:errcheck // never fails
	flags, how := floorOpenFlags(dir)
	writers := runtime.GOMAXPROCS(0)
	per := (total/int64(writers) + block - 1) / block * block
	start := time.Now()
	var g errgroup.Group
	for w := range writers {
		g.Go(func() error {
			f, err := os.OpenFile(filepath.Join(dir, fmt.Sprint(w)), flags, 0o600)
			if err != nil {
				return err
			}
			defer f.Close()
			for n := int64(0); n < per; n += block {
				if _, err := f.Write(buf); err != nil {
					return err
				}
			}
			return f.Sync()
		})
	}
	if err := g.Wait(); err != nil {
		return 0, "", err
	}
	return time.Since(start).Seconds(), fmt.Sprintf("%s, %d writers, fsync", how, writers), nil
}

// dbRestore is the db-restore phase: one Haven restore of a database point
// kept in a db phase's state directory, timed as the db phase times it
// (after a sync, from a repository not cached), so that the restore can
// be profiled alone (-cpuprofile, -trace). out must not exist.
func dbRestore(ctx context.Context, r *repo.Repository, state, point, out string) error {
	root, err := r.Root(ctx, point)
	if err != nil {
		return err
	}
	if err := (&dbBench{work: state}).quiesce(ctx); err != nil {
		return err
	}
	start := time.Now()
	st, err := postgres.Restore(ctx, r, root, postgres.RestoreOptions{DataDir: out,
		Staging: filepath.Join(filepath.Dir(out), "staging"), Owner: os.Geteuid() == 0})
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	return emit(result{Phase: "db-restore", Seconds: secs, Bytes: st.Bytes, MBps: mb(st.Bytes) / secs, Files: st.Files})
}
