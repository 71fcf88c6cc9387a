package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/shoal-run/shoal/internal/clock"

	"github.com/shoal-run/shoal/containerspec"
	"github.com/shoal-run/shoal/netoverlay"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/runtime/container"
	"github.com/shoal-run/shoal/runtime/image"
	"github.com/shoal-run/shoal/worker/health"
)

// Labels the worker puts on task containers.
const (
	LabelTask        = "shoal.task.id"
	LabelService     = "shoal.service.id"
	LabelServiceName = "shoal.service.name"
	// LabelTaskRecord holds the task (protojson) a container runs, with
	// references to its secrets and configs but never their values: a
	// daemon restarted with no manager answering takes its running task
	// containers over from it (Resume), and restarts them in place.
	LabelTaskRecord = "shoal.task.record"
)

// RuntimeExecutor runs tasks as containers of this node's runtime.
type RuntimeExecutor struct {
	Runtime *container.Runtime
	// PullImage pulls an image unless it is already here, with the
	// service's registry credentials (docker's X-Registry-Auth; "": the
	// node's own).
	PullImage func(ctx context.Context, ref, registryAuth string, progress func(image.Progress)) error
	// Net plugs containers of tasks on overlay networks into them; nil
	// on a node without overlay networking, which refuses such tasks.
	Net Networker
	// Image looks a local image up (by reference or ID), for its
	// HEALTHCHECK; nil: only the tasks' own checks apply.
	Image func(ref string) (*image.Image, error)
	// DrainDelay is how long a ready task with network endpoints is out
	// of the load balancers before its workload gets the stop signal
	// (0: DefaultDrainDelay; negative: none).
	DrainDelay time.Duration
	// Clock times the drain delay (nil: the wall clock).
	Clock clock.Clock
	// ExecRoot holds the tasks' secrets and configs, each task's on a
	// tmpfs of its own under ExecRoot/secrets (daemon --exec-root);
	// Files holds their values, in memory. Without them, tasks using
	// secrets or configs are refused.
	ExecRoot string
	Files    *Files
	// Hostname is the node's, for templates ({{.Node.Hostname}}).
	Hostname string
	// Metrics count pulls, starts and OOM kills (nil: none).
	Metrics *ExecutorMetrics
}

// Networker plugs task containers into their overlay networks.
type Networker interface {
	// Attach gives the container whose network namespace is ns the
	// task's interfaces, and announces them.
	Attach(t *shoalv1.Task, ns string) error
	// Detach forgets a task whose container is gone.
	Detach(taskID string) error
	// Ready announces the task's endpoints once its workload runs (and
	// passed its health check, if it has one), or withdraws them before
	// it stops or once it fails its check; it says whether they were
	// announced before.
	Ready(taskID string, ready bool) (was bool)
	// Prune removes the devices of networks none of keep is on.
	Prune(keep []string)
}

var _ Executor = (*RuntimeExecutor)(nil)

// Pull implements Executor.
func (e *RuntimeExecutor) Pull(ctx context.Context, t *shoalv1.Task, progress func(string)) error {
	var p PullProgress
	c := t.GetSpec().GetContainer()
	err := e.PullImage(ctx, c.GetImage(), c.GetPullOptions().GetRegistryAuth(), func(ev image.Progress) {
		if msg, ok := p.Add(ev); ok {
			progress(msg)
		}
	})
	e.Metrics.pulled(&p, err)
	return err
}

// PullProgress sums an image pull's per-layer progress into one line.
type PullProgress struct {
	layers map[string]image.Progress
}

// Add takes one progress event and says what the pull as a whole looks
// like now; ok is false for events that say nothing new (resolving).
func (p *PullProgress) Add(ev image.Progress) (msg string, ok bool) {
	if ev.Layer == "" {
		return "", false
	}
	if p.layers == nil {
		p.layers = map[string]image.Progress{}
	}
	// A layer's last events (verifying, done) carry no byte counts: keep
	// what its download said.
	if prev, ok := p.layers[ev.Layer]; ok && ev.Total == 0 && ev.Current == 0 {
		ev.Current, ev.Total = prev.Current, prev.Total
	}
	p.layers[ev.Layer] = ev
	var cur, total int64
	done := 0
	for _, l := range p.layers {
		switch l.Status {
		case image.StatusDone, image.StatusExists:
			done++
			cur += max(l.Current, l.Total)
		default:
			cur += l.Current
		}
		total += l.Total
	}
	return fmt.Sprintf("pulling image: %d of %d layers, %.1f of %.1f MB", done, len(p.layers), float64(cur)/1e6, float64(total)/1e6), true
}

