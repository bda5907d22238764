package format

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
)

// Keys is one storage's key material: the data key encrypts blobs, the id
// key keys chunk ids. Both are random and never change for the life of the
// storage; what protects them is the master key, which wraps them in the
// store object keys/<master key id>. Rotating the master key writes a new
// wrapping and deletes the old one: no pack is rewritten.
type Keys struct {
	Data [32]byte `json:"data"`
	ID   [32]byte `json:"id"`
}

// NewKeys draws fresh key material.
func NewKeys() Keys {
	var k Keys
	if _, err := rand.Read(k.Data[:]); err != nil {
		panic(err)
	}
	if _, err := rand.Read(k.ID[:]); err != nil {
		panic(err)
	}
	return k
}

// Wrapper seals small values with a master key (engine/keys.MasterKey).
// ID names the key without revealing it; it names the keys/ object.
type Wrapper interface {
	ID() string
	Seal(plaintext []byte, context string) []byte
	Open(sealed []byte, context string) ([]byte, error)
}

// keysObject is the plaintext of keys/<master key id>.
type keysObject struct {
	Version      int    `json:"version"`
	RepositoryID string `json:"repository_id"`
	Keys         Keys   `json:"keys"`
}

const keysContext = "haven/repository-keys"

// WrapKeys seals a storage's keys with a master key.
func WrapKeys(w Wrapper, repositoryID string, k Keys) []byte {
	b, err := json.Marshal(keysObject{Version: 1, RepositoryID: repositoryID, Keys: k})
	if err != nil {
		panic(err)
	}
	return w.Seal(b, keysContext)
}

// UnwrapKeys opens keys/<master key id> and checks it belongs to this repository.
func UnwrapKeys(w Wrapper, repositoryID string, sealed []byte) (Keys, error) {
	owner, k, err := OpenKeys(w, sealed)
	if err != nil {
		return Keys{}, err
	}
	if owner != repositoryID {
		return Keys{}, fmt.Errorf("repository keys belong to repository %s, not %s", owner, repositoryID)
	}
	return k, nil
}

// OpenKeys opens keys/<master key id> and returns the keys with the id of
// the repository they belong to: how a repository found with no catalog
// (an import) learns its own id.
func OpenKeys(w Wrapper, sealed []byte) (repositoryID string, k Keys, err error) {
	plain, err := w.Open(sealed, keysContext)
	if err != nil {
		return "", Keys{}, err
	}
	var o keysObject
	if err := json.Unmarshal(plain, &o); err != nil || o.Version != 1 {
		return "", Keys{}, fmt.Errorf("repository keys: unreadable: %w", ErrCorrupt)
	}
	return o.RepositoryID, o.Keys, nil
}
