// Package deploy holds the zero-downtime deploy scenarios of issue 14 on
// the multi-host harness (tests/faults): a whoami service with an HTTP
// health check behind a VIP and the routing mesh, two load clients
// counting every request (one inside a container on the service's overlay
// network asking the VIP, one on a host outside the cluster asking the
// mesh on a node that runs no replica), rolling updates and rollbacks,
// and what really ran meanwhile, sampled from /proc on every host.
// tests/deploy_test.go runs each scenario once and fails on a broken
// invariant; tests/bench/deploy runs them several times and reports the
// times they measure.
package deploy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-run/shoal/netoverlay"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/faults"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// Port is where the mesh publishes the service (target port 80).
const Port = 8080

// Env is a cluster ready for deploys: the whoami image in three tags, an
// overlay network app, a one-replica service client on app (a plain
// whoami on manager1, in whose container the VIP load runs), and a host
// outside the cluster for the mesh load.
type Env struct {
	*faults.Env
	V1, V2, V3 string // good images: WHOAMI_IMAGE=1, 2, 3
	Bad        string // its /health always answers 500 (WHOAMI_HEALTH=fail)
	Outside    *harness.Host
	// MeshNode runs no replica of the services Spec makes (they are
	// constrained to workers): the mesh load asks its address.
	MeshNode *harness.Node
	// LoadTimeout bounds each request of the load clients (0: the
	// harness's 2 s); a smaller one makes rarer stalls visible.
	LoadTimeout time.Duration
}

// Start forms a cluster of managers and workers (workers >= 1) and makes
// the network, images, client service and outside host.
func Start(t harness.TB, managers, workers int, args ...string) *Env {
	t.Helper()
	e := &Env{Env: faults.Start(t, managers, workers, args...)}
	e.V1 = e.Image
	e.V2 = e.Net.ServeImage(testimage.Options{Tag: "2"})
	e.V3 = e.Net.ServeImage(testimage.Options{Tag: "3"})
	e.Bad = e.Net.ServeImage(testimage.Options{Tag: "bad", Env: []string{"WHOAMI_HEALTH=fail"}})
	e.MeshNode = e.C.Managers[0]
	m := e.C.Managers[0]
	m.MustCLI("network", "create", "app")
	m.MustCLI("service", "create", "-d", "--name", "client", "--network", "app",
		"--constraint", "node.hostname=="+e.MeshNode.Host.Name, e.V1)
	e.Eventually(60*time.Second, func() error { return e.Converged("client", 1) })
	e.Outside = e.Net.AddHost("outside")
	return e
}

// Health is the check Spec gives a service: GET /health every interval,
// 1 s timeout, unhealthy after 2 failures in a row.
func Health(interval time.Duration) *shoalv1.HealthConfig {
	return &shoalv1.HealthConfig{
		Http:     "http://:80/health",
		Interval: durationpb.New(interval),
		Timeout:  durationpb.New(time.Second),
		Retries:  2,
	}
}

// Spec is a whoami service on app, published on Port in ingress mode,
// constrained to workers, with Health(healthEvery) and the update config
// upd (also its rollback config).
func (e *Env) Spec(name string, replicas int64, image string, healthEvery time.Duration, upd *shoalv1.UpdateConfig) *shoalv1.ServiceSpec {
	return &shoalv1.ServiceSpec{
		Name: name,
		Task: &shoalv1.TaskSpec{
			Container: &shoalv1.ContainerSpec{Image: image, Healthcheck: Health(healthEvery)},
			Placement: &shoalv1.Placement{Constraints: []string{"node.role==worker"}},
		},
		Mode:     &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: replicas}},
		Networks: []*shoalv1.NetworkAttachment{{Target: "app"}},
		Endpoint: &shoalv1.EndpointSpec{Ports: []*shoalv1.PortConfig{{
			Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_TCP, TargetPort: 80, PublishedPort: Port,
			PublishMode: shoalv1.PublishMode_PUBLISH_MODE_INGRESS,
		}}},
		Update:   upd,
		Rollback: upd,
	}
}

// Update is an update config: parallelism, order, failure action, and a
// monitor period.
func Update(parallelism uint64, order shoalv1.UpdateOrder, onFailure shoalv1.UpdateFailureAction, monitor time.Duration) *shoalv1.UpdateConfig {
	return &shoalv1.UpdateConfig{Parallelism: parallelism, Order: order, FailureAction: onFailure, Monitor: durationpb.New(monitor)}
}

func ctxFor(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// control is the control API through the leader.
func (e *Env) control() shoalv1.ControlServiceClient {
	e.T.Helper()
	return e.C.Leader(30 * time.Second).Control()
}

// Service reads a service through the leader.
func (e *Env) Service(name string) (*shoalv1.Service, error) {
	ctx, cancel := ctxFor(5 * time.Second)
	defer cancel()
	resp, err := e.control().GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: name})
	if err != nil {
		return nil, err
	}
	return resp.GetService(), nil
}