// recordOf is the task as its container's label keeps it, on the node's
// disk: without its registry credentials.
func recordOf(t *shoalv1.Task) *shoalv1.Task {
	if t.GetSpec().GetContainer().GetPullOptions() == nil {
		return t
	}
	out := proto.Clone(t).(*shoalv1.Task)
	out.Spec.Container.PullOptions = nil
	return out
}

// Spec translates a task into a container spec.
func Spec(t *shoalv1.Task) container.Spec {
	c := t.GetSpec().GetContainer()
	lim := t.GetSpec().GetResources().GetLimits()
	name := fmt.Sprintf("%s.%d.%s", t.GetServiceName(), t.GetSlot(), t.GetId())
	if t.GetSlot() == 0 {
		name = fmt.Sprintf("%s.%s.%s", t.GetServiceName(), t.GetNodeId(), t.GetId())
	}
	// The service's labels first: the node's own (which task, which
	// service, the task record, the networks) win over a user's label of
	// the same name.
	labels := map[string]string{}
	for k, v := range c.GetLabels() {
		labels[k] = v
	}
	labels[LabelTask], labels[LabelService], labels[LabelServiceName] = t.GetId(), t.GetServiceId(), t.GetServiceName()
	if rec, err := protojson.Marshal(recordOf(t)); err == nil {
		labels[LabelTaskRecord] = string(rec)
	}
	s := container.Spec{
		Name: name, Image: c.GetImage(), Cmd: c.GetArgs(), Env: c.GetEnv(), WorkingDir: c.GetDir(), User: c.GetUser(),
		Hostname: c.GetHostname(), Labels: labels, MemoryBytes: lim.GetMemoryBytes(), NanoCPUs: lim.GetNanoCpus(),
		StopTimeout: c.GetStopGracePeriod().AsDuration(), Network: "none",
		PidsLimit: lim.GetPids(), ReadOnly: c.GetReadOnly(), Init: c.GetInit(), StopSignal: c.GetStopSignal(),
		Mounts: containerspec.MountsFrom(c.GetMounts()), Tty: c.GetTty(), CapAdd: c.GetCapAdd(), CapDrop: c.GetCapDrop(),
		Sysctls: c.GetSysctls(), Ulimits: containerspec.UlimitsFrom(c.GetUlimits()), DNS: containerspec.DNSFrom(c.GetDnsConfig()),
		ExtraHosts: c.GetHosts(), Groups: c.GetGroups(),
	}
	if len(t.GetNetworks()) > 0 {
		s.Network = "" // a namespace of its own, wired before the workload starts
		s.ResolvConf = netoverlay.ResolvConf
		if v, err := netoverlay.EncodeNetworks(t); err == nil {
			labels[netoverlay.LabelNetworks] = v
		}
	}
	if len(c.GetCommand()) > 0 || c.GetCommandSet() {
		s.Entrypoint = append([]string{}, c.GetCommand()...)
	}
	return s
}

// Start implements Executor.
func (e *RuntimeExecutor) Start(ctx context.Context, t *shoalv1.Task) (string, error) {
	begin := time.Now()
	id, err := e.start(ctx, t)
	e.Metrics.started(time.Since(begin), err)
	return id, err
}

