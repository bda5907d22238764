// Package keys holds the server's master key and seals small secrets with
// it: storage credentials in the control-plane database now, and the
// per-storage data keys of the repository.
//
// The master key never encrypts bulk data. Everything it protects is small
// and stored wrapped, so rotating it means re-wrapping those few values, not
// rewriting any pack.
package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/zeebo/blake3"
)

// MasterKeySize is the length of a master key in bytes (AES-256).
const MasterKeySize = 32

// sealedVersion prefixes every sealed value so the format can change later.
const sealedVersion = 1

// MasterKey seals and opens small secrets with AES-256-GCM.
type MasterKey struct {
	aead cipher.AEAD
	id   string
}

// ID names the key without revealing it: 8 bytes of a BLAKE3 key
// derivation from it, in hex. Stores name key wrappings by it.
func (k *MasterKey) ID() string { return k.id }

// LoadOrCreate reads the master key file, creating it (mode 0600) with a
// fresh random key when it does not exist. A file of the wrong size or with
// permissions open to others is refused, because silently using it would
// either lose access to sealed data or leak the key.
func LoadOrCreate(path string) (*MasterKey, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		raw = make([]byte, MasterKeySize)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		if err := WriteFileAtomic(path, raw, 0o600); err != nil {
			return nil, fmt.Errorf("creating master key: %w", err)
		}
	} else if err != nil {
		return nil, fmt.Errorf("reading master key: %w", err)
	} else {
		info, err := os.Stat(path)
		if err != nil {
			return nil, err
		}
		if info.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("master key %s is readable by others (mode %v): chmod 600 it", path, info.Mode().Perm())
		}
	}
	if len(raw) != MasterKeySize {
		return nil, fmt.Errorf("master key %s holds %d bytes, want %d", path, len(raw), MasterKeySize)
	}
	return New(raw)
}

// New wraps raw key bytes.
func New(raw []byte) (*MasterKey, error) {
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	id := make([]byte, 8)
	blake3.DeriveKey("haven master key id v1", raw, id)
	return &MasterKey{aead: aead, id: hex.EncodeToString(id)}, nil
}

// Seal encrypts plaintext bound to context (for instance "storage:<id>"),
// so a sealed value copied to another row does not open there.
func (k *MasterKey) Seal(plaintext []byte, context string) []byte {
	nonce := make([]byte, k.aead.NonceSize(), 1+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	out := append([]byte{sealedVersion}, nonce...)
	return k.aead.Seal(out, nonce, plaintext, []byte(context))
}

// Open reverses Seal. It fails if the value was sealed by another key or for
// another context, or was altered.
func (k *MasterKey) Open(sealed []byte, context string) ([]byte, error) {
	ns := k.aead.NonceSize()
	if len(sealed) < 1+ns+k.aead.Overhead() || sealed[0] != sealedVersion {
		return nil, errors.New("sealed value is malformed")
	}
	plain, err := k.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(context))
	if err != nil {
		return nil, errors.New("sealed value does not open with this master key (wrong key file, or the value was altered)")
	}
	return plain, nil
}

// WriteFileAtomic writes data to path through a synced temp file and a
// rename, so a crash leaves either the old file or the new one.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
