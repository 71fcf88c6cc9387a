// Package container runs containers on this host: it mounts an overlayfs
// root from image layers, creates the container's cgroup, starts a shim
// that starts the container init in new namespaces, and follows the
// container to its end — across daemon restarts, by re-adopting shims
// that kept running. It runs container specs and knows nothing of tasks
// or services.
package container

import (
	"github.com/shoal-run/shoal/internal/ctrspec"

	"os"
	"time"

	"github.com/shoal-run/shoal/runtime/image"
)

// ImageConfig is what a container takes from its image.
type ImageConfig struct {
	Entrypoint, Cmd, Env []string
	WorkingDir, User     string
	StopSignal           string
	// Healthcheck is the image's HEALTHCHECK; nil when it has none.
	Healthcheck *Healthcheck
	// Volumes are the image's VOLUME paths: each gets an anonymous
	// volume unless a mount covers it.
	Volumes []string
}

// Healthcheck is the image's HEALTHCHECK (image.Healthcheck, docker's
// JSON shape). The runtime runs no checks: it keeps the image's for
// whoever does (the worker's health prober reads State.Healthcheck and
// runs the test with Runtime.Exec).
type Healthcheck = image.Healthcheck

// Image is a resolved local image.
type Image struct {
	ID     string
	Ref    string
	Config ImageConfig
	// LayerDirs are the unpacked layers, lowest first.
	LayerDirs []string
}

// Images is what the runtime needs of the image store.
type Images interface {
	Resolve(ref string) (*Image, error)
	Lease(owner, imageID string) error
	Release(owner string) error
}

// Spec is a container to run. Empty fields take the image's values.
type Spec struct {
	Name       string
	Image      string
	Entrypoint []string // overrides the image's; the image's Cmd is then dropped unless Cmd is given
	Cmd        []string
	Env        []string // KEY=VALUE, over the image's
	WorkingDir string
	User       string
	Hostname   string
	Labels     map[string]string

	MemoryBytes int64
	NanoCPUs    int64
	PidsLimit   int64
	ReadOnly    bool
	Init        bool
	Network     string // "", "none" or "host"
	// ResolvConf, when not empty, is the container's /etc/resolv.conf
	// (an overlay container's points at the node's DNS server); otherwise
	// it is the host's with the host network and empty without. DNS
	// overrides its nameservers, search domains and options.
	ResolvConf string
	DNS        DNSConfig
	// ExtraHosts are lines appended to /etc/hosts, "IP HOSTNAME...".
	ExtraHosts []string
	// Mounts are made in order, after the root filesystem's own.
	Mounts []Mount
	Tty    bool
	// CapAdd and CapDrop change docker's default capability set
	// ("CAP_NET_ADMIN" or "ALL").
	CapAdd, CapDrop []string
	// Sysctls are set inside the container's namespaces; only namespaced
	// ones are accepted.
	Sysctls map[string]string
	Ulimits []Ulimit
	// Groups are supplementary groups, names from the image's /etc/group
	// or numbers.
	Groups []string

	StopSignal  string
	StopTimeout time.Duration
	AutoRemove  bool

	LogMaxSize  int64
	LogMaxFiles int
}

// Mount types.
const (
	MountBind   = "bind"
	MountVolume = "volume"
	MountTmpfs  = "tmpfs"
)

// Mount is docker's --mount, made inside the container's mount
// namespace; a target never resolves outside the root filesystem.
type Mount struct {
	Type     string `json:"type"`
	Source   string `json:"source,omitempty"` // host path (bind) or volume name ("" for an anonymous volume)
	Target   string `json:"target"`
	ReadOnly bool   `json:"read_only,omitempty"`
	// Propagation of a bind mount: rprivate (default), private, rshared,
	// shared, rslave, slave.
	Propagation string `json:"propagation,omitempty"`
	// NoCopy leaves a new volume empty instead of copying the image's
	// content at Target into it.
	NoCopy bool `json:"no_copy,omitempty"`
	// VolumeLabels, VolumeDriver and VolumeOptions create a volume that
	// does not exist yet.
	VolumeLabels  map[string]string `json:"volume_labels,omitempty"`
	VolumeDriver  string            `json:"volume_driver,omitempty"`
	VolumeOptions map[string]string `json:"volume_options,omitempty"`
	// TmpfsSize (bytes, 0: the kernel's default) and TmpfsMode (0: 01777).
	TmpfsSize int64       `json:"tmpfs_size,omitempty"`
	TmpfsMode os.FileMode `json:"tmpfs_mode,omitempty"`
}

// Ulimit is an RLIMIT_ by docker's name (nofile, nproc, core, ...).
type Ulimit = ctrspec.Ulimit

// DNSConfig overrides parts of /etc/resolv.conf.
type DNSConfig struct {
	Nameservers, Search, Options []string
}

// Volumes is what the runtime needs of the node's volume store.
type Volumes interface {
	// Use gives container id the host directory of the volume m names,
	// creating the volume (with m's labels, driver and options) when it
	// does not exist; an empty m.Source creates an anonymous volume,
	// whose name is returned. populate is true while the volume has never
	// been populated: the runtime then copies the image's content at the
	// target into it (unless m.NoCopy) and calls Populated.
	Use(id string, m Mount) (name, path string, populate bool, err error)
	// Populated records that the volume got its first content.
	Populated(name string) error
	// Release ends every use of container id; its anonymous volumes are
	// removed when remove is true (the container was removed).
	Release(id string, remove bool) error
	// Adopt records the uses of a container found on disk when the
	// runtime opens (a daemon restarted under it).
	Adopt(id string, names []string)
}

// Status of a container.
type Status string

// Statuses.
const (
	Created Status = "created"
	Running Status = "running"
	Exited  Status = "exited"
)

// State is a container as the runtime tracks it, persisted in state.json.
type State struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	ImageID     string            `json:"image_id"`
	Args        []string          `json:"args"`
	Labels      map[string]string `json:"labels,omitempty"`
	Status      Status            `json:"status"`
	CreatedAt   time.Time         `json:"created_at"`
	StartedAt   time.Time         `json:"started_at,omitempty"`
	FinishedAt  time.Time         `json:"finished_at,omitempty"`
	ExitCode    int               `json:"exit_code"`
	Signal      string            `json:"signal,omitempty"`
	OOMKilled   bool              `json:"oom_killed,omitempty"`
	Error       string            `json:"error,omitempty"`
	Pid         int               `json:"pid,omitempty"`
	PidStart    uint64            `json:"pid_start,omitempty"`
	ShimPid     int               `json:"shim_pid,omitempty"`
	ShimStart   uint64            `json:"shim_start,omitempty"`
	StopSignal  string            `json:"stop_signal"`
	StopTimeout time.Duration     `json:"stop_timeout"`
	AutoRemove  bool              `json:"auto_remove,omitempty"`
	Cgroup      string            `json:"cgroup"`
	PidsLimit   int64             `json:"pids_limit,omitempty"`
	LogPath     string            `json:"log_path"`
	LogMaxFiles int               `json:"log_max_files"`
	// Healthcheck is the HEALTHCHECK of the image the container was
	// created from (a copy, kept with the container, so it survives a
	// daemon restart and a later change of the image's tag); nil when the
	// image has none.
	Healthcheck *Healthcheck `json:"healthcheck,omitempty"`
	// Mounts are the container's mounts as made: a volume's Source is
	// its name (an anonymous one's too).
	Mounts []Mount `json:"mounts,omitempty"`
}
