package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/api/wire"
)

// loadServer answers load requests from chunks by id, each batch in a
// shuffled order, as the server's parallel reads deliver them; corrupt,
// when set, is sent with one byte flipped.
func loadServer(t *testing.T, chunks map[format.ID][]byte, corrupt format.ID) *remote {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req api.LoadRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		order := rand.Perm(len(req.IDs))
		for _, pos := range order {
			id, _ := format.ParseID(req.IDs[pos])
			data := chunks[id]
			if id == corrupt {
				data = bytes.Clone(data)
				data[len(data)/2] ^= 1
			}
			if err := wire.WriteLoadFrame(w, pos, data); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	client, err := api.NewClient(api.ClientOptions{Endpoint: srv.URL, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return newRemote(context.Background(), &agent{client: client}, "job", format.NewHasher([32]byte{7}))
}

func chunkSet(r *remote, n int) ([]format.ID, map[format.ID][]byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	ids := make([]format.ID, n)
	chunks := map[format.ID][]byte{}
	for i := range ids {
		data := make([]byte, 1+rng.IntN(64<<10))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		ids[i] = r.Hash(data)
		chunks[ids[i]] = data
	}
	return ids, chunks
}

// TestRemoteLoadDeliversEveryChunkOnce: chunks of several load requests,
// arriving in any order, reach fn once per position with their own bytes,
// and fn runs on more than one goroutine at a time, so that a restore
// through an agent uses more than one core.
func TestRemoteLoadDeliversEveryChunkOnce(t *testing.T) {
	probe := newRemote(context.Background(), nil, "", format.NewHasher([32]byte{7}))
	ids, chunks := chunkSet(probe, 2*loadBatch+300)
	r := loadServer(t, chunks, format.ID{})
	got := make([]int, len(ids))
	var mu sync.Mutex
	var inFlight, most atomic.Int64
	err := r.Load(context.Background(), ids, func(i int, data []byte) error {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		if i < 64 {
			time.Sleep(5 * time.Millisecond) // room for the others to overlap
		}
		if !bytes.Equal(data, chunks[ids[i]]) {
			t.Errorf("position %d: wrong bytes", i)
		}
		mu.Lock()
		got[i]++
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range got {
		if n != 1 {
			t.Fatalf("position %d delivered %d times", i, n)
		}
	}
	if most.Load() < 2 {
		t.Errorf("at most %d chunk handed over at once: the chunks were worked on one at a time", most.Load())
	}
}

// TestRemoteLoadRefusesAChunkThatIsNotItsID: bytes from the server that
// do not hash to the id they answer fail the load, naming the chunk, and
// never reach fn.
func TestRemoteLoadRefusesAChunkThatIsNotItsID(t *testing.T) {
	probe := newRemote(context.Background(), nil, "", format.NewHasher([32]byte{7}))
	ids, chunks := chunkSet(probe, 500)
	bad := ids[321]
	r := loadServer(t, chunks, bad)
	err := r.Load(context.Background(), ids, func(i int, data []byte) error {
		if ids[i] == bad {
			t.Errorf("the corrupt chunk reached fn")
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), bad.String()) || !strings.Contains(err.Error(), "hashes to") {
		t.Fatalf("load with a corrupt chunk: %v", err)
	}
}
