package chunker

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/zeebo/blake3"
)

// The dataset benchmarks re-run the measurement behind DefaultParams and
// DefaultBlockSize (see doc.go) on trees made by Haven's make-dataset script:
//
//	python3 make-dataset /tmp/ds --scale 1
//	cp -a /tmp/ds /tmp/ds1 && python3 make-dataset /tmp/ds1 --change 1
//	HAVEN_BENCH_DATASET=/tmp/ds HAVEN_BENCH_DATASET_CHANGED=/tmp/ds1 \
//	    go test -run XXX -bench Dataset -benchtime 3x ./engine/chunker/
//
// Without HAVEN_BENCH_DATASET they skip: they need a few hundred MiB of data
// that is generated outside Go, and they are measurements, not checks.
const (
	envDataset        = "HAVEN_BENCH_DATASET"
	envDatasetChanged = "HAVEN_BENCH_DATASET_CHANGED"
)

type dataset struct {
	files   [][]byte // contents of files/, in path order
	changed [][]byte // the same for the changed copy, if given
	disk    []byte   // vm/disk0.img
	disk1   []byte   // the changed copy's disk image, if given
}

var (
	datasetOnce sync.Once
	datasetVal  *dataset
	datasetErr  error
)

func loadDataset(b *testing.B) *dataset {
	dir := os.Getenv(envDataset)
	if dir == "" {
		b.Skipf("set %s to a directory made by make-dataset (and optionally %s to a copy changed with --change) to measure chunking on it", envDataset, envDatasetChanged)
	}
	datasetOnce.Do(func() {
		d := &dataset{}
		if d.files, datasetErr = readTree(filepath.Join(dir, "files")); datasetErr != nil {
			return
		}
		if d.disk, datasetErr = os.ReadFile(filepath.Join(dir, "vm", "disk0.img")); datasetErr != nil {
			return
		}
		if ch := os.Getenv(envDatasetChanged); ch != "" {
			if d.changed, datasetErr = readTree(filepath.Join(ch, "files")); datasetErr != nil {
				return
			}
			if d.disk1, datasetErr = os.ReadFile(filepath.Join(ch, "vm", "disk0.img")); datasetErr != nil {
				return
			}
		}
		datasetVal = d
	})
	if datasetErr != nil {
		b.Fatal(datasetErr)
	}
	return datasetVal
}

