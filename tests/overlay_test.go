package tests

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-run/shoal/netoverlay"
	"github.com/shoal-run/shoal/tests/faults"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// overlayTask is a running task with its address on a network.
type overlayTask struct {
	id, host string
	pid      int
	addr     netip.Addr
}

// overlayTasks lists the running containers of svc with their addresses
// on network, from the task list and the hosts' processes.
func overlayTasks(t *testing.T, e *faults.Env, svc, network string) []overlayTask {
	t.Helper()
	var tasks []struct {
		ID       string `json:"id"`
		Networks []struct {
			NetworkName string `json:"network_name"`
			Addr        string `json:"addr"`
		} `json:"networks"`
	}
	if err := json.Unmarshal([]byte(e.C.Managers[0].MustCLI("service", "ps", "--format", "json", svc)), &tasks); err != nil {
		t.Fatal(err)
	}
	addr := map[string]netip.Addr{}
	for _, tk := range tasks {
		for _, n := range tk.Networks {
			if n.NetworkName == network {
				addr[tk.ID] = netip.MustParsePrefix(n.Addr).Addr()
			}
		}
	}
	var out []overlayTask
	for _, n := range e.C.Nodes() {
		for _, c := range n.RunningContainers() {
			if c.Service == svc {
				out = append(out, overlayTask{id: c.Task, host: n.Name, pid: c.Pid, addr: addr[c.Task]})
			}
		}
	}
	return out
}

// spread waits until svc converged with replicas and its tasks run on
// every host, and returns them with their addresses on network.
func spread(t *testing.T, e *faults.Env, svc, network string, replicas int) []overlayTask {
	t.Helper()
	var tasks []overlayTask
	e.Eventually(60*time.Second, func() error {
		if err := e.Converged(svc, replicas); err != nil {
			return err
		}
		tasks = overlayTasks(t, e, svc, network)
		hosts := map[string]bool{}
		for _, w := range tasks {
			hosts[w.host] = true
		}
		if len(hosts) != len(e.C.Nodes()) {
			return fmt.Errorf("%s runs on %v; want all %d hosts", svc, hosts, len(e.C.Nodes()))
		}
		return nil
	})
	return tasks
}

// get asks http://to/ from inside from's network namespace and returns
// the Hostname line of the answer.
func get(from overlayTask, to netip.Addr) (string, error) {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		Proxy: nil, DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return harness.DialIn(ctx, netoverlay.ProcNetns(from.pid), network, addr)
		},
	}}
	return testimage.GetHostname(client, "http://"+to.String()+"/")
}

// ingressShort is the device-name hash of the ingress network, whose
// devices every node keeps.
func ingressShort(e *faults.Env) string { return netoverlay.ShortID(e.Network("ingress").ID) }

// overlayLeftovers reports an overlay device (bridge, VXLAN, container
// veth) of any network but ingress left on a host, or an nftables rule
// there naming one of names (bridges, subnets).
func overlayLeftovers(e *faults.Env, names ...string) error {
	ingress := ingressShort(e)
	for _, n := range e.C.Nodes() {
		out, err := n.Host.Command("ip", "-o", "link").CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip link on %s: %v", n.Name, err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			for _, prefix := range []string{"shc-", "shb-", "shv-"} {
				if strings.Contains(l, ": "+prefix) && !strings.Contains(l, ingress) {
					return fmt.Errorf("%s still has %s", n.Name, strings.TrimSpace(l))
				}
			}
		}
		rules, err := n.Host.Command("nft", "list", "ruleset").CombinedOutput()
		if err != nil {
			return fmt.Errorf("nft list ruleset on %s: %v: %s", n.Name, err, rules)
		}
		for _, name := range names {
			if strings.Contains(string(rules), name) {
				return fmt.Errorf("%s's nftables rules still name %s:\n%s", n.Name, name, rules)
			}
		}
	}
	return nil
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// lookup resolves name with the resolver of from's container, from
// inside its namespace.
func lookup(from overlayTask, name string) ([]string, error) {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		return harness.DialIn(ctx, netoverlay.ProcNetns(from.pid), network, "127.0.0.11:53")
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return r.LookupHost(ctx, name)
}

