package repo_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/repotest"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/store"
)

// slowStore makes every Put take a while, so that packs pile up behind
// their uploads as they do on a slow store, and the budget is what stops
// them.
type slowStore struct {
	store.Store
	delay time.Duration
}

func (s slowStore) Put(ctx context.Context, name string, r io.Reader, size int64, o store.PutOptions) error {
	time.Sleep(s.delay)
	return s.Store.Put(ctx, name, r, size, o)
}

// TestPackBuffersStayWithinBudget runs writers at once, each saved to by
// several goroutines, on a slow store and a budget of a few pack buffers:
// all must finish (a writer waiting for a buffer is always woken), never
// with more buffers in use than the budget plus one for each writer beyond
// the first, and with every buffer given back after their flushes.
func TestPackBuffersStayWithinBudget(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	for _, tc := range []struct{ budget, writers int }{{2, 1}, {3, 5}} {
		t.Run(fmt.Sprintf("%d buffers, %d writers", tc.budget, tc.writers), func(t *testing.T) {
			ctx := context.Background()
			r, err := repo.OpenOn(ctx, slowStore{env.Store, 20 * time.Millisecond}, env.Pool, env.RepoID, env.Master,
				repo.Options{PackSize: 64 << 10, PackBuffers: tc.budget})
			if err != nil {
				t.Fatal(err)
			}
			const callers, perCaller, size = 4, 12, 16 << 10
			var ids []format.ID
			var chunks [][]byte
			var wg sync.WaitGroup
			errs := make(chan error, tc.writers*callers)
			writers := make([]*repo.Writer, tc.writers)
			for wi := range writers {
				w, err := r.NewWriter(ctx, "")
				if err != nil {
					t.Fatal(err)
				}
				defer w.Abort(ctx)
				writers[wi] = w
				for ci := range callers {
					var mine []format.ID
					var data [][]byte
					for k := range perCaller {
						c := block(tc.budget*1e6+((wi*callers+ci)*perCaller+k), size)
						mine, data = append(mine, r.Hash(c)), append(data, c)
					}
					ids, chunks = append(ids, mine...), append(chunks, data...)
					wg.Add(1)
					go func() {
						defer wg.Done()
						for k := range mine {
							if err := w.Save(ctx, format.Data, mine[k:k+1], data[k:k+1]); err != nil {
								errs <- err
								return
							}
						}
					}()
				}
			}
			finished := make(chan struct{})
			go func() { wg.Wait(); close(finished) }()
			select {
			case <-finished:
			case <-time.After(2 * time.Minute):
				t.Fatalf("writers still waiting after 2 minutes with %d buffers in use: a writer waiting for a pack buffer was never woken", repo.PackBuffersInUse(r))
			}
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for _, w := range writers {
				if err := w.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			}
			peak, bound := repo.PackBuffersPeak(r), tc.budget+tc.writers-1
			t.Logf("at most %d pack buffers in use at once (budget %d, bound %d)", peak, tc.budget, bound)
			if peak > bound {
				t.Errorf("%d pack buffers in use at once, want at most %d (budget %d, %d writers)", peak, bound, tc.budget, tc.writers)
			}
			if peak < tc.budget {
				t.Errorf("at most %d pack buffers in use: the test never spent the budget of %d", peak, tc.budget)
			}
			if n := repo.PackBuffersInUse(r); n != 0 {
				t.Errorf("%d pack buffers still in use after every writer flushed", n)
			}
			err = r.Load(ctx, ids, func(i int, data []byte) error {
				if !bytes.Equal(data, chunks[i]) {
					return fmt.Errorf("chunk %d read back wrong", i)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestWriterWithNoPackBufferNeverWaitsForOthers spends a budget of one
// buffer on one writer's open pack, which that writer keeps open while a
// second writer saves and flushes: the second must go on (its waiting could
// only end when the first goes on, which here waits for it), and the
// first's buffer must come back when it aborts.
func TestWriterWithNoPackBufferNeverWaitsForOthers(t *testing.T) {
	env := repotest.New(t, repo.Options{})
	ctx := context.Background()
	r, err := repo.OpenOn(ctx, env.Store, env.Pool, env.RepoID, env.Master, repo.Options{PackSize: 64 << 10, PackBuffers: 1})
	if err != nil {
		t.Fatal(err)
	}
	idle, err := r.NewWriter(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	c := block(7_000_000, 8<<10)
	if err := idle.Save(ctx, format.Data, []format.ID{r.Hash(c)}, [][]byte{c}); err != nil {
		t.Fatal(err)
	}
	busy, err := r.NewWriter(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for n := range 20 {
		c := block(7_000_001+n, 16<<10)
		if err := busy.Save(wait, format.Data, []format.ID{r.Hash(c)}, [][]byte{c}); err != nil {
			t.Fatalf("saving through a second writer while the first holds the only pack buffer: %v", err)
		}
	}
	if err := busy.Flush(wait); err != nil {
		t.Fatal(err)
	}
	busy.Abort(ctx)
	idle.Abort(ctx)
	if n := repo.PackBuffersInUse(r); n != 0 {
		t.Errorf("%d pack buffers still in use after both writers ended", n)
	}
}
