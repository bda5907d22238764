package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
)

// The scale benchmark (make bench-scale, scripts/bench-scale.sh): a tree
// of many small files and sparse disk images, generated here, backed up
// through the same engine as the other phases. The tree is groups of
// scaleGroupFiles files (g0, g1, ...), each scaleGroupDirs directories of
// the same number of files, so that one group is a smaller tree of the
// same shape, backed up to compare memory at two sizes.
const (
	scaleGroupDirs  = 100
	scaleDirFiles   = 1000
	scaleGroupFiles = scaleGroupDirs * scaleDirFiles
	// scaleMaxFileSize bounds the generated files' sizes, drawn uniformly
	// below it: small files, where per-file costs dominate.
	scaleMaxFileSize = 2048
	// An image has one block of imageBlock allocated in every imageStride,
	// at a spread offset within it; the rest is holes.
	imageBlock  = 1 << 20
	imageStride = 16 << 20
)

// genScale writes nfiles small files under dataset/files (whole groups)
// and, for each size in images (GiB), a sparse image dataset/vm/disk-<n>g.img,
// all on every core. File contents are pseudo-random hex text (about half
// of it survives compression), unique per file, from a fixed seed.
func genScale(dataset string, nfiles int, images []int) error {
	start := time.Now()
	groups := (nfiles + scaleGroupFiles - 1) / scaleGroupFiles
	var bytes atomic.Int64
	bufs := sync.Pool{New: func() any { return make([]byte, scaleMaxFileSize) }}
	// Four per core: file creation waits on the filesystem.
	err := forEach(slices.Collect(seq(groups*scaleGroupDirs)), 4*runtime.GOMAXPROCS(0), func(d int) error {
		buf := bufs.Get().([]byte)
		defer bufs.Put(buf)
		dir := filepath.Join(dataset, "files", fmt.Sprintf("g%d", d/scaleGroupDirs), fmt.Sprintf("d%03d", d%scaleGroupDirs))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for f := range scaleDirFiles {
			rng := mrand.New(mrand.NewPCG(uint64(d), uint64(f)))
			data := buf[:rng.IntN(scaleMaxFileSize)]
			for i := 0; i < len(data); i += 16 {
				for v, j := rng.Uint64(), i; j < min(i+16, len(data)); v, j = v>>4, j+1 {
					data[j] = "0123456789abcdef"[v&15]
				}
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", f)), data, 0o644); err != nil {
				return err
			}
			bytes.Add(int64(len(data)))
		}
		return nil
	})
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	n := int64(groups * scaleGroupFiles)
	if err := emit(result{Phase: "gen-files", Seconds: secs, Files: n, Bytes: bytes.Load(), FilesPerS: float64(n) / secs}); err != nil {
		return err
	}
	for _, gib := range images {
		start := time.Now()
		p := scaleImagePath(dataset, gib)
		allocated, err := genImage(p, int64(gib)<<30)
		if err != nil {
			return err
		}
		secs := time.Since(start).Seconds()
		if err := emit(result{Phase: fmt.Sprintf("gen-image-%dg", gib), Seconds: secs, Bytes: int64(gib) << 30, ReadBytes: allocated}); err != nil {
			return err
		}
	}
	return nil
}

func scaleImagePath(dataset string, gib int) string {
	return filepath.Join(dataset, "vm", fmt.Sprintf("disk-%dg.img", gib))
}

// genImage makes a sparse image of size bytes: holes, and random blocks
// at spread offsets (one per imageStride). It returns the bytes written.
func genImage(path string, size int64) (int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return 0, err
	}
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return 0, err
	}
	strides := size / imageStride
	blocks := sync.Pool{New: func() any { return make([]byte, imageBlock) }}
	err = forEach(slices.Collect(seq(int(strides))), runtime.GOMAXPROCS(0), func(s int) error {
		block := blocks.Get().([]byte)
		defer blocks.Put(block)
		var seed [32]byte
		seed[0], seed[1] = byte(s), byte(s>>8)
		mrand.NewChaCha8(seed).Read(block)
		// Spread within the stride, block aligned: not one regular pattern.
		off := int64(s)*imageStride + int64(s*7)%(imageStride/imageBlock)*imageBlock
		_, err := f.WriteAt(block, off)
		return err
	})
	if err != nil {
		return 0, err
	}
	return strides * imageBlock, f.Close()
}

