// Command democluster is `make demo`: it starts a real Shoal cluster on
// this machine, shows it doing its job, kills a host and shows the cluster
// heal, then cleans everything up (also on Ctrl-C).
//
// Each of the three hosts is a network namespace on a private test bridge
// (nothing is added to the machine's own namespace), running a real
// `shoal daemon` joined with real tokens over mutual TLS. The whoami image
// is built here and served from a registry inside the test network. The
// requests come from a fourth namespace, a client on the same network,
// to port 8080 of each host in turn: the routing mesh answers on every
// host and balances over the replicas on all of them.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// tb lets the harness run outside `go test`: failures abort the demo and
// cleanups run at exit, or on Ctrl-C.
type tb struct {
	mu       sync.Mutex
	dirs     []string
	cleanups []func()
	failed   bool
	once     sync.Once
}

type abort struct{ msg string }

func (t *tb) Helper()                 {}
func (t *tb) Logf(f string, a ...any) {}
func (t *tb) Fatal(a ...any)          { t.setFailed(); panic(abort{fmt.Sprint(a...)}) }
func (t *tb) Fatalf(f string, a ...any) {
	t.setFailed()
	panic(abort{fmt.Sprintf(f, a...)})
}
func (t *tb) setFailed() { t.mu.Lock(); t.failed = true; t.mu.Unlock() }
func (t *tb) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}
func (t *tb) Failed() bool { t.mu.Lock(); defer t.mu.Unlock(); return t.failed }
func (t *tb) TempDir() string {
	d, err := os.MkdirTemp("", "shoal-demo-")
	if err != nil {
		t.Fatal(err)
	}
	t.mu.Lock()
	t.dirs = append(t.dirs, d)
	t.mu.Unlock()
	return d
}

// close runs the cleanups once: kills the daemons and containers, removes
// the namespaces, mounts, cgroups and data.
func (t *tb) close() {
	t.once.Do(func() {
		fmt.Println("\n==> Cleaning up: stopping the daemons and containers, removing the namespaces and data.")
		t.mu.Lock()
		cleanups, dirs := t.cleanups, t.dirs
		t.mu.Unlock()
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	})
}

func main() {
	wait := flag.Bool("wait", false, "keep the cluster running until Ctrl-C after the demo")
	replicas := flag.Int("replicas", 6, "replicas of the web service")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: run as root (sudo make demo): the hosts are network namespaces and the replicas real containers")
		os.Exit(1)
	}
	t := &tb{}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		if !*wait {
			fmt.Println("\n==> Interrupted.")
			t.close()
			os.Exit(130)
		}
	}()
	code := 0
	func() {
		defer func() {
			if r := recover(); r != nil {
				if a, ok := r.(abort); ok {
					fmt.Fprintln(os.Stderr, "demo failed:", a.msg)
					code = 1
					return
				}
				panic(r)
			}
		}()
		run(ctx, t, *replicas, *wait)
	}()
	t.close()
	harness.RemoveBinary()
	os.Exit(code)
}

// indent prints a file's lines as the demo's output does.
func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}

func step(format string, a ...any) { fmt.Printf("\n==> "+format+"\n", a...) }

func show(n *harness.Node, args ...string) string {
	fmt.Printf("$ shoal %s\n", strings.Join(args, " "))
	out, err := n.CLI(args...)
	if err != nil {
		msg := err.Error()
		if i := strings.Index(msg, "Error: "); i >= 0 {
			msg = msg[i:]
		}
		fmt.Println(msg)
		return ""
	}
	fmt.Print(out)
	return out
}

// dockerCLI is the docker CLI the demo drives Shoal's Docker API with.
const dockerCLI = "/usr/local/bin/docker"

func dockerSocket(n *harness.Node) string {
	return filepath.Join(filepath.Dir(n.Socket), "docker.sock")
}

// showDocker runs the docker CLI on n's Docker API socket and prints it;
// without a docker CLI on the machine, the same command of shoal's.
func showDocker(n *harness.Node, args ...string) string {
	if _, err := os.Stat(dockerCLI); err != nil {
		return show(n, args...)
	}
	fmt.Printf("$ DOCKER_HOST=unix://%s docker %s\n", dockerSocket(n), strings.Join(args, " "))
	cmd := exec.Command(dockerCLI, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+dockerSocket(n), "DOCKER_CLI_HINTS=false")
	out, err := cmd.CombinedOutput()
	fmt.Print(string(out))
	if err != nil {
		fmt.Println(err)
	}
	return string(out)
}

