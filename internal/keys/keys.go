// Package keys holds a manager's key material for encryption at rest, and
// the ciphers that use it.
//
// Each manager has its own random data encryption key (DEK): its Raft log
// entries and snapshots are sealed with it (Cipher: single records with
// AES-256-GCM, and a chunked AEAD stream for snapshots). The DEK is kept
// wrapped by a key encryption key (KEK). Without autolock the KEK is random
// and kept beside the node's TLS key, as in Swarm: the disk holds both, so
// the encryption protects a copied Raft directory, not a copied data dir.
// With autolock the KEK is derived from the cluster's unlock key
// (SHOALKEY-1-…, HKDF-SHA256 with a salt of the material's own) and kept
// nowhere: a restarted manager cannot read its Raft data, nor use its TLS
// key (which internal/tlsutil then stores sealed with the KEK), until an
// operator gives the key again.
//
//	unlock key ──HKDF──▶ KEK ──wraps──▶ DEK ──seals──▶ raft log, snapshots
//	(or a random KEK on disk)      └──seals──▶ node TLS key (autolock only)
//
// Material is what a manager keeps on disk (internal/tlsutil stores it with
// the node's certificate set, so one atomic swap changes TLS key and wrapped
// DEK together). Secret bytes never appear in an error or in the String of
// any value here. The package touches no disk and imports only
// internal/errdefs.
package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/shoal-run/shoal/internal/errdefs"
)

// KeySize is the size of every key here: DEK, KEK and the secret of an
// unlock key (AES-256).
const KeySize = 32

// ErrLocked is returned by what needs the DEK or the KEK of material that
// is autolocked and was not unlocked in this process (and by
// tlsutil.Files when the node key is sealed). Test for it with errors.Is;
// its category is errdefs.ErrFailedPrecond. The wording is docker's.
//
//lint:ignore ST1005 docker's wording, capitalized as docker writes it
var ErrLocked = fmt.Errorf("Swarm is encrypted and needs to be unlocked before it can be used. Please use `shoal swarm unlock` to unlock it: %w", errdefs.ErrFailedPrecond)

// ErrInvalidKey is returned by Unlock for a well-formed unlock key that does
// not unwrap the material: it is not the key this manager's DEK was wrapped
// with. Its category is errdefs.ErrInvalid (docker answers InvalidArgument).
var ErrInvalidKey = fmt.Errorf("swarm could not be unlocked: invalid key provided (it is not the unlock key this manager's keys were wrapped with; if the key was rotated while this manager was down, give the one in use before the rotation): %w", errdefs.ErrInvalid)

// ErrNotLocked is returned by Unlock for material that is not autolocked.
var ErrNotLocked = fmt.Errorf("swarm is not locked: this manager's keys are not protected by an unlock key: %w", errdefs.ErrFailedPrecond)

// unlockKeyPrefix starts every unlock key; 1 is the format's version.
const unlockKeyPrefix = "SHOALKEY-1-"

// UnlockKey is a parsed unlock key. Its String and GoString never show the
// secret, so it cannot reach a log by accident.
type UnlockKey struct{ secret [KeySize]byte }

func (UnlockKey) String() string   { return unlockKeyPrefix + "[redacted]" }
func (UnlockKey) GoString() string { return unlockKeyPrefix + "[redacted]" }

// NewUnlockKey makes a new random unlock key, SHOALKEY-1-<base64 of 32
// random bytes> (unpadded standard base64, as docker's SWMKEY-1-…).
func NewUnlockKey() (string, error) {
	var b [KeySize]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("make an unlock key: %w", err)
	}
	return unlockKeyPrefix + base64.RawStdEncoding.EncodeToString(b[:]), nil
}

// errMalformedKey never repeats what was given: a mistyped key is still
// most of the real one.
var errMalformedKey = fmt.Errorf("the unlock key is malformed: it must be SHOALKEY-1- followed by 43 characters of base64, as `shoal swarm unlock-key` prints it: %w", errdefs.ErrInvalid)

// ParseUnlockKey parses an unlock key; surrounding white space (a newline
// from a terminal or a pipe) is ignored. A malformed key is an
// errdefs.ErrInvalid error that does not repeat the key.
func ParseUnlockKey(s string) (UnlockKey, error) {
	s = strings.TrimSpace(s)
	rest, ok := strings.CutPrefix(s, unlockKeyPrefix)
	if !ok {
		return UnlockKey{}, errMalformedKey
	}
	b, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil || len(b) != KeySize {
		return UnlockKey{}, errMalformedKey
	}
	var k UnlockKey
	copy(k.secret[:], b)
	return k, nil
}