// CreateService creates spec and waits until its replicas run and every
// one of them answers through the VIP and through the mesh.
func (e *Env) CreateService(spec *shoalv1.ServiceSpec) {
	e.T.Helper()
	ctx, cancel := ctxFor(10 * time.Second)
	defer cancel()
	if _, err := e.control().CreateService(ctx, &shoalv1.CreateServiceRequest{Spec: spec}); err != nil {
		e.T.Fatalf("create service %s: %v", spec.GetName(), err)
	}
	want := int(spec.GetReplicated().GetReplicas())
	e.Eventually(90*time.Second, func() error { return e.Converged(spec.GetName(), want) })
	e.WaitAnswering(spec.GetName(), 60*time.Second)
}

// UpdateSpec changes a service's spec with mut at the version read,
// retrying on a version conflict, and returns when the call was accepted.
func (e *Env) UpdateSpec(name string, mut func(*shoalv1.ServiceSpec)) time.Time {
	e.T.Helper()
	var at time.Time
	e.Eventually(30*time.Second, func() error {
		s, err := e.Service(name)
		if err != nil {
			return err
		}
		spec := s.GetSpec()
		mut(spec)
		ctx, cancel := ctxFor(10 * time.Second)
		defer cancel()
		at = time.Now()
		_, err = e.control().UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: s.GetId(), Version: s.GetMeta().GetVersion(), Spec: spec})
		return err
	})
	return at
}

// SetImage updates a service to image.
func (e *Env) SetImage(name, image string) time.Time {
	e.T.Helper()
	return e.UpdateSpec(name, func(s *shoalv1.ServiceSpec) { s.Task.Container.Image = image })
}

// Rollback is `service rollback NAME`: UpdateService with rollback set.
func (e *Env) Rollback(name string) time.Time {
	e.T.Helper()
	s, err := e.Service(name)
	if err != nil {
		e.T.Fatalf("service rollback %s: %v", name, err)
	}
	ctx, cancel := ctxFor(10 * time.Second)
	defer cancel()
	at := time.Now()
	if _, err := e.control().UpdateService(ctx, &shoalv1.UpdateServiceRequest{ServiceId: s.GetId(), Version: s.GetMeta().GetVersion(), Spec: s.GetSpec(), Rollback: true}); err != nil {
		e.T.Fatalf("service rollback %s: %v", name, err)
	}
	return at
}

// WaitUpdateState waits until the service's update status is state and
// returns the status.
func (e *Env) WaitUpdateState(name string, state shoalv1.UpdateState, timeout time.Duration) *shoalv1.UpdateStatus {
	e.T.Helper()
	var st *shoalv1.UpdateStatus
	e.Eventually(timeout, func() error {
		s, err := e.Service(name)
		if err != nil {
			return err
		}
		st = s.GetUpdateStatus()
		if st.GetState() != state {
			return fmt.Errorf("update status of %s is %s (%q); want %s", name, st.GetState(), st.GetMessage(), state)
		}
		return nil
	})
	return st
}

// VIP is the service's VIP on app.
func (e *Env) VIP(name string) netip.Addr {
	e.T.Helper()
	return e.ServiceVIP(name, "app")
}

// ClientPid is the workload process of the client service's container.
func (e *Env) ClientPid() int {
	e.T.Helper()
	for _, c := range e.MeshNode.RunningContainers() {
		if c.Service == "client" {
			return c.Pid
		}
	}
	e.T.Fatalf("no container of client runs on %s", e.MeshNode.Name)
	return 0
}

// URLs are the two ways into a service: through its VIP (asked from the
// client container) and through the mesh on MeshNode (asked from the
// outside host).
func (e *Env) URLs(name string) (vip, mesh string) {
	e.T.Helper()
	return "http://" + e.VIP(name).String() + "/", "http://" + e.MeshNode.Host.IP + ":" + strconv.Itoa(Port) + "/"
}

// WaitAnswering waits until every running container of the service has
// answered through the VIP and through the mesh, 20 requests in a row
// succeeding on each path.
func (e *Env) WaitAnswering(name string, timeout time.Duration) {
	e.T.Helper()
	vip, mesh := e.URLs(name)
	pid := e.ClientPid()
	inside := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return harness.DialIn(ctx, netoverlay.ProcNetns(pid), network, addr)
		}}}
	outside := e.Outside.HTTPClient(2 * time.Second)
	seen := map[string]map[string]bool{vip: {}, mesh: {}}
	e.Eventually(timeout, func() error {
		want := map[string]bool{}
		for _, c := range e.Containers(name) {
			want[Hostname(c)] = true
		}
		for u, client := range map[string]*http.Client{vip: inside, mesh: outside} {
			for i := 0; i < 20; i++ {
				h, err := testimage.GetHostname(client, u)
				if err != nil {
					return fmt.Errorf("%s: %v", u, err)
				}
				seen[u][h] = true
			}
			for h := range want {
				if !seen[u][h] {
					return fmt.Errorf("%s not answered by %s yet (answered by %v)", u, h, keys(seen[u]))
				}
			}
		}
		return nil
	})
}

