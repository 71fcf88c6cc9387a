package image

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/atomicfile"
	"github.com/shoal-run/shoal/internal/errdefs"
)

// Options configure a Store.
type Options struct {
	Root               string       // e.g. /var/lib/shoal/runtime/images; the store owns it
	InsecureRegistries []string     // host[:port] that may be used over plain HTTP or unverified TLS
	Platform           *v1.Platform // the platform to pull for; nil: this host's
	// MaxImageSize bounds the bytes one pull or load unpacks for an
	// image's new layers (and a load's archive), so that a decompression
	// bomb cannot fill the disk; 0 is DefaultMaxImageSize, < 0 no limit.
	MaxImageSize int64
}

// Store is the node's image store. Its methods are safe for concurrent
// use; one process at a time may open a root.
type Store struct {
	root      string
	insecure  []string
	platform  v1.Platform
	lockFile  *os.File
	transport *guardTransport
	keychain  authn.Keychain
	backoff   *remote.Backoff // nil: the library's retry policy
	// maxImageSize is Options.MaxImageSize with the default applied.
	maxImageSize int64

	layerLocks keyLocks

	mu       sync.Mutex
	st       *state
	layers   map[string]*layerRecord // by diffID
	links    map[string]string       // short link name -> diffID, including reserved ones
	inflight map[string]int          // diffIDs that pulls and loads in progress depend on
}

// Subdirectories and files of the root.
const (
	stateFile = "state.json"
	lockName  = "lock"
	layersDir = "layers"
	linksDir  = "l"
	blobsDir  = "blobs/sha256"
	tmpDir    = "tmp"
)