// kek derives the KEK of an unlock key for a material's salt.
func (k UnlockKey) kek(salt []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, k.secret[:], salt, "shoal kek v1", KeySize)
}

// Material is a manager's key material: its DEK, wrapped by a KEK that is
// either local (random, stored in the material) or derived from an unlock
// key (autolock; the material then stores only the salt). Material read
// from disk under autolock is locked until Unlock; Rewrap returns new
// material and leaves the receiver unchanged. Safe for concurrent use.
type Material struct {
	autolock bool
	salt     []byte // HKDF salt (autolock)
	localKEK []byte // the KEK itself (no autolock)
	wrapped  []byte // nonce ‖ AES-256-GCM(KEK, DEK)

	mu  sync.Mutex
	kek []byte // nil while locked
	dek []byte
}

// New makes material for a manager that has none: a fresh random DEK
// wrapped by a fresh random local KEK (no autolock). Rewrap with the
// cluster's unlock key when autolock is on.
func New() (*Material, error) {
	dek, err := randomKey()
	if err != nil {
		return nil, err
	}
	return wrap(dek, "")
}

func randomKey() ([]byte, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("make a key: %w", err)
	}
	return b, nil
}

// wrap makes unlocked material holding dek, wrapped by a KEK derived from
// unlockKey, or by a new local KEK when unlockKey is "".
func wrap(dek []byte, unlockKey string) (*Material, error) {
	m := &Material{dek: append([]byte(nil), dek...)}
	if unlockKey == "" {
		kek, err := randomKey()
		if err != nil {
			return nil, err
		}
		m.localKEK, m.kek = kek, kek
	} else {
		k, err := ParseUnlockKey(unlockKey)
		if err != nil {
			return nil, err
		}
		m.autolock = true
		if m.salt, err = randomKey(); err != nil {
			return nil, err
		}
		if m.kek, err = k.kek(m.salt); err != nil {
			return nil, err
		}
	}
	aead, err := newGCM(m.kek)
	if err != nil {
		return nil, err
	}
	m.wrapped = aead.Seal(nil, nil, dek, m.wrapAD())
	return m, nil
}

// newGCM is AES-256-GCM with a random nonce prepended to each sealed
// message.
func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// wrapAD binds the wrapped DEK to how it is wrapped.
func (m *Material) wrapAD() []byte {
	ad := []byte("shoal wrapped dek v1")
	if m.autolock {
		ad = append(ad, 1)
		ad = append(ad, m.salt...)
	} else {
		ad = append(ad, 0)
	}
	return ad
}

// materialFile is the stored form of Material.
type materialFile struct {
	Version  int    `json:"version"`
	Autolock bool   `json:"autolock"`
	Salt     []byte `json:"salt,omitempty"`
	KEK      []byte `json:"kek,omitempty"`
	DEK      []byte `json:"wrapped_dek"`
}

const materialVersion = 1

// Marshal returns the material as stored on disk: the wrapped DEK and
// either the salt (autolock) or the local KEK. Locked material marshals
// too (it is what was read).
func (m *Material) Marshal() ([]byte, error) {
	return json.Marshal(materialFile{Version: materialVersion, Autolock: m.autolock, Salt: m.salt, KEK: m.localKEK, DEK: m.wrapped})
}

// Parse reads material written by Marshal. Material without autolock is
// unwrapped at once (a failure means the file is corrupt); autolocked
// material is returned locked.
func Parse(data []byte) (*Material, error) {
	var f materialFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("the manager's key material is corrupt (not JSON); restore it from a backup, or demote and promote this manager to get new material: %w", errdefs.ErrFailedPrecond)
	}
	if f.Version != materialVersion {
		return nil, fmt.Errorf("the manager's key material is of version %d; this shoal reads version %d (use the shoal that wrote it): %w", f.Version, materialVersion, errdefs.ErrFailedPrecond)
	}
	m := &Material{autolock: f.Autolock, salt: f.Salt, localKEK: f.KEK, wrapped: f.DEK}
	switch {
	case m.autolock && (len(m.salt) != KeySize || len(m.localKEK) != 0),
		!m.autolock && (len(m.localKEK) != KeySize || len(m.salt) != 0),
		len(m.wrapped) == 0:
		return nil, fmt.Errorf("the manager's key material is corrupt (fields missing or of the wrong size); restore it from a backup, or demote and promote this manager to get new material: %w", errdefs.ErrFailedPrecond)
	}
	if !m.autolock {
		dek, err := m.unwrap(m.localKEK)
		if err != nil {
			return nil, fmt.Errorf("the manager's key material is corrupt (its data key does not unwrap with its own key encryption key); restore it from a backup: %w", errdefs.ErrFailedPrecond)
		}
		m.kek, m.dek = m.localKEK, dek
	}
	return m, nil
}

