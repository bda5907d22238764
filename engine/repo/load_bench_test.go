package repo_test

import (
	"context"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// BenchmarkLoad reads back 64 MiB of 256 KiB chunks, half stored raw
// (random) and half compressed (text), through Repository.Load as a
// restore does, from a filesystem store that the page cache holds after
// the first pass. allocs/op and B/op are the restore's per-chunk garbage.
func BenchmarkLoad(b *testing.B) {
	env := repotest.New(b, repo.Options{})
	r := env.Repo
	ctx := context.Background()
	w, err := r.NewWriter(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	const chunkSize, chunks = 256 << 10, 256
	var ids []format.ID
	var total int64
	for n := range chunks {
		data := block(n, chunkSize)
		if n%2 == 1 {
			data = textBlock(n, chunkSize)
		}
		id := r.Hash(data)
		if err := w.Save(ctx, format.Data, []format.ID{id}, [][]byte{data}); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, id)
		total += int64(len(data))
	}
	mw := w.NewManifest("bench")
	root, err := mw.Close(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := w.CommitWith(ctx, "bench", root, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		if err := r.Load(ctx, ids, func(int, []byte) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// textBlock returns compressible content for block n: lines of words.
func textBlock(n int, size int) []byte {
	src := block(n, size)
	words := []string{"backup ", "restore ", "chunk ", "pack ", "index ", "point ", "haven ", "\n"}
	b := make([]byte, 0, size+16)
	for i := 0; len(b) < size; i++ {
		b = append(b, words[src[i%len(src)]%8]...)
	}
	return b[:size]
}
