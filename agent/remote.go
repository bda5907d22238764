package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api"
	"github.com/havenbackup/terraform-provider-haven/server/api/wire"
)

// remote is the server's repository as the agent sees it: a repo.Sink
// that deduplicates before transfer, and a repo.Source for restores.
//
// Missing chunks are gathered across Save calls into uploads of about
// uploadBatch bytes, sent in the background (at most two at once), so many
// small files still travel in large requests and make large packs.
type remote struct {
	// ctx is the job's: background uploads outlive any one Save call.
	ctx    context.Context
	a      *agent
	jobID  string
	hasher *format.Hasher

	mu      sync.Mutex
	body    []byte             // chunk frames gathered for the next upload
	pending map[format.ID]bool // gathered or uploading, not yet acknowledged
	uploads sync.WaitGroup
	slots   chan struct{}
	// free holds upload bodies back from acknowledged uploads: the body
	// being gathered is handed to its upload whole and a free one (or a
	// new one) takes its place, so no body is copied or grown chunk by
	// chunk; both were a third of an agent backup's CPU.
	free chan []byte
	err  error
}

// uploadBodyCap is an upload body's capacity: a batch, plus the chunk
// that crosses uploadBatch (at most the chunker's 8 MiB maximum) with
// room for frame headers; a larger one just grows.
const uploadBodyCap = uploadBatch + 8<<20 + 64<<10

func newRemote(ctx context.Context, a *agent, jobID string, hasher *format.Hasher) *remote {
	return &remote{ctx: ctx, a: a, jobID: jobID, hasher: hasher, pending: map[format.ID]bool{}, slots: make(chan struct{}, 2), free: make(chan []byte, 2)}
}

func (r *remote) path(op string) string { return "/v1/agent/jobs/" + r.jobID + "/" + op }

// Hash names a chunk with the storage's id key, as the server would.
func (r *remote) Hash(data []byte) format.ID { return r.hasher.Sum(data) }

// uploadBatch bounds one upload request; the server stores and indexes
// each request before answering, so this is also about the most an
// interrupted backup sends again.
const uploadBatch = 16 << 20

// Save asks which chunks the repository lacks and queues only those.
func (r *remote) Save(ctx context.Context, t format.Type, ids []format.ID, chunks [][]byte) error {
	r.mu.Lock()
	err := r.err
	var ask []format.ID
	for _, id := range ids {
		if !r.pending[id] {
			ask = append(ask, id)
		}
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	if len(ask) == 0 {
		return nil
	}
	req := api.HasRequest{IDs: make([]string, len(ask))}
	for i, id := range ask {
		req.IDs[i] = id.String()
	}
	var has api.HasResponse
	if err := r.a.client.Do(ctx, http.MethodPost, r.path("has"), nil, req, &has); err != nil {
		return fmt.Errorf("dedup lookup: %w", err)
	}
	missing := make(map[string]bool, len(has.Missing))
	for _, m := range has.Missing {
		missing[m] = true
	}
	r.mu.Lock()
	if r.body == nil {
		r.body = r.newBody()
	}
	for i, id := range ids {
		if !missing[id.String()] || r.pending[id] {
			continue
		}
		r.pending[id] = true
		r.body = wire.AppendChunkFrame(r.body, t, id, chunks[i])
	}
	var send []byte
	if len(r.body) >= uploadBatch {
		send = r.takeBody()
	}
	r.mu.Unlock()
	if send != nil {
		return r.upload(ctx, send)
	}
	return nil
}

// takeBody hands over the gathered body; r.mu held. The next Save takes
// a body only when it has chunks to gather, by which time an acknowledged
// upload may have freed one.
func (r *remote) takeBody() []byte {
	b := r.body
	r.body = nil
	return b
}

// newBody is a free upload body, or a new one.
func (r *remote) newBody() []byte {
	select {
	case b := <-r.free:
		return b[:0]
	default:
		return make([]byte, 0, uploadBodyCap)
	}
}

// upload sends one batch in the background once a slot is free.
func (r *remote) upload(ctx context.Context, body []byte) error {
	select {
	case r.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	r.uploads.Add(1)
	go func() {
		defer r.uploads.Done()
		defer func() { <-r.slots }()
		rc, err := r.a.client.Stream(r.ctx, http.MethodPost, r.path("chunks"), body, "application/octet-stream")
		if err == nil {
			rc.Close()
			// The server answers once it has read the whole body, so
			// nothing reads it any more. After a failure the transport
			// might still be writing it: that one is not reused.
			select {
			case r.free <- body:
			default:
			}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if err != nil && r.err == nil {
			r.err = fmt.Errorf("uploading chunks: %w", err)
		}
	}()
	return nil
}

// Flush sends what is gathered and waits for every upload.
func (r *remote) Flush(ctx context.Context) error {
	r.mu.Lock()
	send := r.body
	r.body = nil // the last upload needs no body after it
	r.mu.Unlock()
	if len(send) > 0 {
		if err := r.upload(ctx, send); err != nil {
			return err
		}
	}
	r.uploads.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// loadBatch bounds ids per load request.
const loadBatch = 2048

// Load fetches chunks' plaintext from the server in batches. One goroutine
// reads a batch's stream while the chunks already read are checked against
// their ids and handed to fn on every core: a restore through an agent
// hashes, writes and reads back every byte, and on one goroutine it was
// bound to one core.
func (r *remote) Load(ctx context.Context, ids []format.ID, fn func(i int, data []byte) error) error {
	for start := 0; start < len(ids); start += loadBatch {
		if err := r.load(ctx, ids[start:min(start+loadBatch, len(ids))], start, fn); err != nil {
			return err
		}
	}
	return nil
}

// load fetches one batch; fn gets positions offset by start.
func (r *remote) load(ctx context.Context, batch []format.ID, start int, fn func(i int, data []byte) error) error {
	req := api.LoadRequest{IDs: make([]string, len(batch))}
	for i, id := range batch {
		req.IDs[i] = id.String()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	// The request lives on gctx, so a failed chunk ends the stream's read.
	rc, err := r.a.client.Stream(gctx, http.MethodPost, r.path("load"), body, "application/json")
	if err != nil {
		return err
	}
	defer rc.Close()
	type frame struct {
		pos int
		buf *[]byte
	}
	workers := max(runtime.GOMAXPROCS(0), 2)
	// One buffer per worker and one being read bound the memory to a few
	// chunks, whatever the batch holds.
	free := make(chan *[]byte, workers+1)
	for range workers + 1 {
		free <- new([]byte)
	}
	work := make(chan frame)
	for range workers {
		g.Go(func() error {
			for f := range work {
				data := *f.buf
				// Manifests are read through here too, and nothing else
				// checks them: a chunk must be what its id names.
				if got := r.Hash(data); got != batch[f.pos] {
					return fmt.Errorf("chunk %s from the server hashes to %s", batch[f.pos], got.Short())
				}
				if err := fn(start+f.pos, data); err != nil {
					return err
				}
				free <- f.buf
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(work)
		frames := wire.NewLoadFrames(bufio.NewReaderSize(rc, 1<<20), len(batch))
		for {
			var bp *[]byte
			select {
			case bp = <-free:
			case <-gctx.Done():
				return gctx.Err()
			}
			pos, data, err := frames.Next(*bp)
			*bp = data
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			select {
			case work <- frame{pos, bp}:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
	})
	return g.Wait()
}