func (m *Material) unwrap(kek []byte) ([]byte, error) {
	aead, err := newGCM(kek)
	if err != nil {
		return nil, err
	}
	dek, err := aead.Open(nil, nil, m.wrapped, m.wrapAD())
	if err != nil || len(dek) != KeySize {
		return nil, errors.New("unwrap failed")
	}
	return dek, nil
}

// Autolocked reports whether the KEK is derived from an unlock key.
func (m *Material) Autolocked() bool { return m.autolock }

// Locked reports whether the material is autolocked and was not unlocked
// in this process: DEK, Seal, Open and Rewrap then fail with ErrLocked.
func (m *Material) Locked() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dek == nil
}

// Unlock derives the KEK from unlockKey and unwraps the DEK. A malformed
// key is an errdefs.ErrInvalid error; a well-formed key that is not this
// material's is ErrInvalidKey; material without autolock is ErrNotLocked.
// Unlocking unlocked material checks the key again. A failure changes
// nothing.
func (m *Material) Unlock(unlockKey string) error {
	if !m.autolock {
		return ErrNotLocked
	}
	k, err := ParseUnlockKey(unlockKey)
	if err != nil {
		return err
	}
	kek, err := k.kek(m.salt)
	if err != nil {
		return err
	}
	dek, err := m.unwrap(kek)
	if err != nil {
		return ErrInvalidKey
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.kek, m.dek = kek, dek
	return nil
}

// DEK returns a copy of the data encryption key, or ErrLocked.
func (m *Material) DEK() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dek == nil {
		return nil, ErrLocked
	}
	return append([]byte(nil), m.dek...), nil
}

// Rewrap returns new material holding the same DEK wrapped by a KEK
// derived from unlockKey (with a new salt), or by a new random local KEK
// when unlockKey is "" (autolock off). The receiver must be unlocked
// (ErrLocked otherwise) and is left unchanged, so a failed save of the new
// material keeps the old one usable. Store the result with the node key
// in one save (tlsutil.Files.Save).
func (m *Material) Rewrap(unlockKey string) (*Material, error) {
	dek, err := m.DEK()
	if err != nil {
		return nil, err
	}
	return wrap(dek, unlockKey)
}

// sealAD binds sealed data (the node's TLS key) to its use.
var sealAD = []byte("shoal sealed node key v1")

// Seal seals data (the node's TLS private key, under autolock) with the
// KEK. It needs unlocked material.
func (m *Material) Seal(data []byte) ([]byte, error) {
	aead, err := m.kekAEAD()
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, nil, data, sealAD), nil
}

// Open opens what Seal sealed with the same KEK. It needs unlocked
// material; sealed data of another KEK, or tampered with, is an error.
func (m *Material) Open(sealed []byte) ([]byte, error) {
	aead, err := m.kekAEAD()
	if err != nil {
		return nil, err
	}
	out, err := aead.Open(nil, nil, sealed, sealAD)
	if err != nil {
		return nil, fmt.Errorf("the sealed node key does not open with this manager's key encryption key (corrupt, or of another key set): %w", errdefs.ErrFailedPrecond)
	}
	return out, nil
}

func (m *Material) kekAEAD() (cipher.AEAD, error) {
	m.mu.Lock()
	kek := m.kek
	m.mu.Unlock()
	if kek == nil {
		return nil, ErrLocked
	}
	return newGCM(kek)
}

// SameDEK reports whether m and o hold the same DEK (both unlocked);
// for tests and for checks that a rewrap kept the key.
func (m *Material) SameDEK(o *Material) bool {
	a, err1 := m.DEK()
	b, err2 := o.DEK()
	return err1 == nil && err2 == nil && subtle.ConstantTimeCompare(a, b) == 1
}

// String describes the material without any key bytes.
func (m *Material) String() string {
	switch {
	case !m.autolock:
		return "manager keys (local key encryption key)"
	case m.Locked():
		return "manager keys (autolocked, locked)"
	}
	return "manager keys (autolocked, unlocked)"
}

// GoString is String, so %#v shows no key bytes either.
func (m *Material) GoString() string { return m.String() }