func (e *RuntimeExecutor) start(ctx context.Context, t *shoalv1.Task) (string, error) {
	var hook func(pid int) error
	if len(t.GetNetworks()) > 0 {
		if e.Net == nil {
			return "", fmt.Errorf("the task is on overlay networks, and this node runs without overlay networking")
		}
		hook = func(pid int) error { return e.Net.Attach(t, netoverlay.ProcNetns(pid)) }
	}
	spec := Spec(t)
	if err := applyTaskOptions(t, e.Hostname, &spec); err != nil {
		return "", err
	}
	files, err := e.prepareFiles(t)
	if err != nil {
		return "", err
	}
	spec.Mounts = append(spec.Mounts, files...)
	// The label (for a daemon restarting under the container) from the
	// image store; whether to announce it now from what the container
	// keeps of its image.
	if _, ok := health.Effective(TaskHealthCheck(t), e.imageCheck(t.GetSpec().GetContainer().GetImage())); ok {
		spec.Labels[LabelHealthCheck] = "true"
	}
	st, err := e.Runtime.Create(ctx, spec)
	if err != nil {
		return "", err
	}
	_, checked := health.Effective(TaskHealthCheck(t), imageHealthCheck(st.Healthcheck))
	if _, err := e.Runtime.Start(ctx, st.ID, hook); err != nil {
		if e.Net != nil && hook != nil {
			_ = e.Net.Detach(t.GetId())
		}
		_ = e.Runtime.Delete(context.Background(), st.ID, true)
		return "", err
	}
	if hook != nil && !checked {
		// With a health check, the runner announces it once healthy.
		e.Net.Ready(t.GetId(), true)
	}
	return st.ID, nil
}

// imageCheck is the HEALTHCHECK of a local image; nil when it has none
// (or is not found).
func (e *RuntimeExecutor) imageCheck(ref string) *health.Config {
	if e.Image == nil || ref == "" {
		return nil
	}
	img, err := e.Image(ref)
	if err != nil {
		return nil
	}
	return imageHealthCheck(img.Config.Healthcheck)
}

// HealthCheck implements Executor: the task's check over the one its
// container keeps from its image.
func (e *RuntimeExecutor) HealthCheck(t *shoalv1.Task, id string) (health.Config, bool) {
	var img *health.Config
	if st, err := e.Runtime.Get(id); err == nil {
		img = imageHealthCheck(st.Healthcheck)
	}
	return health.Effective(TaskHealthCheck(t), img)
}

