package format

import (
	"encoding/binary"
	"fmt"
	"io"
)

// A pack is one store object holding many sealed blobs:
//
//	blob_1 || ... || blob_n || sealed trailer || trailer length (uint32 LE) || PackMagic
//
// The sealed trailer is SealObject("haven/pack-trailer", trailer), and the
// trailer lists every blob:
//
//	version (1 byte, 1) || count (uvarint) || count × entry
//	entry = id (32) || type (1) || offset (uvarint) || length (uvarint) || raw length (uvarint)
//
// The trailer makes every pack self-describing, so the chunk index can be
// rebuilt from the store alone.
const (
	PackMagic        = "HVNPACK1"
	packFooterSize   = 4 + len(PackMagic)
	trailerVersion   = 1
	trailerPurpose   = "haven/pack-trailer"
	maxTrailerLength = 64 << 20
)

// PackEntry locates one blob inside a pack.
type PackEntry struct {
	ID        ID
	Type      Type
	Offset    int64
	Length    int64 // sealed length in the pack
	RawLength int64 // plaintext length
}

// PackBuilder accumulates sealed blobs into one pack in memory.
type PackBuilder struct {
	buf     []byte
	entries []PackEntry
}

// NewPackBuilder starts an empty pack with room for sizeHint bytes.
func NewPackBuilder(sizeHint int) *PackBuilder {
	return &PackBuilder{buf: make([]byte, 0, sizeHint)}
}

// NewPackBuilderIn starts an empty pack in a recycled buffer.
func NewPackBuilderIn(buf []byte) *PackBuilder {
	return &PackBuilder{buf: buf[:0]}
}

// Buffer hands back the builder's memory for reuse; the builder and the
// bytes Finish returned must not be used afterwards.
func (p *PackBuilder) Buffer() []byte { return p.buf[:0] }

// Add seals plaintext into the pack.
func (p *PackBuilder) Add(s *Sealer, id ID, t Type, plaintext []byte, scratch []byte) PackEntry {
	off := len(p.buf)
	p.buf, _ = s.Seal(p.buf, id, plaintext, scratch)
	e := PackEntry{ID: id, Type: t, Offset: int64(off), Length: int64(len(p.buf) - off), RawLength: int64(len(plaintext))}
	p.entries = append(p.entries, e)
	return e
}

// AddSealed appends an already sealed blob (repacking moves blobs without
// opening them).
func (p *PackBuilder) AddSealed(id ID, t Type, blob []byte, rawLength int64) PackEntry {
	off := len(p.buf)
	p.buf = append(p.buf, blob...)
	e := PackEntry{ID: id, Type: t, Offset: int64(off), Length: int64(len(blob)), RawLength: rawLength}
	p.entries = append(p.entries, e)
	return e
}

// Reserve takes room for a blob of n sealed bytes at the end of the pack
// and records its entry; the caller fills the returned region (with
// Sealer.SealPrepared) before the pack is finished. Room already handed
// out never moves, so several callers may fill their regions at once:
// when the blob does not fit in the buffer's capacity, Reserve takes
// nothing and returns ok false, unless the pack is still empty, in which
// case it makes the buffer large enough.
func (p *PackBuilder) Reserve(id ID, t Type, n int, rawLength int64) (region []byte, ok bool) {
	off := len(p.buf)
	if off+n > cap(p.buf) {
		if off > 0 {
			return nil, false
		}
		p.buf = make([]byte, 0, n)
	}
	p.buf = p.buf[:off+n]
	p.entries = append(p.entries, PackEntry{ID: id, Type: t, Offset: int64(off), Length: int64(n), RawLength: rawLength})
	return p.buf[off : off+n : off+n], true
}

// Size is the number of blob bytes so far.
func (p *PackBuilder) Size() int { return len(p.buf) }

// Len is the number of blobs so far.
func (p *PackBuilder) Len() int { return len(p.entries) }

// Entries lists the blobs added so far.
func (p *PackBuilder) Entries() []PackEntry { return p.entries }

// Finish appends the sealed trailer and footer and returns the pack bytes.
// The builder must not be used afterwards.
func (p *PackBuilder) Finish(s *Sealer) []byte {
	trailer := EncodeTrailer(p.entries)
	sealed := s.SealObject(trailerPurpose, trailer)
	p.buf = append(p.buf, sealed...)
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(sealed)))
	p.buf = append(p.buf, PackMagic...)
	return p.buf
}

// EncodeTrailer serializes a trailer's plaintext.
func EncodeTrailer(entries []PackEntry) []byte {
	out := make([]byte, 0, 1+binary.MaxVarintLen64+len(entries)*(IDSize+1+3*binary.MaxVarintLen32))
	out = append(out, trailerVersion)
	out = binary.AppendUvarint(out, uint64(len(entries)))
	for _, e := range entries {
		out = append(out, e.ID[:]...)
		out = append(out, byte(e.Type))
		out = binary.AppendUvarint(out, uint64(e.Offset))
		out = binary.AppendUvarint(out, uint64(e.Length))
		out = binary.AppendUvarint(out, uint64(e.RawLength))
	}
	return out
}

// DecodeTrailer parses a trailer's plaintext.
func DecodeTrailer(b []byte) ([]PackEntry, error) {
	if len(b) < 2 || b[0] != trailerVersion {
		return nil, fmt.Errorf("pack trailer: unknown version: %w", ErrCorrupt)
	}
	b = b[1:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, fmt.Errorf("pack trailer: bad count: %w", ErrCorrupt)
	}
	b = b[k:]
	entries := make([]PackEntry, 0, n)
	for range n {
		if len(b) < IDSize+1 {
			return nil, fmt.Errorf("pack trailer: truncated: %w", ErrCorrupt)
		}
		var e PackEntry
		copy(e.ID[:], b[:IDSize])
		e.Type = Type(b[IDSize])
		b = b[IDSize+1:]
		for _, dst := range []*int64{&e.Offset, &e.Length, &e.RawLength} {
			v, k := binary.Uvarint(b)
			if k <= 0 {
				return nil, fmt.Errorf("pack trailer: truncated: %w", ErrCorrupt)
			}
			*dst = int64(v)
			b = b[k:]
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// ReadTrailer reads and opens the trailer of a pack of packSize bytes
// through r (two small ranged reads on a remote store).
func ReadTrailer(r io.ReaderAt, packSize int64, s *Sealer) ([]PackEntry, error) {
	if packSize < int64(packFooterSize) {
		return nil, fmt.Errorf("pack of %d bytes has no footer: %w", packSize, ErrCorrupt)
	}
	footer := make([]byte, packFooterSize)
	if _, err := r.ReadAt(footer, packSize-int64(packFooterSize)); err != nil {
		return nil, err
	}
	if string(footer[4:]) != PackMagic {
		return nil, fmt.Errorf("pack footer magic missing: %w", ErrCorrupt)
	}
	n := int64(binary.LittleEndian.Uint32(footer[:4]))
	if n > maxTrailerLength || n > packSize-int64(packFooterSize) {
		return nil, fmt.Errorf("pack trailer length %d out of range: %w", n, ErrCorrupt)
	}
	sealed := make([]byte, n)
	if _, err := r.ReadAt(sealed, packSize-int64(packFooterSize)-n); err != nil {
		return nil, err
	}
	plain, err := s.OpenObject(trailerPurpose, sealed)
	if err != nil {
		return nil, err
	}
	return DecodeTrailer(plain)
}