// Containers of a service on an overlay network, one per host, reach each
// other at their task addresses across hosts (VXLAN between the hosts'
// namespaces) and find each other by name through the node's DNS; a
// service on another network is neither reachable nor resolvable. Each
// node's metrics count its endpoints and the others'.
func TestOverlayAcrossHosts(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 2, "--metrics-addr", "127.0.0.1:9323")
	m := e.C.Managers[0]
	m.MustCLI("network", "create", "app")
	m.MustCLI("network", "create", "--opt", "com.docker.network.driver.mtu=1300", "other")
	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "6", "--network", "app", e.Image)
	m.MustCLI("service", "create", "-d", "--name", "stranger", "--replicas", "1", "--network", "other", e.Image)
	web := spread(t, e, "web", "app", 6)
	e.Eventually(60*time.Second, func() error { return e.Converged("stranger", 1) })
	appID := e.Network("app").ID
	e.Eventually(20*time.Second, func() error {
		for _, n := range e.C.Nodes() {
			here := 0
			for _, w := range web {
				if w.host == n.Name {
					here++
				}
			}
			fams := scrapeWith(t, n.Host.HTTPClient(5*time.Second), "127.0.0.1:9323")
			if v, _ := value(fams, "shoal_node_overlay_endpoints", map[string]string{"network_id": appID, "state": "ready"}); int(v) != here {
				return fmt.Errorf("%s: %v ready endpoints on app; want its %d web tasks", n.Name, v, here)
			}
			if v, _ := value(fams, "shoal_node_overlay_remote_endpoints", map[string]string{"network_id": appID}); int(v) != len(web)-here {
				return fmt.Errorf("%s: %v other nodes' endpoints on app; want %d", n.Name, v, len(web)-here)
			}
		}
		return nil
	})
	for _, from := range web {
		for _, to := range web {
			if from.id == to.id {
				continue
			}
			harness.Eventually(t, 10*time.Second, func() error {
				_, err := get(from, to.addr)
				if err != nil {
					return fmt.Errorf("%s on %s → %s on %s: %v", from.addr, from.host, to.addr, to.host, err)
				}
				return nil
			})
		}
	}
	// Discovery from inside a container: its resolv.conf names the node's
	// DNS server in its namespace; web is the VIP, tasks.web the tasks.
	from := web[0]
	if rc, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/resolv.conf", from.pid)); err != nil || !strings.Contains(string(rc), "nameserver 127.0.0.11") {
		t.Errorf("the container's resolv.conf = %q, %v", rc, err)
	}
	vip := e.ServiceVIP("web", "app")
	harness.Eventually(t, 10*time.Second, func() error {
		got, err := lookup(from, "web")
		if err != nil || fmt.Sprint(got) != fmt.Sprint([]string{vip.String()}) {
			return fmt.Errorf("web resolves to %v, %v; want the VIP %s", got, err, vip)
		}
		var want []string
		for _, w := range web {
			want = append(want, w.addr.String())
		}
		sort.Strings(want)
		got, err = lookup(from, "tasks.web")
		sort.Strings(got)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("tasks.web resolves to %v, %v; want %v", got, err, want)
		}
		return nil
	})
	// 60 requests through the VIP are answered by all six replicas, on
	// every host.
	answered := map[string]int{}
	for i := 0; i < 60; i++ {
		h, err := get(from, vip)
		if err != nil {
			t.Fatalf("request %d through the VIP %s: %v", i+1, vip, err)
		}
		answered[h]++
	}
	if len(answered) != 6 {
		t.Errorf("60 requests through the VIP answered by %d replicas: %v; want all 6", len(answered), answered)
	}
	t.Logf("%d requests through the VIP: %v", sum(answered), answered)
	// Outside the cluster (the registry, in the test network's switch
	// namespace) through the node's address.
	e.Eventually(10*time.Second, func() error {
		client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return harness.DialIn(ctx, netoverlay.ProcNetns(from.pid), network, addr)
			}}}
		resp, err := client.Get("http://" + harness.RegistryAddr + "/v2/")
		if err != nil {
			return fmt.Errorf("a container reaching %s outside the cluster: %v", harness.RegistryAddr, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("registry answered %s", resp.Status)
		}
		return nil
	})
	if got, err := lookup(from, "stranger"); err == nil {
		t.Errorf("stranger (on another network) resolves to %v from web", got)
	}
	stranger := overlayTasks(t, e, "stranger", "other")
	var gone []string // the networks' bridges and subnets, in nft rules
	for _, nw := range []string{"app", "other"} {
		n := e.Network(nw)
		gone = append(gone, "shb-"+netoverlay.ShortID(n.ID), n.Allocation.Subnet)
	}
	defer func() {
		// Removing the services and then the networks leaves nothing of
		// them on any host: no bridge, VXLAN device (with its FDB) or
		// veth, and no nftables rule naming their bridges or subnets.
		m.MustCLI("service", "rm", "web", "stranger")
		for _, nw := range []string{"app", "other"} {
			e.Eventually(30*time.Second, func() error {
				_, err := m.CLI("network", "rm", nw)
				return err
			})
		}
		e.Eventually(20*time.Second, func() error { return overlayLeftovers(e, gone...) })
	}()
	if len(stranger) != 1 {
		t.Fatalf("stranger: %v", stranger)
	}
	// The MTU: the default on app (the underlay's 1500 less VXLAN's 50),
	// the network's own option on other.
	for _, tc := range []struct {
		task overlayTask
		want int
	}{{web[0], 1450}, {stranger[0], 1300}} {
		var mtu int
		if err := harness.InNetns(netoverlay.ProcNetns(tc.task.pid), func() error {
			ifc, err := net.InterfaceByName("eth0")
			if err == nil {
				mtu = ifc.MTU
			}
			return err
		}); err != nil || mtu != tc.want {
			t.Errorf("eth0 of %s: MTU %d (%v); want %d", tc.task.id, mtu, err, tc.want)
		}
	}
	if h, err := get(stranger[0], web[0].addr); err == nil {
		t.Errorf("a container on another network reached web at %s (answered by %s)", web[0].addr, h)
	}
}

