package repo_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
)

// TestWriterShipsAPackOnlyOnceItsBlobsAreSealed holds one chunk between
// taking room in the open pack and sealing into it, while another caller
// fills that pack to its size and so ships it: the pack must wait for the
// held chunk, or it is stored with a hole where the chunk belongs.
func TestWriterShipsAPackOnlyOnceItsBlobsAreSealed(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 64 << 10})
	r := env.Repo
	ctx := context.Background()
	held := block(1000, 16<<10)
	heldID := r.Hash(held)
	reached, release := make(chan struct{}), make(chan struct{})
	repo.SetHookBeforeSeal(func(id format.ID) {
		if id == heldID {
			close(reached)
			<-release
		}
	})
	defer repo.SetHookBeforeSeal(nil)

	w, err := r.NewWriter(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := w.Save(ctx, format.Data, []format.ID{heldID}, [][]byte{held}); err != nil {
			t.Error(err)
		}
	}()
	<-reached
	ids, chunks := []format.ID{heldID}, [][]byte{held}
	for n := range 8 {
		c := block(n, 16<<10)
		ids, chunks = append(ids, r.Hash(c)), append(chunks, c)
		if err := w.Save(ctx, format.Data, ids[n+1:], chunks[n+1:]); err != nil {
			t.Fatal(err)
		}
	}
	// Give the shipped pack's upload time to run ahead of the held chunk.
	time.Sleep(200 * time.Millisecond)
	close(release)
	wg.Wait()
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if packs := w.Stats().Packs; packs < 2 {
		t.Fatalf("%d packs stored; the test needs the held chunk's pack shipped while it was held", packs)
	}
	err = r.Load(ctx, ids, func(i int, data []byte) error {
		if !bytes.Equal(data, chunks[i]) {
			t.Errorf("chunk %d read back wrong", i)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("reading back the chunks: %v", err)
	}
	w.Abort(ctx)
}

// TestWriterPacksAfterFlushStayWhole saves small chunks after a Flush and
// checks that they go into one pack, not one pack each: the pack opened
// after a flush must have a pack's room.
func TestWriterPacksAfterFlushStayWhole(t *testing.T) {
	env := repotest.New(t, repo.Options{PackSize: 256 << 10})
	r := env.Repo
	ctx := context.Background()
	w, err := r.NewWriter(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort(ctx)
	for round := range 2 {
		before := w.Stats().Packs
		for n := range 4 {
			c := block(round*10+n+2000, 8<<10)
			if err := w.Save(ctx, format.Data, []format.ID{r.Hash(c)}, [][]byte{c}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := w.Stats().Packs - before; got != 1 {
			t.Fatalf("round %d: 4 small chunks went into %d packs, want 1", round, got)
		}
	}
}
