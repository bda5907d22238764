// Command haven-bench measures the repository engine on a make-dataset
// tree: each phase runs as its own process (so peak RSS is per phase) on
// state kept in a directory: an embedded PostgreSQL cluster, a filesystem
// store and a master key. scripts/bench.sh drives it; it prints one JSON
// object per phase.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/disk"
	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/fsstore"
	"github.com/havenbackup/terraform-provider-haven/internal/pgembed"

	"github.com/jackc/pgx/v5/pgxpool"
)

type result struct {
	Phase       string  `json:"phase"`
	Seconds     float64 `json:"seconds"`
	Bytes       int64   `json:"bytes"`
	MBps        float64 `json:"mb_per_s"`
	NewBytes    int64   `json:"new_bytes,omitempty"`
	StoredTotal int64   `json:"stored_total,omitempty"`
	PeakRSSMiB  float64 `json:"peak_rss_mib"`
	// MinorFaults and CPUSeconds (user + system) are the whole process's
	// so far, like PeakRSSMiB: page faults are first touches of memory, so
	// they show a working set that grows with the data as well as peak RSS.
	MinorFaults int64   `json:"minor_faults"`
	CPUSeconds  float64 `json:"cpu_seconds"`
	Files       int64   `json:"files,omitempty"`
	Reused      int64   `json:"reused_files,omitempty"`
	ReadBytes   int64   `json:"read_bytes,omitempty"`
	// Parallel is how many readers a limit ran at once; Compressed is
	// what the zstd limit made of Bytes.
	Parallel   int   `json:"parallel,omitempty"`
	Compressed int64 `json:"compressed,omitempty"`
	// Written is what a write limit wrote (Bytes less the holes).
	Written int64 `json:"written_bytes,omitempty"`
	// SnapshotSeconds is the simulator's snapshot time, apart from Seconds.
	SnapshotSeconds float64 `json:"snapshot_seconds,omitempty"`
	FilesPerS       float64 `json:"files_per_s,omitempty"`
	// PeakHeapMiB is the largest Go heap seen while the phase ran (the
	// rest of the RSS is the runtime, stacks, and freed but unreturned pages).
	PeakHeapMiB float64 `json:"peak_heap_mib,omitempty"`
	// PhaseCPUSeconds is the process's CPU time (user + system) over the
	// timed part alone, for phases that share their process with other
	// work (the VM phases, whose simulator runs in the same process).
	PhaseCPUSeconds float64     `json:"phase_cpu_seconds,omitempty"`
	Index           *indexStats `json:"index,omitempty"`
}