// A port published in ingress mode answers on every host's address, a
// host running no replica included, balanced over the replicas on all
// hosts; scaled down, requests go only to the tasks left.
func TestRoutingMesh(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 2)
	m := e.C.Managers[0]
	// Two replicas, kept off manager1, so one host runs none.
	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "2", "--constraint", "node.role==worker", "-p", "8080:80",
		"--publish", "published=8081,target=80,protocol=udp", e.Image)
	e.Eventually(60*time.Second, func() error { return e.Converged("web", 2) })
	client := e.Net.AddHost("client")
	for _, n := range e.C.Nodes() {
		// UDP through the mesh: each datagram from a new socket is a new
		// flow, balanced like a new connection.
		udp := map[string]int{}
		e.Eventually(20*time.Second, func() error {
			h, err := udpAsk(client, n.Host.IP+":8081")
			if err != nil {
				return fmt.Errorf("udp through %s: %v", n.Name, err)
			}
			udp[h]++
			if len(udp) < 2 {
				return fmt.Errorf("%d datagrams to %s:8081/udp answered by %v; want both replicas", sum(udp), n.Name, udp)
			}
			return nil
		})
		answered := map[string]int{}
		e.Eventually(20*time.Second, func() error {
			resp, err := client.HTTPClient(2 * time.Second).Get("http://" + n.Host.IP + ":8080/")
			if err != nil {
				return fmt.Errorf("through %s: %v", n.Name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if h, ok := testimage.AnswerHostname(body); ok {
				answered[h]++
			}
			if len(answered) < 2 {
				return fmt.Errorf("%d requests to %s:8080 answered by %v; want both replicas", sum(answered), n.Name, answered)
			}
			return nil
		})
		t.Logf("%s:8080: %v", n.Name, answered)
	}
	ask := func(host string) (string, error) {
		return testimage.GetHostname(client.HTTPClient(2*time.Second), "http://"+host+":8080/")
	}
	// Scaled to one: once its task stops, every request goes to the one
	// left, and none fails.
	m.MustCLI("service", "scale", "-d", "web=1")
	e.Eventually(30*time.Second, func() error { return e.Converged("web", 1) })
	left := e.C.Workers[0]
	if len(left.RunningContainers()) == 0 {
		left = e.C.Workers[1]
	}
	keep := left.RunningContainers()[0]
	want := ""
	e.Eventually(10*time.Second, func() error {
		for i := 0; i < 10; i++ {
			h, err := ask(e.C.Managers[0].Host.IP)
			if err != nil {
				return err
			}
			if want == "" && strings.HasPrefix(keep.ID, h) {
				want = h
			}
			if h != want {
				return fmt.Errorf("answered by %s after scaling to the one on %s (%s)", h, left.Name, keep.ID[:12])
			}
		}
		return nil
	})
	for _, n := range e.C.Nodes() {
		for i := 0; i < 5; i++ {
			if h, err := ask(n.Host.IP); err != nil || h != want {
				t.Fatalf("after convergence, %s:8080 = %q, %v; want %s", n.Name, h, err, want)
			}
		}
	}

	// Host mode: the port answers only on the host running the task.
	m.MustCLI("service", "create", "-d", "--name", "direct", "--constraint", "node.hostname==worker1",
		"--publish", "published=8081,target=80,mode=host", e.Image)
	e.Eventually(60*time.Second, func() error { return e.Converged("direct", 1) })
	e.Eventually(10*time.Second, func() error {
		resp, err := client.HTTPClient(2 * time.Second).Get("http://" + e.C.Workers[0].Host.IP + ":8081/")
		if err != nil {
			return fmt.Errorf("host-mode port on worker1: %v", err)
		}
		resp.Body.Close()
		return nil
	})
	for _, n := range []*harness.Node{e.C.Managers[0], e.C.Workers[1]} {
		if resp, err := client.HTTPClient(500 * time.Millisecond).Get("http://" + n.Host.IP + ":8081/"); err == nil {
			resp.Body.Close()
			t.Errorf("host-mode port 8081 answered on %s, which runs no task of it", n.Name)
		}
	}
}

// rawGet sends one HTTP/1.1 request on an open connection and returns the
// Hostname line of the answer.
func rawGet(c net.Conn) (string, error) {
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: web\r\n\r\n")); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if h, ok := testimage.AnswerHostname(body); ok {
		return h, nil
	}
	return "", fmt.Errorf("no Hostname in %q", body)
}

