package format

import (
	"github.com/klauspost/compress/zstd"

	"github.com/havenbackup/terraform-provider-haven/internal/freelist"
)

// zstdCodec compresses chunk payloads into zstd frames and decodes them.
// Every implementation writes standard single-segment frames that carry
// their content size, and decodes any valid frame, so a repository written
// by one build is read by every other: the choice of codec is a matter of
// speed, never of format.
type zstdCodec interface {
	// compress appends the zstd frame of p to dst.
	compress(dst, p []byte) []byte
	// decode appends the content of one zstd frame to dst.
	decode(dst, frame []byte) ([]byte, error)
}

// blobZstd is the codec blobs are sealed and opened with: libzstd through
// cgo where the build has cgo (zstd_cgo.go), which compresses the chunks
// Haven meets two to three times faster than the pure-Go encoder at a
// slightly better ratio; the pure-Go codec otherwise (cross-compiled and
// CGO_ENABLED=0 builds).
var blobZstd zstdCodec = nativeZstd

// goZstd is the pure-Go codec (github.com/klauspost/compress), in every
// build: the fallback, and what the tests check the native codec against.
var goZstd zstdCodec = goCodec{}

// maxFrameContent bounds what one frame may decode to. No chunk is larger
// than the chunker's maximum (8 MiB); a frame declaring more is corrupt.
const maxFrameContent = 64 << 20

type goCodec struct{}

var (
	goEncoders = freelist.List[*zstd.Encoder]{Max: 16, New: func() *zstd.Encoder {
		e, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1), zstd.WithLowerEncoderMem(true), zstd.WithEncoderCRC(false),
			// No chunk is larger than 4 MiB, so a larger window only costs memory.
			zstd.WithWindowSize(4<<20))
		return e
	}}
	goDecoders = freelist.List[*zstd.Decoder]{Max: 16, New: func() *zstd.Decoder {
		d, _ := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxFrameContent))
		return d
	}}
)

func (goCodec) compress(dst, p []byte) []byte {
	enc := goEncoders.Get()
	defer goEncoders.Put(enc)
	return enc.EncodeAll(p, dst)
}

func (goCodec) decode(dst, frame []byte) ([]byte, error) {
	dec := goDecoders.Get()
	defer goDecoders.Put(dec)
	return dec.DecodeAll(frame, dst)
}
