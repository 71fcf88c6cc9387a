package tests

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/faults"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// unhealthyFile is the file whoami's /health answers 500 for, made and
// removed from outside through the container process's root.
func unhealthyFile(pid int) string { return fmt.Sprintf("/proc/%d/root/tmp/unhealthy", pid) }

// taskHealth is the health a task reports, by task ID.
func taskHealths(t *testing.T, e *faults.Env, svc string) map[string]*shoalv1.Task {
	t.Helper()
	tasks, err := e.Tasks(svc)
	if err != nil {
		return nil
	}
	out := map[string]*shoalv1.Task{}
	for _, tk := range tasks {
		out[tk.GetId()] = tk
	}
	return out
}

// A service with an HTTP health check: its tasks take traffic (the VIP,
// DNS) only once healthy; one whose check starts failing while it runs is
// out of the VIP and DNS within about its retries of intervals, seen from
// a container on another host, and is stopped and started again; the new
// container gets no traffic while it is starting (held there by the same
// failing check, which does not count in the start period) though it
// serves, and gets it once healthy. Who answers is what the requests
// say (whoami's hostname), not what the store says.
func TestHealthCheckGatesTraffic(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 2)
	m := e.C.Managers[0]
	m.MustCLI("network", "create", "app")
	m.MustCLI("service", "create", "-d", "--name", "client", "--replicas", "1", "--network", "app", e.Image)
	spec := e.Spec("web", 3)
	spec.Networks = []*shoalv1.NetworkAttachment{{Target: "app"}}
	// Within the start period (an hour: all of this test) probes run
	// every 3 s and failures do not count; once healthy, every second,
	// and two failures in a row make it unhealthy.
	spec.Task.Container.Healthcheck = &shoalv1.HealthConfig{Http: "http://:80/health", Interval: durationpb.New(time.Second),
		Retries: 2, StartPeriod: durationpb.New(time.Hour), StartInterval: durationpb.New(3 * time.Second)}
	e.Create(spec)
	e.Eventually(60*time.Second, func() error { return e.Converged("client", 1) })
	client := overlayTasks(t, e, "client", "app")[0]
	vip := e.ServiceVIP("web", "app")

	// Every replica healthy, in DNS and answering through the VIP.
	var web []overlayTask
	hostname := map[string]string{} // task ID → the hostname it answers with
	e.Eventually(60*time.Second, func() error {
		web = overlayTasks(t, e, "web", "app")
		if len(web) != 3 {
			return fmt.Errorf("%d web containers run", len(web))
		}
		tasks := taskHealths(t, e, "web")
		for _, w := range web {
			if s := tasks[w.id].GetStatus().GetHealth().GetState(); s != shoalv1.HealthState_HEALTH_STATE_HEALTHY {
				return fmt.Errorf("task %s reports health %v", w.id, s)
			}
			h, err := get(client, w.addr)
			if err != nil {
				return fmt.Errorf("task %s at %s: %v", w.id, w.addr, err)
			}
			hostname[w.id] = h
		}
		answered, err := answeredBy(client, vip, 30)
		if err != nil || len(answered) != 3 {
			return fmt.Errorf("30 requests through the VIP answered by %v (%v); want all 3 replicas", answered, err)
		}
		return nil
	})

	// The check of a replica on another host than the client's starts
	// failing.
	var victim overlayTask
	for _, w := range web {
		if w.host != client.host {
			victim = w
		}
	}
	if victim.id == "" {
		t.Fatalf("no web replica runs on another host than the client's (%s): %v", client.host, web)
	}
	if err := os.WriteFile(unhealthyFile(victim.pid), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	failing := time.Now()
	// Its own node's DNS is seen from another container there, if one
	// runs: the victim's own resolver goes with its container, which is
	// stopped the moment it is unhealthy.
	var neighbour *overlayTask
	for i, w := range web {
		if w.host == victim.host && w.id != victim.id {
			neighbour = &web[i]
		}
	}
	// Its own node's DNS (its container's resolver) drops it the moment
	// the worker takes it out; the client's node, on another host, once
	// gossip tells it, and its VIP a moment later (nftables rules): the
	// difference is how long a drain must wait before the stop signal.
	var local, remote, lastVIP time.Duration
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if local == 0 && neighbour != nil {
			if addrs, err := lookup(*neighbour, "tasks.web"); err == nil && !slices.Contains(addrs, victim.addr.String()) {
				local = time.Since(failing)
			}
		}
		if remote == 0 {
			if addrs, err := lookup(client, "tasks.web"); err == nil && !slices.Contains(addrs, victim.addr.String()) {
				remote = time.Since(failing)
			}
		}
		if h, err := get(client, vip); err == nil && h == hostname[victim.id] {
			lastVIP = time.Since(failing)
		}
		if (local != 0 || neighbour == nil) && remote != 0 && time.Since(failing) > remote+3*time.Second {
			break
		}
	}
	if remote == 0 || (neighbour != nil && local == 0) {
		t.Fatalf("the unhealthy replica still in DNS 20s after its check began to fail: on its own host %v, on the client's %v", neighbour != nil && local == 0, remote == 0)
	}
	own := "not seen (no other container on its host)"
	if neighbour != nil {
		own = local.Round(time.Millisecond).String()
	}
	t.Logf("after its check began to fail (interval 1s, retries 2) the unhealthy replica left DNS on its own host at %s, on another host at %v, "+
		"and last answered through that other host's VIP at %v", own, remote.Round(time.Millisecond), lastVIP.Round(time.Millisecond))
	e.Eventually(20*time.Second, func() error {
		addrs, err := lookup(client, "tasks.web")
		if err != nil || slices.Contains(addrs, victim.addr.String()) {
			return fmt.Errorf("tasks.web resolves to %v (%v); want it without the unhealthy %s", addrs, err, victim.addr)
		}
		answered, err := answeredBy(client, vip, 12)
		if err != nil || answered[hostname[victim.id]] > 0 || len(answered) != 2 {
			return fmt.Errorf("12 requests through the VIP answered by %v (%v); want the 2 healthy replicas only", answered, err)
		}
		return nil
	})

	// It is stopped and its slot runs a new container; hold that one
	// starting with the same failing check (not counted in the start
	// period).
	var fresh overlayTask
	e.Eventually(30*time.Second, func() error {
		for _, w := range overlayTasks(t, e, "web", "app") {
			if !slices.ContainsFunc(web, func(o overlayTask) bool { return o.pid == w.pid }) {
				fresh = w
				return nil
			}
		}
		return fmt.Errorf("no new web container yet")
	})
	if err := os.WriteFile(unhealthyFile(fresh.pid), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", victim.pid)); err == nil && slices.ContainsFunc(overlayTasks(t, e, "web", "app"), func(o overlayTask) bool { return o.pid == victim.pid }) {
		t.Errorf("the unhealthy container (pid %d) still runs", victim.pid)
	}
	tk := taskHealths(t, e, "web")[fresh.id]
	if fresh.id == victim.id && tk.GetStatus().GetRestarts() < 1 {
		t.Errorf("the unhealthy task runs a new container but reports %d restarts", tk.GetStatus().GetRestarts())
	}
	var freshHost string
	e.Eventually(10*time.Second, func() error {
		var err error
		freshHost, err = get(client, fresh.addr) // it serves: only the balancers leave it out
		return err
	})
	deadline := time.Now().Add(6 * time.Second)
	requests := 0
	for time.Now().Before(deadline) {
		addrs, err := lookup(client, "tasks.web")
		if err != nil || slices.Contains(addrs, fresh.addr.String()) {
			t.Fatalf("tasks.web resolves to %v (%v) while %s is starting", addrs, err, fresh.addr)
		}
		answered, err := answeredBy(client, vip, 10)
		if err != nil {
			t.Fatal(err)
		}
		requests += sum(answered)
		if answered[freshHost] > 0 {
			t.Fatalf("the starting replica %s answered %d of 10 requests through the VIP", freshHost, answered[freshHost])
		}
	}
	if s := taskHealths(t, e, "web")[fresh.id].GetStatus().GetHealth().GetState(); s != shoalv1.HealthState_HEALTH_STATE_STARTING {
		t.Fatalf("the held replica reports health %v; want starting (the proof above needs it)", s)
	}
	t.Logf("%d requests through the VIP while the new replica was starting: none reached it", requests)

	// Once its check passes it takes traffic.
	if err := os.Remove(unhealthyFile(fresh.pid)); err != nil {
		t.Fatal(err)
	}
	e.Eventually(20*time.Second, func() error {
		addrs, err := lookup(client, "tasks.web")
		if err != nil || !slices.Contains(addrs, fresh.addr.String()) {
			return fmt.Errorf("tasks.web resolves to %v (%v); want it with the healthy %s", addrs, err, fresh.addr)
		}
		answered, err := answeredBy(client, vip, 30)
		if err != nil || answered[freshHost] == 0 || len(answered) != 3 {
			return fmt.Errorf("30 requests through the VIP answered by %v (%v); want all 3, %s included", answered, err, freshHost)
		}
		return nil
	})
}

