package format

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/havenbackup/terraform-provider-haven/internal/freelist"
)

// A sealed blob is how every chunk sits in a pack:
//
//	nonce (12 bytes, random) || AES-256-GCM(data key, nonce, flag || payload, aad = chunk id)
//
// flag 0x00: payload is the plaintext; flag 0x01: payload is a zstd frame
// of the plaintext. Binding the chunk id as associated data means a blob
// moved under another id fails to open, so an index pointing at the wrong
// bytes is detected, never silently restored.
const (
	NonceSize    = 12
	flagRaw      = 0x00
	flagZstd     = 0x01
	BlobOverhead = NonceSize + 1 + 16
)

// entropySample is how many bytes of a chunk are examined to decide whether
// compressing it is worth the CPU. A zstd trial on a small sample is a poor
// predictor (Huffman coding of literals only pays off on larger inputs), so
// the decision uses the sample's byte entropy instead: random and already
// compressed data sit near 8 bits per byte, text and structured data well
// below. Skipping incompressible chunks early is most of the speed on them.
const (
	entropySample  = 16 << 10
	maxEntropyBits = 7.2
)

// Sealer seals and opens blobs with one storage's data key. It is safe for
// concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// NewSealer keys a sealer.
func NewSealer(dataKey [32]byte) (*Sealer, error) {
	block, err := aes.NewCipher(dataKey[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// Compress appends to dst the zstd encoding of p at the repository's level
// and settings: what Seal stores for a chunk worth compressing. Benchmarks
// use it to measure the compression limit on the same bytes.
func Compress(dst, p []byte) []byte {
	return blobZstd.compress(dst, p)
}

// Seal appends the sealed blob of plaintext to dst and returns it. scratch
// is reused for compression output when large enough.
func (s *Sealer) Seal(dst []byte, id ID, plaintext []byte, scratch []byte) (out []byte, rawStored bool) {
	pre := s.Prepare(plaintext, scratch)
	n := pre.SealedLen()
	dst = slices.Grow(dst, n)
	start := len(dst)
	dst = dst[:start+n]
	s.SealPrepared(dst[start:], id, pre)
	return dst, pre.flag == flagRaw
}

// Prepared is a chunk made ready for sealing: its payload (the plaintext,
// or zstd of it when that is worth storing) and so its exact sealed
// length, known before any room for the blob is taken. It refers to the
// plaintext or the scratch Prepare was given, not a copy.
type Prepared struct {
	payload []byte
	flag    byte
}

// SealedLen is the length of the blob SealPrepared writes.
func (p Prepared) SealedLen() int { return BlobOverhead + len(p.payload) }

// Prepare compresses plaintext when that is worth it (into scratch, reused
// when large enough): the first half of Seal, which a writer runs before
// it takes room in a pack, so that the blob is sealed straight into the
// pack with no copy of a finished blob.
func (s *Sealer) Prepare(plaintext []byte, scratch []byte) Prepared {
	if worthCompressing(plaintext) {
		z := Compress(scratch[:0], plaintext)
		if len(z) < len(plaintext)-len(plaintext)/32 {
			return Prepared{payload: z, flag: flagZstd}
		}
	}
	return Prepared{payload: plaintext, flag: flagRaw}
}

// SealPrepared writes the sealed blob of p into dst, which must be exactly
// p.SealedLen() bytes and must not overlap p's payload: nonce, then the
// flag and payload, encrypted in place.
func (s *Sealer) SealPrepared(dst []byte, id ID, p Prepared) {
	if len(dst) != p.SealedLen() {
		panic(fmt.Sprintf("format: SealPrepared into %d bytes, want %d", len(dst), p.SealedLen()))
	}
	nonce := dst[:NonceSize]
	if _, err := io.ReadFull(nonces, nonce); err != nil {
		panic(err)
	}
	body := dst[NonceSize : NonceSize+1+len(p.payload)]
	body[0] = p.flag
	copy(body[1:], p.payload)
	s.aead.Seal(body[:0], nonce, body, id[:])
}

// nonces supplies every nonce. Only the golden tests replace it, to seal
// the same bytes on every run.
var nonces io.Reader = rand.Reader

func worthCompressing(p []byte) bool {
	if len(p) < 512 {
		return false
	}
	// Sample spread over the chunk, not just its head.
	var hist [256]int
	n := 0
	step := max(1, len(p)/entropySample)
	for i := 0; i < len(p) && n < entropySample; i += step {
		hist[p[i]]++
		n++
	}
	var bits float64
	for _, c := range hist {
		if c > 0 {
			f := float64(c) / float64(n)
			bits -= f * math.Log2(f)
		}
	}
	return bits < maxEntropyBits
}

// openScratch holds the decrypted flag and payload of a blob while Open
// copies or decodes it into the caller's dst. Open never returns it, so a
// buffer back in the pool is referenced by nobody.
var openScratch = freelist.List[*[]byte]{New: func() *[]byte { return new([]byte) }, Max: 16}

// Open authenticates and decodes a blob, appending the plaintext to dst.
// blob is left untouched, and the result shares memory only with dst.
func (s *Sealer) Open(dst []byte, id ID, blob []byte) ([]byte, error) {
	if len(blob) < BlobOverhead {
		return nil, fmt.Errorf("chunk %s: blob of %d bytes is too short: %w", id, len(blob), ErrCorrupt)
	}
	sp := openScratch.Get()
	defer openScratch.Put(sp)
	plain, err := s.aead.Open((*sp)[:0], blob[:NonceSize], blob[NonceSize:], id[:])
	if cap(plain) > cap(*sp) {
		*sp = plain[:0]
	}
	if err != nil {
		return nil, fmt.Errorf("chunk %s: authentication failed: %w", id, ErrCorrupt)
	}
	if plain[0] == flagRaw {
		return append(dst, plain[1:]...), nil
	}
	return decode(dst, id, plain)
}

// OpenInPlace is Open for a caller that owns blob and is done with it: the
// blob is decrypted where it lies, so no buffer is needed for it. A raw
// chunk's plaintext is returned as a part of blob, without a copy (its
// capacity ends with it, so appending to it never overwrites what follows
// in blob's array); a compressed one is decoded by appending to dst. The
// result is therefore valid only while neither blob's nor dst's memory is
// reused. scratch is dst, grown if decoding needed more room: pass it as
// the next call's dst. Whether or not it fails, the call overwrites blob.
func (s *Sealer) OpenInPlace(dst []byte, id ID, blob []byte) (plain, scratch []byte, err error) {
	if len(blob) < BlobOverhead {
		return nil, dst, fmt.Errorf("chunk %s: blob of %d bytes is too short: %w", id, len(blob), ErrCorrupt)
	}
	body := blob[NonceSize:]
	opened, err := s.aead.Open(body[:0], blob[:NonceSize], body, id[:])
	if err != nil {
		return nil, dst, fmt.Errorf("chunk %s: authentication failed: %w", id, ErrCorrupt)
	}
	if opened[0] == flagRaw {
		return opened[1:len(opened):len(opened)], dst, nil
	}
	out, err := decode(dst, id, opened)
	if err != nil {
		return nil, dst, err
	}
	return out, out[:0], nil
}

// decode appends to dst the plaintext of an opened, compressed blob body
// (flag and payload).
func decode(dst []byte, id ID, opened []byte) ([]byte, error) {
	if opened[0] != flagZstd {
		return nil, fmt.Errorf("chunk %s: unknown blob flag %#x: %w", id, opened[0], ErrCorrupt)
	}
	out, err := blobZstd.decode(dst, opened[1:])
	if err != nil {
		return nil, fmt.Errorf("chunk %s: zstd: %v: %w", id, err, ErrCorrupt)
	}
	return out, nil
}

// SealObject seals a small standalone object (a pack trailer, a point
// record) under a fixed purpose string instead of a chunk id.
func (s *Sealer) SealObject(purpose string, plaintext []byte) []byte {
	nonce := make([]byte, NonceSize, NonceSize+len(plaintext)+16)
	if _, err := io.ReadFull(nonces, nonce); err != nil {
		panic(err)
	}
	return s.aead.Seal(nonce, nonce, plaintext, []byte(purpose))
}

// OpenObject reverses SealObject.
func (s *Sealer) OpenObject(purpose string, sealed []byte) ([]byte, error) {
	if len(sealed) < NonceSize+16 {
		return nil, fmt.Errorf("%s: too short: %w", purpose, ErrCorrupt)
	}
	plain, err := s.aead.Open(nil, sealed[:NonceSize], sealed[NonceSize:], []byte(purpose))
	if err != nil {
		return nil, fmt.Errorf("%s: authentication failed: %w", purpose, ErrCorrupt)
	}
	return plain, nil
}
