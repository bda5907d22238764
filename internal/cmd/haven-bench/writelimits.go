package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store/fsstore"
)

// piece is one chunk a restore writes: data at off of its file.
type piece struct {
	off  int64
	data []byte
}

// restoredFile is a file as a restore writes it: its size (set first, so
// that what is not written stays a hole) and its non-zero chunks.
type restoredFile struct {
	rel    string
	size   int64
	pieces []piece
}

// Batching of the files restore (engine/files: batchFiles, batchSize):
// one syncfs and the renames end each batch.
const (
	restoreBatchFiles = 512
	restoreBatchBytes = 128 << 20
)

// loadRestoreImage reads the dataset into memory as the benchmark's
// restore writes it back: files/ cut into chunks as a backup cuts them
// (chunker.DefaultParams), and the disk image in fixed blocks, each
// without its all-zero chunks, which a restore leaves as holes; without
// withImage, files/ alone.
func loadRestoreImage(dataset string, withImage bool) (tree []restoredFile, img restoredFile, err error) {
	root := filepath.Join(dataset, "files")
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		cuts, err := chunker.Cuts(data, chunker.DefaultParams)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		f := restoredFile{rel: rel, size: int64(len(data))}
		start := 0
		for _, end := range cuts {
			if !chunker.IsZero(data[start:end]) {
				f.pieces = append(f.pieces, piece{off: int64(start), data: data[start:end]})
			}
			start = end
		}
		tree = append(tree, f)
		return nil
	})
	if err != nil || !withImage {
		return tree, img, err
	}
	data, err := os.ReadFile(filepath.Join(dataset, "vm", "disk0.img"))
	if err != nil {
		return nil, img, err
	}
	img = restoredFile{rel: "disk0.img", size: int64(len(data))}
	for off := 0; off < len(data); off += chunker.DefaultBlockSize {
		block := data[off:min(off+chunker.DefaultBlockSize, len(data))]
		if !chunker.IsZero(block) {
			img.pieces = append(img.pieces, piece{off: int64(off), data: block})
		}
	}
	return tree, img, nil
}

// writeLimit writes what the benchmark's restore writes, from memory read
// beforehand, into out, the way the restore writes it: the files/ tree in
// the files restore's batches (temporary files sized first, their chunks
// written by as many writers as a restore loads with, then one syncfs
// and the renames), and at the same time the disk image (sized, then its
// non-zero blocks by as many writers, no sync, as disk.Restore). Bytes is
// what the restore counts (file and image sizes, holes included), so the
// two MB/s compare; Written is what went to the disk. Without withImage
// it writes files/ alone, as the end-to-end restore does.
func writeLimit(dataset, out string, withImage bool) (result, error) {
	tree, img, err := loadRestoreImage(dataset, withImage)
	if err != nil {
		return result{}, err
	}
	writers := max(runtime.GOMAXPROCS(0), 2) // repo.Repository's Load
	total := img.size
	for _, f := range tree {
		total += f.size
	}
	var written atomic.Int64
	start := time.Now()
	g := new(errgroup.Group)
	g.Go(func() error {
		if !withImage {
			return nil
		}
		dir := filepath.Join(out, "vm")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		f, err := os.Create(filepath.Join(dir, img.rel))
		if err != nil {
			return err
		}
		if err := f.Truncate(img.size); err != nil {
			f.Close()
			return err
		}
		if err := writePieces([]*os.File{f}, [][]piece{img.pieces}, writers, &written); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	g.Go(func() error {
		for len(tree) > 0 {
			n, size := 0, int64(0)
			for n < len(tree) && n < restoreBatchFiles && size < restoreBatchBytes {
				size += tree[n].size
				n++
			}
			if err := writeBatch(filepath.Join(out, "files"), tree[:n], writers, &written); err != nil {
				return err
			}
			tree = tree[n:]
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return result{}, err
	}
	secs := time.Since(start).Seconds()
	return result{Phase: "write", Seconds: secs, Bytes: total, MBps: mb(total) / secs, Parallel: 2 * writers, Written: written.Load()}, nil
}

// writeBatch writes one batch of files as the files restore does.
func writeBatch(root string, batch []restoredFile, writers int, written *atomic.Int64) error {
	files := make([]*os.File, len(batch))
	pieces := make([][]piece, len(batch))
	defer func() {
		for _, f := range files {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i, rf := range batch {
		p := filepath.Join(root, rf.rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(p+".restoring", os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		files[i], pieces[i] = f, rf.pieces
		if err := f.Truncate(rf.size); err != nil {
			return err
		}
	}
	if err := writePieces(files, pieces, writers, written); err != nil {
		return err
	}
	if len(batch) > 0 {
		if err := syncBatch(files); err != nil {
			return err
		}
	}
	for i, rf := range batch {
		files[i].Close()
		files[i] = nil
		p := filepath.Join(root, rf.rel)
		if err := os.Rename(p+".restoring", p); err != nil {
			return err
		}
	}
	return nil
}

// writePieces writes every file's pieces with writers goroutines.
func writePieces(files []*os.File, pieces [][]piece, writers int, written *atomic.Int64) error {
	type job struct {
		f *os.File
		p piece
	}
	jobs := make(chan job)
	g := new(errgroup.Group)
	for range writers {
		g.Go(func() error {
			var err error
			for j := range jobs {
				if err == nil {
					_, err = j.f.WriteAt(j.p.data, j.p.off)
					written.Add(int64(len(j.p.data)))
				}
			}
			return err
		})
	}
	for i, f := range files {
		for _, p := range pieces[i] {
			jobs <- job{f, p}
		}
	}
	close(jobs)
	return g.Wait()
}

// storeWriteLimit writes total bytes as pack-sized objects (random bytes,
// as sealed packs are, in page-aligned memory as the writer's packs are)
// through fsstore's Put, durable as every pack is, uploads at once: the
// limit of a backup's store writes. The store is removed afterwards.
func storeWriteLimit(dir string, total int64, uploads int) (result, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return result{}, err
	}
	st, err := fsstore.New(dir)
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	bufs := make([][]byte, uploads)
	for i := range bufs {
		bufs[i] = store.AlignedBytes(repo.DefaultPackSize)
		var seed [32]byte
		seed[0] = byte(i)
		_, _ = rand.NewChaCha8(seed).Read(bufs[i])
	}
	objects := (total + repo.DefaultPackSize - 1) / repo.DefaultPackSize
	var next atomic.Int64
	ctx := context.Background()
	start := time.Now()
	g := new(errgroup.Group)
	for _, buf := range bufs {
		g.Go(func() error {
			for {
				k := next.Add(1) - 1
				if k >= objects {
					return nil
				}
				n := min(total-k*repo.DefaultPackSize, repo.DefaultPackSize)
				if err := st.Put(ctx, fmt.Sprintf("packs/%064x", k), bytes.NewReader(buf[:n]), n, store.PutOptions{}); err != nil {
					return err
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return result{}, err
	}
	secs := time.Since(start).Seconds()
	return result{Phase: "store-write", Seconds: secs, Bytes: total, MBps: mb(total) / secs, Parallel: uploads}, nil
}

// engineUploads is how many packs one writer uploads at once in this run.
func engineUploads() int {
	if uploads > 0 {
		return uploads
	}
	return repo.DefaultUploads
}
