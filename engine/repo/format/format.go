// Package format is Haven's repository format on the store: chunk ids,
// sealed blobs, pack layout and key objects. Everything here is written to
// storage and read back by any later version, so it changes only with a new
// version byte. templates/guides/repository-format.md.tmpl describes the same
// bytes for an independent reader.
package format

import (
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/zeebo/blake3"
)

// IDSize is the length of a chunk id.
const IDSize = 32

// ID names a chunk: the keyed BLAKE3-256 hash of its plaintext. The key is
// the storage's id key, so ids reveal nothing about content across storages.
type ID [IDSize]byte

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short is the first 8 bytes in hex, for messages.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// IsZero reports an unset id.
func (id ID) IsZero() bool { return id == ID{} }

// ParseID reads a 64-digit hex id.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("chunk id %q: want %d hex digits", s, 2*IDSize)
	}
	_, err := hex.Decode(id[:], []byte(s))
	return id, err
}

// MarshalText encodes an id as hex (JSON manifests carry ids as strings).
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText decodes a hex id.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	*id = v
	return err
}

// Type says what a chunk holds. It is recorded in pack trailers and the
// index so verify and GC know what to walk.
type Type byte

const (
	// Data is file or disk content.
	Data Type = 0
	// Tree is part of a manifest stream.
	Tree Type = 1
	// Root is the top of a recovery point's manifest tree.
	Root Type = 2
)

// Hasher computes chunk ids under one storage's id key. It is safe for
// concurrent use.
type Hasher struct {
	key [32]byte
	// keyed holds *blake3.Hasher values keyed with key, Reset before each
	// use: keying one costs as much as hashing a small chunk, and each
	// holds an 8 KiB buffer that would otherwise be garbage per chunk.
	keyed sync.Pool
}

// NewHasher keys a hasher.
func NewHasher(idKey [32]byte) *Hasher {
	h := &Hasher{key: idKey}
	h.keyed.New = func() any {
		hh, err := blake3.NewKeyed(h.key[:])
		if err != nil {
			panic(err) // the key is always 32 bytes
		}
		return hh
	}
	return h
}

// Sum returns the id of data.
func (h *Hasher) Sum(data []byte) ID {
	hh := h.keyed.Get().(*blake3.Hasher)
	hh.Reset()
	_, _ = hh.Write(data)
	var id ID
	hh.Sum(id[:0])
	h.keyed.Put(hh)
	return id
}

// ErrCorrupt reports bytes that fail authentication or do not parse.
var ErrCorrupt = errors.New("corrupt")

// Key returns the hasher's id key.
func (h *Hasher) Key() [32]byte { return h.key }