// replica is a running container of the service, found on its host.
type replica struct {
	host string
	pid  int
	task string
}

func replicas(c *harness.Cluster, svc string) []replica {
	var out []replica
	for _, n := range c.Nodes() {
		if !n.Running() {
			continue
		}
		for _, ct := range n.RunningContainers() {
			if ct.Service == svc {
				out = append(out, replica{host: n.Name, pid: ct.Pid, task: ct.Task})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].host+out[i].task < out[j].host+out[j].task })
	return out
}

// describeFile says what a file in a container's root is: its mode,
// size and file system, never its content.
func describeFile(pid int, path string) string {
	p := fmt.Sprintf("/proc/%d/root%s", pid, path)
	st, err := os.Stat(p)
	if err != nil {
		return path + ": " + err.Error()
	}
	fs := "not tmpfs"
	var sfs syscall.Statfs_t
	if syscall.Statfs(p, &sfs) == nil && sfs.Type == 0x01021994 { // TMPFS_MAGIC
		fs = "tmpfs"
	}
	return fmt.Sprintf("%s %04o %d bytes on %s", path, st.Mode().Perm(), st.Size(), fs)
}

// randomWord is a throw-away password for the demo's secret.
func randomWord() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// hostOf says which host runs the container whose hostname (its ID's
// first 12 characters) answered.
func hostOf(c *harness.Cluster, hostname string) string {
	for _, n := range c.Nodes() {
		for _, ct := range n.RunningContainers() {
			if strings.HasPrefix(ct.ID, hostname) {
				return n.Name
			}
		}
	}
	return "?"
}

// ask sends one HTTP request from the client host to addr and returns
// the hostname of the replica that answered.
func ask(client *harness.Host, addr string) (string, error) {
	return testimage.GetHostname(client.HTTPClient(2*time.Second), "http://"+addr+"/")
}

// requests sends n requests from the client to port 8080 of the hosts in
// turn.
func requests(c *harness.Cluster, client *harness.Host, hosts []*harness.Node, n int) {
	seen := map[string]bool{}
	for i := 0; i < n; i++ {
		via := hosts[i%len(hosts)]
		addr := via.Host.IP + ":8080"
		h, err := ask(client, addr)
		if err != nil {
			fmt.Printf("    request %2d → %-15s %v\n", i+1, addr, err)
			continue
		}
		seen[h] = true
		fmt.Printf("    request %2d → %-15s (%s) answered by replica %s on %s\n", i+1, addr, via.Name, h, hostOf(c, h))
	}
	fmt.Printf("    %d requests answered by %d different replicas\n", n, len(seen))
}