func main() {
	phase := flag.String("phase", "", "limits, ingest, restore, vm, vm-lab (serve the benchmark VM until interrupted), db (make bench-db), db-restore (one Haven full restore of -point, from a kept db -state, into -out), dr (make bench-dr), nas (make bench-nas), "+
		"or for make bench-scale: scale-gen, scale-limits, scale-write-limit, scale-ingest, scale-restore")
	dataset := flag.String("dataset", "", "make-dataset directory")
	state := flag.String("state", "", "state directory (database, store, key)")
	point := flag.String("point", "", "point name for ingest, or the one to restore")
	parent := flag.String("parent", "", "parent point for an incremental ingest")
	out := flag.String("out", "", "restore target directory")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the phase here")
	memProfile := flag.String("memprofile", "", "write a heap profile here, taken near the phase's largest heap")
	flag.BoolVar(&treeOnly, "tree-only", false, "limits and ingest: files/ alone, as the end-to-end runs back it up and restore it (no image; limits without store writes)")
	traceFile := flag.String("trace", "", "write an execution trace of the phase here (go tool trace; its -pprof=sched, sync, io and syscall profiles show what waits)")
	flag.IntVar(&scale.files, "files", scaleGroupFiles, "scale-gen: how many small files (whole groups of 100,000)")
	flag.Func("image-gib", "scale-gen: size of a sparse image to make, in GiB (repeatable); scale-limits: an image to read (repeatable)", func(v string) error {
		scale.images = append(scale.images, v)
		return nil
	})
	flag.Func("path", "scale-ingest: the tree or image to back up; scale-restore: a path to restore (repeatable)", func(v string) error {
		scale.paths = append(scale.paths, v)
		return nil
	})
	flag.IntVar(&dbScale, "db-scale", 100, "db: pgbench scale of the benchmark's cluster (100 is about 1.5 GB)")
	flag.Float64Var(&dbMinutes, "db-minutes", 5, "db: minutes of pgbench between the full and the differential")
	flag.StringVar(&nasProfile, "nas-profile", "", "nas: write CPU profiles of one more (untimed) Haven full backup, unchanged re-backup and restore into this directory")
	flag.IntVar(&uploads, "uploads", 0, "packs uploaded at once (repo.Options.Uploads; 0: the repository's default)")
	flag.Parse()
	phaseHeap = startHeapPeak(*memProfile)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if *traceFile != "" {
		f, err := os.Create(*traceFile)
		if err == nil {
			err = trace.Start(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "haven-bench: -trace:", err)
			os.Exit(1)
		}
		defer trace.Stop()
	}
	err := run(*phase, *dataset, *state, *point, *parent, *out)
	phaseHeap.Stop()
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "haven-bench:", err)
		os.Exit(1)
	}
}

func run(phase, dataset, state, point, parent, out string) error {
	ctx := context.Background()
	switch phase {
	case "limits":
		return limits(dataset, out, treeOnly)
	case "vm-lab":
		return vmLab(ctx, state, out)
	case "scale-gen":
		gibs := make([]int, len(scale.images))
		for i, v := range scale.images {
			if _, err := fmt.Sscan(v, &gibs[i]); err != nil || gibs[i] <= 0 {
				return fmt.Errorf("-image-gib %q: want a positive number of GiB", v)
			}
		}
		return genScale(dataset, scale.files, gibs)
	case "scale-limits":
		return scaleLimits(dataset, scale.images)
	case "scale-write-limit":
		return restoreWriteLimit(dataset, out)
	case "ingest", "restore", "vm", "scale-ingest", "scale-restore", "db", "db-restore", "dr", "nas":
	default:
		return fmt.Errorf("unknown phase %q", phase)
	}
	r, pool, stop, err := openState(ctx, state)
	if err != nil {
		return err
	}
	defer stop()
	switch phase {
	case "ingest":
		return ingest(ctx, r, pool, state, dataset, point, parent)
	case "vm":
		return vmBench(ctx, r, state)
	case "scale-ingest":
		if len(scale.paths) != 1 {
			return errors.New("scale-ingest: give one -path, a tree or an image")
		}
		return scaleIngest(ctx, r, pool, state, scale.paths[0], point, parent)
	case "scale-restore":
		return scaleRestore(ctx, r, point, out, scale.paths)
	case "db":
		return runDBBench(ctx, r, state, dbScale, dbMinutes)
	case "db-restore":
		return dbRestore(ctx, r, state, point, out)
	case "dr":
		return drBench(ctx, r)
	case "nas":
		return nasBench(ctx, pool, state, dataset)
	}
	return restore(ctx, r, point, out)
}

// uploads is the -uploads flag: how many packs a writer uploads at once.
var uploads int

// treeOnly is the -tree-only flag: the limits of files/ alone.
var treeOnly bool

// dbScale and dbMinutes are the db phase's flags.
var (
	dbScale   int
	dbMinutes float64
)

