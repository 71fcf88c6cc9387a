// Package volume keeps a node's local volumes: one directory each under
// the store's root (<root>/<name>/_data, docker's layout) with its
// metadata beside it, created on first use or by `volume create`, and
// the containers that use each one. The local driver's options mount a
// tmpfs, a bind of a host directory or another filesystem on the
// volume's directory while a container uses it, as docker's do.
package volume

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/atomicfile"
	"github.com/shoal-run/shoal/internal/ctrspec"
	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/runtime/container"
)

// DriverLocal is the only driver.
const DriverLocal = "local"

// Volume is one volume as the store keeps it.
type Volume struct {
	Name      string            `json:"name"`
	Driver    string            `json:"driver"`
	Labels    map[string]string `json:"labels,omitempty"`
	Options   map[string]string `json:"options,omitempty"`
	CreatedAt time.Time         `json:"created_at"`
	Anonymous bool              `json:"anonymous,omitempty"`
	// Populated is set once the volume got its first content (docker's
	// copy of the image's files), so it is never copied into again.
	Populated bool `json:"populated,omitempty"`
	// Mountpoint is its directory on the node (not stored).
	Mountpoint string `json:"-"`
	// Containers use it now (not stored: rebuilt from the containers).
	Containers []string `json:"-"`
}

// Store holds the volumes under a root directory.
type Store struct {
	root string

	mu    sync.Mutex
	vols  map[string]*Volume
	users map[string]map[string]bool // volume -> container IDs
	// mounted are the volumes whose driver options are mounted on
	// their directory now.
	mounted map[string]bool
}

const metaFile = "meta.json"

// Open loads the volumes under root, creating it.
func Open(root string) (*Store, error) {
	if err := os.MkdirAll(root, 0o701); err != nil {
		return nil, err
	}
	s := &Store{root: root, vols: map[string]*Volume{}, users: map[string]map[string]bool{}, mounted: map[string]bool{}}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, e.Name(), metaFile))
		if err != nil {
			continue // a volume whose creation never finished
		}
		var v Volume
		if err := json.Unmarshal(b, &v); err != nil || v.Name != e.Name() {
			return nil, fmt.Errorf("volume %s: unreadable %s: %v", e.Name(), metaFile, err)
		}
		s.vols[v.Name] = &v
		// A daemon that crashed may have left a driver mount behind;
		// users re-register (Adopt) and mount again.
		_ = unix.Unmount(s.dataDir(v.Name), unix.MNT_DETACH)
	}
	return s, nil
}

func (s *Store) dataDir(name string) string { return filepath.Join(s.root, name, "_data") }

