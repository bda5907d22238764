package chunker

import (
	"errors"
	"io"
)

// window is the number of bytes a gear hash value depends on: each byte's
// contribution is shifted out of the 64-bit state after 64 more bytes.
const window = 64

// cutter holds what the cut-point search needs, derived once from Params.
type cutter struct {
	min, avg, max int
	strict, loose uint64
}

func newCutter(p Params) (cutter, error) {
	return newCutterLevel(p, normalization)
}

// newCutterLevel exists so that benchmarks can compare normalization levels;
// chunking for storage always uses newCutter.
func newCutterLevel(p Params, level int) (cutter, error) {
	if err := p.Validate(); err != nil {
		return cutter{}, err
	}
	s, l := p.masks(level)
	return cutter{min: p.Min, avg: p.Avg, max: p.Max, strict: s, loose: l}, nil
}

// cut returns the length of the chunk that starts at b[0]. b must hold at
// least max bytes unless it is the rest of the stream.
//
// A chunk of length L ends after byte L-1 when the gear hash over the window
// ending at that byte has its masked top bits all zero. Lengths below min are
// never tested (cut-point skipping); hashing starts a window before min so
// that the decision depends only on the window's bytes, not on where the
// chunk happened to start. Lengths below avg are tested with the strict mask,
// the rest with the loose one, and a chunk that reaches max is cut there.
func (c *cutter) cut(b []byte) int {
	n := len(b)
	if n <= c.min {
		return n
	}
	if n > c.max {
		n = c.max
	}
	b = b[:n]
	// Positions are byte indexes; testing after byte i means length i+1.
	first := c.min - 1
	mid := c.avg - 1
	if mid > n {
		mid = n
	}
	var h uint64
	for _, x := range b[first-(window-1) : first] {
		h = h<<1 + gear[x]
	}
	strict, loose := c.strict, c.loose
	for i, x := range b[first:mid] {
		h = h<<1 + gear[x]
		if h&strict == 0 {
			return first + i + 1
		}
	}
	for i, x := range b[mid:] {
		h = h<<1 + gear[x]
		if h&loose == 0 {
			return mid + i + 1
		}
	}
	return n
}

// Cuts returns the end offset of every chunk of data, in order, without
// copying: chunk k is data[cuts[k-1]:cuts[k]] (with cuts[-1] = 0). The last
// element is len(data); empty data has no chunks. The cut points are the ones
// a CDC with the same Params yields for the same bytes.
func Cuts(data []byte, p Params) ([]int, error) {
	c, err := newCutter(p)
	if err != nil {
		return nil, err
	}
	cuts := make([]int, 0, len(data)/p.Avg+1)
	for off := 0; off < len(data); {
		off += c.cut(data[off:])
		cuts = append(cuts, off)
	}
	return cuts, nil
}

// CDC splits a stream into content-defined chunks. It buffers at most 2*Max
// bytes and, once its buffer exists, does not allocate per chunk. A CDC is
// not safe for concurrent use.
type CDC struct {
	c          cutter
	r          io.Reader
	buf        []byte
	start, end int   // unconsumed bytes are buf[start:end]
	off        int64 // stream offset of buf[start]
	eof        bool
	err        error
}

// NewCDC returns a chunker reading from r. It fails only if p is invalid.
func NewCDC(r io.Reader, p Params) (*CDC, error) {
	c, err := newCutter(p)
	if err != nil {
		return nil, err
	}
	return &CDC{c: c, r: r}, nil
}

// Reset makes the chunker read a new stream from r, keeping its buffer, so
// that chunking many files costs one buffer rather than one per file.
// Chunks returned before are invalidated.
func (c *CDC) Reset(r io.Reader) {
	c.r = r
	c.start, c.end, c.off = 0, 0, 0
	c.eof, c.err = false, nil
}

// Next returns the next chunk, or io.EOF after the last one. A read error
// other than io.EOF is returned as is, and again on every later call: the
// bytes after it are unknown, so no later cut point can be trusted.
func (c *CDC) Next() (Chunk, error) {
	if c.err != nil {
		return Chunk{}, c.err
	}
	if c.end-c.start < c.c.max && !c.eof {
		if err := c.fill(); err != nil {
			c.err = err
			return Chunk{}, err
		}
	}
	if c.start == c.end {
		return Chunk{}, io.EOF
	}
	n := c.c.cut(c.buf[c.start:c.end])
	ch := Chunk{Offset: c.off, Length: n, Data: c.buf[c.start : c.start+n : c.start+n]}
	c.start += n
	c.off += int64(n)
	return ch, nil
}

// Refills reports whether the next call of Next reads into the buffer,
// moving the bytes not yet chunked to its front: the chunks returned
// before are valid until then, so a caller may hold them without a copy
// (to look their ids up at once) while Refills is false.
func (c *CDC) Refills() bool {
	return c.err == nil && c.end-c.start < c.c.max && !c.eof
}

// maxEmptyReads bounds how often a reader may return no data and no error in
// a row before it is treated as broken, as bufio does.
const maxEmptyReads = 100

// fill moves the unconsumed bytes to the front and reads until the buffer is
// full or the stream ends, so that cut always sees Max bytes or the whole rest.
func (c *CDC) fill() error {
	if c.buf == nil {
		c.buf = make([]byte, 2*c.c.max)
	}
	if c.start > 0 {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	empty := 0
	for c.end < len(c.buf) {
		n, err := c.r.Read(c.buf[c.end:])
		if n < 0 || n > len(c.buf)-c.end {
			return errors.New("chunker: reader returned an invalid count")
		}
		c.end += n
		if err == io.EOF {
			c.eof = true
			return nil
		}
		if err != nil {
			return err
		}
		if n > 0 {
			empty = 0
		} else if empty++; empty >= maxEmptyReads {
			return io.ErrNoProgress
		}
	}
	return nil
}