func run(ctx context.Context, t *tb, nrep int, wait bool) {
	step("Making 3 hosts: network namespaces on a private bridge (10.99.0.0/24), nothing touches this machine's own network")
	net := harness.NewNet(t)
	step("Building the whoami image and serving it from a registry inside the test network at %s", harness.RegistryAddr)
	img := net.ServeImage(testimage.Options{Tag: "1"})
	fmt.Printf("    %s\n", img)

	step("Starting a shoal daemon on each host and forming the cluster: swarm init on host1, swarm join with the manager token on the others")
	var nodes []*harness.Node
	for i := 1; i <= 3; i++ {
		n := net.AddHost(fmt.Sprintf("host%d", i)).NewNode(fmt.Sprintf("host%d", i), "--log-level", "info")
		n.Start()
		nodes = append(nodes, n)
	}
	c := harness.NewCluster(t, nodes, nil)
	for _, n := range nodes {
		fmt.Printf("    %-6s %-10s pid %-7d socket %s\n", n.Name, n.Host.IP, n.PID(), n.Socket)
	}
	m := nodes[0]
	harness.Eventually(t, 20*time.Second, func() error {
		out, err := m.CLI("node", "ls")
		if err != nil || strings.Count(out, "Ready") != 3 || !strings.Contains(out, "Leader") {
			return errors.New("cluster not ready")
		}
		return nil
	})
	show(m, "node", "ls")

	step("A secret and a config for it: stored encrypted by the managers, handed only to the hosts that run its tasks")
	secretFile, confFile := filepath.Join(t.TempDir(), "db_password"), filepath.Join(t.TempDir(), "web.conf")
	if err := os.WriteFile(secretFile, []byte(randomWord()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(confFile, []byte("greeting = hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	show(m, "secret", "create", "db_password", secretFile)
	show(m, "config", "create", "web.conf", confFile)
	show(m, "secret", "ls")

	step("Deploying the web service: %d replicas of real containers, spread over the hosts", nrep)
	show(m, "service", "create", "--name", "web", "--replicas", fmt.Sprint(nrep), "--publish", "8080:80",
		"--health-http", ":80/health", "--health-interval", "1s",
		"--secret", "db_password", "--config", "source=web.conf,target=/etc/web.conf", img)
	running := func() error {
		if got := len(replicas(c, "web")); got != nrep {
			return fmt.Errorf("%d of %d replicas run", got, nrep)
		}
		out, err := m.CLI("service", "ls")
		if err != nil || !strings.Contains(out, fmt.Sprintf("%d/%d", nrep, nrep)) {
			return fmt.Errorf("not converged: %s", out)
		}
		return nil
	}
	harness.Eventually(t, 60*time.Second, running)
	show(m, "service", "ls")
	show(m, "service", "inspect", "--format", "pinned to {{.Spec.Task.Container.Image}}", "web")
	show(m, "service", "ps", "web")
	fmt.Println("    in each replica (read through /proc/PID/root; the secret's value is not printed):")
	for _, r := range replicas(c, "web") {
		fmt.Printf("    %-6s %s  %s  %s\n", r.host, r.task[:12], describeFile(r.pid, "/run/secrets/db_password"), describeFile(r.pid, "/etc/web.conf"))
	}

	step("Deploying a global service: one agent container on every host, following hosts as they come and go")
	show(m, "service", "create", "--name", "agent", "--mode", "global", img)
	agentOnEvery := func(hosts []*harness.Node) error {
		on := map[string]int{}
		for _, r := range replicas(c, "agent") {
			on[r.host]++
		}
		for _, n := range hosts {
			if on[n.Name] != 1 {
				return fmt.Errorf("agent containers per host %v; want one on each of %d hosts", on, len(hosts))
			}
		}
		return nil
	}
	harness.Eventually(t, 60*time.Second, func() error { return agentOnEvery(nodes) })
	show(m, "service", "ps", "agent")

	step("A stateful service: a named volume on host2, the service pinned there by a placement constraint; the data outlives its container")
	show(m, "service", "create", "-d", "--name", "notes", "--constraint", "node.id=="+nodes[1].ID(),
		"--mount", "type=volume,source=notes,target=/data", "--entrypoint", "/bin/sh", img,
		"-c", `echo "container $(hostname) started" >> /data/log; exec sleep 1000000`)
	var first replica
	harness.Eventually(t, 60*time.Second, func() error {
		rs := replicas(c, "notes")
		if len(rs) != 1 {
			return fmt.Errorf("%d notes containers", len(rs))
		}
		first = rs[0]
		return nil
	})
	fmt.Printf("    kill -9 of its process %d; the task that replaces it gets the same volume:\n", first.pid)
	_ = syscall.Kill(first.pid, syscall.SIGKILL)
	var log string
	harness.Eventually(t, 60*time.Second, func() error {
		rs := replicas(c, "notes")
		if len(rs) != 1 || rs[0].pid == first.pid {
			return errors.New("not restarted yet")
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/data/log", rs[0].pid))
		if err != nil || strings.Count(string(b), "started") != 2 {
			return fmt.Errorf("/data/log: %q %v", b, err)
		}
		log = string(b)
		return nil
	})
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		fmt.Printf("    /data/log: %s\n", l)
	}
	show(nodes[1], "volume", "ls")

	client := net.AddHost("client")
	step("Sending requests from a client (%s) to port 8080 of each host in turn: the routing mesh answers on every host", client.IP)
	requests(c, client, nodes, 2*nrep)

	step("The fleet's logs in one stream: service logs on host3 gathers every replica's last line from every host")
	show(nodes[2], "service", "logs", "--tail", "1", "web")

	step("The docker CLI itself drives the cluster through Shoal's Docker API (%s on host1): docker stack deploy of a compose file, its networks and services named shop_*", dockerSocket(m))
	stackFile := filepath.Join(t.TempDir(), "docker-compose.yml")
	compose := "version: \"3.8\"\nservices:\n  front:\n    image: " + img + "\n    ports: [\"8090:80\"]\n    networks: [shop]\n    deploy: {replicas: 2}\n" +
		"  api:\n    image: " + img + "\n    networks: [shop]\n    deploy: {replicas: 2, placement: {max_replicas_per_node: 1}}\nnetworks:\n  shop: {}\n"
	if err := os.WriteFile(stackFile, []byte(compose), 0o600); err != nil {
		t.Fatal(err)
	}
	fmt.Print(indent(compose))
	showDocker(m, "node", "ls")
	showDocker(m, "stack", "deploy", "-d", "-c", stackFile, "shop")
	harness.Eventually(t, 60*time.Second, func() error {
		if err := c.Converged("shop_front", 2); err != nil {
			return err
		}
		return c.Converged("shop_api", 2)
	})
	showDocker(m, "stack", "services", "shop")
	if resp, err := client.HTTPClient(2 * time.Second).Get("http://" + nodes[2].Host.IP + ":8090/"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		h, _ := testimage.AnswerHostname(body)
		fmt.Printf("    GET %s:8090 → answered by shop_front replica %s\n", nodes[2].Host.IP, h)
	} else {
		fmt.Printf("    GET %s:8090 → %v\n", nodes[2].Host.IP, err)
	}
	showDocker(m, "stack", "rm", "shop")

	step("A zero-downtime rolling update to image 2: start-first, two at a time, each new replica in the mesh only once its health check passes, while the client keeps asking every host")
	img2 := net.ServeImage(testimage.Options{Tag: "2"})
	var urls []string
	for _, n := range nodes {
		urls = append(urls, "http://"+n.Host.IP+":8080/")
	}
	load := harness.StartLoad(t, harness.LoadSpec{Host: client, URLs: urls, Every: 20 * time.Millisecond})
	old := map[int]bool{}
	for _, r := range replicas(c, "web") {
		old[r.pid] = true
	}
	show(m, "service", "update", "--image", img2, "--update-order", "start-first", "--update-parallelism", "2", "--update-monitor", "1s", "web")
	rep := load.Stop()
	replaced := 0
	for _, r := range replicas(c, "web") {
		if !old[r.pid] {
			replaced++
		}
	}
	fmt.Printf("    %d requests during the update, %d failed; %d of %d replicas are new containers\n", rep.OK()+rep.Failed(), rep.Failed(), replaced, nrep)
	show(m, "service", "ps", "web")

	victim := nodes[2]
	lost := 0
	for _, r := range replicas(c, "web") {
		if r.host == victim.Name {
			lost++
		}
	}
	step("Killing %s: its daemon and its %d containers, SIGKILL, as if the machine died", victim.Name, lost)
	killed := time.Now()
	victim.KillHost()
	harness.Eventually(t, 60*time.Second, func() error {
		if err := running(); err != nil {
			return err
		}
		for _, r := range replicas(c, "web") {
			if r.host == victim.Name {
				return errors.New("replicas still on the dead host")
			}
		}
		return nil
	})
	healed := time.Since(killed)
	fmt.Printf("    all %d replicas running again on the surviving hosts %d ms after %s died\n", nrep, healed.Milliseconds(), victim.Name)
	fmt.Println("    (Docker Swarm, by default, waits about 15 s before it even declares a node down)")
	show(m, "node", "ls")
	show(m, "service", "ps", "web")

	step("Requests again, to the two surviving hosts: every one answered")
	requests(c, client, nodes[:2], 2*nrep)

	step("Bringing %s back: it rejoins by itself; the cluster keeps web's replicas where they run now", victim.Name)
	victim.Start()
	harness.Eventually(t, 30*time.Second, func() error {
		out, err := m.CLI("node", "ls")
		if err != nil || strings.Count(out, "Ready") != 3 || strings.Contains(out, "Unreachable") {
			return errors.New("not back")
		}
		return nil
	})
	show(m, "node", "ls")
	harness.Eventually(t, 30*time.Second, func() error { return agentOnEvery(nodes) })
	fmt.Printf("    %s runs its agent container again (the global service follows the host back)\n", victim.Name)

	fmt.Println("\n==> To explore the cluster yourself, run the demo with -wait and try:")
	fmt.Printf("    %s -H unix://%s node ls\n", m.Bin, m.Socket)
	fmt.Printf("    %s -H unix://%s service scale web=9\n", m.Bin, m.Socket)
	fmt.Printf("    %s -H unix://%s service ps web\n", m.Bin, nodes[1].Socket)
	fmt.Printf("    nsenter --net=%s curl -s %s:8080    # as the client\n", harness.NetnsPath(client.NS), m.Host.IP)
	if !wait {
		fmt.Println("    (make demo DEMO_ARGS=-wait keeps the cluster up until Ctrl-C)")
		return
	}
	fmt.Println("    Press Ctrl-C to stop and clean up.")
	<-ctx.Done()
}