func (s *Store) view(v *Volume) Volume {
	out := *v
	out.Labels = copyMap(v.Labels)
	out.Options = copyMap(v.Options)
	out.Mountpoint = s.dataDir(v.Name)
	for id := range s.users[v.Name] {
		out.Containers = append(out.Containers, id)
	}
	sort.Strings(out.Containers)
	return out
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// CheckName refuses what docker refuses as a volume name.
func CheckName(name string) error {
	if err := ctrspec.CheckVolumeName(name); err != nil {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
	}
	return nil
}

// checkOptions validates the local driver's options: type, device, o.
func checkOptions(opts map[string]string) error {
	if err := ctrspec.CheckVolumeOptions(opts); err != nil {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
	}
	return nil
}

func randomName() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Create makes a volume, or returns the one of that name when its driver
// and options are the same (docker's create is idempotent); an empty
// name gets a random one.
func (s *Store) Create(name, driver string, labels, opts map[string]string) (Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, _, err := s.createLocked(name, driver, labels, opts, false)
	if err != nil {
		return Volume{}, err
	}
	return s.view(v), nil
}

func (s *Store) createLocked(name, driver string, labels, opts map[string]string, anonymous bool) (*Volume, bool, error) {
	if driver == "" {
		driver = DriverLocal
	}
	if driver != DriverLocal {
		return nil, false, fmt.Errorf("volume driver %q: only the local driver is available: %w", driver, errdefs.ErrInvalid)
	}
	if name == "" {
		name = randomName()
	}
	if err := CheckName(name); err != nil {
		return nil, false, err
	}
	if err := checkOptions(opts); err != nil {
		return nil, false, err
	}
	if v, ok := s.vols[name]; ok {
		if len(opts) > 0 && !sameMap(v.Options, opts) {
			return nil, false, fmt.Errorf("volume %s already exists with other options; remove it first or use it as it is: %w", name, errdefs.ErrConflict)
		}
		return v, false, nil
	}
	dir := filepath.Join(s.root, name)
	if err := os.MkdirAll(filepath.Join(dir, "_data"), 0o755); err != nil {
		return nil, false, err
	}
	v := &Volume{Name: name, Driver: driver, Labels: copyMap(labels), Options: copyMap(opts), CreatedAt: time.Now().UTC().Truncate(time.Second), Anonymous: anonymous}
	if err := s.saveLocked(v); err != nil {
		os.RemoveAll(dir)
		return nil, false, err
	}
	s.vols[name] = v
	return v, true, nil
}

func (s *Store) saveLocked(v *Volume) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(s.root, v.Name, metaFile), b, 0o600)
}

// Get returns a volume.
func (s *Store) Get(name string) (Volume, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok {
		return Volume{}, fmt.Errorf("get %s: no such volume: %w", name, errdefs.ErrNotFound)
	}
	return s.view(v), nil
}

// List returns every volume, by name.
func (s *Store) List() []Volume {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Volume, 0, len(s.vols))
	for _, v := range s.vols {
		out = append(out, s.view(v))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Remove deletes an unused volume and its data. force ignores a volume
// that does not exist; nothing removes one in use.
func (s *Store) Remove(name string, force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok {
		if force {
			return nil
		}
		return fmt.Errorf("remove %s: no such volume: %w", name, errdefs.ErrNotFound)
	}
	return s.removeLocked(v)
}

func (s *Store) removeLocked(v *Volume) error {
	if users := s.users[v.Name]; len(users) > 0 {
		ids := make([]string, 0, len(users))
		for id := range users {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		return fmt.Errorf("remove %s: volume is in use - [%s]: %w", v.Name, strings.Join(ids, ", "), errdefs.ErrConflict)
	}
	if s.mounted[v.Name] {
		if err := unix.Unmount(s.dataDir(v.Name), unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("remove %s: unmount: %w", v.Name, err)
		}
		delete(s.mounted, v.Name)
	}
	dir := filepath.Join(s.root, v.Name)
	// The metadata goes first: a crash midway leaves no half volume.
	if err := os.Remove(filepath.Join(dir, metaFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", v.Name, err)
	}
	delete(s.vols, v.Name)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: its data: %w", v.Name, err)
	}
	return nil
}

// Prune removes unused anonymous volumes, and unused named ones too when
// all is set, keeping those that lack one of labels ("key" or
// "key=value"). It returns what it removed and the bytes they held.
func (s *Store) Prune(all bool, labels []string) ([]string, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var removed []string
	var reclaimed uint64
	names := make([]string, 0, len(s.vols))
	for n := range s.vols {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := s.vols[n]
		if len(s.users[n]) > 0 || (!v.Anonymous && !all) || !matchLabels(v.Labels, labels) {
			continue
		}
		size := dirSize(s.dataDir(n))
		if err := s.removeLocked(v); err != nil {
			return removed, reclaimed, err
		}
		removed = append(removed, n)
		reclaimed += size
	}
	return removed, reclaimed, nil
}

func matchLabels(have map[string]string, want []string) bool {
	for _, w := range want {
		k, v, hasV := strings.Cut(w, "=")
		got, ok := have[k]
		if !ok || (hasV && got != v) {
			return false
		}
	}
	return true
}

func dirSize(dir string) uint64 {
	var n uint64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += uint64(info.Size())
			}
		}
		return nil
	})
	return n
}

