package files_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/havenbackup/terraform-provider-haven/engine/files"
	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// savesCounter is a repo.Sink that counts the data saves it passes on to
// a real writer.
type savesCounter struct {
	repo.Sink
	mu        sync.Mutex
	dataSaves int
}

func (s *savesCounter) Save(ctx context.Context, t format.Type, ids []format.ID, chunks [][]byte) error {
	if t == format.Data {
		s.mu.Lock()
		s.dataSaves++
		s.mu.Unlock()
	}
	return s.Sink.Save(ctx, t, ids, chunks)
}

// TestSmallFilesAreSavedTogether backs up 600 small files and checks that
// their chunks reach the repository in a few saves (each a dedup round
// trip to the index), not one per file, and that the point restores every
// file's bytes, the last ones a worker read included.
func TestSmallFilesAreSavedTogether(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	r := env.Repo
	ctx := context.Background()
	src := t.TempDir()
	const n = 600
	for i := range n {
		d := filepath.Join(src, fmt.Sprintf("d%d", i%7))
		must(t, os.MkdirAll(d, 0o755))
		must(t, os.WriteFile(filepath.Join(d, fmt.Sprintf("f%03d", i)), []byte(fmt.Sprintf("small file %d %0*d", i, 1000+i, i)), 0o644))
	}
	// One file above the small-file size is saved on its own.
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7 / 5)
	}
	must(t, os.WriteFile(filepath.Join(src, "big"), big, 0o644))

	w, err := r.NewWriter(ctx, "")
	must(t, err)
	sink := &savesCounter{Sink: w}
	root, stats, err := files.Capture(ctx, sink, r, files.CaptureOptions{Paths: []string{src}, Workers: 4})
	must(t, err)
	must(t, w.Commit(ctx, "p", root))
	if stats.Files != n+1 {
		t.Fatalf("captured %d files, want %d", stats.Files, n+1)
	}
	// 600 files of about 1.6 KB are about 1 MB: one save per worker for
	// them, plus the big file's.
	if sink.dataSaves > 4+4 {
		t.Errorf("%d data saves for %d small files and one big one, want them saved together (at most 8)", sink.dataSaves, n)
	}
	out := t.TempDir()
	if _, err := files.Restore(ctx, r, root, files.RestoreOptions{Target: out}); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		rel := filepath.Join(fmt.Sprintf("d%d", i%7), fmt.Sprintf("f%03d", i))
		got, err := os.ReadFile(filepath.Join(out, src, rel))
		if want := fmt.Sprintf("small file %d %0*d", i, 1000+i, i); err != nil || string(got) != want {
			t.Fatalf("%s restored as %d bytes (%v), want its %d bytes", rel, len(got), err, len(want))
		}
	}
	if got, err := os.ReadFile(filepath.Join(out, src, "big")); err != nil || string(got) != string(big) {
		t.Fatalf("big restored as %d bytes (%v)", len(got), err)
	}
}
