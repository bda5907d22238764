// Package wire is the binary framing of chunk data between an agent and
// the server. Both directions of the agent protocol that carry chunk bytes
// use it, so the agent (agent/) and the server's agent hub cannot drift
// apart: each side imports this package instead of encoding by hand.
//
// Everything else the agent and the server exchange is JSON, described in
// the OpenAPI document of package api. Only the two request and response
// bodies below are binary, because they carry up to tens of MiB of chunk
// data each and JSON would cost a base64 pass and a third more bytes.
//
// # Chunk frames (uploads)
//
// The body of POST /v1/agent/jobs/{id}/chunks is a sequence of chunk frames,
// each:
//
//	offset  size  field
//	0       1     type   the chunk's format.Type (data, tree, root)
//	1       32    id     the chunk's format.ID, keyed BLAKE3 of its plaintext
//	33      4     size   length of data, unsigned little-endian
//	37      size  data   the chunk's plaintext
//
// Frames follow one another with nothing between them; the body ends after
// the last frame's data. An empty body is valid and holds no chunks. A
// body that ends inside a header or inside a frame's data is malformed.
//
// A chunk's size is at most MaxChunkSize, the chunker's largest chunk; a
// frame declaring more is malformed, and is refused before its data is
// read, so a bad header cannot make the server allocate gigabytes. A whole
// body is at most MaxUploadBody bytes (the server's handler enforces it).
// The frames may come in any order. The writer checks neither ids nor
// sizes; the server checks each frame's id against the hash of its data.
//
// # Load frames (restores)
//
// The response to POST /v1/agent/jobs/{id}/load, whose JSON request lists n
// chunk ids, is a sequence of exactly n load frames, each:
//
//	offset  size  field
//	0       4     position  index of the chunk in the request's ids, unsigned little-endian
//	4       4     length    length of data, unsigned little-endian
//	8       length data     the chunk's plaintext
//
// Every position from 0 to n-1 comes exactly once, in any order: the server
// sends chunks as it reads them from packs, not in request order. A frame
// whose position is n or more, or repeats an earlier one, is malformed. A
// stream that ends before all n positions came is incomplete. Lengths are
// not bounded here: they are what the repository holds (the reader's memory
// grows with the bytes that arrive, not with the lengths declared).
//
// # Errors
//
// Readers return errors that name what is wrong and match, with errors.Is,
// one of ErrTruncatedHeader, ErrTruncatedData, ErrTooLarge,
// ErrPositionOutOfRange, ErrPositionRepeated and ErrStreamEnded. An error
// from the underlying reader is wrapped in the error of the frame it broke.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/havenbackup/terraform-provider-haven/engine/repo/format"
)

const (
	// ChunkHeaderSize is the length of a chunk frame's header: type, id, size.
	ChunkHeaderSize = 1 + format.IDSize + 4
	// MaxChunkSize is the largest chunk a chunk frame may carry.
	MaxChunkSize = 64 << 20
	// MaxUploadBody is the largest body of one chunk upload request.
	MaxUploadBody = 64 << 20
	// LoadHeaderSize is the length of a load frame's header: position, length.
	LoadHeaderSize = 4 + 4
)

// Errors of malformed frames. The readers' errors wrap them with details
// (the chunk, the position, the underlying read error).
var (
	// ErrTruncatedHeader: a chunk body ended, or failed, inside a frame header.
	ErrTruncatedHeader = errors.New("truncated chunk frame")
	// ErrTruncatedData: a stream ended, or failed, inside a frame's data.
	ErrTruncatedData = errors.New("truncated chunk")
	// ErrTooLarge: a chunk frame declares more than MaxChunkSize bytes.
	ErrTooLarge = errors.New("too large")
	// ErrPositionOutOfRange: a load frame's position is not below the
	// number of ids requested.
	ErrPositionOutOfRange = errors.New("out of range")
	// ErrPositionRepeated: a load frame's position came before.
	ErrPositionRepeated = errors.New("repeated")
	// ErrStreamEnded: a load stream ended, or failed, before every
	// position came.
	ErrStreamEnded = errors.New("restore stream ended")
)