// mountLocked mounts a volume's driver options on its directory, when it
// has some and they are not mounted yet.
func (s *Store) mountLocked(v *Volume) error {
	if len(v.Options) == 0 || s.mounted[v.Name] {
		return nil
	}
	t, dev, o := v.Options["type"], v.Options["device"], v.Options["o"]
	var flags uintptr
	var data []string
	for _, f := range strings.Split(o, ",") {
		switch f {
		case "":
		case "bind":
			flags |= unix.MS_BIND
		case "rbind":
			flags |= unix.MS_BIND | unix.MS_REC
		case "ro":
			flags |= unix.MS_RDONLY
		default:
			data = append(data, f)
		}
	}
	fstype := t
	if t == "none" {
		fstype = ""
		if _, err := os.Stat(dev); err != nil {
			return fmt.Errorf("volume %s: device %s: %w", v.Name, dev, err)
		}
	}
	if err := unix.Mount(dev, s.dataDir(v.Name), fstype, flags, strings.Join(data, ",")); err != nil {
		return fmt.Errorf("volume %s: mount %s (type %s, o=%s): %w", v.Name, dev, t, o, err)
	}
	if flags&unix.MS_BIND != 0 && flags&unix.MS_RDONLY != 0 {
		_ = unix.Mount("", s.dataDir(v.Name), "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, "")
	}
	s.mounted[v.Name] = true
	return nil
}

// Use implements container.Volumes.
func (s *Store) Use(id string, m container.Mount) (string, string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, created, err := s.createLocked(m.Source, m.VolumeDriver, m.VolumeLabels, m.VolumeOptions, m.Source == "")
	if err != nil {
		return "", "", false, err
	}
	if err := s.mountLocked(v); err != nil {
		if created {
			_ = s.removeLocked(v)
		}
		return "", "", false, err
	}
	if s.users[v.Name] == nil {
		s.users[v.Name] = map[string]bool{}
	}
	s.users[v.Name][id] = true
	return v.Name, s.dataDir(v.Name), !v.Populated, nil
}

// Adopt records that container id uses the named volumes (a daemon that
// restarts under running containers); a volume that is gone is skipped.
func (s *Store) Adopt(id string, names []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		v, ok := s.vols[n]
		if !ok {
			continue
		}
		if s.users[n] == nil {
			s.users[n] = map[string]bool{}
		}
		s.users[n][id] = true
		// The container's mount namespace holds its own reference to a
		// driver mount; the store's view of it is mounted again.
		if err := s.mountLocked(v); err != nil {
			continue
		}
	}
}

// Populated implements container.Volumes.
func (s *Store) Populated(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.vols[name]
	if !ok {
		return fmt.Errorf("volume %s: no such volume: %w", name, errdefs.ErrNotFound)
	}
	if v.Populated {
		return nil
	}
	v.Populated = true
	return s.saveLocked(v)
}

// Release implements container.Volumes: it ends container id's uses, and
// with remove deletes its anonymous volumes no one else uses.
func (s *Store) Release(id string, remove bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for name, users := range s.users {
		if !users[id] {
			continue
		}
		delete(users, id)
		if len(users) > 0 {
			continue
		}
		delete(s.users, name)
		v := s.vols[name]
		if v == nil {
			continue
		}
		if remove && v.Anonymous {
			if err := s.removeLocked(v); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if s.mounted[name] {
			if err := unix.Unmount(s.dataDir(name), unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
				errs = append(errs, fmt.Errorf("volume %s: unmount: %w", name, err))
				continue
			}
			delete(s.mounted, name)
		}
	}
	return errors.Join(errs...)
}

var _ container.Volumes = (*Store)(nil)
