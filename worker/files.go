package worker

import (
	"sync"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// Files holds the secrets and configs the leader sent this node for its
// tasks, in memory only: never on the node's disk, never in a log. The
// assignment stream feeds it (Update); the executor reads it to fill a
// task's tmpfs; a runner waiting for one is woken by Changed.
type Files struct {
	mu      sync.Mutex
	secrets map[string][]byte // by ID
	configs map[string][]byte
	changed chan struct{} // closed (and replaced) at each update
}

// NewFiles makes an empty store.
func NewFiles() *Files {
	return &Files{secrets: map[string][]byte{}, configs: map[string][]byte{}, changed: make(chan struct{})}
}

// Update applies an assignment message's secrets and configs: the full
// sets (full), or additions and removals by ID.
func (f *Files) Update(full bool, secrets []*shoalv1.Secret, configs []*shoalv1.Config, removedSecrets, removedConfigs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if full {
		clear(f.secrets)
		clear(f.configs)
	}
	for _, s := range secrets {
		f.secrets[s.GetId()] = s.GetSpec().GetData()
	}
	for _, c := range configs {
		f.configs[c.GetId()] = c.GetSpec().GetData()
	}
	for _, id := range removedSecrets {
		delete(f.secrets, id)
	}
	for _, id := range removedConfigs {
		delete(f.configs, id)
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

// Secret is the value of secret id, if this node holds it.
func (f *Files) Secret(id string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.secrets[id]
	return v, ok
}

// Config is the content of config id, if this node holds it.
func (f *Files) Config(id string) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.configs[id]
	return v, ok
}

// Changed is closed at the next update.
func (f *Files) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// Held are the IDs of the secrets and configs held (for tests: never
// their values).
func (f *Files) Held() (secrets, configs []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for id := range f.secrets {
		secrets = append(secrets, id)
	}
	for id := range f.configs {
		configs = append(configs, id)
	}
	return secrets, configs
}