// AppendChunkFrame appends the chunk frame of one chunk to b and returns the
// extended slice.
func AppendChunkFrame(b []byte, t format.Type, id format.ID, data []byte) []byte {
	b = append(b, byte(t))
	b = append(b, id[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// ChunkFrame is one chunk read from an upload body.
type ChunkFrame struct {
	Type format.Type
	ID   format.ID
	// Data is newly allocated for every frame: the caller may keep it.
	Data []byte
}

// ChunkFrameReader reads the chunk frames of an upload body one at a time.
type ChunkFrameReader struct {
	r   io.Reader
	hdr [ChunkHeaderSize]byte
}

// NewChunkFrameReader reads chunk frames from r.
func NewChunkFrameReader(r io.Reader) *ChunkFrameReader {
	return &ChunkFrameReader{r: r}
}

// Next returns the next frame. At the end of the body, which is only
// between frames, it returns io.EOF; a malformed frame is an error matching
// ErrTruncatedHeader, ErrTooLarge or ErrTruncatedData.
func (cr *ChunkFrameReader) Next() (ChunkFrame, error) {
	var f ChunkFrame
	if _, err := io.ReadFull(cr.r, cr.hdr[:]); err == io.EOF {
		return f, io.EOF
	} else if err != nil {
		return f, fmt.Errorf("%w: %w", ErrTruncatedHeader, err)
	}
	f.Type = format.Type(cr.hdr[0])
	copy(f.ID[:], cr.hdr[1:1+format.IDSize])
	size := binary.LittleEndian.Uint32(cr.hdr[1+format.IDSize:])
	if size > MaxChunkSize {
		return f, fmt.Errorf("chunk %s of %d bytes is %w (the limit is %d)", f.ID.Short(), size, ErrTooLarge, MaxChunkSize)
	}
	f.Data = make([]byte, size)
	if _, err := io.ReadFull(cr.r, f.Data); err != nil {
		return f, fmt.Errorf("%w %s: %w", ErrTruncatedData, f.ID.Short(), err)
	}
	return f, nil
}

// WriteLoadFrame writes the load frame of the chunk at position pos of a
// load request to w.
func WriteLoadFrame(w io.Writer, pos int, data []byte) error {
	var hdr [LoadHeaderSize]byte
	binary.LittleEndian.PutUint32(hdr[:4], uint32(pos))
	binary.LittleEndian.PutUint32(hdr[4:], uint32(len(data)))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// growStep is the least a load frame's buffer grows by while its data arrives.
const growStep = 1 << 20

// readData reads size bytes into buf's storage, which it reuses when large
// enough. A buffer too small grows as the data arrives, not to the size
// declared up front: load lengths have no limit, and a corrupt one must
// not make the agent allocate gigabytes it will never fill.
func readData(r io.Reader, buf []byte, size int) ([]byte, error) {
	if cap(buf) >= size {
		buf = buf[:size]
		_, err := io.ReadFull(r, buf)
		return buf, err
	}
	buf = buf[:0]
	for len(buf) < size {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(size-len(buf), max(len(buf), growStep)))
		}
		n, err := io.ReadFull(r, buf[len(buf):min(size, cap(buf))])
		buf = buf[:len(buf)+n]
		if err == io.EOF && len(buf) > 0 {
			err = io.ErrUnexpectedEOF
		}
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// ReadLoadFrames reads the load frames answering a request of n ids and
// calls fn(pos, data) for each, in the order they come, until all n
// positions came. data is valid only during the call: its buffer is reused
// for the next frame. An error from fn stops reading and is returned
// unchanged; a malformed stream is an error as LoadFrames.Next describes.
// Bytes after the n-th frame are not read.
func ReadLoadFrames(r io.Reader, n int, fn func(pos int, data []byte) error) error {
	frames := NewLoadFrames(r, n)
	var buf []byte
	for {
		pos, data, err := frames.Next(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(pos, data); err != nil {
			return err
		}
		buf = data
	}
}

// LoadFrames reads the load frames answering a request of n ids one at a
// time, into buffers its caller owns, so that frames can be worked on
// while the next ones are read.
type LoadFrames struct {
	r    io.Reader
	seen []bool
	got  int
}

// NewLoadFrames reads the frames answering a request of n ids from r.
func NewLoadFrames(r io.Reader, n int) *LoadFrames {
	return &LoadFrames{r: r, seen: make([]bool, n)}
}

// Next reads the next frame into buf's storage (reused when large enough)
// and returns its position and data. After the n-th frame it returns
// io.EOF and reads nothing more. A malformed stream is an error matching
// ErrStreamEnded, ErrPositionOutOfRange, ErrPositionRepeated or
// ErrTruncatedData.
func (l *LoadFrames) Next(buf []byte) (int, []byte, error) {
	n := len(l.seen)
	if l.got == n {
		return 0, buf, io.EOF
	}
	var hdr [LoadHeaderSize]byte
	if _, err := io.ReadFull(l.r, hdr[:]); err != nil {
		return 0, buf, fmt.Errorf("%w after %d of %d chunks: %w", ErrStreamEnded, l.got, n, err)
	}
	// Compared unconverted: on a 32-bit platform int(pos32) may be negative.
	pos32 := binary.LittleEndian.Uint32(hdr[:4])
	size := int(binary.LittleEndian.Uint32(hdr[4:]))
	if uint64(pos32) >= uint64(n) {
		return 0, buf, fmt.Errorf("restore stream: chunk position %d is %w for %d chunks", pos32, ErrPositionOutOfRange, n)
	}
	pos := int(pos32)
	if l.seen[pos] {
		return 0, buf, fmt.Errorf("restore stream: chunk position %d is %w", pos, ErrPositionRepeated)
	}
	buf, err := readData(l.r, buf, size)
	if err != nil {
		return 0, buf, fmt.Errorf("restore stream: %w at position %d: %w", ErrTruncatedData, pos, err)
	}
	l.seen[pos] = true
	l.got++
	return pos, buf, nil
}