// Loads are the two load clients of a service.
type Loads struct {
	VIP, Mesh *harness.Load
}

// StartLoads starts the VIP and the mesh load clients of a service and
// waits until each was answered 20 times.
func (e *Env) StartLoads(name string) *Loads {
	e.T.Helper()
	vip, mesh := e.URLs(name)
	l := &Loads{
		VIP:  harness.StartLoad(e.T, harness.LoadSpec{Pid: e.ClientPid(), URLs: []string{vip}, Timeout: e.LoadTimeout}),
		Mesh: harness.StartLoad(e.T, harness.LoadSpec{Host: e.Outside, URLs: []string{mesh}, Timeout: e.LoadTimeout}),
	}
	l.VIP.WaitFlowing(30*time.Second, 20)
	l.Mesh.WaitFlowing(30*time.Second, 20)
	return l
}

// Stop stops both and returns their final reports.
func (l *Loads) Stop() (vip, mesh testimage.LoadReport) { return l.VIP.Stop(), l.Mesh.Stop() }

// NoFailures stops both and lists the failures of each, nil if none.
func (l *Loads) NoFailures() error {
	var errs []string
	for _, ld := range []*harness.Load{l.VIP, l.Mesh} {
		if err := ld.NoFailures(); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// Answered merges who answered either client, so far.
func (l *Loads) Answered() (map[string]testimage.LoadAnswer, error) {
	out := map[string]testimage.LoadAnswer{}
	for _, ld := range []*harness.Load{l.VIP, l.Mesh} {
		r, err := ld.Report()
		if err != nil {
			return nil, err
		}
		for h, a := range r.Answerers() {
			cur, ok := out[h]
			if !ok || a.First.Before(cur.First) {
				cur.First = a.First
			}
			if a.Last.After(cur.Last) {
				cur.Last = a.Last
			}
			cur.N += a.N
			out[h] = cur
		}
	}
	return out, nil
}

// Failed is the failed requests of both clients so far.
func (l *Loads) Failed() int {
	n := 0
	for _, ld := range []*harness.Load{l.VIP, l.Mesh} {
		if r, err := ld.Report(); err == nil {
			n += r.Failed()
		}
	}
	return n
}

// Hostname is what whoami in the container answers: its hostname, by
// default the first 12 characters of the container's ID.
func Hostname(c harness.Container) string {
	if len(c.ID) > 12 {
		return c.ID[:12]
	}
	return c.ID
}

// Tag is the image tag a container runs (its WHOAMI_IMAGE).
func Tag(c harness.Container) string {
	for _, kv := range c.Env {
		if v, ok := strings.CutPrefix(kv, "WHOAMI_IMAGE="); ok {
			return v
		}
	}
	return ""
}

// Slot is the slot of a replicated task's container, from its name
// "svc.SLOT.task".
func Slot(c harness.Container) int {
	parts := strings.Split(c.Name, ".")
	if len(parts) < 3 {
		return 0
	}
	n, _ := strconv.Atoi(parts[len(parts)-2])
	return n
}

// Containers are the service's containers alive on every host now.
func (e *Env) Containers(name string) []harness.Container {
	var out []harness.Container
	for _, n := range e.C.Nodes() {
		out = append(out, harness.Of(name, n.RunningContainers())...)
	}
	return out
}

// AllOn checks that want containers of the service run, converged, every
// one of image tag tag.
func (e *Env) AllOn(name string, want int, tag string) error {
	if err := e.Converged(name, want); err != nil {
		return err
	}
	for _, c := range e.Containers(name) {
		if got := Tag(c); got != tag {
			return fmt.Errorf("task %s (slot %d, pid %d) runs image %s; want %s", c.Task, Slot(c), c.Pid, got, tag)
		}
	}
	return nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Sample is the service's containers alive at one moment.
type Sample struct {
	At         time.Time
	Containers []harness.Container
}

// Watch samples a service's containers on every host every 50 ms until
// Stop.
type Watch struct {
	mu      sync.Mutex
	samples []Sample
	stop    chan struct{}
	done    chan struct{}
}

// Watch starts sampling the containers of name.
func (e *Env) Watch(name string) *Watch {
	w := &Watch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			s := Sample{At: time.Now(), Containers: e.Containers(name)}
			w.mu.Lock()
			w.samples = append(w.samples, s)
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	e.T.Cleanup(w.Stop)
	return w
}

// Stop ends the sampling and returns every sample.
func (w *Watch) Stop() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// Samples are the samples so far.
func (w *Watch) Samples() []Sample {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Sample{}, w.samples...)
}