// Open opens (creating if needed) the store at opts.Root, discarding
// whatever an interrupted pull or load left behind.
func Open(opts Options) (*Store, error) {
	if opts.Root == "" {
		return nil, fmt.Errorf("image store: root directory is required: %w", errdefs.ErrInvalid)
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("image store root %q: %w", opts.Root, err)
	}
	if err := validateInsecure(opts.InsecureRegistries); err != nil {
		return nil, err
	}
	for _, d := range []string{"", layersDir, linksDir, blobsDir, tmpDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
	}
	lf, err := os.OpenFile(filepath.Join(root, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lf.Close()
		if err == unix.EWOULDBLOCK {
			return nil, fmt.Errorf("image store %s is in use by another process (or another Open in this one): %w", root, errdefs.ErrFailedPrecond)
		}
		return nil, fmt.Errorf("image store: locking %s: %w", root, err)
	}
	s := &Store{
		root:      root,
		insecure:  append([]string(nil), opts.InsecureRegistries...),
		platform:  hostPlatform(),
		lockFile:  lf,
		transport: newGuardTransport(opts.InsecureRegistries),
		keychain:  authn.DefaultKeychain,
		layers:    map[string]*layerRecord{},
		links:     map[string]string{},
		inflight:  map[string]int{},
	}
	if opts.Platform != nil {
		s.platform = *opts.Platform
	}
	switch s.maxImageSize = opts.MaxImageSize; {
	case s.maxImageSize == 0:
		s.maxImageSize = DefaultMaxImageSize
	case s.maxImageSize < 0:
		s.maxImageSize = 0 // budgets without a limit
	}
	if err := s.recover(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("image store %s: %w", root, err)
	}
	return s, nil
}

// Close releases the root for another Open. Calls in progress should have
// returned.
func (s *Store) Close() error {
	s.transport.closeIdle()
	return s.lockFile.Close()
}

func (s *Store) path(elem ...string) string {
	return filepath.Join(append([]string{s.root}, elem...)...)
}

// Get returns the image ref names: a reference (normalized as by
// NormalizeRef), a full image ID, or a unique prefix of one, with or
// without "sha256:".
func (s *Store) Get(ref string) (*Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, _, err := s.resolveLocked(ref)
	if err != nil {
		return nil, err
	}
	return rec.image(s.st.namesOf(rec.ID)), nil
}

// List returns every stored image, newest first.
func (s *Store) List() ([]*Image, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := map[string][]string{}
	for n, id := range s.st.Names {
		names[id] = append(names[id], n)
	}
	out := make([]*Image, 0, len(s.st.Images))
	for id, rec := range s.st.Images {
		out = append(out, rec.image(names[id]))
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// LayerDirs returns img's unpacked layer directories, lowest first, ready
// to be overlayfs lower dirs (which list them highest first). They are
// short symlinks, Root/l/<id>; when the mount options would still exceed a
// page, mount from Root/l with the base names as relative paths.
//
// A layer that occurs more than once in the image is listed only at its
// highest position: overlayfs refuses a directory twice, and a lower copy
// of a layer cannot change what the upper copy shows.
func (s *Store) LayerDirs(img *Image) ([]string, error) {
	if img == nil {
		return nil, fmt.Errorf("layer dirs: no image: %w", errdefs.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dirs := make([]string, 0, len(img.Layers))
	seen := map[string]bool{}
	for i := len(img.Layers) - 1; i >= 0; i-- {
		d := img.Layers[i]
		rec, ok := s.layers[d]
		if !ok {
			return nil, fmt.Errorf("layer %s of image %s is not stored; pull the image again: %w", d, img.ID, errdefs.ErrNotFound)
		}
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, s.path(linksDir, rec.Link))
		}
	}
	slices.Reverse(dirs)
	return dirs, nil
}

// resolveLocked finds the image ref names; byName is the normalized name
// when ref was one.
func (s *Store) resolveLocked(ref string) (rec *imageRecord, byName string, err error) {
	if ref == "" {
		return nil, "", fmt.Errorf("image reference is empty: %w", errdefs.ErrInvalid)
	}
	n, parseErr := NormalizeRef(ref)
	if parseErr == nil {
		if id, ok := s.st.Names[n]; ok {
			return s.st.Images[id], n, nil
		}
		// A digest reference also finds an image pulled by tag from the
		// same repository whose manifest has that digest.
		if i := strings.LastIndex(n, "@"); i >= 0 {
			repo, dgst := n[:i], n[i+1:]
			for name, id := range s.st.Names {
				if r := s.st.Images[id]; r.Digest == dgst && repositoryOf(name) == repo {
					return r, "", nil
				}
			}
		}
	}
	hex := strings.TrimPrefix(ref, "sha256:")
	if isHex(hex) && len(hex) <= 64 {
		var found []*imageRecord
		for id, r := range s.st.Images {
			if strings.HasPrefix(id, "sha256:"+hex) {
				found = append(found, r)
			}
		}
		switch {
		case len(found) == 1:
			return found[0], "", nil
		case len(found) > 1:
			return nil, "", fmt.Errorf("image ID prefix %q is ambiguous: it matches %d images; give more digits: %w", ref, len(found), errdefs.ErrInvalid)
		}
	}
	if parseErr != nil && !isHex(hex) {
		return nil, "", parseErr
	}
	return nil, "", fmt.Errorf("image %q not found; pull it with `shoal image pull` or load it with `shoal image load`: %w", ref, errdefs.ErrNotFound)
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// commit records an image whose layers are all stored, its blobs
// (manifest, config) and its names, moving a name from any image that had
// it. changed is false when the image was recorded already and every name
// named it.
func (s *Store) commit(rec *imageRecord, names []string, blobs map[string][]byte) (img *Image, changed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range rec.Layers {
		if _, ok := s.layers[d]; !ok {
			return nil, false, fmt.Errorf("image %s: layer %s vanished before the image was recorded", rec.ID, d)
		}
	}
	for dgst, b := range blobs {
		if err := s.writeBlob(dgst, b); err != nil {
			return nil, false, fmt.Errorf("image %s: storing blob %s: %w", rec.ID, dgst, err)
		}
	}
	next := s.st.clone()
	if old, ok := next.Images[rec.ID]; !ok || (old.Digest == "" && rec.Digest != "") {
		next.Images[rec.ID] = rec
		changed = true
	}
	for _, n := range names {
		if next.Names[n] != rec.ID {
			next.Names[n] = rec.ID
			changed = true
		}
	}
	if err := saveState(s.path(stateFile), next, true); err != nil {
		return nil, false, fmt.Errorf("image %s: saving state: %w", rec.ID, err)
	}
	s.st = next
	return next.Images[rec.ID].image(next.namesOf(rec.ID)), changed, nil
}

// update applies fn to a copy of the state and saves it.
func (s *Store) updateLocked(fn func(next *state) error) error {
	return s.update(fn, true)
}

// update applies fn to a copy of the state and saves it, synced to disk
// when durable.
func (s *Store) update(fn func(next *state) error, durable bool) error {
	next := s.st.clone()
	if err := fn(next); err != nil {
		return err
	}
	if err := saveState(s.path(stateFile), next, durable); err != nil {
		return fmt.Errorf("saving image store state: %w", err)
	}
	s.st = next
	return nil
}

func (s *Store) blobPath(dgst string) (string, bool) {
	hex, ok := strings.CutPrefix(dgst, "sha256:")
	if !ok || len(hex) != 64 || !isHex(hex) {
		return "", false
	}
	return s.path(blobsDir, hex), true
}

func (s *Store) writeBlob(dgst string, b []byte) error {
	p, ok := s.blobPath(dgst)
	if !ok {
		return fmt.Errorf("unsupported digest %q", dgst)
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	return atomicfile.WriteFile(p, b, 0o600)
}

// removeBlob deletes a blob, returning its size.
func (s *Store) removeBlob(dgst string) int64 {
	p, ok := s.blobPath(dgst)
	if !ok {
		return 0
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	if os.Remove(p) != nil {
		return 0
	}
	return fi.Size()
}

// recover rebuilds the in-memory view from disk at Open, dropping
// leftovers of interrupted work and anything that is not complete.
func (s *Store) recover() error {
	if err := clearDir(s.path(tmpDir)); err != nil {
		return err
	}
	if err := s.recoverLayers(); err != nil {
		return err
	}
	st, err := loadState(s.path(stateFile))
	if err != nil {
		return err
	}
	s.st = st
	changed := false
	for id, rec := range st.Images {
		for _, d := range rec.Layers {
			if _, ok := s.layers[d]; !ok {
				st.removeImage(id) // incomplete: pulled again on demand
				changed = true
				break
			}
		}
	}
	for n, id := range st.Names {
		if _, ok := st.Images[id]; !ok {
			delete(st.Names, n)
			changed = true
		}
	}
	for o, id := range st.Leases {
		if _, ok := st.Images[id]; !ok {
			delete(st.Leases, o)
			changed = true
		}
	}
	if changed {
		if err := saveState(s.path(stateFile), st, true); err != nil {
			return err
		}
	}
	// Blobs no image references, and temporary files.
	used := map[string]bool{}
	for _, rec := range st.Images {
		used[strings.TrimPrefix(rec.ID, "sha256:")] = true
		used[strings.TrimPrefix(rec.Digest, "sha256:")] = true
	}
	entries, err := os.ReadDir(s.path(blobsDir))
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !used[e.Name()] {
			os.RemoveAll(s.path(blobsDir, e.Name()))
		}
	}
	entries, err = os.ReadDir(s.root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			os.RemoveAll(s.path(e.Name()))
		}
	}
	return nil
}

// clearDir empties dir.
func clearDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		errs = append(errs, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
	return errors.Join(errs...)
}
