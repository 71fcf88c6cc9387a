package tlsutil

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/atomicfile"
	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/internal/keys"
)

// Files is where a node keeps its certificates: the cluster's CA
// certificate, the node's certificate and its key, and on a manager its
// key material for encryption at rest (internal/keys: the wrapped data
// key of its Raft log), in one directory that holds nothing else.
//
// The files are one set: a key that does not match its certificate is
// useless, a wrapped data key must stay with the key encryption key the
// node key is sealed with, and a crash between writing one and the other
// must not leave such a pair. Save therefore writes a whole new directory
// beside the old one and swaps the two in one rename (renameat2
// RENAME_EXCHANGE), and Load reads the files through one handle on the
// directory, so it sees either the old set or the new one, never a mix.
//
// Under autolock the node key is stored sealed with the material's key
// encryption key (a PEM block of type SealedKeyPEMType): loading the set
// then needs the unlock key (LoadSet), and Load reports keys.ErrLocked.
type Files struct{ Dir string }

// Paths of the files.
func (f Files) CA() string       { return filepath.Join(f.Dir, caFile) }
func (f Files) Cert() string     { return filepath.Join(f.Dir, certFile) }
func (f Files) Key() string      { return filepath.Join(f.Dir, keyFile) }
func (f Files) Material() string { return filepath.Join(f.Dir, materialFile) }

const (
	caFile       = "ca.crt"
	certFile     = "node.crt"
	keyFile      = "node.key"
	materialFile = "manager.keys" // managers only
)

// SealedKeyPEMType is the PEM block type of a node key sealed with the key
// encryption key of the set's material (autolock).
const SealedKeyPEMType = "SHOAL SEALED PRIVATE KEY"

// Exists reports whether a certificate is on disk.
func (f Files) Exists() bool {
	_, err := os.Stat(f.Cert())
	return err == nil
}

// Load reads the identity from disk. When the node key is sealed
// (autolock) it returns an error wrapping keys.ErrLocked: use LoadSet.
func (f Files) Load() (*Identity, error) {
	id, _, err := f.LoadSet("")
	return id, err
}

// LoadSet reads the identity and the key material of one set (material is
// nil on a node that is not a manager). When the node key is sealed
// (autolock), unlockKey unlocks the material and opens the key; with an
// unlockKey of "" it returns the locked material and an error wrapping
// keys.ErrLocked, and a wrong key gives Unlock's error (keys.ErrInvalidKey)
// with the material still locked. An unlockKey given for a set that is not
// sealed is not checked.
func (f Files) LoadSet(unlockKey string) (*Identity, *keys.Material, error) {
	for tries := 0; ; tries++ {
		id, m, retired, err := f.load(unlockKey)
		// A save swapped the directory out and removed it while this
		// read it: read the new one.
		if retired && tries < 3 {
			continue
		}
		return id, m, err
	}
}

// load reads the files through one handle on the directory; retired
// says a file vanished from a directory no longer in place.
func (f Files) load(unlockKey string) (id *Identity, m *keys.Material, retired bool, err error) {
	root, err := os.OpenRoot(f.Dir)
	if err != nil {
		return nil, nil, false, err
	}
	defer root.Close()
	var pems [3][]byte
	for i, name := range []string{caFile, certFile, keyFile} {
		if pems[i], err = root.ReadFile(name); err != nil {
			return nil, nil, errors.Is(err, fs.ErrNotExist) && f.replaced(root), fmt.Errorf("read %s: %w", filepath.Join(f.Dir, name), err)
		}
	}
	data, err := root.ReadFile(materialFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// No material, or a save is removing the directory read.
		if f.replaced(root) {
			return nil, nil, true, fmt.Errorf("read %s: %w", f.Material(), err)
		}
	case err != nil:
		return nil, nil, false, fmt.Errorf("read %s: %w", f.Material(), err)
	default:
		if m, err = keys.Parse(data); err != nil {
			return nil, nil, false, fmt.Errorf("%s: %w", f.Material(), err)
		}
	}
	keyPEM := pems[2]
	if block, _ := pem.Decode(keyPEM); block != nil && block.Type == SealedKeyPEMType {
		if m == nil || !m.Autolocked() {
			return nil, nil, false, fmt.Errorf("%s is sealed but %s holds no autolocked key material to open it with; restore the directory from a backup, or leave the swarm and join it again: %w", f.Key(), f.Material(), errdefs.ErrFailedPrecond)
		}
		if unlockKey == "" && m.Locked() {
			return nil, m, false, fmt.Errorf("%s is sealed: %w", f.Key(), keys.ErrLocked)
		}
		if m.Locked() {
			if err := m.Unlock(unlockKey); err != nil {
				return nil, m, false, err
			}
		}
		if keyPEM, err = m.Open(block.Bytes); err != nil {
			return nil, nil, false, fmt.Errorf("%s: %w", f.Key(), err)
		}
	}
	id, err = NewIdentity(pems[0], pems[1], keyPEM)
	if err != nil {
		return nil, nil, false, err
	}
	return id, m, false, nil
}