// scaleLimits measures, on every core, what bounds a backup and a restore
// of the tree under root: a walk that only lstats every entry (the least
// any backup does per file, and all an unchanged re-backup must do), and
// opening, reading and hashing (keyed BLAKE3) every file. For each image
// it measures reading it whole, in blocks, as disk.Capture reads it.
func scaleLimits(root string, images []string) error {
	dirs, err := leafDirs(root)
	if err != nil {
		return err
	}
	var key [32]byte
	if _, err := rand.Read(key[:]); err != nil {
		return err
	}
	hasher := format.NewHasher(key)
	cores := runtime.GOMAXPROCS(0)
	// pass runs visit on every file of every directory, on every core.
	pass := func(phase string, visit func(path string, buf []byte) (int64, error)) error {
		start := time.Now()
		var nfiles, nbytes atomic.Int64
		bufs := sync.Pool{New: func() any { return make([]byte, 1<<20) }}
		err := forEach(dirs, cores, func(dir string) error {
			buf := bufs.Get().([]byte)
			defer bufs.Put(buf)
			names, err := readDirNames(dir)
			if err != nil {
				return err
			}
			for _, name := range names {
				n, err := visit(filepath.Join(dir, name), buf)
				if err != nil {
					return err
				}
				nfiles.Add(1)
				nbytes.Add(n)
			}
			return nil
		})
		if err != nil {
			return err
		}
		secs := time.Since(start).Seconds()
		n := nfiles.Load()
		return emit(result{Phase: phase, Seconds: secs, Files: n, Bytes: nbytes.Load(), FilesPerS: float64(n) / secs,
			MBps: mb(nbytes.Load()) / secs, Parallel: cores})
	}
	if err := pass("lstat", func(p string, _ []byte) (int64, error) {
		info, err := os.Lstat(p)
		if err != nil {
			return 0, err
		}
		return info.Size(), nil
	}); err != nil {
		return err
	}
	if err := pass("read-hash", func(p string, buf []byte) (int64, error) {
		f, err := os.Open(p)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		n, err := io.ReadFull(f, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return 0, err
		}
		hasher.Sum(buf[:n])
		return int64(n), nil
	}); err != nil {
		return err
	}
	for _, img := range images {
		if err := imageReadLimit(img, cores); err != nil {
			return err
		}
	}
	return nil
}

// imageReadLimit reads an image whole in blocks of the disk block size,
// one reader per core, checking each for zeros as disk.Capture does.
func imageReadLimit(path string, cores int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	size := info.Size()
	start := time.Now()
	var next atomic.Int64
	g := new(errgroup.Group)
	for range cores {
		g.Go(func() error {
			buf := make([]byte, chunker.DefaultBlockSize)
			for {
				off := next.Add(int64(len(buf))) - int64(len(buf))
				if off >= size {
					return nil
				}
				n, err := f.ReadAt(buf, off)
				if err != nil && err != io.EOF {
					return err
				}
				chunker.IsZero(buf[:n])
			}
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	return emit(result{Phase: "image-read", Seconds: secs, Bytes: size, MBps: mb(size) / secs,
		ReadBytes: allocatedBytes(f, size), Parallel: cores})
}

// allocatedBytes is how much of a file holds data, by SEEK_DATA/SEEK_HOLE.
func allocatedBytes(f *os.File, size int64) int64 {
	var n int64
	fd := int(f.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return size
		}
		n += hole - data
		off = hole
	}
	return n
}

// leafDirs lists the directories under root that hold files, in order.
func leafDirs(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			if dir := filepath.Dir(p); len(out) == 0 || out[len(out)-1] != dir {
				out = append(out, dir)
			}
			return fs.SkipDir // the rest of this directory's files
		}
		return nil
	})
	return out, err
}

// seq yields 0, 1, ..., n-1.
func seq(n int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}
}

