package tlsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/atomicfile"
)

// Files is where a node keeps its certificates: the cluster's CA
// certificate, the node's certificate and its key, in one directory that
// holds nothing else.
//
// The three are one set: a key that does not match its certificate is
// useless, and a crash between writing one and the other must not leave
// such a pair. Save therefore writes a whole new directory beside the old
// one and swaps the two in one rename (renameat2 RENAME_EXCHANGE), and
// Load reads the three files through one handle on the directory, so it
// sees either the old set or the new one, never a mix.
type Files struct{ Dir string }

// Paths of the three files.
func (f Files) CA() string   { return filepath.Join(f.Dir, caFile) }
func (f Files) Cert() string { return filepath.Join(f.Dir, certFile) }
func (f Files) Key() string  { return filepath.Join(f.Dir, keyFile) }

const (
	caFile   = "ca.crt"
	certFile = "node.crt"
	keyFile  = "node.key"
)

// Exists reports whether a certificate is on disk.
func (f Files) Exists() bool {
	_, err := os.Stat(f.Cert())
	return err == nil
}

// Load reads the identity from disk.
func (f Files) Load() (*Identity, error) {
	for tries := 0; ; tries++ {
		id, retired, err := f.load()
		// A save swapped the directory out and removed it while this
		// read it: read the new one.
		if retired && tries < 3 {
			continue
		}
		return id, err
	}
}

// load reads the three files through one handle on the directory;
// retired says a file vanished from a directory no longer in place.
func (f Files) load() (id *Identity, retired bool, err error) {
	root, err := os.OpenRoot(f.Dir)
	if err != nil {
		return nil, false, err
	}
	defer root.Close()
	var pems [3][]byte
	for i, name := range []string{caFile, certFile, keyFile} {
		if pems[i], err = root.ReadFile(name); err != nil {
			return nil, errors.Is(err, fs.ErrNotExist) && f.replaced(root), fmt.Errorf("read %s: %w", filepath.Join(f.Dir, name), err)
		}
	}
	id, err = NewIdentity(pems[0], pems[1], pems[2])
	return id, false, err
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

// Save replaces the set atomically, the key readable by root only.
func (f Files) Save(caPEM, certPEM, keyPEM []byte) error {
	return f.save(caPEM, certPEM, keyPEM, func(string) bool { return false })
}

// Steps of a save, for tests that stop one part-way as a crash would.
const (
	stepStaged    = "staged"    // the new directory is written and synced
	stepExchanged = "exchanged" // the new directory is in place, the old one beside it
)

// save does the work of Save; crash reports, after each step, whether to
// stop there as if the process had died (tests only).
func (f Files) save(caPEM, certPEM, keyPEM []byte, crash func(step string) bool) error {
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
	}{{caFile, caPEM, 0o644}, {keyFile, keyPEM, 0o600}, {certFile, certPEM, 0o644}} {
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
		err = replaceFiles(next, dir)
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

func replaceFiles(from, to string) error {
	for _, name := range []string{caFile, keyFile, certFile} {
		if err := os.Rename(filepath.Join(from, name), filepath.Join(to, name)); err != nil {
			return err
		}
	}
	return atomicfile.SyncDir(to)
}
