package files_test

import (
	"context"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/chunker"
	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// TestCaptureChunksWithItsOwnParams captures the same file with small
// chunking parameters and then, through new writers, with larger ones, one
// after another: capture workers' buffers are pooled from one backup to
// the next, and a pooled chunker must never chunk with the parameters of
// the backup that pooled it.
func TestCaptureChunksWithItsOwnParams(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	r := env.Repo
	ctx := context.Background()
	src := t.TempDir()
	data := make([]byte, 1<<20)
	rng := mrand.New(mrand.NewPCG(42, 42))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	must(t, os.WriteFile(filepath.Join(src, "f"), data, 0o644))
	large := chunker.Params{Min: 256 << 10, Avg: 512 << 10, Max: 1 << 20}
	for round, p := range []chunker.Params{smallParams, large, smallParams, large} {
		w, err := r.NewWriter(ctx, "")
		must(t, err)
		_, stats, err := files.Capture(ctx, w, r, files.CaptureOptions{Paths: []string{src}, Params: p})
		must(t, err)
		w.Abort(ctx)
		// Data chunks, plus the manifest's tree and root chunks.
		chunks := stats.Repo.Chunks
		if p == smallParams && chunks < int64(len(data)/p.Max) {
			t.Errorf("round %d, Max %d: the file went into %d chunks, want at least %d", round, p.Max, chunks, len(data)/p.Max)
		}
		if p == large && chunks > int64(len(data)/p.Min)+2 {
			t.Errorf("round %d, Min %d: the file went into %d chunks, want at most %d", round, p.Min, chunks, len(data)/p.Min+2)
		}
	}
}
