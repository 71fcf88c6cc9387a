package container

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/shoal-run/shoal/internal/ctrspec"
	"github.com/shoal-run/shoal/internal/errdefs"
	"github.com/shoal-run/shoal/runtime/cgroup"
	"github.com/shoal-run/shoal/runtime/logs"
	"github.com/shoal-run/shoal/runtime/shim"
)

// Options configure a Runtime.
type Options struct {
	Root         string // container directories live here
	CgroupParent string // e.g. "shoal"
	// ShimBinary is executed as the shim and the init; it must handle the
	// shim.ShimArg and shim.InitArg first arguments. Default: this
	// executable.
	ShimBinary string
	Images     Images
	// Volumes holds named and anonymous volumes; nil: volume mounts are
	// refused.
	Volumes Volumes
	Log     *zap.Logger
	// Events, if set, is told of each change in a container's life, in
	// the order they happen; it must not block.
	Events func(Event)
}

// Event is a change in a container's life, docker's container event:
// create, start, kill (the signal's number in Attributes["signal"]), oom,
// die (Attributes["exitCode"]), stop, destroy.
type Event struct {
	Action     string
	Container  State
	Attributes map[string]string
	Time       time.Time
}

func (r *Runtime) emit(action string, st State, attrs map[string]string) {
	if r.opts.Events != nil {
		r.opts.Events(Event{Action: action, Container: st, Attributes: attrs, Time: time.Now().UTC()})
	}
}

// Runtime runs containers.
type Runtime struct {
	opts Options
	log  *zap.Logger

	mu         sync.Mutex
	containers map[string]*ctr
}

// ctr is a container and the means to follow it.
type ctr struct {
	mu    sync.Mutex
	state State
	dir   string
	done  chan struct{} // closed when the container has exited (or never started)
	cg    cgroup.Cgroup
	pids  int64 // applied once the init is ready
}

func (c *ctr) snapshot() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.state
	if h := s.Healthcheck; h != nil {
		hc := *h
		hc.Test = append([]string(nil), h.Test...)
		s.Healthcheck = &hc
	}
	return s
}

// Open loads the containers under opts.Root and re-adopts those whose shim
// still runs; containers that ended while the daemon was away get their
// exit status from the shim's record.
func Open(opts Options) (*Runtime, error) {
	if opts.CgroupParent == "" {
		opts.CgroupParent = "shoal"
	}
	if opts.ShimBinary == "" {
		opts.ShimBinary = "/proc/self/exe"
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if err := os.MkdirAll(opts.Root, 0o711); err != nil {
		return nil, err
	}
	r := &Runtime{opts: opts, log: opts.Log.Named("runtime"), containers: map[string]*ctr{}}
	entries, err := os.ReadDir(opts.Root)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(opts.Root, e.Name())
		data, err := os.ReadFile(filepath.Join(dir, "state.json"))
		if err != nil {
			r.log.Warn("skipping container directory without state; removing it", zap.String("dir", dir), zap.Error(err))
			cleanupDir(dir)
			continue
		}
		c := &ctr{dir: dir, done: make(chan struct{})}
		if err := json.Unmarshal(data, &c.state); err != nil {
			r.log.Warn("skipping container with corrupt state", zap.String("dir", dir), zap.Error(err))
			continue
		}
		c.cg, _ = cgroup.Load(opts.CgroupParent, c.state.ID)
		c.pids = c.state.PidsLimit
		r.containers[c.state.ID] = c
		if opts.Volumes != nil {
			opts.Volumes.Adopt(c.state.ID, volumeNames(c.state.Mounts))
		}
		r.adopt(c)
	}
	return r, nil
}