// A CMD-SHELL check runs inside the container (it sees the container's
// own /tmp and hostname): failing, the task is stopped and, with restart
// condition none, fails with the probe's output and exit code.
func TestHealthCheckCommand(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 0)
	t.Cleanup(func() {
		if t.Failed() {
			for _, l := range strings.Split(e.C.Managers[0].DaemonLog(), "\n") {
				if strings.Contains(l, "worker") || strings.Contains(l, "exec") {
					t.Log(l)
				}
			}
		}
	})
	spec := e.Spec("cmd", 1)
	spec.Task.Restart = &shoalv1.RestartPolicy{Condition: shoalv1.RestartCondition_RESTART_CONDITION_NONE}
	spec.Task.Container.Healthcheck = &shoalv1.HealthConfig{Test: []string{"CMD-SHELL", "if [ -e /tmp/unhealthy ]; then echo sick of $(hostname); exit 3; fi"},
		Interval: durationpb.New(time.Second), Retries: 1}
	e.Create(spec)
	var first harness.Container
	e.Eventually(30*time.Second, func() error {
		cs := harness.Of("cmd", e.C.Managers[0].RunningContainers())
		if len(cs) != 1 {
			return fmt.Errorf("%d containers run", len(cs))
		}
		first = cs[0]
		if s := taskHealths(t, e, "cmd")[first.Task].GetStatus().GetHealth().GetState(); s != shoalv1.HealthState_HEALTH_STATE_HEALTHY {
			return fmt.Errorf("health %v", s)
		}
		return nil
	})
	host, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/hostname", first.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unhealthyFile(first.Pid), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "container is unhealthy: sick of " + strings.TrimSpace(string(host))
	e.Eventually(30*time.Second, func() error {
		tk := taskHealths(t, e, "cmd")[first.Task]
		st := tk.GetStatus()
		if st.GetState() != shoalv1.TaskState_TASK_STATE_FAILED || st.GetErr() != want ||
			st.GetHealth().GetState() != shoalv1.HealthState_HEALTH_STATE_UNHEALTHY || st.GetHealth().GetExitCode() != 3 {
			return fmt.Errorf("the task is %v, err %q, health %v; want failed, %q, unhealthy with exit 3", st.GetState(), st.GetErr(), st.GetHealth(), want)
		}
		return nil
	})
	// Stopped: its process is gone, and with restart condition none
	// nothing runs in its place.
	e.Eventually(30*time.Second, func() error {
		if cs := harness.Of("cmd", e.C.Managers[0].RunningContainers()); len(cs) != 0 {
			return fmt.Errorf("containers %v still run", cs)
		}
		return nil
	})
}