// replaced reports whether the directory root was opened on is no
// longer the one at f.Dir.
func (f Files) replaced(root *os.Root) bool {
	held, err := root.Stat(".")
	if err != nil {
		return true
	}
	now, err := os.Stat(f.Dir)
	return err != nil || !os.SameFile(held, now)
}

// saveMu keeps two saves of one process (a renewal racing a role
// change) from sharing the staging directory.
var saveMu sync.Mutex

// Save replaces the set atomically, the key and the material readable by
// root only. keyPEM is the node key in the clear; m is the node's key
// material, nil on a node that is not a manager (the set then has none).
// When m is autolocked the key is stored sealed with m's key encryption
// key, so m must be unlocked (keys.ErrLocked otherwise). Renewing a
// certificate, re-wrapping keys (m.Rewrap) and changing role are each one
// Save: the disk holds the old set or the new one, never a mix.
func (f Files) Save(caPEM, certPEM, keyPEM []byte, m *keys.Material) error {
	return f.save(caPEM, certPEM, keyPEM, m, func(string) bool { return false })
}

// sealed returns the node key as stored with m: sealed when m is
// autolocked, as given otherwise, and m's stored form (nil without m).
func sealed(keyPEM []byte, m *keys.Material) (key, material []byte, err error) {
	if m == nil {
		return keyPEM, nil, nil
	}
	if material, err = m.Marshal(); err != nil {
		return nil, nil, err
	}
	if !m.Autolocked() {
		return keyPEM, material, nil
	}
	box, err := m.Seal(keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("seal the node key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: SealedKeyPEMType, Bytes: box}), material, nil
}

// Steps of a save, for tests that stop one part-way as a crash would.
const (
	stepStaged    = "staged"    // the new directory is written and synced
	stepExchanged = "exchanged" // the new directory is in place, the old one beside it
)

// save does the work of Save; crash reports, after each step, whether to
// stop there as if the process had died (tests only).
func (f Files) save(caPEM, certPEM, keyPEM []byte, m *keys.Material, crash func(step string) bool) error {
	keyPEM, material, err := sealed(keyPEM, m)
	if err != nil {
		return err
	}
	saveMu.Lock()
	defer saveMu.Unlock()
	dir := filepath.Clean(f.Dir)
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return err
	}
	// Leftovers of a save that died: never the live set.
	stale, _ := filepath.Glob(dir + ".next-*")
	for _, s := range stale {
		_ = os.RemoveAll(s)
	}
	next, err := os.MkdirTemp(parent, filepath.Base(dir)+".next-")
	if err != nil {
		return err
	}
	keep := false // a simulated crash leaves next where it is
	defer func() {
		if !keep {
			_ = os.RemoveAll(next) // after the exchange: the old set
		}
	}()
	if err := os.Chmod(next, 0o700); err != nil {
		return err
	}
	for _, w := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{{caFile, caPEM, 0o644}, {keyFile, keyPEM, 0o600}, {certFile, certPEM, 0o644}, {materialFile, material, 0o600}} {
		if w.data == nil {
			continue
		}
		if err := atomicfile.WriteFile(filepath.Join(next, w.name), w.data, w.mode); err != nil {
			return err
		}
	}
	if err := atomicfile.SyncDir(next); err != nil {
		return err
	}
	if crash(stepStaged) {
		keep = true
		return nil
	}
	err = unix.Renameat2(unix.AT_FDCWD, next, unix.AT_FDCWD, dir, unix.RENAME_EXCHANGE)
	switch {
	case errors.Is(err, unix.ENOENT):
		// The first save: nothing to exchange with.
		err = os.Rename(next, dir)
	case errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS):
		// A file system without RENAME_EXCHANGE: replace the files one
		// by one, each atomically (the set is not, there).
		err = replaceFiles(next, dir, material != nil)
	}
	if err != nil {
		return fmt.Errorf("save certificates in %s: %w", dir, err)
	}
	if err := atomicfile.SyncDir(parent); err != nil {
		return err
	}
	keep = crash(stepExchanged)
	return nil
}

func replaceFiles(from, to string, withMaterial bool) error {
	names := []string{caFile, keyFile, certFile}
	if withMaterial {
		names = append(names, materialFile)
	} else if err := os.Remove(filepath.Join(to, materialFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, name := range names {
		if err := os.Rename(filepath.Join(from, name), filepath.Join(to, name)); err != nil {
			return err
		}
	}
	return atomicfile.SyncDir(to)
}