// adopt resumes following a container found on disk.
func (r *Runtime) adopt(c *ctr) {
	st := c.snapshot()
	if st.Status != Running {
		close(c.done)
		return
	}
	if procStart(st.ShimPid) == st.ShimStart && st.ShimStart != 0 {
		fd, err := unix.PidfdOpen(st.ShimPid, unix.PIDFD_NONBLOCK)
		if err == nil {
			// The pidfd was opened after the start-time check: if the
			// PID were reused in between it would name the wrong
			// process, so check again now that it is pinned.
			if procStart(st.ShimPid) == st.ShimStart {
				r.log.Info("re-adopted running container", zap.String("container", st.ID), zap.Int("pid", st.Pid))
				go func() {
					_ = waitPidfd(fd)
					r.finish(c)
				}()
				return
			}
			unix.Close(fd)
		}
	}
	// The shim is gone: the container ended while we were away.
	r.finish(c)
}

// waitExit waits until process pid has exited, through the runtime's
// network poller on a pidfd: a waiting container holds no OS thread.
func waitExit(pid int) error {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return err
	}
	return waitPidfd(fd)
}

// waitPidfd waits for the process behind a non-blocking pidfd, and
// closes it.
func waitPidfd(fd int) error {
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Read(func(fd uintptr) bool {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds, 0)
		return n > 0
	})
}