// A host that dies takes its tasks out of DNS, the VIPs and the routing
// mesh within seconds, and requests keep succeeding; a connection
// through a VIP survives the restart of the daemons at both its ends.
func TestOverlayHostLossAndDaemonRestart(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 2)
	m := e.C.Managers[0]
	m.MustCLI("network", "create", "app")
	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "3", "--network", "app", "-p", "8080:80", e.Image)
	web := spread(t, e, "web", "app", 3)
	var from, remote overlayTask
	for _, w := range web {
		switch w.host {
		case "manager1":
			from = w
		case "worker1":
			remote = w
		}
	}
	vip := e.ServiceVIP("web", "app")

	// A connection through the VIP, pinned to one backend by conntrack.
	var conn net.Conn
	e.Eventually(10*time.Second, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn, err = harness.DialIn(ctx, netoverlay.ProcNetns(from.pid), "tcp", vip.String()+":80")
		return err
	})
	defer conn.Close()
	first, err := rawGet(conn)
	if err != nil {
		t.Fatalf("through the VIP: %v", err)
	}
	for _, n := range []*harness.Node{m, e.C.Workers[0], e.C.Workers[1]} {
		n.Stop()
		n.Start()
	}
	e.AllReady(30 * time.Second)
	again, err := rawGet(conn)
	if err != nil || again != first {
		t.Fatalf("the connection through the VIP after every daemon restarted: %q, %v; want %q", again, err, first)
	}

	// worker2 dies: its task leaves DNS, the VIP and the mesh.
	client := e.Net.AddHost("client")
	victim := e.C.Workers[1]
	var dead overlayTask
	for _, w := range web {
		if w.host == victim.Name {
			dead = w
		}
	}
	killed := time.Now()
	victim.KillHost()
	e.Eventually(15*time.Second, func() error {
		got, err := lookup(from, "tasks.web")
		if err != nil {
			return err
		}
		for _, a := range got {
			if a == dead.addr.String() {
				return fmt.Errorf("tasks.web still lists %s of the dead host: %v", dead.addr, got)
			}
		}
		return nil
	})
	gone := time.Since(killed)
	ok := 0
	e.Eventually(15*time.Second, func() error {
		for ; ok < 20; ok++ {
			resp, err := client.HTTPClient(2 * time.Second).Get("http://" + m.Host.IP + ":8080/")
			if err != nil {
				ok = 0
				return fmt.Errorf("through the mesh after the host died: %v", err)
			}
			resp.Body.Close()
			if _, err := get(from, vip); err != nil {
				ok = 0
				return fmt.Errorf("through the VIP after the host died: %v", err)
			}
		}
		return nil
	})
	t.Logf("measured: the dead host's task left tasks.web %s after the kill; then 20 requests in a row through the mesh and the VIP succeeded (%s after the kill); the connection through the VIP kept its backend (%s) across daemon restarts; remote task %s", gone.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond), first, remote.addr)
}