// forEach calls fn with each of items, on n goroutines; the first error
// stops it.
func forEach[T any](items []T, n int, fn func(T) error) error {
	g, ctx := errgroup.WithContext(context.Background())
	next := make(chan T)
	g.Go(func() error {
		defer close(next)
		for _, d := range items {
			select {
			case next <- d:
			case <-ctx.Done():
				return nil
			}
		}
		return nil
	})
	for range n {
		g.Go(func() error {
			for d := range next {
				if err := fn(d); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

func readDirNames(dir string) ([]string, error) {
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// restoreWriteLimit writes the files of a tree anew under out, on every
// core, without fsync: the least a restore of it must do.
func restoreWriteLimit(root, out string) error {
	dirs, err := leafDirs(root)
	if err != nil {
		return err
	}
	start := time.Now()
	var nfiles, nbytes atomic.Int64
	err = forEach(dirs, runtime.GOMAXPROCS(0), func(dir string) error {
		names, err := readDirNames(dir)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, dir)
		to := filepath.Join(out, rel)
		if err := os.MkdirAll(to, 0o755); err != nil {
			return err
		}
		for _, name := range names {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(to, name), data, 0o644); err != nil {
				return err
			}
			nfiles.Add(1)
			nbytes.Add(int64(len(data)))
		}
		return nil
	})
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	n := nfiles.Load()
	return emit(result{Phase: "write", Seconds: secs, Files: n, Bytes: nbytes.Load(), FilesPerS: float64(n) / secs,
		MBps: mb(nbytes.Load()) / secs, Parallel: runtime.GOMAXPROCS(0)})
}

// scaleIngest backs up one part, a tree (a directory) or an image (a
// file), as point, and reports it with the index's size after it.
func scaleIngest(ctx context.Context, r *repo.Repository, pool *pgxpool.Pool, state, path, point, parent string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	start := time.Now()
	res := result{Phase: "ingest"}
	if info.IsDir() {
		st, w, err := backupTree(ctx, r, path, point, parent, true)
		if err != nil {
			return err
		}
		res.Files, res.Reused, res.Bytes, res.NewBytes = st.Files, st.Reused, st.Bytes, w.Stats().NewBytes
	} else {
		w, err := backupImage(ctx, r, state, path, point, parent)
		if err != nil {
			return err
		}
		res.Bytes, res.NewBytes = info.Size(), w.Stats().NewBytes
	}
	res.Seconds = time.Since(start).Seconds()
	res.MBps = mb(res.Bytes) / res.Seconds
	res.FilesPerS = float64(res.Files) / res.Seconds
	if res.Index, err = indexSize(ctx, pool); err != nil {
		return err
	}
	return emit(res)
}

// indexStats is the size of the repository's index in PostgreSQL and of
// what its packs hold, after a phase.
type indexStats struct {
	Chunks int64 `json:"chunks"`
	// ChunksTableBytes and PacksTableBytes are the tables with their
	// indexes and TOAST (pg_total_relation_size).
	ChunksTableBytes int64 `json:"chunks_table_bytes"`
	PacksTableBytes  int64 `json:"packs_table_bytes"`
	Packs            int64 `json:"packs"`
	PackBytes        int64 `json:"pack_bytes"`
	// ManifestBytes are the stored (sealed) tree and root chunks, the
	// manifests; DataBytes the stored file and disk chunks.
	ManifestBytes int64 `json:"manifest_bytes"`
	DataBytes     int64 `json:"data_bytes"`
}

func indexSize(ctx context.Context, pool *pgxpool.Pool) (*indexStats, error) {
	var s indexStats
	err := pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM repo_chunks),
		pg_total_relation_size('repo_chunks'), pg_total_relation_size('repo_packs'),
		(SELECT count(*) FROM repo_packs WHERE retired_at IS NULL),
		(SELECT coalesce(sum(size), 0) FROM repo_packs WHERE retired_at IS NULL),
		(SELECT coalesce(sum(length), 0) FROM repo_chunks WHERE type <> $1),
		(SELECT coalesce(sum(length), 0) FROM repo_chunks WHERE type = $1)`, int16(format.Data)).
		Scan(&s.Chunks, &s.ChunksTableBytes, &s.PacksTableBytes, &s.Packs, &s.PackBytes, &s.ManifestBytes, &s.DataBytes)
	return &s, err
}

// scaleRestore restores the part of a tree point below paths into out.
func scaleRestore(ctx context.Context, r *repo.Repository, point, out string, paths []string) error {
	root, err := r.Root(ctx, pointName(point, "files"))
	if err != nil {
		return err
	}
	start := time.Now()
	st, err := files.Restore(ctx, r, root, files.RestoreOptions{Target: out, Paths: paths})
	if err != nil {
		return err
	}
	secs := time.Since(start).Seconds()
	return emit(result{Phase: "restore", Seconds: secs, Files: st.Files, Bytes: st.Bytes, FilesPerS: float64(st.Files) / secs, MBps: mb(st.Bytes) / secs})
}

// heapPeak samples the Go heap (live and not yet swept objects) while a
// phase runs, so the report can tell Go memory from the rest of the RSS.
// With a profile path, it writes a heap profile whenever the peak has
// grown by a tenth since the last one, so the profile shows the heap near
// its largest.
type heapPeak struct {
	peak atomic.Uint64
	stop chan struct{}
	done sync.WaitGroup
}

var phaseHeap *heapPeak

func startHeapPeak(profile string) *heapPeak {
	h := &heapPeak{stop: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		var profiled uint64
		for {
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
			metrics.Read(sample)
			v := sample[0].Value.Uint64()
			if v <= h.peak.Load() {
				continue
			}
			h.peak.Store(v)
			if profile != "" && v > profiled+profiled/10 {
				profiled = v
				if f, err := os.Create(profile); err == nil {
					pprof.Lookup("heap").WriteTo(f, 0)
					f.Close()
				}
			}
		}
	}()
	return h
}

func (h *heapPeak) MiB() float64 {
	if h == nil {
		return 0
	}
	return float64(h.peak.Load()) / (1 << 20)
}

func (h *heapPeak) Stop() {
	close(h.stop)
	h.done.Wait()
}
