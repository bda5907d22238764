package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
	"github.com/havenbackup/terraform-provider-haven/server/api"
)

// remote is the server's repository as the agent sees it: a repo.Sink
// that deduplicates before transfer, and a repo.Source for restores.
type remote struct {
	a      *agent
	jobID  string
	hasher *format.Hasher
}

func (r *remote) path(op string) string { return "/v1/agent/jobs/" + r.jobID + "/" + op }

// Hash names a chunk with the storage's id key, as the server would.
func (r *remote) Hash(data []byte) format.ID { return r.hasher.Sum(data) }

// uploadBatch bounds one upload request; the server stores and indexes
// each request before answering, so this is also the most an interrupted
// backup sends again.
const uploadBatch = 16 << 20

// Save asks which chunks the repository lacks and uploads only those.
func (r *remote) Save(ctx context.Context, t format.Type, ids []format.ID, chunks [][]byte) error {
	req := api.HasRequest{IDs: make([]string, len(ids))}
	for i, id := range ids {
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
	var body bytes.Buffer
	flush := func() error {
		if body.Len() == 0 {
			return nil
		}
		rc, err := r.a.client.Stream(ctx, http.MethodPost, r.path("chunks"), body.Bytes(), "application/octet-stream")
		if err != nil {
			return fmt.Errorf("uploading chunks: %w", err)
		}
		rc.Close()
		body.Reset()
		return nil
	}
	for i, id := range ids {
		if !missing[id.String()] {
			continue
		}
		delete(missing, id.String()) // a chunk twice in one batch goes once
		var hdr [1 + format.IDSize + 4]byte
		hdr[0] = byte(t)
		copy(hdr[1:], id[:])
		binary.LittleEndian.PutUint32(hdr[1+format.IDSize:], uint32(len(chunks[i])))
		body.Write(hdr[:])
		body.Write(chunks[i])
		if body.Len() >= uploadBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// loadBatch bounds ids per load request.
const loadBatch = 2048

// Load fetches chunks' plaintext from the server in batches.
func (r *remote) Load(ctx context.Context, ids []format.ID, fn func(i int, data []byte) error) error {
	for start := 0; start < len(ids); start += loadBatch {
		batch := ids[start:min(start+loadBatch, len(ids))]
		req := api.LoadRequest{IDs: make([]string, len(batch))}
		for i, id := range batch {
			req.IDs[i] = id.String()
		}
		body, err := json.Marshal(req)
		if err != nil {
			return err
		}
		rc, err := r.a.client.Stream(ctx, http.MethodPost, r.path("load"), body, "application/json")
		if err != nil {
			return err
		}
		err = readFrames(bufio.NewReaderSize(rc, 1<<20), len(batch), func(i int, data []byte) error { return fn(start+i, data) })
		rc.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// readFrames reads position/length/data frames until every position came.
func readFrames(r io.Reader, n int, fn func(int, []byte) error) error {
	seen := make([]bool, n)
	got := 0
	var hdr [8]byte
	var buf []byte
	for got < n {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return fmt.Errorf("restore stream ended after %d of %d chunks: %w", got, n, err)
		}
		pos := int(binary.LittleEndian.Uint32(hdr[:4]))
		size := int(binary.LittleEndian.Uint32(hdr[4:]))
		if pos >= n || seen[pos] {
			return fmt.Errorf("restore stream: unexpected chunk position %d", pos)
		}
		if cap(buf) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("restore stream: %w", err)
		}
		seen[pos] = true
		got++
		if err := fn(pos, buf); err != nil {
			return err
		}
	}
	return nil
}