// Tasks scaled away leave the load balancers of every node before their
// workload gets SIGTERM (the drain delay covers gossip): a client on
// another host sending request after request through the VIP while the
// service scales from 3 replicas to 1 sees no request fail.
func TestDrainBeforeStop(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 2)
	m := e.C.Managers[0]
	m.MustCLI("network", "create", "app")
	m.MustCLI("service", "create", "-d", "--name", "client", "--replicas", "1", "--network", "app", e.Image)
	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "3", "--network", "app", e.Image)
	spread(t, e, "web", "app", 3)
	e.Eventually(60*time.Second, func() error { return e.Converged("client", 1) })
	client := overlayTasks(t, e, "client", "app")[0]
	vip := e.ServiceVIP("web", "app")
	e.Eventually(20*time.Second, func() error {
		answered, err := answeredBy(client, vip, 30)
		if err != nil || len(answered) != 3 {
			return fmt.Errorf("30 requests through the VIP answered by %v (%v); want all 3 replicas", answered, err)
		}
		return nil
	})
	stop := make(chan struct{})
	type result struct {
		answered map[string]int
		failed   []string
	}
	done := make(chan result)
	go func() {
		r := result{answered: map[string]int{}}
		for {
			select {
			case <-stop:
				done <- r
				return
			default:
			}
			h, err := get(client, vip)
			if err != nil {
				r.failed = append(r.failed, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), err))
				continue
			}
			r.answered[h]++
		}
	}()
	m.MustCLI("service", "update", "-d", "--replicas", "1", "web")
	e.Eventually(60*time.Second, func() error { return e.Converged("web", 1) })
	time.Sleep(2 * time.Second) // requests after the last stop too
	close(stop)
	r := <-done
	t.Logf("%d requests through the VIP while 2 of 3 replicas stopped: answered by %v, %d failed", sum(r.answered)+len(r.failed), r.answered, len(r.failed))
	if len(r.failed) > 0 {
		t.Errorf("%d requests failed while replicas stopped; first: %v", len(r.failed), r.failed[:min(5, len(r.failed))])
	}
	if len(r.answered) != 3 {
		t.Errorf("answered by %v; want all 3 replicas (2 of them until they stopped)", r.answered)
	}
}

