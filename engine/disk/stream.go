package disk

import (
	"context"
	"io"

	"github.com/havenbackup/terraform-provider-haven/engine/repo"
	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
)

// streamBatch is how many data blocks RestoreTo fetches at once: enough to
// keep the parallel loads busy, few enough to bound memory (batch × block
// size, twice over while the next batch loads during a write).
const streamBatch = 32

// RestoreTo writes a disk point to w from the first byte to the last, holes
// as zeros: for destinations that only take a stream, such as an HTTP
// upload of a disk image. Restore is the better choice for files, where
// holes stay sparse.
func RestoreTo(ctx context.Context, r repo.Source, root format.ID, w io.Writer) (RestoreStats, error) {
	m, err := repo.OpenManifest(ctx, r, root)
	if err != nil {
		return RestoreStats{}, err
	}
	var st RestoreStats
	type batch struct {
		exts []Extent
		data [][]byte // per extent; nil for holes
		err  error
	}
	// The reader goroutine loads the next batch while the current one is
	// written; the channel holds one batch ahead.
	batches := make(chan batch, 1)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(batches)
		for {
			var b batch
			var ids []format.ID
			var at []int
			for len(ids) < streamBatch {
				var e Extent
				err := m.Next(&e)
				if err == io.EOF {
					break
				}
				if err != nil {
					b.err = err
					break
				}
				b.exts = append(b.exts, e)
				b.data = append(b.data, nil)
				if !e.Hole {
					ids = append(ids, e.ID)
					at = append(at, len(b.exts)-1)
				}
			}
			if b.err == nil && len(ids) > 0 {
				b.err = r.Load(ctx, ids, func(i int, data []byte) error {
					b.data[at[i]] = append([]byte(nil), data...)
					return nil
				})
			}
			if len(b.exts) == 0 && b.err == nil {
				return
			}
			select {
			case batches <- b:
			case <-ctx.Done():
				return
			}
			if b.err != nil {
				return
			}
		}
	}()
	for b := range batches {
		if b.err != nil {
			return st, b.err
		}
		for i, e := range b.exts {
			if e.Hole {
				if _, err := io.CopyN(w, zeroReader{}, e.Len); err != nil {
					return st, err
				}
			} else {
				if _, err := w.Write(b.data[i]); err != nil {
					return st, err
				}
				st.WrittenData += e.Len
			}
			st.Bytes += e.Len
		}
	}
	return st, ctx.Err()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