// A daemon that was down while its tasks went removes their network's
// devices once it is back, and keeps the ingress network's.
func TestOverlayLeftoversPrunedAfterRestart(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 1)
	m, w := e.C.Managers[0], e.C.Workers[0]
	m.MustCLI("network", "create", "app")
	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "1", "--network", "app", "--constraint", "node.role==worker", e.Image)
	e.Eventually(60*time.Second, func() error { return e.Converged("web", 1) })
	app := netoverlay.ShortID(e.Network("app").ID)
	links := func() string {
		out, err := w.Host.Command("ip", "-o", "link").CombinedOutput()
		if err != nil {
			t.Fatalf("ip link: %v", err)
		}
		return string(out)
	}
	if !strings.Contains(links(), "shb-"+app) {
		t.Fatalf("no bridge of app on the worker:\n%s", links())
	}
	// The daemon dies (its container lives on); the service goes.
	w.Kill()
	m.MustCLI("service", "rm", "web")
	w.Start()
	e.Eventually(30*time.Second, func() error {
		l := links()
		if strings.Contains(l, "shb-"+app) || strings.Contains(l, "shv-"+app) {
			return fmt.Errorf("the worker still has app's devices")
		}
		if !strings.Contains(l, "shb-"+ingressShort(e)) {
			return fmt.Errorf("the worker lost the ingress bridge")
		}
		if n := len(w.RunningContainers()); n != 0 {
			return fmt.Errorf("%d containers still run on the worker", n)
		}
		return nil
	})
}

// answeredBy asks the VIP n times from a container and returns who
// answered, failing on the first error.
func answeredBy(from overlayTask, vip netip.Addr, n int) (map[string]int, error) {
	out := map[string]int{}
	for i := 0; i < n; i++ {
		h, err := get(from, vip)
		if err != nil {
			return out, fmt.Errorf("request %d through the VIP %s: %v", i+1, vip, err)
		}
		out[h]++
	}
	return out, nil
}

