package files_test

import (
	"context"
	"encoding/binary"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// BenchmarkCaptureFull backs up 96 MiB in 48 files of 2 MiB, half random
// (stored raw) and half text (compressed), with the default chunking, as a
// full backup: before each iteration every 64 KiB of every file gets a new
// stamp, so every chunk is new and is read, hashed, compressed, sealed and
// packed. cpu-ms/op is this process's user+system CPU (PostgreSQL, in its
// own processes, is left out); B/op and allocs/op are the garbage.
func BenchmarkCaptureFull(b *testing.B) {
	env := repotest.New(b, repo.Options{})
	r := env.Repo
	ctx := context.Background()
	src := b.TempDir()
	const fileSize, nfiles, stampEvery = 2 << 20, 48, 64 << 10
	words := []string{"backup ", "restore ", "chunk ", "pack ", "index ", "point ", "haven ", "\n"}
	for n := range nfiles {
		rng := mrand.New(mrand.NewPCG(uint64(n), 7))
		data := make([]byte, 0, fileSize+8)
		for len(data) < fileSize {
			if n%2 == 0 {
				data = binary.LittleEndian.AppendUint64(data, rng.Uint64())
			} else {
				data = append(data, words[rng.IntN(len(words))]...)
			}
		}
		if err := os.WriteFile(filepath.Join(src, "f"+string(rune('a'+n%26))+string(rune('a'+n/26))), data[:fileSize], 0o644); err != nil {
			b.Fatal(err)
		}
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(fileSize * nfiles)
	b.ReportAllocs()
	cpu0 := repotest.ProcessCPU()
	iter := uint64(0)
	for b.Loop() {
		iter++
		var stamp [8]byte
		binary.LittleEndian.PutUint64(stamp[:], iter)
		for _, e := range entries {
			f, err := os.OpenFile(filepath.Join(src, e.Name()), os.O_WRONLY, 0)
			if err != nil {
				b.Fatal(err)
			}
			for off := int64(0); off < fileSize; off += stampEvery {
				if _, err := f.WriteAt(stamp[:], off); err != nil {
					b.Fatal(err)
				}
			}
			f.Close()
		}
		w, err := r.NewWriter(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := files.Capture(ctx, w, r, files.CaptureOptions{Paths: []string{src}}); err != nil {
			b.Fatal(err)
		}
		if err := w.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		w.Abort(ctx)
	}
	b.ReportMetric(float64(repotest.ProcessCPU()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
}
