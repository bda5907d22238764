// Command haven-bench measures the repository engine on a make-dataset
// tree: each phase runs as its own process (so peak RSS is per phase) on
// state kept in a directory: an embedded PostgreSQL cluster, a filesystem
// store and a master key. scripts/bench.sh drives it; it prints one JSON
// object per phase.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/zeebo/blake3"

	"github.com/havenbackup/terraform-provider-haven/engine/disk"
	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/keys"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/index"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/fsstore"
	"github.com/havenbackup/terraform-provider-haven/server/pgembed"

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
	Files       int64   `json:"files,omitempty"`
	Reused      int64   `json:"reused_files,omitempty"`
}

func main() {
	phase := flag.String("phase", "", "limits, ingest or restore")
	dataset := flag.String("dataset", "", "make-dataset directory")
	state := flag.String("state", "", "state directory (database, store, key)")
	point := flag.String("point", "", "point name for ingest, or the one to restore")
	parent := flag.String("parent", "", "parent point for an incremental ingest")
	out := flag.String("out", "", "restore target directory")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the phase here")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*phase, *dataset, *state, *point, *parent, *out); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "haven-bench:", err)
		os.Exit(1)
	}
}

func run(phase, dataset, state, point, parent, out string) error {
	ctx := context.Background()
	switch phase {
	case "limits":
		return limits(dataset)
	case "ingest", "restore":
	default:
		return fmt.Errorf("unknown phase %q", phase)
	}
	cluster, err := pgembed.Start(ctx, pgembed.Options{Dir: filepath.Join(state, "pg"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	defer cluster.Stop(context.Background())
	pool, err := pgxpool.New(ctx, cluster.URL("haven"))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := index.Migrate(ctx, pool); err != nil {
		return err
	}
	mk, err := keys.LoadOrCreate(filepath.Join(state, "master.key"))
	if err != nil {
		return err
	}
	st, err := fsstore.New(filepath.Join(state, "store"))
	if err != nil {
		return err
	}
	r, err := repo.Open(ctx, st, index.New(pool, "bench"), mk, repo.Options{})
	if err != nil {
		return err
	}
	if phase == "ingest" {
		return ingest(ctx, r, pool, dataset, point, parent)
	}
	return restore(ctx, r, point, out)
}

// ingest backs up files/ and vm/disk0.img as two points, point-files and
// point-vm, timed together.
func ingest(ctx context.Context, r *repo.Repository, pool *pgxpool.Pool, dataset, point, parent string) error {
	start := time.Now()
	w, err := r.NewWriter(ctx, pointName(parent, "files"))
	if err != nil {
		return err
	}
	var parentRoot format.ID
	if parent != "" {
		if parentRoot, err = r.Index().Root(ctx, pointName(parent, "files")); err != nil {
			return err
		}
	}
	froot, fstats, err := files.Capture(ctx, w, r, files.CaptureOptions{Root: filepath.Join(dataset, "files"), Parent: parentRoot})
	if err != nil {
		return err
	}
	if err := w.Commit(ctx, pointName(point, "files"), froot); err != nil {
		return err
	}
	img, err := os.Open(filepath.Join(dataset, "vm", "disk0.img"))
	if err != nil {
		return err
	}
	defer img.Close()
	info, _ := img.Stat()
	w2, err := r.NewWriter(ctx, "")
	if err != nil {
		return err
	}
	droot, _, err := disk.Capture(ctx, w2, r, disk.CaptureOptions{Name: "disk0", Source: img, Size: info.Size()})
	if err != nil {
		return err
	}
	if err := w2.Commit(ctx, pointName(point, "vm"), droot); err != nil {
		return err
	}
	elapsed := time.Since(start).Seconds()
	var stored int64
	if err := pool.QueryRow(ctx, `SELECT coalesce(sum(size), 0) FROM repo_packs WHERE retired_at IS NULL`).Scan(&stored); err != nil {
		return err
	}
	total := fstats.Bytes + info.Size()
	s1, s2 := w.Stats(), w2.Stats()
	return emit(result{Phase: "ingest", Seconds: elapsed, Bytes: total, MBps: mb(total) / elapsed,
		NewBytes: s1.NewBytes + s2.NewBytes, StoredTotal: stored, Files: fstats.Files, Reused: fstats.Reused})
}

func restore(ctx context.Context, r *repo.Repository, point, out string) error {
	start := time.Now()
	froot, err := r.Index().Root(ctx, pointName(point, "files"))
	if err != nil {
		return err
	}
	rs, err := files.Restore(ctx, r, froot, files.RestoreOptions{Target: filepath.Join(out, "files")})
	if err != nil {
		return err
	}
	droot, err := r.Index().Root(ctx, pointName(point, "vm"))
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
	ds, err := disk.Restore(ctx, r, droot, f)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	elapsed := time.Since(start).Seconds()
	total := rs.Bytes + ds.Bytes
	return emit(result{Phase: "restore", Seconds: elapsed, Bytes: total, MBps: mb(total) / elapsed, Files: rs.Files})
}

// limits measures the physical limit on the same bytes: reading every file
// of the dataset, and reading plus BLAKE3-hashing it.
func limits(dataset string) error {
	var paths []string
	filepath.WalkDir(dataset, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return nil
	})
	buf := make([]byte, 1<<20)
	pass := func(hash bool) (int64, float64, error) {
		start := time.Now()
		var total int64
		for _, p := range paths {
			f, err := os.Open(p)
			if err != nil {
				return 0, 0, err
			}
			h := blake3.New()
			for {
				n, err := f.Read(buf)
				total += int64(n)
				if hash {
					h.Write(buf[:n])
				}
				if err != nil {
					break
				}
			}
			f.Close()
		}
		return total, time.Since(start).Seconds(), nil
	}
	n, readSec, err := pass(false)
	if err != nil {
		return err
	}
	if err := emit(result{Phase: "read", Seconds: readSec, Bytes: n, MBps: mb(n) / readSec}); err != nil {
		return err
	}
	n, hashSec, err := pass(true)
	if err != nil {
		return err
	}
	return emit(result{Phase: "blake3", Seconds: hashSec, Bytes: n, MBps: mb(n) / hashSec})
}

func pointName(p, part string) string {
	if p == "" {
		return ""
	}
	return p + "-" + part
}

func mb(n int64) float64 { return float64(n) / 1e6 }

func emit(r result) error {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		r.PeakRSSMiB = float64(ru.Maxrss) / 1024
	}
	return json.NewEncoder(os.Stdout).Encode(r)
}
