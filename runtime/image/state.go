package image

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/shoal-run/shoal/internal/atomicfile"
)

// stateVersion is the format of state.json.
const stateVersion = 1

// state is everything about images that is not content: image records,
// the name table and the leases. It is rewritten whole and atomically on
// every change, so it is never seen half-updated.
type state struct {
	Version int                     `json:"version"`
	Images  map[string]*imageRecord `json:"images"` // by ID
	Names   map[string]string       `json:"names"`  // normalized reference -> ID
	Leases  map[string]string       `json:"leases"` // owner (container ID) -> image ID
}

func newState() *state {
	return &state{Version: stateVersion, Images: map[string]*imageRecord{}, Names: map[string]string{}, Leases: map[string]string{}}
}

// clone copies the maps; records are immutable and shared.
func (st *state) clone() *state {
	c := newState()
	for k, v := range st.Images {
		c.Images[k] = v
	}
	for k, v := range st.Names {
		c.Names[k] = v
	}
	for k, v := range st.Leases {
		c.Leases[k] = v
	}
	return c
}

// namesOf returns the names pointing at id.
func (st *state) namesOf(id string) []string {
	var names []string
	for n, i := range st.Names {
		if i == id {
			names = append(names, n)
		}
	}
	return names
}

// leasesOf returns the owners leasing id.
func (st *state) leasesOf(id string) []string {
	var owners []string
	for o, i := range st.Leases {
		if i == id {
			owners = append(owners, o)
		}
	}
	return owners
}

// removeImage drops id and its names. Leased images are never removed.
func (st *state) removeImage(id string) {
	delete(st.Images, id)
	for n, i := range st.Names {
		if i == id {
			delete(st.Names, n)
		}
	}
}

func loadState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, err
	}
	st := newState()
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s is corrupt: %v; move it away to start with an empty image store", path, err)
	}
	if st.Version > stateVersion {
		return nil, fmt.Errorf("%s has format %d, newer than this binary's %d", path, st.Version, stateVersion)
	}
	if st.Images == nil {
		st.Images = map[string]*imageRecord{}
	}
	if st.Names == nil {
		st.Names = map[string]string{}
	}
	if st.Leases == nil {
		st.Leases = map[string]string{}
	}
	return st, nil
}

func saveState(path string, st *state, durable bool) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if !durable {
		return writeFileAtomicNoSync(path, b, 0o600)
	}
	return atomicfile.WriteFile(path, b, 0o600)
}

// writeFileAtomicNoSync is writeFileAtomic without the syncs: after a
// daemon crash path holds either the old or the new content, after a
// machine crash possibly the old one.
func writeFileAtomicNoSync(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp-nosync"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