func readTree(root string) ([][]byte, error) {
	var paths []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no files under %s", root)
	}
	slices.Sort(paths)
	out := make([][]byte, len(paths))
	for i, p := range paths {
		if out[i], err = os.ReadFile(p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// dedupStats counts the bytes a repository would store for a set of chunks.
type dedupStats struct {
	seen         map[[32]byte]struct{}
	total        int64 // bytes referenced
	unique       int64 // bytes stored
	refs, chunks int   // chunk references, distinct chunks
}

func newDedupStats() *dedupStats { return &dedupStats{seen: map[[32]byte]struct{}{}} }

func (s *dedupStats) add(data []byte) {
	s.total += int64(len(data))
	s.refs++
	id := blake3.Sum256(data)
	if _, ok := s.seen[id]; !ok {
		s.seen[id] = struct{}{}
		s.unique += int64(len(data))
		s.chunks++
	}
}

// after returns the stats of storing a second version on top of s: the seen
// set is shared, so unique then counts only the new bytes.
func (s *dedupStats) after() *dedupStats {
	return &dedupStats{seen: s.seen}
}

func cdcEach(b *testing.B, c *CDC, files [][]byte, fn func([]byte)) {
	var r bytes.Reader
	for _, f := range files {
		r.Reset(f)
		c.Reset(&r)
		for {
			ch, err := c.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			fn(ch.Data)
		}
	}
}

const bytesPerIndexRow = 100 // PostgreSQL chunk index row with its share of index pages

// reportDedup reports what a storage of base and then changed would hold:
// the stored fraction of size (the input's bytes, holes included), the chunk
// index size this chunk size implies per TiB stored, and the new bytes.
func reportDedup(b *testing.B, label string, size int64, base, next *dedupStats) {
	ratio := float64(base.unique) / float64(size)
	rowsPerTiB := float64(base.chunks) / float64(base.unique) * (1 << 40)
	b.ReportMetric(ratio, "unique/total")
	b.ReportMetric(float64(base.chunks), "chunks")
	b.ReportMetric(rowsPerTiB*bytesPerIndexRow/1e6, "indexMB/TiB")
	mbps := float64(size) * float64(b.N) / b.Elapsed().Seconds() / 1e6
	row := fmt.Sprintf("| %s | %.0f | %.4f | %d | %.0f", label, mbps, ratio, base.chunks, rowsPerTiB*bytesPerIndexRow/1e6)
	if next != nil {
		b.ReportMetric(float64(next.unique)/(1<<20), "newMiB")
		b.ReportMetric(float64(next.chunks), "newchunks")
		row += fmt.Sprintf(" | %.2f | %d", float64(next.unique)/(1<<20), next.chunks)
	}
	b.Log(row + " |")
}

// BenchmarkDataset chunks the files/ tree with each candidate Params: it
// reports chunking throughput, the dedup ratio (unique bytes / total bytes,
// so duplicates across files count), the index size implied, and the bytes
// that are new in the changed copy.
func BenchmarkDataset(b *testing.B) {
	d := loadDataset(b)
	var total int64
	for _, f := range d.files {
		total += int64(len(f))
	}
	b.Run("whole-file", func(b *testing.B) {
		// The baseline without chunking: only identical files dedup.
		var base, next *dedupStats
		for b.Loop() {
			base = newDedupStats()
			for _, f := range d.files {
				base.add(f)
			}
			if d.changed != nil {
				next = base.after()
				for _, f := range d.changed {
					next.add(f)
				}
			}
		}
		reportDedup(b, "whole file", total, base, next)
	})
	// The first set is far too small for production (16x the index rows of
	// the default); it is here as an estimate of how many bytes really
	// changed.
	sets := append([]Params{{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}}, candidateParams...)
	for _, p := range sets {
		b.Run(benchName(p), func(b *testing.B) {
			c, err := NewCDC(nil, p)
			if err != nil {
				b.Fatal(err)
			}
			base := newDedupStats()
			cdcEach(b, c, d.files, base.add)
			var next *dedupStats
			if d.changed != nil {
				next = base.after()
				cdcEach(b, c, d.changed, next.add)
			}
			b.SetBytes(total)
			for b.Loop() {
				cdcEach(b, c, d.files, func([]byte) {})
			}
			reportDedup(b, p.String(), total, base, next)
		})
	}
}

// BenchmarkDatasetFixed does the same for the disk image with fixed-size
// blocks: holes are not stored, and after the change only blocks that differ
// are new.
func BenchmarkDatasetFixed(b *testing.B) {
	d := loadDataset(b)
	for _, bs := range []int{64 << 10, 256 << 10, 1 << 20, 4 << 20} {
		b.Run("block="+sizeString(bs), func(b *testing.B) {
			var holes int64
			each := func(img []byte, fn func([]byte)) {
				f, err := NewFixed(bytes.NewReader(img), int64(len(img)), bs)
				if err != nil {
					b.Fatal(err)
				}
				holes = 0
				for {
					ch, err := f.Next()
					if err == io.EOF {
						return
					}
					if err != nil {
						b.Fatal(err)
					}
					if ch.Hole {
						holes += int64(ch.Length)
						continue
					}
					fn(ch.Data)
				}
			}
			base := newDedupStats()
			each(d.disk, base.add)
			holeFrac := float64(holes) / float64(len(d.disk))
			var next *dedupStats
			if d.disk1 != nil {
				next = base.after()
				each(d.disk1, next.add)
			}
			b.SetBytes(int64(len(d.disk)))
			for b.Loop() {
				each(d.disk, func([]byte) {})
			}
			b.ReportMetric(holeFrac, "holes/size")
			reportDedup(b, fmt.Sprintf("block %s (holes %.1f%%)", sizeString(bs), 100*holeFrac), int64(len(d.disk)), base, next)
		})
	}
}
