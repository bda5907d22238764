//go:build cgo

package format

import (
	"errors"
	"slices"

	czstd "github.com/DataDog/zstd"
	"github.com/klauspost/compress/zstd"

	"github.com/havenbackup/terraform-provider-haven/internal/freelist"
)

// cLevel is libzstd's own default level. On make-dataset's compressible
// chunks it stores slightly less than the pure-Go encoder's default (0.474
// against 0.478 of the input) in well under half the CPU, which is most of
// a full backup's time.
const cLevel = 3

var nativeZstd zstdCodec = cCodec{}

// cCodec is libzstd, built from the C sources vendored by
// github.com/DataDog/zstd. A context holds the C encoder's and decoder's
// state and is not safe for concurrent use, so each call takes one from a
// pool.
type cCodec struct{}

var cContexts = freelist.List[czstd.Ctx]{New: czstd.NewCtx, Max: 16}

func (cCodec) compress(dst, p []byte) []byte {
	c := cContexts.Get()
	defer cContexts.Put(c)
	start := len(dst)
	dst = slices.Grow(dst, czstd.CompressBound(len(p)))
	out, err := c.CompressLevel(dst[start:cap(dst)], p, cLevel)
	if err != nil {
		// libzstd fails only for want of room, which CompressBound
		// rules out; the pure-Go encoder writes the same format.
		return goZstd.compress(dst[:start], p)
	}
	return dst[:start+len(out)]
}

func (cCodec) decode(dst, frame []byte) ([]byte, error) {
	var h zstd.Header
	if err := h.Decode(frame); err != nil {
		return nil, err
	}
	if !h.HasFCS || h.FrameContentSize > maxFrameContent {
		// Frames Haven writes always carry their size; decode any other
		// valid one the careful way.
		return goZstd.decode(dst, frame)
	}
	n := int(h.FrameContentSize)
	if n == 0 {
		return dst, nil
	}
	start := len(dst)
	dst = slices.Grow(dst, n)[:start+n]
	c := cContexts.Get()
	defer cContexts.Put(c)
	written, err := c.DecompressInto(dst[start:], frame)
	if err != nil {
		return nil, err
	}
	if written != n {
		return nil, errors.New("frame content size does not match the decoded content")
	}
	return dst, nil
}
