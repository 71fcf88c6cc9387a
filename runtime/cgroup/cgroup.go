// Package cgroup puts a container's processes in a control group with its
// resource limits, on cgroup v1 and v2 alike through containerd/cgroups
// (the version is chosen by cgroups.Mode()), and tells whether the kernel
// OOM-killed anything in it.
package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Resources are the limits of one container; zero means unlimited.
type Resources struct {
	MemoryBytes int64
	NanoCPUs    int64
	PidsLimit   int64
}

// cpuPeriod is the CFS period used for CPU quotas (100 ms, as Docker).
const cpuPeriod = 100000

// Spec converts r to the OCI form both cgroup versions take.
func (r Resources) Spec() *specs.LinuxResources {
	out := &specs.LinuxResources{}
	if r.MemoryBytes > 0 {
		l := r.MemoryBytes
		out.Memory = &specs.LinuxMemory{Limit: &l}
	}
	if r.NanoCPUs > 0 {
		q := r.NanoCPUs * cpuPeriod / 1e9
		p := uint64(cpuPeriod)
		out.CPU = &specs.LinuxCPU{Quota: &q, Period: &p}
	}
	if r.PidsLimit > 0 {
		l := r.PidsLimit
		out.Pids = &specs.LinuxPids{Limit: &l}
	}
	return out
}

// Cgroup is one container's group.
type Cgroup interface {
	// Add moves pid into the group.
	Add(pid int) error
	// OOMKilled reports whether the kernel killed a process of the group
	// for lack of memory.
	OOMKilled() bool
	// Delete removes the (empty) group.
	Delete() error
	// Path is the group's path below the hierarchy root.
	Path() string
	// SetPidsLimit limits the number of tasks (threads included).
	SetPidsLimit(n int64) error
	// Usage is what the group has used: CPU time since it was made, and
	// memory now. It reads two files, not every file of every hierarchy.
	Usage() Usage
}

// Usage is a group's CPU time and memory in use.
type Usage struct {
	CPUNanos    uint64
	MemoryBytes uint64
}

// V2 reports whether this host uses the unified hierarchy only.
func V2() bool { return cgroups.Mode() == cgroups.Unified }

// New creates the group parent/id with limits r.
func New(parent, id string, r Resources) (Cgroup, error) {
	p := path.Join("/", parent, id)
	if V2() {
		m, err := cgroup2.NewManager("/sys/fs/cgroup", p, cgroup2.ToResources(r.Spec()))
		if err != nil {
			return nil, fmt.Errorf("create cgroup %s: %w", p, err)
		}
		return &v2{m: m, path: p}, nil
	}
	c, err := cgroup1.New(cgroup1.StaticPath(p), r.Spec())
	if err != nil {
		return nil, fmt.Errorf("create cgroup %s: %w", p, err)
	}
	return &v1{c: c, path: p}, nil
}

// Load opens an existing group.
func Load(parent, id string) (Cgroup, error) {
	p := path.Join("/", parent, id)
	if V2() {
		m, err := cgroup2.Load(p)
		if err != nil {
			return nil, err
		}
		return &v2{m: m, path: p}, nil
	}
	c, err := cgroup1.Load(cgroup1.StaticPath(p))
	if err != nil {
		return nil, err
	}
	return &v1{c: c, path: p}, nil
}

type v1 struct {
	c    cgroup1.Cgroup
	path string
}

func (g *v1) Add(pid int) error { return g.c.Add(cgroup1.Process{Pid: pid}) }
func (g *v1) Path() string      { return g.path }

func (g *v1) SetPidsLimit(n int64) error {
	return g.c.Update(Resources{PidsLimit: n}.Spec())
}

// OOMKilled reads the oom_kill counter of memory.oom_control alone: a
// full Stat reads every file of every hierarchy.
func (g *v1) OOMKilled() bool {
	for _, s := range g.c.Subsystems() {
		p, ok := s.(interface{ Path(string) string })
		if s.Name() != cgroup1.Memory || !ok {
			continue
		}
		return counter(filepath.Join(p.Path(g.path), "memory.oom_control"), "oom_kill") > 0
	}
	return false
}

func (g *v1) Usage() Usage {
	var u Usage
	for _, s := range g.c.Subsystems() {
		p, ok := s.(interface{ Path(string) string })
		if !ok {
			continue
		}
		switch s.Name() {
		case cgroup1.Cpuacct:
			u.CPUNanos = number(filepath.Join(p.Path(g.path), "cpuacct.usage"))
		case cgroup1.Memory:
			u.MemoryBytes = number(filepath.Join(p.Path(g.path), "memory.usage_in_bytes"))
		}
	}
	return u
}

// number reads a cgroup file holding one number; 0 when it cannot.
func number(file string) uint64 {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64)
	return n
}

// counter reads "name N" from a flat-keyed cgroup file.
func counter(file, name string) uint64 {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == name {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// Delete removes the group's directory in every hierarchy. It is plain
// rmdir (containerd's Delete reads every file of every hierarchy first);
// a group whose last process is still being torn down is retried briefly.
func (g *v1) Delete() error {
	var errs []error
	for _, s := range g.c.Subsystems() {
		p, ok := s.(interface{ Path(string) string })
		if !ok {
			continue
		}
		dir := p.Path(g.path)
		var err error
		for i := 0; i < 50; i++ {
			err = os.Remove(dir)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				err = nil
				break
			}
			if !errors.Is(err, syscall.EBUSY) {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

type v2 struct {
	m    *cgroup2.Manager
	path string
}

func (g *v2) Add(pid int) error { return g.m.AddProc(uint64(pid)) }
func (g *v2) Path() string      { return g.path }

func (g *v2) SetPidsLimit(n int64) error {
	return g.m.Update(cgroup2.ToResources(Resources{PidsLimit: n}.Spec()))
}

func (g *v2) OOMKilled() bool {
	return counter(filepath.Join("/sys/fs/cgroup", g.path, "memory.events"), "oom_kill") > 0
}

func (g *v2) Usage() Usage {
	dir := filepath.Join("/sys/fs/cgroup", g.path)
	return Usage{CPUNanos: counter(filepath.Join(dir, "cpu.stat"), "usage_usec") * 1000, MemoryBytes: number(filepath.Join(dir, "memory.current"))}
}

func (g *v2) Delete() error {
	if err := g.m.Delete(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// ParentDirs lists the directories of the group parent in every mounted
// hierarchy (v1) or the one unified hierarchy (v2).
func ParentDirs(parent string) []string {
	var out []string
	if p := filepath.Join("/sys/fs/cgroup", parent); exists(p) {
		out = append(out, p)
	}
	subs, _ := os.ReadDir("/sys/fs/cgroup")
	for _, s := range subs {
		if p := filepath.Join("/sys/fs/cgroup", s.Name(), parent); s.IsDir() && exists(p) {
			out = append(out, p)
		}
	}
	return out
}

// RemoveParent removes the (empty) group parent everywhere.
func RemoveParent(parent string) {
	for _, d := range ParentDirs(parent) {
		_ = os.Remove(d)
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