// A worker daemon restarted under a running task with a health check
// takes its container over (the same process), probes it again and puts
// it back in DNS and the VIP once healthy; held failing, it stays out.
func TestHealthCheckAfterDaemonRestart(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 1)
	m, w := e.C.Managers[0], e.C.Workers[0]
	m.MustCLI("network", "create", "app")
	m.MustCLI("service", "create", "-d", "--name", "client", "--replicas", "1", "--network", "app", "--constraint", "node.role==manager", e.Image)
	spec := e.Spec("web", 1)
	spec.Networks = []*shoalv1.NetworkAttachment{{Target: "app"}}
	spec.Task.Placement = &shoalv1.Placement{Constraints: []string{"node.role==worker"}}
	spec.Task.Container.Healthcheck = &shoalv1.HealthConfig{Http: "http://:80/health", Interval: durationpb.New(time.Second), Retries: 3,
		StartPeriod: durationpb.New(time.Hour)}
	e.Create(spec)
	e.Eventually(60*time.Second, func() error { return e.Converged("client", 1) })
	client := overlayTasks(t, e, "client", "app")[0]
	vip := e.ServiceVIP("web", "app")
	var web overlayTask
	e.Eventually(30*time.Second, func() error {
		ws := overlayTasks(t, e, "web", "app")
		if len(ws) != 1 || ws[0].host != w.Name {
			return fmt.Errorf("web runs as %v; want one replica on %s", ws, w.Name)
		}
		web = ws[0]
		if _, err := get(client, vip); err != nil {
			return fmt.Errorf("through the VIP: %v", err)
		}
		return nil
	})
	// Failing (not counted: the start period is an hour, and the check
	// restarts from starting) while the daemon restarts.
	if err := os.WriteFile(unhealthyFile(web.pid), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	w.Stop()
	w.Start()
	e.Eventually(30*time.Second, func() error {
		if s := taskHealths(t, e, "web")[web.id].GetStatus().GetHealth().GetState(); s != shoalv1.HealthState_HEALTH_STATE_STARTING {
			return fmt.Errorf("the re-adopted task reports health %v; want starting", s)
		}
		return nil
	})
	harness.Holds(t, 500*time.Millisecond, func() error {
		// No endpoint: the node's DNS knows no tasks.web (an error).
		if addrs, _ := lookup(client, "tasks.web"); len(addrs) != 0 {
			return fmt.Errorf("tasks.web resolves to %v while the re-adopted task is starting; want nothing", addrs)
		}
		if h, err := get(client, vip); err == nil {
			return fmt.Errorf("the VIP answered (%s) while its only task is starting", h)
		}
		return nil
	})
	if _, err := get(client, web.addr); err != nil {
		t.Fatalf("the re-adopted container does not serve: %v", err)
	}
	if err := os.Remove(unhealthyFile(web.pid)); err != nil {
		t.Fatal(err)
	}
	e.Eventually(20*time.Second, func() error {
		addrs, err := lookup(client, "tasks.web")
		if err != nil || !slices.Equal(addrs, []string{web.addr.String()}) {
			return fmt.Errorf("tasks.web resolves to %v (%v); want %s", addrs, err, web.addr)
		}
		if _, err := get(client, vip); err != nil {
			return fmt.Errorf("through the VIP: %v", err)
		}
		return nil
	})
	if ws := overlayTasks(t, e, "web", "app"); len(ws) != 1 || ws[0].pid != web.pid {
		t.Errorf("web runs as %v; want the same process %d, taken over", ws, web.pid)
	}
}

