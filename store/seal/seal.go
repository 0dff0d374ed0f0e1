// Package seal encrypts stored credentials with AES-256-GCM under a key ring: several keys, one active, each
// ciphertext tagged with the id of the key that sealed it so keys can rotate without downtime.
//
// A sealed value is nonce || ciphertext+tag; the caller stores the key id beside it. Callers pass
// associated data (the owning row's id) so a ciphertext copied to another row does not open there.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the length of every key: AES-256.
const KeySize = 32

// Errors callers branch on.
var (
	ErrUnknownKey = errors.New("seal: ciphertext sealed with a key that is not in the key ring")
	ErrOpen       = errors.New("seal: ciphertext rejected (tampered, or wrong key or associated data)")
)

// KeyRing holds the keys by id and the id of the active one. It is safe for concurrent use (read-only).
type KeyRing struct {
	aeads  map[string]cipher.AEAD
	active string
}

// Key is one raw key of a ring.
type Key struct {
	ID  string
	Key []byte // KeySize bytes
}

// NewKeyRing builds a ring. active must be one of the ids; "" picks the last key.
func NewKeyRing(keys []Key, active string) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("seal: key ring needs at least one key")
	}
	r := &KeyRing{aeads: map[string]cipher.AEAD{}}
	for _, k := range keys {
		if k.ID == "" {
			return nil, errors.New("seal: key id must not be empty")
		}
		if len(k.Key) != KeySize {
			return nil, fmt.Errorf("seal: key %q must be %d bytes", k.ID, KeySize)
		}
		if _, dup := r.aeads[k.ID]; dup {
			return nil, fmt.Errorf("seal: duplicate key id %q", k.ID)
		}
		block, err := aes.NewCipher(k.Key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		r.aeads[k.ID] = aead
	}
	if active == "" {
		active = keys[len(keys)-1].ID
	}
	if _, ok := r.aeads[active]; !ok {
		return nil, fmt.Errorf("seal: active key %q is not in the key ring", active)
	}
	r.active = active
	return r, nil
}

// ActiveID is the id new seals are made with.
func (r *KeyRing) ActiveID() string { return r.active }

// Seal encrypts plaintext with the active key, binding it to ad.
func (r *KeyRing) Seal(plaintext, ad []byte) (keyID string, sealed []byte, err error) {
	aead := r.aeads[r.active]
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, err
	}
	return r.active, aead.Seal(nonce, nonce, plaintext, ad), nil
}

// Open decrypts a value sealed under keyID with the same ad.
func (r *KeyRing) Open(keyID string, sealed, ad []byte) ([]byte, error) {
	aead, ok := r.aeads[keyID]
	if !ok {
		return nil, ErrUnknownKey
	}
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead() {
		return nil, ErrOpen
	}
	out, err := aead.Open(nil, sealed[:n], sealed[n:], ad)
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}

// NewKey returns a fresh random key.
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	_, err := rand.Read(k)
	return k, err
}

// LoadOrCreateKeyFile reads a base64 key from path, or creates one there (directory 0700, file 0600) when
// the file does not exist. created tells the caller to warn that keys should be configured.
func LoadOrCreateKeyFile(path string) (key []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(k) != KeySize {
			return nil, false, fmt.Errorf("seal: key file %s must hold %d base64-encoded bytes", path, KeySize)
		}
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("seal: read key file: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("seal: create key file directory: %w", err)
	}
	k, err := NewKey()
	if err != nil {
		return nil, false, err
	}
	// Write a temporary file, then hard-link it into place: the link fails if another process got there
	// first, and nobody ever reads a half-written key.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".secret-*.tmp")
	if err != nil {
		return nil, false, fmt.Errorf("seal: create key file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return nil, false, err
	}
	if _, err := tmp.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		tmp.Close()
		return nil, false, err
	}
	if err := tmp.Close(); err != nil {
		return nil, false, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadOrCreateKeyFile(path)
		}
		return nil, false, fmt.Errorf("seal: create key file: %w", err)
	}
	return k, true, nil
}