// Probe implements Executor: a command runs inside the container; HTTP
// and TCP probes are made by the node with sockets in the container's
// network namespace.
func (e *RuntimeExecutor) Probe(ctx context.Context, id string, c health.Config) (int, string, error) {
	st, err := e.Runtime.Get(id)
	if err != nil {
		return -1, "", err
	}
	if st.Status != container.Running || st.Pid <= 0 {
		return -1, "", fmt.Errorf("container %s is not running", id)
	}
	ns := netoverlay.ProcNetns(st.Pid)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := netoverlay.InNetns(ns, func() error {
			var err error
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	exec := func(ctx context.Context, args []string) (int, []byte, error) { return e.Exec(ctx, id, args) }
	probe, err := health.ProbeOf(c, exec, dial)
	if err != nil {
		return -1, "", err
	}
	return probe(ctx)
}

// Ready implements Executor.
func (e *RuntimeExecutor) Ready(t *shoalv1.Task, ready bool) {
	if e.Net != nil && len(t.GetNetworks()) > 0 {
		e.Net.Ready(t.GetId(), ready)
	}
}

// Wait implements Executor.
func (e *RuntimeExecutor) Wait(ctx context.Context, id string) (Exit, error) {
	st, err := e.Runtime.Wait(ctx, id)
	if err != nil {
		return Exit{}, err
	}
	if e.Net != nil && st.Labels[LabelTask] != "" {
		// Its workload is gone: out of the VIPs, DNS and the mesh now,
		// not when a manager gets round to it (there may be none).
		e.Net.Ready(st.Labels[LabelTask], false)
	}
	e.Metrics.exited(st.OOMKilled)
	return Exit{Code: st.ExitCode, OOMKilled: st.OOMKilled, Err: st.Error}, nil
}

// Stop implements Executor: a task that takes connections leaves the
// VIPs, DNS and the mesh first, here at once and on the other nodes once
// gossip tells them, so its workload gets SIGTERM only after DrainDelay
// (none for a task that was not ready: nothing sends to it).
func (e *RuntimeExecutor) Stop(ctx context.Context, id string, grace time.Duration) error {
	if e.Net != nil {
		if st, err := e.Runtime.Get(id); err == nil && st.Labels[LabelTask] != "" && st.Status == container.Running {
			if e.Net.Ready(st.Labels[LabelTask], false) {
				e.drain(ctx)
			}
		}
	}
	_, err := e.Runtime.Stop(ctx, id, grace)
	return err
}

// drain waits out the drain delay, or until ctx ends.
func (e *RuntimeExecutor) drain(ctx context.Context) {
	d := e.DrainDelay
	if d == 0 {
		d = DefaultDrainDelay
	}
	if d < 0 {
		return
	}
	clk := e.Clock
	if clk == nil {
		clk = clock.Real()
	}
	t := clk.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.Chan():
	case <-ctx.Done():
	}
}

// Adopt implements Executor: a re-adopted container's interfaces are
// checked and its endpoints announced again.
func (e *RuntimeExecutor) Adopt(ctx context.Context, t *shoalv1.Task, id string) error {
	if len(t.GetNetworks()) == 0 || e.Net == nil {
		return nil
	}
	st, err := e.Runtime.Get(id)
	if err != nil {
		return err
	}
	if st.Pid <= 0 {
		return fmt.Errorf("container %s has no process to attach", id)
	}
	if err := e.Net.Attach(t, netoverlay.ProcNetns(st.Pid)); err != nil {
		return err
	}
	if _, checked := e.HealthCheck(t, id); checked {
		// Probed again from starting: announced once healthy.
		e.Net.Ready(t.GetId(), false)
		return nil
	}
	e.Net.Ready(t.GetId(), st.Status == container.Running)
	return nil
}

// Prune implements Executor.
func (e *RuntimeExecutor) Prune(assigned []*shoalv1.Task) {
	if e.Net == nil {
		return
	}
	var keep []string
	for _, t := range assigned {
		for _, n := range t.GetNetworks() {
			keep = append(keep, n.GetNetworkId())
		}
	}
	e.Net.Prune(keep)
}

// Remove implements Executor.
func (e *RuntimeExecutor) Remove(ctx context.Context, id string) error {
	var task string
	if st, err := e.Runtime.Get(id); err == nil {
		task = st.Labels[LabelTask]
	}
	err := e.Runtime.Delete(ctx, id, true)
	if e.Net != nil && task != "" {
		// The container is gone: its interfaces went with its namespace.
		err = errors.Join(err, e.Net.Detach(task))
	}
	return err
}

// Records are the tasks of this node's running task containers, from
// what each container keeps of its task (LabelTaskRecord).
func Records(containers []container.State) []Record {
	var out []Record
	for _, c := range containers {
		v, ok := c.Labels[LabelTaskRecord]
		if !ok || c.Status != container.Running {
			continue
		}
		var t shoalv1.Task
		if protojson.Unmarshal([]byte(v), &t) != nil || t.GetId() != c.Labels[LabelTask] {
			continue
		}
		out = append(out, Record{Task: &t, ContainerID: c.ID})
	}
	return out
}

// Record is a running task container found on the node.
type Record struct {
	Task        *shoalv1.Task
	ContainerID string
}

// Containers implements Executor.
func (e *RuntimeExecutor) Containers() map[string]Existing {
	out := map[string]Existing{}
	for _, c := range e.Runtime.List() {
		if tid := c.Labels[LabelTask]; tid != "" {
			if prev, ok := out[tid]; ok && prev.Running {
				continue
			}
			out[tid] = Existing{ID: c.ID, Running: c.Status == container.Running}
		}
	}
	return out
}

// Exec runs args inside the task container containerID, with the
// container's user, environment and working directory, as a CMD or
// CMD-SHELL health check does: exitCode and output (stdout and stderr
// together, at most container.MaxExecOutput bytes) when the command ran,
// err when it could not (or ctx ended first: ctx's error). Its timeout is
// ctx's deadline.
func (e *RuntimeExecutor) Exec(ctx context.Context, containerID string, args []string) (exitCode int, output []byte, err error) {
	res, err := e.Runtime.Exec(ctx, containerID, container.ExecSpec{Args: args})
	return res.ExitCode, res.Output, err
}