// The image's HEALTHCHECK applies when the service sets none, and
// ["NONE"] turns it off; `shoal ps` shows the state as docker does.
func TestImageHealthCheck(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 0)
	m := e.C.Managers[0]
	img := e.Net.ServeImage(testimage.Options{Tag: "hc", Healthcheck: &testimage.Healthcheck{
		Test: []string{"CMD-SHELL", "test ! -e /tmp/unhealthy"}, Interval: time.Second, Retries: 1}})
	checked := e.Spec("checked", 1)
	checked.Task.Container.Image = img
	e.Create(checked)
	off := e.Spec("off", 1)
	off.Task.Container.Image = img
	off.Task.Container.Healthcheck = &shoalv1.HealthConfig{Test: []string{"NONE"}}
	e.Create(off)
	status := func(svc string) string {
		for _, l := range strings.Split(m.MustCLI("ps", "--format", "{{.Names}}\t{{.Status}}"), "\n") {
			if name, st, ok := strings.Cut(l, "\t"); ok && strings.HasPrefix(name, svc+".") {
				return st
			}
		}
		return ""
	}
	e.Eventually(30*time.Second, func() error {
		if st := status("checked"); !strings.HasSuffix(st, " (healthy)") {
			return fmt.Errorf("ps shows checked as %q; want Up … (healthy)", st)
		}
		return nil
	})
	if st := status("off"); !strings.HasPrefix(st, "Up ") || strings.Contains(st, "health") {
		t.Errorf("ps shows off (NONE) as %q; want Up with no health", st)
	}
	for _, tk := range taskHealths(t, e, "off") {
		if h := tk.GetStatus().GetHealth(); h != nil {
			t.Errorf("a task whose check is NONE reports health %v", h)
		}
	}
	// Failing, the image's check restarts it in place.
	first := harness.Of("checked", m.RunningContainers())
	if len(first) != 1 {
		t.Fatalf("checked runs as %v", first)
	}
	if err := os.WriteFile(unhealthyFile(first[0].Pid), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	e.Eventually(30*time.Second, func() error {
		cs := harness.Of("checked", m.RunningContainers())
		tk := taskHealths(t, e, "checked")[first[0].Task]
		if len(cs) != 1 || cs[0].Pid == first[0].Pid || cs[0].Task != first[0].Task || tk.GetStatus().GetRestarts() < 1 {
			return fmt.Errorf("checked runs as %v, %d restarts; want its task restarted in place", cs, tk.GetStatus().GetRestarts())
		}
		return nil
	})
}

// A probe that outlives its timeout fails with docker's words; a TCP check connects inside the container's own
// network namespace (no overlay network: only its loopback).
func TestHealthCheckTimeoutAndTCP(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 0)
	none := &shoalv1.RestartPolicy{Condition: shoalv1.RestartCondition_RESTART_CONDITION_NONE}
	slow := e.Spec("slow", 1)
	slow.Task.Restart = none
	slow.Task.Container.Healthcheck = &shoalv1.HealthConfig{Test: []string{"CMD", "sleep", "100"},
		Interval: durationpb.New(time.Second), Timeout: durationpb.New(time.Second), Retries: 1}
	e.Create(slow)
	tcp := e.Spec("tcp", 1)
	tcp.Task.Container.Healthcheck = &shoalv1.HealthConfig{TcpPort: 80, Interval: durationpb.New(time.Second)}
	e.Create(tcp)
	closed := e.Spec("closed", 1)
	closed.Task.Restart = none
	closed.Task.Container.Healthcheck = &shoalv1.HealthConfig{TcpPort: 81, Interval: durationpb.New(time.Second), Retries: 1}
	e.Create(closed)
	failed := func(svc, want string) error {
		for _, tk := range taskHealths(t, e, svc) {
			if st := tk.GetStatus(); st.GetState() != shoalv1.TaskState_TASK_STATE_FAILED || !strings.HasPrefix(st.GetErr(), want) {
				return fmt.Errorf("%s: task %v, err %q; want failed, %q", svc, st.GetState(), st.GetErr(), want)
			}
		}
		return nil
	}
	e.Eventually(30*time.Second, func() error {
		if err := failed("slow", "container is unhealthy: Health check exceeded timeout (1s)"); err != nil {
			return err
		}
		if err := failed("closed", "container is unhealthy: connect to port 81:"); err != nil {
			return err
		}
		for _, tk := range taskHealths(t, e, "tcp") {
			if h := tk.GetStatus().GetHealth(); h.GetState() != shoalv1.HealthState_HEALTH_STATE_HEALTHY || h.GetOutput() != "connected to port 80" {
				return fmt.Errorf("tcp reports health %v", h)
			}
		}
		return nil
	})
}
