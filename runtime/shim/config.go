// Package shim holds the two small processes that sit between the daemon
// and a workload: the shim, which supervises one container (it is the
// workload's parent, copies its output to the log, records its exit and
// outlives the daemon), and the container init, which runs inside the new
// namespaces, prepares the root filesystem and the process's identity and
// then execs the workload. Both run from the shoal binary (re-executed
// with a hidden first argument) and depend only on the standard library,
// x/sys and runtime/logs, so they stay small. So do the two helpers of an
// exec, a second process run in a running container (exec.go).
package shim

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Network modes.
const (
	NetworkDefault = ""     // a new network namespace the caller wires up
	NetworkNone    = "none" // a new namespace with loopback only
	NetworkHost    = "host" // the node's namespace
)

// Mount kinds.
const (
	KindBind  = ""      // Source (a host path) bound on Target
	KindTmpfs = "tmpfs" // a tmpfs with Data's options (size=, mode=)
)

// Mount is a mount into the container. Targets resolve inside the
// container's root: a symlink in the image cannot point one elsewhere.
type Mount struct {
	Kind     string `json:"kind,omitempty"`
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// Propagation of a bind: rprivate (default), private, rshared,
	// shared, rslave, slave.
	Propagation string `json:"propagation,omitempty"`
	// Data are a tmpfs's mount options.
	Data string `json:"data,omitempty"`
}

// Rlimit is one resource limit (Resource is RLIMIT_*).
type Rlimit struct {
	Resource int    `json:"resource"`
	Soft     uint64 `json:"soft"`
	Hard     uint64 `json:"hard"`
}

// LogConfig says where output goes and how much is kept.
type LogConfig struct {
	Path     string `json:"path"`
	MaxSize  int64  `json:"max_size"`
	MaxFiles int    `json:"max_files"`
}

// Config is everything the shim and init need; the daemon writes it to
// config.json in the container directory.
type Config struct {
	ID       string    `json:"id"`
	Rootfs   string    `json:"rootfs"`
	Args     []string  `json:"args"`
	Env      []string  `json:"env"`
	Cwd      string    `json:"cwd"`
	User     string    `json:"user,omitempty"`
	Hostname string    `json:"hostname"`
	ReadOnly bool      `json:"read_only,omitempty"`
	Init     bool      `json:"init,omitempty"`
	Network  string    `json:"network,omitempty"`
	Mounts   []Mount   `json:"mounts,omitempty"`
	Caps     []string  `json:"caps"`
	Log      LogConfig `json:"log"`
	// Sysctls are written under /proc/sys before the workload starts.
	Sysctls map[string]string `json:"sysctls,omitempty"`
	Rlimits []Rlimit          `json:"rlimits,omitempty"`
	// Groups are supplementary groups: names from the image's /etc/group
	// or numbers.
	Groups []string `json:"groups,omitempty"`
	// Tty gives the workload a pseudo-terminal as fds 0-2.
	Tty bool `json:"tty,omitempty"`
}

// Exit is how the workload ended, written by the shim to exit.json.
type Exit struct {
	Code     int       `json:"exit_code"`
	Signal   string    `json:"signal,omitempty"`
	Error    string    `json:"error,omitempty"`
	ExitedAt time.Time `json:"exited_at"`
}

// Files in a container directory.
const (
	ConfigFile = "config.json"
	ExitFile   = "exit.json"
	ShimLog    = "shim.log"
)

// ReadConfig loads dir/config.json.
func ReadConfig(dir string) (*Config, error) {
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %w", ConfigFile, err)
	}
	return &c, nil
}

// WriteJSON writes v to path atomically.
func WriteJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	// No fsync: these files describe processes, which a machine crash
	// ends anyway; the rename keeps them whole across a daemon crash.
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadExit loads dir/exit.json.
func ReadExit(dir string) (*Exit, error) {
	data, err := os.ReadFile(filepath.Join(dir, ExitFile))
	if err != nil {
		return nil, err
	}
	var e Exit
	if err := json.Unmarshal(data, &e); err != nil {
		return nil, err
	}
	return &e, nil
}