// With every manager down the data plane still follows the cluster
// through gossip alone: a worker daemon restarted meanwhile plugs its
// running containers in again and announces them (from their labels and
// the gossip keys and peers it saved), and a host that dies leaves DNS,
// the VIP and the routing mesh.
func TestOverlayWithoutManagers(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 3)
	m := e.C.Managers[0]
	m.MustCLI("network", "create", "app")
	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "3", "--network", "app", "-p", "8080:80",
		"--constraint", "node.role==worker", "--replicas-max-per-node", "1", e.Image)
	var web []overlayTask
	e.Eventually(60*time.Second, func() error {
		if err := e.Converged("web", 3); err != nil {
			return err
		}
		web = overlayTasks(t, e, "web", "app")
		if len(web) != 3 {
			return fmt.Errorf("%d web containers run; want 3", len(web))
		}
		return nil
	})
	byHost := map[string]overlayTask{}
	for _, w := range web {
		byHost[w.host] = w
	}
	from, restarted, dead := byHost["worker1"], e.C.Workers[1], e.C.Workers[2]
	// A task that is not restarted when it ends, on worker1.
	m.MustCLI("service", "create", "-d", "--name", "once", "--network", "app", "--restart-condition", "none",
		"--constraint", "node.hostname==worker1", e.Image)
	var once []overlayTask
	e.Eventually(60*time.Second, func() error {
		if err := e.Converged("once", 1); err != nil {
			return err
		}
		if once = overlayTasks(t, e, "once", "app"); len(once) != 1 {
			return fmt.Errorf("once runs %d containers", len(once))
		}
		if got, err := lookup(from, "tasks.once"); err != nil || len(got) != 1 {
			return fmt.Errorf("tasks.once = %v, %v; want its one task", got, err)
		}
		return nil
	})
	vip := e.ServiceVIP("web", "app")
	e.Eventually(10*time.Second, func() error {
		got, err := answeredBy(from, vip, 30)
		if err != nil || len(got) != 3 {
			return fmt.Errorf("30 requests through the VIP answered by %v, %v; want all 3 replicas", got, err)
		}
		return nil
	})

	m.Kill()
	// With no manager to remove it, the ended task leaves DNS (and the
	// VIPs) when its workload ends.
	if err := syscall.Kill(once[0].pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.Eventually(10*time.Second, func() error {
		if got, err := lookup(from, "tasks.once"); err == nil {
			return fmt.Errorf("tasks.once still resolves to %v after its only task ended", got)
		}
		return nil
	})
	// worker2's daemon dies: gossip takes its replica out (its container
	// lives on, but nothing vouches for it).
	restarted.Kill()
	e.Eventually(20*time.Second, func() error {
		got, err := lookup(from, "tasks.web")
		if err != nil || len(got) != 2 {
			return fmt.Errorf("tasks.web = %v, %v; want 2 addresses once %s's daemon is dead", got, err, restarted.Name)
		}
		return nil
	})
	// No manager answers the restarted daemon; its replica must be
	// announced again: in tasks.web and answering through the VIP.
	restarted.Start()
	e.Eventually(20*time.Second, func() error {
		got, err := lookup(from, "tasks.web")
		if err != nil || len(got) != 3 {
			return fmt.Errorf("tasks.web = %v, %v; want 3 addresses", got, err)
		}
		ans, err := answeredBy(from, vip, 30)
		if err != nil || len(ans) != 3 {
			return fmt.Errorf("after %s's daemon restarted with no manager: 30 requests through the VIP answered by %v, %v; want all 3 replicas", restarted.Name, ans, err)
		}
		return nil
	})

	client := e.Net.AddHost("client")
	killed := time.Now()
	dead.KillHost()
	e.Eventually(15*time.Second, func() error {
		got, err := lookup(from, "tasks.web")
		if err != nil {
			return err
		}
		for _, a := range got {
			if a == byHost[dead.Name].addr.String() {
				return fmt.Errorf("tasks.web still lists %s of the dead host: %v", a, got)
			}
		}
		if len(got) != 2 {
			return fmt.Errorf("tasks.web = %v; want the 2 replicas left", got)
		}
		return nil
	})
	gone := time.Since(killed)
	e.Eventually(15*time.Second, func() error {
		for i := 0; i < 20; i++ {
			resp, err := client.HTTPClient(2 * time.Second).Get("http://" + e.C.Workers[0].Host.IP + ":8080/")
			if err != nil {
				return fmt.Errorf("through the mesh after the host died: %v", err)
			}
			resp.Body.Close()
		}
		ans, err := answeredBy(from, vip, 20)
		if err != nil || len(ans) != 2 {
			return fmt.Errorf("through the VIP after the host died: answered by %v, %v; want the 2 replicas left", ans, err)
		}
		return nil
	})
	t.Logf("measured, with no manager: the dead host's replica left tasks.web %s after the kill; then 20 requests through the mesh and 20 through the VIP succeeded, %s after it", gone.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
}

// nodeAttachments lists the network attachments the cluster keeps for a
// node: ID → address.
func nodeAttachments(t *testing.T, m *harness.Node, node string) map[string]string {
	t.Helper()
	var nodes []struct {
		Attachments []struct {
			ID      string `json:"id"`
			Network struct {
				Addr string `json:"addr"`
			} `json:"network"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal([]byte(m.MustCLI("node", "inspect", node)), &nodes); err != nil || len(nodes) != 1 {
		t.Fatalf("node inspect %s: %v", node, err)
	}
	out := map[string]string{}
	for _, a := range nodes[0].Attachments {
		out[a.ID] = a.Network.Addr
	}
	return out
}

// A standalone container (shoal run --network) joins an attachable
// network: it finds and reaches the services on it through DNS and the
// VIP, and they find and reach it by its name, across hosts. A network
// that is not attachable refuses it and nothing is created; the network
// cannot be removed while the container is on it; its address goes back
// when the container is removed, or, for a container that removed
// itself, after the next heartbeat.
func TestAttachableNetwork(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 1)
	m, w := e.C.Managers[0], e.C.Workers[0]
	m.MustCLI("network", "create", "--attachable", "app")
	m.MustCLI("network", "create", "closed")
	app := e.Network("app")
	appGone := []string{"shb-" + netoverlay.ShortID(app.ID), app.Allocation.Subnet}
	m.MustCLI("service", "create", "-d", "--name", "web", "--replicas", "2", "--network", "app", e.Image)
	web := spread(t, e, "web", "app", 2)

	out, err := w.CLI("run", "-d", "--name", "nope", "--network", "closed", e.Image)
	if err == nil || !strings.Contains(err.Error(), `network "closed" is not attachable`) || strings.Contains(err.Error()+out, "goroutine") {
		t.Fatalf("shoal run --network closed: %v (output %q); want a clear refusal", err, out)
	}
	if ps := w.MustCLI("ps", "-a"); strings.Contains(ps, "nope") {
		t.Errorf("the refused run left a container:\n%s", ps)
	}
	if got := nodeAttachments(t, m, w.Name); len(got) != 0 {
		t.Errorf("the refused run left attachments: %v", got)
	}

	w.MustCLI("run", "-d", "--name", "debug", "--network", "app", e.Image)
	var debug overlayTask
	e.Eventually(20*time.Second, func() error {
		for _, c := range w.RunningContainers() {
			if c.Name == "debug" {
				debug = overlayTask{id: c.ID, host: w.Name, pid: c.Pid}
				return nil
			}
		}
		return fmt.Errorf("debug does not run on %s", w.Name)
	})
	atts := nodeAttachments(t, m, w.Name)
	if len(atts) != 1 {
		t.Fatalf("%s has attachments %v; want one", w.Name, atts)
	}
	for _, a := range atts {
		debug.addr = netip.MustParsePrefix(a).Addr()
	}
	for _, wt := range web {
		if wt.addr == debug.addr {
			t.Fatalf("debug got %s, the address of task %s", debug.addr, wt.id)
		}
	}
	vip := e.ServiceVIP("web", "app")
	e.Eventually(10*time.Second, func() error {
		got, err := lookup(debug, "web")
		if err != nil || fmt.Sprint(got) != fmt.Sprint([]string{vip.String()}) {
			return fmt.Errorf("from debug, web resolves to %v, %v; want the VIP %s", got, err, vip)
		}
		if got, err := lookup(debug, "tasks.web"); err != nil || len(got) != 2 {
			return fmt.Errorf("from debug, tasks.web = %v, %v; want 2 addresses", got, err)
		}
		ans, err := answeredBy(debug, vip, 20)
		if err != nil || len(ans) != 2 {
			return fmt.Errorf("from debug, 20 requests through the VIP answered by %v, %v; want both replicas", ans, err)
		}
		// The replica on the other host finds debug by its name and
		// reaches it over VXLAN.
		for _, wt := range web {
			if wt.host == w.Name {
				continue
			}
			got, err := lookup(wt, "debug")
			if err != nil || fmt.Sprint(got) != fmt.Sprint([]string{debug.addr.String()}) {
				return fmt.Errorf("from %s on %s, debug resolves to %v, %v; want %s", wt.id, wt.host, got, err, debug.addr)
			}
			if _, err := get(wt, debug.addr); err != nil {
				return fmt.Errorf("from %s on %s to debug at %s: %v", wt.id, wt.host, debug.addr, err)
			}
		}
		return nil
	})

	// A restarted daemon plugs its standalone container in again. Killed,
	// its gossip record goes and the other host no longer finds debug;
	// started again, the replica there finds and reaches it.
	var other overlayTask
	for _, wt := range web {
		if wt.host != w.Name {
			other = wt
		}
	}
	w.Kill()
	e.Eventually(20*time.Second, func() error {
		if got, err := lookup(other, "debug"); err == nil {
			return fmt.Errorf("debug still resolves to %v with %s's daemon dead", got, w.Name)
		}
		return nil
	})
	w.Start()
	e.AllReady(30 * time.Second)
	e.Eventually(20*time.Second, func() error {
		for _, wt := range web {
			if wt.host == w.Name {
				continue
			}
			if got, err := lookup(wt, "debug"); err != nil || fmt.Sprint(got) != fmt.Sprint([]string{debug.addr.String()}) {
				return fmt.Errorf("after %s's daemon restarted, debug resolves to %v, %v; want %s", w.Name, got, err, debug.addr)
			}
			if _, err := get(wt, debug.addr); err != nil {
				return fmt.Errorf("after %s's daemon restarted, to debug at %s: %v", w.Name, debug.addr, err)
			}
		}
		if got, err := lookup(debug, "tasks.web"); err != nil || len(got) != 2 {
			return fmt.Errorf("after the restart, from debug, tasks.web = %v, %v", got, err)
		}
		return nil
	})
	// --endpoint-mode dnsrr: no VIP; the name is the tasks' addresses.
	m.MustCLI("service", "create", "-d", "--name", "db", "--replicas", "2", "--network", "app", "--endpoint-mode", "dnsrr", e.Image)
	e.Eventually(60*time.Second, func() error {
		if err := e.Converged("db", 2); err != nil {
			return err
		}
		var want []string
		for _, d := range overlayTasks(t, e, "db", "app") {
			want = append(want, d.addr.String())
		}
		sort.Strings(want)
		got, err := lookup(debug, "db")
		sort.Strings(got)
		if err != nil || len(want) != 2 || fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("from debug, db (dnsrr) resolves to %v, %v; want its tasks %v", got, err, want)
		}
		return nil
	})
	m.MustCLI("service", "rm", "web", "db")
	e.Eventually(30*time.Second, func() error {
		_, err := m.CLI("network", "rm", "app")
		if err == nil {
			return fmt.Errorf("network rm app succeeded with debug on it")
		}
		if !strings.Contains(err.Error(), "in use by container debug on "+w.Name) {
			return fmt.Errorf("network rm app: %v", err)
		}
		return nil
	})
	w.MustCLI("rm", "-f", "debug")
	if got := nodeAttachments(t, m, w.Name); len(got) != 0 {
		t.Errorf("after shoal rm debug, %s still has attachments %v", w.Name, got)
	}

	// A container that removes itself when it exits (--rm -d) gives its
	// address back through the heartbeat's reconciliation.
	w.MustCLI("run", "-d", "--rm", "--name", "oneshot", "--network", "app", e.Image, "exit", "0")
	e.Eventually(15*time.Second, func() error {
		if ps := w.MustCLI("ps", "-a"); strings.Contains(ps, "oneshot") {
			return fmt.Errorf("the --rm container is still there:\n%s", ps)
		}
		if got := nodeAttachments(t, m, w.Name); len(got) != 0 {
			return fmt.Errorf("%s still has attachments %v after its --rm container went", w.Name, got)
		}
		return nil
	})
	e.Eventually(30*time.Second, func() error {
		_, err := m.CLI("network", "rm", "app")
		return err
	})
	e.Eventually(20*time.Second, func() error { return overlayLeftovers(e, appGone...) })
}

// udpAsk sends one datagram to addr from host and returns the hostname
// in the answer.
func udpAsk(host *harness.Host, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := host.DialContext(ctx, "udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("who?")); err != nil {
		return "", err
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	if h, ok := testimage.AnswerHostname(buf[:n]); ok {
		return h, nil
	}
	return "", fmt.Errorf("no Hostname in %q", buf[:n])
}

// A task that stops keeps the connections it has: its endpoints leave
// DNS and the VIPs before SIGTERM, but the other hosts keep it reachable,
// so a request in flight from another host is still answered while the
// task shuts down.
func TestOverlayStoppingTaskKeepsItsConnections(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 1)
	m := e.C.Managers[0]
	m.MustCLI("network", "create", "app")
	m.MustCLI("service", "create", "-d", "--name", "web", "--network", "app", "--constraint", "node.role==worker", e.Image)
	m.MustCLI("service", "create", "-d", "--name", "cli", "--network", "app", "--constraint", "node.role==manager", e.Image)
	var web, cli overlayTask
	e.Eventually(60*time.Second, func() error {
		for _, s := range []string{"web", "cli"} {
			if err := e.Converged(s, 1); err != nil {
				return err
			}
		}
		w, c := overlayTasks(t, e, "web", "app"), overlayTasks(t, e, "cli", "app")
		if len(w) != 1 || len(c) != 1 {
			return fmt.Errorf("web %v, cli %v", w, c)
		}
		web, cli = w[0], c[0]
		if got, err := lookup(cli, "tasks.web"); err != nil || len(got) != 1 {
			return fmt.Errorf("tasks.web = %v, %v", got, err)
		}
		return nil
	})
	// A download across hosts, read only a little: whoami is in the
	// middle of answering, which its graceful shutdown waits for (up to
	// 5 s).
	var conn net.Conn
	e.Eventually(10*time.Second, func() (err error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		conn, err = harness.DialIn(ctx, netoverlay.ProcNetns(cli.pid), "tcp", web.addr.String()+":80")
		return err
	})
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(conn, "GET /bytes?mb=64 HTTP/1.1\r\nHost: web\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("the download's answer: %v", err)
	}
	defer resp.Body.Close()
	if _, err := io.CopyN(io.Discard, resp.Body, 1<<20); err != nil {
		t.Fatalf("the download's first MiB: %v", err)
	}
	m.MustCLI("service", "rm", "web")
	// Out of DNS (so out of the VIPs too: the same change) on cli's host.
	e.Eventually(10*time.Second, func() error {
		if got, err := lookup(cli, "tasks.web"); err == nil {
			return fmt.Errorf("tasks.web still %v after service rm", got)
		}
		return nil
	})
	if len(e.C.Workers[0].RunningContainers()) == 0 {
		t.Fatal("web's container was gone before the test could finish its request; its shutdown did not wait for it")
	}
	// The rest arrives, from a task that takes no new connections.
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != 63<<20 {
		t.Fatalf("the download from the stopping task: %d more bytes, %v; want the remaining %d", n, err, 63<<20)
	}
}
