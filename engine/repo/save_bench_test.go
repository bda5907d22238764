package repo_test

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// BenchmarkSave stores 64 MiB of new 1 MiB chunks (the chunker's average),
// half raw (random) and half compressed (text), through one Writer from
// two goroutines in batches of 8, as a full file backup's capture workers
// do, and flushes. Every iteration stamps its chunks anew, so none dedups.
// cpu-ms/op is this process's user+system CPU (PostgreSQL, in its own
// processes, is left out); B/op and allocs/op are the writer's garbage.
func BenchmarkSave(b *testing.B) {
	env := repotest.New(b, repo.Options{})
	r := env.Repo
	ctx := context.Background()
	const chunkSize, chunks, workers, batch = 1 << 20, 64, 2, 8
	base := make([][]byte, chunks)
	for n := range base {
		if n%2 == 0 {
			base[n] = block(n, chunkSize)
		} else {
			base[n] = textBlock(n, chunkSize)
		}
	}
	b.SetBytes(chunks * chunkSize)
	b.ReportAllocs()
	cpu0 := repotest.ProcessCPU()
	iter := uint64(0)
	for b.Loop() {
		iter++
		ids := make([]format.ID, chunks)
		for n, data := range base {
			binary.LittleEndian.PutUint64(data, iter)
			ids[n] = r.Hash(data)
		}
		w, err := r.NewWriter(ctx, "")
		if err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		for g := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := g * batch; i < chunks; i += workers * batch {
					if err := w.Save(ctx, format.Data, ids[i:i+batch], base[i:i+batch]); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		if err := w.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		w.Abort(ctx)
	}
	b.ReportMetric(float64(repotest.ProcessCPU()-cpu0)/1e6/float64(b.N), "cpu-ms/op")
}