// openState opens the repository kept in a state directory.
func openState(ctx context.Context, state string) (*repo.Repository, *pgxpool.Pool, func(), error) {
	cluster, err := pgembed.Start(ctx, pgembed.Options{Dir: filepath.Join(state, "pg"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return nil, nil, nil, err
	}
	pool, err := pgxpool.New(ctx, cluster.URL("haven"))
	stop := func() {
		if pool != nil {
			pool.Close()
		}
		cluster.Stop(context.Background())
	}
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	fail := func(err error) (*repo.Repository, *pgxpool.Pool, func(), error) {
		stop()
		return nil, nil, nil, err
	}
	if err := repo.Migrate(ctx, pool); err != nil {
		return fail(err)
	}
	mk, err := keys.LoadOrCreate(filepath.Join(state, "master.key"))
	if err != nil {
		return fail(err)
	}
	st, err := fsstore.New(filepath.Join(state, "store"))
	if err != nil {
		return fail(err)
	}
	r, err := repo.OpenOn(ctx, st, pool, "bench", mk, repo.Options{Uploads: uploads})
	if err != nil {
		return fail(err)
	}
	return r, pool, stop, nil
}

// ingest backs up files/ and vm/disk0.img as two points, point-files and
// point-vm, captured at the same time (as the engine would run the two
// parts of one dataset), and timed together.
func ingest(ctx context.Context, r *repo.Repository, pool *pgxpool.Pool, state, dataset, point, parent string) error {
	start := time.Now()
	var (
		fstats files.CaptureStats
		fw, dw *repo.Writer
	)
	img := filepath.Join(dataset, "vm", "disk0.img")
	info, err := os.Stat(img)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) {
		fstats, fw, err = backupTree(gctx, r, filepath.Join(dataset, "files"), point, parent, false)
		return err
	})
	if !treeOnly {
		g.Go(func() (err error) {
			dw, err = backupImage(gctx, r, state, img, point, parent)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	elapsed := time.Since(start).Seconds()
	var stored int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(size), 0) FROM repo_packs WHERE retired_at IS NULL`).Scan(&stored); err != nil {
		return err
	}
	total, s1 := fstats.Bytes, fw.Stats()
	newBytes := s1.NewBytes
	if !treeOnly {
		total += info.Size()
		newBytes += dw.Stats().NewBytes
	}
	return emit(result{Phase: "ingest", Seconds: elapsed, Bytes: total, MBps: mb(total) / elapsed,
		NewBytes: newBytes, StoredTotal: stored, Files: fstats.Files, Reused: fstats.Reused})
}

// backupTree backs up the tree under dir as point-files, incremental from
// parent-files if parent is set; totals runs the capture's concurrent
// totals scan, with progress reports, as the server's file driver does.
func backupTree(ctx context.Context, r *repo.Repository, dir, point, parent string, totals bool) (files.CaptureStats, *repo.Writer, error) {
	var parentRoot format.ID
	var err error
	if parent != "" {
		if parentRoot, err = r.Root(ctx, pointName(parent, "files")); err != nil {
			return files.CaptureStats{}, nil, err
		}
	}
	w, err := r.NewWriter(ctx, pointName(parent, "files"))
	if err != nil {
		return files.CaptureStats{}, nil, err
	}
	opts := files.CaptureOptions{Paths: []string{dir}, Parent: parentRoot}
	if totals {
		var reports atomic.Int64
		opts.Totals, opts.Progress = true, func(files.CaptureProgress) { reports.Add(1) }
	}
	root, st, err := files.Capture(ctx, w, r, opts)
	if err != nil {
		w.Abort(ctx)
		return st, nil, err
	}
	return st, w, w.Commit(ctx, pointName(point, "files"), root)
}

// backupImage backs up a disk image file through disk.Capture as
// point-vm, reading it whole: its holes read as zeros and are recorded as
// holes, never stored. An image whose size and modification time are
// those recorded for parent's point is not read again: it is captured as
// changed-block tracking reports an untouched disk, every block taken
// from the parent. That is what the product does for both kinds of
// source this image stands for (a VM disk has CBT; an image file in a
// fileset is skipped by its metadata), and what restic, the reference,
// does for the same file. A changed image is read whole.
func backupImage(ctx context.Context, r *repo.Repository, state, path, point, parent string) (*repo.Writer, error) {
	img, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer img.Close()
	info, err := img.Stat()
	if err != nil {
		return nil, err
	}
	stamp := imageStamp{Size: info.Size(), ModTime: info.ModTime().UnixNano()}
	opts := disk.CaptureOptions{Name: filepath.Base(path), Source: img, Size: info.Size()}
	if parent != "" {
		if was, err := readImageStamp(state, parent); err == nil && was == stamp {
			if opts.Parent, err = r.Root(ctx, pointName(parent, "vm")); err != nil {
				return nil, err
			}
			opts.Changed = []chunker.Extent{}
		}
	}
	w, err := r.NewWriter(ctx, "")
	if err != nil {
		return nil, err
	}
	root, _, err := disk.Capture(ctx, w, r, opts)
	if err != nil {
		w.Abort(ctx)
		return nil, err
	}
	if err := w.Commit(ctx, pointName(point, "vm"), root); err != nil {
		return nil, err
	}
	return w, writeImageStamp(state, point, stamp)
}

// imageStamp is what backupImage records of the image each point holds.
type imageStamp struct {
	Size    int64 `json:"size"`
	ModTime int64 `json:"mtime_ns"`
}

func imageStampPath(state, point string) string {
	return filepath.Join(state, "image-"+point+".json")
}

func readImageStamp(state, point string) (imageStamp, error) {
	var s imageStamp
	b, err := os.ReadFile(imageStampPath(state, point))
	if err == nil {
		err = json.Unmarshal(b, &s)
	}
	return s, err
}

func writeImageStamp(state, point string, s imageStamp) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return os.WriteFile(imageStampPath(state, point), b, 0o644)
}

// restore writes both points back, at the same time, into out.
func restore(ctx context.Context, r *repo.Repository, point, out string) error {
	start := time.Now()
	var fs files.RestoreStats
	var ds disk.RestoreStats
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		root, err := r.Root(gctx, pointName(point, "files"))
		if err != nil {
			return err
		}
		fs, err = files.Restore(gctx, r, root, files.RestoreOptions{Target: filepath.Join(out, "files")})
		return err
	})
	g.Go(func() error {
		root, err := r.Root(gctx, pointName(point, "vm"))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(out, "vm"), 0o755); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(out, "vm", "disk0.img"))
		if err != nil {
			return err
		}
		if ds, err = disk.Restore(gctx, r, root, f); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	if err := g.Wait(); err != nil {
		return err
	}
	elapsed := time.Since(start).Seconds()
	total := fs.Bytes + ds.Bytes
	return emit(result{Phase: "restore", Seconds: elapsed, Bytes: total, MBps: mb(total) / elapsed, Files: fs.Files})
}

// limits measures the physical limits on the same bytes, each on every
// core (one reader per core, as the engine runs one worker or more per
// core): reading every file of the dataset; reading it and computing keyed
// BLAKE3 chunk ids of every piece of one average chunk; reading it and
// zstd-compressing those pieces at the repository's level and settings
// (format.Compress, no skip heuristic); writing under out what the
// restore writes, as it writes it (writeLimit); and durably storing as
// many bytes as pack-sized objects (storeWriteLimit).
func limits(dataset, out string, treeOnly bool) error {
	var paths []string
	from := dataset
	if treeOnly {
		from = filepath.Join(dataset, "files")
	}
	filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return nil
	})
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return err
	}
	hasher := format.NewHasher(key)
	cores := runtime.GOMAXPROCS(0)
	// pass reads every file on every core and gives each piece of one
	// average chunk to work, returning the bytes read and what work said
	// each piece came to.
	pass := func(work func(piece []byte, scratch *[]byte) int64) (read, worked int64, secs float64, err error) {
		start := time.Now()
		next := make(chan string)
		g := new(errgroup.Group)
		var mu sync.Mutex
		for range cores {
			g.Go(func() error {
				buf := make([]byte, chunker.DefaultParams.Avg)
				var scratch []byte
				var r, w int64
				defer func() { mu.Lock(); read += r; worked += w; mu.Unlock() }()
				for p := range next {
					f, err := os.Open(p)
					if err != nil {
						return err
					}
					for {
						n, err := io.ReadFull(f, buf)
						r += int64(n)
						if n > 0 && work != nil {
							w += work(buf[:n], &scratch)
						}
						if err != nil {
							break
						}
					}
					f.Close()
				}
				return nil
			})
		}
		for _, p := range paths {
			next <- p
		}
		close(next)
		err = g.Wait()
		return read, worked, time.Since(start).Seconds(), err
	}
	n, _, secs, err := pass(nil)
	if err != nil {
		return err
	}
	if err := emit(result{Phase: "read", Seconds: secs, Bytes: n, MBps: mb(n) / secs, Parallel: cores}); err != nil {
		return err
	}
	n, _, secs, err = pass(func(piece []byte, _ *[]byte) int64 { hasher.Sum(piece); return 0 })
	if err != nil {
		return err
	}
	if err := emit(result{Phase: "blake3", Seconds: secs, Bytes: n, MBps: mb(n) / secs, Parallel: cores}); err != nil {
		return err
	}
	n, compressed, secs, err := pass(func(piece []byte, scratch *[]byte) int64 {
		*scratch = format.Compress((*scratch)[:0], piece)
		return int64(len(*scratch))
	})
	if err != nil {
		return err
	}
	if err := emit(result{Phase: "zstd", Seconds: secs, Bytes: n, MBps: mb(n) / secs, Parallel: cores, Compressed: compressed}); err != nil {
		return err
	}
	// Everything a backup does to new bytes that no pipeline can skip, in
	// one pass: the zero check, the keyed BLAKE3 id and sealing (zstd when
	// worth it, AES-GCM), with no chunking, dedup, index, packs or store.
	sealer, err := format.NewSealer(key)
	if err != nil {
		return err
	}
	n, sealed, secs, err := pass(func(piece []byte, scratch *[]byte) int64 {
		if chunker.IsZero(piece) {
			return 0
		}
		if cap(*scratch) < 3*len(piece) {
			*scratch = make([]byte, 3*len(piece))
		}
		// The first part of scratch takes the compression, the rest the
		// sealed blob, as the writer's own buffers do.
		half := (*scratch)[:len(piece)+len(piece)/2]
		blob, _ := sealer.Seal((*scratch)[len(half):len(half)], hasher.Sum(piece), piece, half)
		return int64(len(blob))
	})
	if err != nil {
		return err
	}
	if err := emit(result{Phase: "seal", Seconds: secs, Bytes: n, MBps: mb(n) / secs, Parallel: cores, Compressed: sealed}); err != nil {
		return err
	}
	if out == "" {
		return nil
	}
	w, err := writeLimit(dataset, out, !treeOnly)
	if err != nil {
		return err
	}
	if err := emit(w); err != nil || treeOnly {
		return err
	}
	// The ingest runs two writers (files/ and the disk image) at once.
	sw, err := storeWriteLimit(filepath.Join(out, "store"), w.Bytes, 2*engineUploads())
	if err != nil {
		return err
	}
	return emit(sw)
}

func pointName(p, part string) string {
	if p == "" {
		return ""
	}
	return p + "-" + part
}

func mb(n int64) float64 { return float64(n) / 1e6 }

// scale holds the scale phases' flags.
var scale struct {
	files  int
	images []string
	paths  []string
}

// cpuSeconds is the process's CPU time so far, user and system.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func emit(r result) error {
	r.PeakHeapMiB = phaseHeap.MiB()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		r.PeakRSSMiB = float64(ru.Maxrss) / 1024
		r.MinorFaults = ru.Minflt
	}
	r.CPUSeconds = cpuSeconds()
	return json.NewEncoder(os.Stdout).Encode(r)
}