// procStart returns the start time of pid (field 22 of /proc/PID/stat),
// which tells a process from a later one that reused its PID.
func procStart(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

func newID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

var adjectives = []string{"agile", "bold", "brisk", "calm", "deft", "eager", "fleet", "keen", "lucid", "nimble", "quiet", "sharp", "steady", "swift", "vivid", "wise"}
var fish = []string{"anchovy", "barracuda", "bream", "carp", "cod", "eel", "grouper", "haddock", "herring", "koi", "mackerel", "marlin", "perch", "pike", "sardine", "trout", "tuna", "wrasse"}

func randomName() string {
	b := make([]byte, 2)
	_, _ = rand.Read(b)
	return adjectives[int(b[0])%len(adjectives)] + "_" + fish[int(b[1])%len(fish)]
}

func (r *Runtime) freeNameLocked() string {
	used := map[string]bool{}
	for _, c := range r.containers {
		used[c.state.Name] = true
	}
	for i := 0; ; i++ {
		n := randomName()
		if i > 20 {
			n = fmt.Sprintf("%s_%d", n, i)
		}
		if !used[n] {
			return n
		}
	}
}

// Get finds a container by ID, unique ID prefix or name.
func (r *Runtime) Get(ref string) (State, error) {
	c, err := r.find(ref)
	if err != nil {
		return State{}, err
	}
	return c.snapshot(), nil
}

func (r *Runtime) find(ref string) (*ctr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ref == "" {
		return nil, fmt.Errorf("a container ID or name is required: %w", errdefs.ErrInvalid)
	}
	if c, ok := r.containers[ref]; ok {
		return c, nil
	}
	var match []*ctr
	for id, c := range r.containers {
		if c.state.Name == ref {
			return c, nil
		}
		if strings.HasPrefix(id, ref) {
			match = append(match, c)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return nil, fmt.Errorf("no such container: %s: %w", ref, errdefs.ErrNotFound)
	}
	return nil, fmt.Errorf("container prefix %q is ambiguous (%d matches); give more characters: %w", ref, len(match), errdefs.ErrInvalid)
}

// List returns every container, newest first.
func (r *Runtime) List() []State {
	r.mu.Lock()
	cs := make([]*ctr, 0, len(r.containers))
	for _, c := range r.containers {
		cs = append(cs, c)
	}
	r.mu.Unlock()
	out := make([]State, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out
}

// Usage is a running container's CPU time and memory in use, read from
// its cgroup (opened afresh: the container's own handle is its loops');
// false when it is not running or has no group.
func (r *Runtime) Usage(ref string) (cgroup.Usage, bool) {
	c, err := r.find(ref)
	if err != nil {
		return cgroup.Usage{}, false
	}
	st := c.snapshot()
	if st.Status != Running {
		return cgroup.Usage{}, false
	}
	cg, err := cgroup.Load(r.opts.CgroupParent, st.ID)
	if err != nil {
		return cgroup.Usage{}, false
	}
	return cg.Usage(), true
}

func (c *ctr) save() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return shim.WriteJSON(filepath.Join(c.dir, "state.json"), &c.state)
}

// Create prepares a container: root filesystem, cgroup, configuration.
func (r *Runtime) Create(ctx context.Context, spec Spec) (State, error) {
	img, err := r.opts.Images.Resolve(spec.Image)
	if err != nil {
		return State{}, err
	}
	args := resolveArgs(spec, img.Config)
	if len(args) == 0 {
		return State{}, fmt.Errorf("no command given and image %s has no entrypoint or cmd: %w", spec.Image, errdefs.ErrInvalid)
	}
	stopSignal := spec.StopSignal
	if stopSignal == "" {
		stopSignal = img.Config.StopSignal
	}
	if stopSignal == "" {
		stopSignal = "SIGTERM"
	}
	if _, err := ParseSignal(stopSignal); err != nil {
		return State{}, err
	}
	if spec.Network != shim.NetworkDefault && spec.Network != shim.NetworkNone && spec.Network != shim.NetworkHost {
		return State{}, fmt.Errorf("network %q: use none or host: %w", spec.Network, errdefs.ErrInvalid)
	}
	if err := checkSpec(spec); err != nil {
		return State{}, err
	}
	id := newID()
	r.mu.Lock()
	if spec.Name == "" {
		spec.Name = r.freeNameLocked()
	}
	for _, c := range r.containers {
		if c.state.Name == spec.Name {
			r.mu.Unlock()
			return State{}, fmt.Errorf("container name %q is already in use by %s; remove it or choose another name: %w", spec.Name, c.state.ID[:12], errdefs.ErrAlreadyExists)
		}
	}
	dir := filepath.Join(r.opts.Root, id)
	c := &ctr{dir: dir, done: make(chan struct{})}
	c.state = State{ID: id, Name: spec.Name, Image: spec.Image, ImageID: img.ID, Args: args, Labels: spec.Labels,
		Status: Created, CreatedAt: time.Now().UTC(), StopSignal: stopSignal, StopTimeout: spec.StopTimeout,
		AutoRemove: spec.AutoRemove, LogPath: filepath.Join(dir, "container.log"), LogMaxFiles: spec.LogMaxFiles}
	if h := img.Config.Healthcheck; h != nil && len(h.Test) > 0 {
		hc := *h
		hc.Test = append([]string(nil), h.Test...)
		c.state.Healthcheck = &hc
	}
	if c.state.StopTimeout == 0 {
		c.state.StopTimeout = 10 * time.Second
	}
	r.containers[id] = c // reserves the name
	r.mu.Unlock()

	if err := r.prepare(c, spec, img, args); err != nil {
		r.mu.Lock()
		delete(r.containers, id)
		r.mu.Unlock()
		r.teardown(c)
		return State{}, err
	}
	st := c.snapshot()
	r.emit("create", st, nil)
	return st, nil
}

func resolveArgs(spec Spec, img ImageConfig) []string {
	var ep, cmd []string
	if spec.Entrypoint != nil {
		ep, cmd = spec.Entrypoint, spec.Cmd
	} else {
		ep, cmd = img.Entrypoint, img.Cmd
		if len(spec.Cmd) > 0 {
			cmd = spec.Cmd
		}
	}
	return append(append([]string{}, ep...), cmd...)
}

// mergeEnv lays over on top of base, key by key.
func mergeEnv(base, over []string) []string {
	idx := map[string]int{}
	var out []string
	for _, list := range [][]string{base, over} {
		for _, kv := range list {
			k, _, _ := strings.Cut(kv, "=")
			if i, ok := idx[k]; ok {
				out[i] = kv
				continue
			}
			idx[k] = len(out)
			out = append(out, kv)
		}
	}
	return out
}

func (r *Runtime) prepare(c *ctr, spec Spec, img *Image, args []string) error {
	st := &c.state
	for _, d := range []string{"rootfs", "upper", "work"} {
		if err := os.MkdirAll(filepath.Join(c.dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := mountOverlay(c.dir, img.LayerDirs); err != nil {
		return err
	}
	hostname := spec.Hostname
	if hostname == "" {
		hostname = st.ID[:12]
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + hostname + "\n"
	for _, l := range spec.ExtraHosts {
		hosts += l + "\n"
	}
	files := map[string]string{"hostname": hostname + "\n", "hosts": hosts}
	if spec.ResolvConf != "" {
		files["resolv.conf"] = spec.ResolvConf
	} else if resolv, err := os.ReadFile("/etc/resolv.conf"); err == nil && spec.Network == shim.NetworkHost {
		files["resolv.conf"] = string(resolv)
	} else {
		files["resolv.conf"] = ""
	}
	files["resolv.conf"] = resolvConf(files["resolv.conf"], spec.DNS)
	var mounts []shim.Mount
	for name, content := range files {
		p := filepath.Join(c.dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
		mounts = append(mounts, shim.Mount{Source: p, Target: "/etc/" + name})
	}
	extra, err := r.containerMounts(c, spec, img)
	if err != nil {
		return err
	}
	mounts = append(mounts, extra...)
	cg, err := cgroup.New(r.opts.CgroupParent, st.ID, cgroup.Resources{MemoryBytes: spec.MemoryBytes, NanoCPUs: spec.NanoCPUs})
	if err != nil {
		return err
	}
	c.cg = cg
	c.pids = spec.PidsLimit
	st.PidsLimit = spec.PidsLimit
	st.Cgroup = cg.Path()
	if err := r.opts.Images.Lease(st.ID, img.ID); err != nil {
		return err
	}
	cwd := spec.WorkingDir
	if cwd == "" {
		cwd = img.Config.WorkingDir
	}
	user := spec.User
	if user == "" {
		user = img.Config.User
	}
	caps, err := Capabilities(spec.CapAdd, spec.CapDrop)
	if err != nil {
		return err
	}
	limits, err := shimRlimits(spec.Ulimits)
	if err != nil {
		return err
	}
	cfg := &shim.Config{
		ID: st.ID, Rootfs: filepath.Join(c.dir, "rootfs"), Args: args, Env: mergeEnv(img.Config.Env, spec.Env),
		Cwd: cwd, User: user, Hostname: hostname, ReadOnly: spec.ReadOnly, Init: spec.Init, Network: spec.Network,
		Mounts: mounts, Caps: caps, Sysctls: spec.Sysctls, Rlimits: limits, Groups: spec.Groups, Tty: spec.Tty,
		Log: shim.LogConfig{Path: st.LogPath, MaxSize: spec.LogMaxSize, MaxFiles: spec.LogMaxFiles},
	}
	if err := shim.WriteJSON(filepath.Join(c.dir, shim.ConfigFile), cfg); err != nil {
		return err
	}
	return c.save()
}

func mountOverlay(dir string, layers []string) error {
	if len(layers) == 0 {
		return fmt.Errorf("the image has no layers: %w", errdefs.ErrInvalid)
	}
	lower := make([]string, len(layers))
	for i, l := range layers {
		lower[len(layers)-1-i] = l // overlayfs lists the top layer first
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(lower, ":"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	if len(data) > os.Getpagesize()-1 {
		return fmt.Errorf("overlay mount options are %d bytes, more than a page: too many layers (%d): %w", len(data), len(layers), errdefs.ErrInvalid)
	}
	if err := unix.Mount("overlay", filepath.Join(dir, "rootfs"), "overlay", 0, data); err != nil {
		return fmt.Errorf("mount overlay root: %w", err)
	}
	return nil
}

// teardown removes everything a container left: mount, cgroup, lease,
// directory.
func (r *Runtime) teardown(c *ctr) {
	rootfs := filepath.Join(c.dir, "rootfs")
	if err := unix.Unmount(rootfs, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		r.log.Warn("unmount container root", zap.String("container", c.state.ID), zap.Error(err))
	}
	if c.cg != nil {
		if err := c.cg.Delete(); err != nil {
			r.log.Warn("delete cgroup", zap.String("container", c.state.ID), zap.Error(err))
		}
	}
	if err := r.opts.Images.Release(c.state.ID); err != nil {
		r.log.Debug("release image", zap.Error(err))
	}
	if r.opts.Volumes != nil {
		if err := r.opts.Volumes.Release(c.state.ID, true); err != nil {
			r.log.Warn("release volumes", zap.String("container", c.state.ID), zap.Error(err))
		}
	}
	cleanupDir(c.dir)
}

func cleanupDir(dir string) {
	_ = unix.Unmount(filepath.Join(dir, "rootfs"), unix.MNT_DETACH)
	_ = os.RemoveAll(dir)
}

// Start starts a created container. hook, if not nil, runs with the
// container's init PID after it is in its cgroup and before the workload
// starts: the place to move network interfaces into its namespace.
func (r *Runtime) Start(ctx context.Context, ref string, hook func(pid int) error) (State, error) {
	c, err := r.find(ref)
	if err != nil {
		return State{}, err
	}
	st := c.snapshot()
	if st.Status != Created {
		return State{}, fmt.Errorf("container %s is %s; only a created container can be started: %w", st.ID[:12], st.Status, errdefs.ErrFailedPrecond)
	}
	goR, goW, err := os.Pipe()
	if err != nil {
		return State{}, err
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		return State{}, err
	}
	shimLog, err := os.OpenFile(filepath.Join(c.dir, shim.ShimLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return State{}, err
	}
	cmd := exec.Command(r.opts.ShimBinary, shim.ShimArg, c.dir)
	cmd.Args[0] = "shoal-shim"
	cmd.Stdout, cmd.Stderr = shimLog, shimLog
	cmd.ExtraFiles = []*os.File{goR, repW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	err = cmd.Start()
	goR.Close()
	repW.Close()
	shimLog.Close()
	if err != nil {
		goW.Close()
		repR.Close()
		return State{}, fmt.Errorf("start shim: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		// Wait on the poller first so no thread blocks in wait4 for the
		// container's whole life; then reap.
		_ = waitExit(cmd.Process.Pid)
		_ = cmd.Wait()
		close(exited)
	}()
	abort := func(err error) (State, error) {
		goW.Close() // the shim sees end of file and kills the init
		repR.Close()
		<-exited
		r.finish(c)
		st := c.snapshot()
		if st.Error != "" && st.Error != "the daemon aborted the start" {
			// The container's own failure explains the abort.
			return st, fmt.Errorf("container %s failed to start: %s: %w", st.ID[:12], st.Error, errdefs.ErrInvalid)
		}
		return st, err
	}
	rep := bufio.NewReader(repR)
	m, err := readMessage(ctx, rep, shim.KindPid)
	if err != nil {
		var failed *startError
		if !errors.As(err, &failed) {
			err = fmt.Errorf("shim: %w", err)
		}
		return abort(fmt.Errorf("container %s: %w", st.ID[:12], err))
	}
	pid := m.Pid
	if err := c.cg.Add(pid); err != nil {
		return abort(fmt.Errorf("add container to its cgroup: %w", err))
	}
	if hook != nil {
		if err := hook(pid); err != nil {
			return abort(fmt.Errorf("prepare container network: %w", err))
		}
	}
	if _, err := readMessage(ctx, rep, shim.KindReady); err != nil {
		return abort(fmt.Errorf("container %s: %w", st.ID[:12], err))
	}
	// The init's own threads are counted by the pids controller; it
	// starts none once ready, so the limit applies only now.
	if c.pids > 0 {
		if err := c.cg.SetPidsLimit(c.pids); err != nil {
			return abort(fmt.Errorf("set the pids limit: %w", err))
		}
	}
	c.mu.Lock()
	c.state.ShimPid, c.state.ShimStart = cmd.Process.Pid, procStart(cmd.Process.Pid)
	c.state.Pid, c.state.PidStart = pid, procStart(pid)
	c.state.Status = Running
	c.state.StartedAt = time.Now().UTC()
	c.mu.Unlock()
	if err := c.save(); err != nil {
		return abort(err)
	}
	if err := shim.WriteMessage(goW, shim.Go); err != nil {
		return abort(err)
	}
	goW.Close()
	_, err = readMessage(ctx, rep, shim.KindStarted)
	repR.Close()
	go func() {
		<-exited
		r.finish(c)
	}()
	var failed *startError
	if errors.As(err, &failed) {
		<-c.done
		return c.snapshot(), fmt.Errorf("container %s failed to start: %s: %w", st.ID[:12], failed.msg, errdefs.ErrInvalid)
	}
	if err != nil {
		return c.snapshot(), fmt.Errorf("container %s: %w", st.ID[:12], err)
	}
	st = c.snapshot()
	r.emit("start", st, nil)
	return st, nil
}

// startError is the shim's Error message: why the container did not
// start.
type startError struct{ msg string }

func (e *startError) Error() string { return e.msg }

// readMessage waits for the shim's next message, which must be of kind
// want or an Error (returned as a *startError).
func readMessage(ctx context.Context, r *bufio.Reader, want shim.Kind) (shim.Message, error) {
	type res struct {
		m   shim.Message
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := shim.ReadMessage(r)
		ch <- res{m, err}
	}()
	select {
	case x := <-ch:
		switch {
		case errors.Is(x.err, shim.ErrMalformed):
			return shim.Message{}, x.err
		case x.err != nil:
			return shim.Message{}, fmt.Errorf("no answer from the shim: %w", x.err)
		case x.m.Kind == shim.KindError:
			return shim.Message{}, &startError{msg: x.m.Err}
		case x.m.Kind != want:
			return shim.Message{}, fmt.Errorf("the shim said %q where %v was due", x.m, want)
		}
		return x.m, nil
	case <-ctx.Done():
		return shim.Message{}, ctx.Err()
	}
}

// finish records how a container ended, once its shim is gone.
func (r *Runtime) finish(c *ctr) {
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return
	default:
	}
	ex, err := shim.ReadExit(c.dir)
	if err != nil {
		c.state.ExitCode = 255
		c.state.Error = "the container's shim ended without recording an exit status"
	} else {
		c.state.ExitCode, c.state.Signal, c.state.FinishedAt = ex.Code, ex.Signal, ex.ExitedAt
		if ex.Error != "" {
			c.state.Error = ex.Error
		}
	}
	if c.state.FinishedAt.IsZero() {
		c.state.FinishedAt = time.Now().UTC()
	}
	if c.cg != nil && c.cg.OOMKilled() {
		c.state.OOMKilled = true
	}
	c.state.Status = Exited
	c.state.Pid, c.state.ShimPid = 0, 0
	auto := c.state.AutoRemove
	st := c.state
	c.mu.Unlock()
	if st.OOMKilled {
		r.emit("oom", st, nil)
	}
	r.emit("die", st, map[string]string{"exitCode": strconv.Itoa(st.ExitCode)})
	if err := c.save(); err != nil {
		r.log.Warn("save container state", zap.Error(err))
	}
	// The processes are gone: release the root mount now so nothing
	// holds the layers; the directory stays for logs until removal.
	_ = unix.Unmount(filepath.Join(c.dir, "rootfs"), unix.MNT_DETACH)
	close(c.done)
	if auto {
		_ = r.Delete(context.Background(), c.state.ID, false)
	}
}

// Wait blocks until the container has exited.
func (r *Runtime) Wait(ctx context.Context, ref string) (State, error) {
	c, err := r.find(ref)
	if err != nil {
		return State{}, err
	}
	if c.snapshot().Status == Created {
		return State{}, fmt.Errorf("container %s was never started: %w", c.state.ID[:12], errdefs.ErrFailedPrecond)
	}
	select {
	case <-c.done:
		return c.snapshot(), nil
	case <-ctx.Done():
		return c.snapshot(), ctx.Err()
	}
}

// Done returns a channel closed when the container has exited.
func (r *Runtime) Done(ref string) (<-chan struct{}, error) {
	c, err := r.find(ref)
	if err != nil {
		return nil, err
	}
	return c.done, nil
}

// ParseSignal reads SIGTERM, TERM, term or 15.
func ParseSignal(s string) (unix.Signal, error) {
	sig, err := ctrspec.ParseSignal(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
	}
	return sig, nil
}

// Signal sends sig to the container's init. It uses a pidfd so that a
// recycled PID cannot receive it.
func (r *Runtime) Signal(ref string, sig unix.Signal) error {
	c, err := r.find(ref)
	if err != nil {
		return err
	}
	st := c.snapshot()
	if st.Status != Running {
		return fmt.Errorf("container %s is not running: %w", st.ID[:12], errdefs.ErrFailedPrecond)
	}
	fd, err := unix.PidfdOpen(st.Pid, 0)
	if err != nil {
		return fmt.Errorf("container %s is not running: %w", st.ID[:12], errdefs.ErrFailedPrecond)
	}
	defer unix.Close(fd)
	if procStart(st.Pid) != st.PidStart {
		return fmt.Errorf("container %s is not running: %w", st.ID[:12], errdefs.ErrFailedPrecond)
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		return err
	}
	r.emit("kill", st, map[string]string{"signal": strconv.Itoa(int(sig))})
	return nil
}

// Stop sends the stop signal, waits up to timeout (negative: the
// container's own), then kills.
func (r *Runtime) Stop(ctx context.Context, ref string, timeout time.Duration) (State, error) {
	c, err := r.find(ref)
	if err != nil {
		return State{}, err
	}
	st := c.snapshot()
	if st.Status != Running {
		return st, nil
	}
	if timeout < 0 {
		timeout = st.StopTimeout
	}
	sig, _ := ParseSignal(st.StopSignal)
	stopped := func() (State, error) {
		st := c.snapshot()
		r.emit("stop", st, nil)
		return st, nil
	}
	if err := r.Signal(st.ID, sig); err == nil {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-c.done:
			return stopped()
		case <-t.C:
		case <-ctx.Done():
			return c.snapshot(), ctx.Err()
		}
	}
	_ = r.Signal(st.ID, unix.SIGKILL)
	select {
	case <-c.done:
	case <-ctx.Done():
		return c.snapshot(), ctx.Err()
	}
	return stopped()
}

// Delete removes a container. A running one needs force (it is killed).
func (r *Runtime) Delete(ctx context.Context, ref string, force bool) error {
	c, err := r.find(ref)
	if err != nil {
		return err
	}
	st := c.snapshot()
	if st.Status == Running {
		if !force {
			return fmt.Errorf("container %s is running: stop it first or use --force: %w", st.ID[:12], errdefs.ErrFailedPrecond)
		}
		_ = r.Signal(st.ID, unix.SIGKILL)
		select {
		case <-c.done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	if _, ok := r.containers[st.ID]; !ok {
		r.mu.Unlock()
		return nil
	}
	delete(r.containers, st.ID)
	r.mu.Unlock()
	r.teardown(c)
	r.emit("destroy", c.snapshot(), nil)
	return nil
}

// Logs reads a container's output; with follow it waits for more until
// the container exits or ctx ends.
func (r *Runtime) Logs(ctx context.Context, ref string, follow bool, fn func(logs.Entry) error) error {
	return r.ReadLogs(ctx, ref, follow, logs.All, fn)
}

// ReadLogs is Logs with a tail, a time window and word of lost lines.
func (r *Runtime) ReadLogs(ctx context.Context, ref string, follow bool, o logs.Options, fn func(logs.Entry) error) error {
	c, err := r.find(ref)
	if err != nil {
		return err
	}
	st := c.snapshot()
	var f *logs.Follow
	if follow {
		f = &logs.Follow{Done: c.done, Stop: ctx.Done()}
	}
	return logs.ReadWith(st.LogPath, st.LogMaxFiles, f, o, fn)
}
