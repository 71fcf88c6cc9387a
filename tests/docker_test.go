package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
	"github.com/shoal-run/shoal/tests/faults"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// The docker CLIs the tests drive: the machine's (28, API 1.50) and
// Debian 12's docker.io (20.10, API 1.41), which .ci/run unpacks without
// its daemon.
const (
	dockerCLI   = "/usr/local/bin/docker"
	dockerCLI20 = "/usr/local/lib/docker-20.10/docker"
)

func needDockerCLIs(t *testing.T) {
	t.Helper()
	for _, bin := range []string{dockerCLI, dockerCLI20} {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("the docker CLI %s is missing (%v): .ci/run installs it", bin, err)
		}
	}
}

// dockerSocket is the node's Docker API socket: docker.sock beside its
// control socket.
func dockerSocket(n *harness.Node) string {
	return filepath.Join(filepath.Dir(n.Socket), "docker.sock")
}

// dockerOn runs a docker CLI against n's Docker API socket, with a
// config of its own and a long timeout (create and update wait for the
// service to converge); it returns stdout and stderr.
func dockerOn(t *testing.T, bin string, n *harness.Node, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix://"+dockerSocket(n), "DOCKER_CONFIG="+dockerConfig(t), "DOCKER_CLI_HINTS=false")
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), errb.String(), err
}

var dockerConfigs = map[*testing.T]string{}

func dockerConfig(t *testing.T) string {
	if d, ok := dockerConfigs[t]; ok {
		return d
	}
	d := t.TempDir()
	dockerConfigs[t] = d
	t.Cleanup(func() { delete(dockerConfigs, t) })
	return d
}

func mustDocker(t *testing.T, bin string, n *harness.Node, args ...string) string {
	t.Helper()
	out, _, err := dockerOn(t, bin, n, "", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// apiCall makes a raw call of the Docker API on n's socket: the status
// and the body.
func apiCall(t *testing.T, n *harness.Node, method, path, body string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", dockerSocket(n))
	}}}
	req, err := http.NewRequest(method, "http://docker"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// meshAnswers waits until every node answers on port through the mesh.
func meshAnswers(t *testing.T, e *faults.Env, from *harness.Host, port int) {
	t.Helper()
	for _, n := range e.C.Nodes() {
		e.Eventually(60*time.Second, func() error {
			resp, err := from.HTTPClient(2 * time.Second).Get(fmt.Sprintf("http://%s:%d/", n.Host.IP, port))
			if err != nil {
				return fmt.Errorf("port %d through %s: %v", port, n.Name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if _, ok := testimage.AnswerHostname(body); !ok {
				return fmt.Errorf("port %d through %s answered %q", port, n.Name, body)
			}
			return nil
		})
	}
}

// TestDockerCLI drives a 3-node cluster with the real docker CLIs (28
// and Debian's 20.10) through Shoal's Docker API, and checks what a user
// reads and what really runs.
func TestDockerCLI(t *testing.T) {
	needRoot(t)
	needDockerCLIs(t)
	e := faults.Start(t, 1, 2, "--docker-addr", "0.0.0.0:2376")
	m := e.C.Managers[0]
	w1, w2 := e.C.Workers[0], e.C.Workers[1]
	start := time.Now()
	D := func(args ...string) string { t.Helper(); return mustDocker(t, dockerCLI, m, args...) }
	D20 := func(args ...string) string { t.Helper(); return mustDocker(t, dockerCLI20, m, args...) }

	// The engine, the swarm, the nodes.
	if v := D("version", "--format", "{{.Client.APIVersion}} {{.Server.APIVersion}} {{.Server.MinAPIVersion}}"); strings.TrimSpace(v) != "1.50 1.50 1.41" {
		t.Errorf("docker version: %q", v)
	}
	if v := D20("version", "--format", "{{.Client.APIVersion}} {{.Server.Platform.Name}}"); !strings.HasPrefix(strings.TrimSpace(v), "1.41 Shoal") {
		t.Errorf("docker 20.10 version: %q", v)
	}
	for _, bin := range []string{dockerCLI, dockerCLI20} {
		info := mustDocker(t, bin, m, "info")
		for _, want := range []string{"Swarm: active", "Is Manager: true", "Managers: 1", "Nodes: 3", "NodeID: " + nodeID(t, m)} {
			if !strings.Contains(info, want) {
				t.Errorf("%s info lacks %q:\n%s", bin, want, info)
			}
		}
	}
	if tok, want := strings.TrimSpace(D("swarm", "join-token", "-q", "worker")), strings.TrimSpace(m.MustCLI("swarm", "join-token", "-q", "worker")); tok != want || !strings.HasPrefix(tok, "SHOAL-1-") {
		t.Errorf("docker swarm join-token -q worker = %q; want %q", tok, want)
	}
	for _, bin := range []string{dockerCLI, dockerCLI20} {
		ls := lines(mustDocker(t, bin, m, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.Availability}} {{.ManagerStatus}} {{.Self}}"))
		if len(ls) != 3 || !contains(ls, m.Host.Name+" Ready Active Leader true") {
			t.Errorf("%s node ls:\n%s", bin, strings.Join(ls, "\n"))
		}
	}
	D("node", "update", "--label-add", "zone=a", w1.ID())
	if l := D("node", "inspect", w1.ID(), "--format", `{{index .Spec.Labels "zone"}}`); strings.TrimSpace(l) != "a" {
		t.Errorf("the label through docker: %q", l)
	}
	if l := m.MustCLI("node", "inspect", w1.ID(), "--format", `{{index .Spec.Labels "zone"}}`); strings.TrimSpace(l) != "a" {
		t.Errorf("the label through shoal: %q", l)
	}

	// Networks, secrets, configs.
	D("network", "create", "-d", "overlay", "--attachable", "appnet")
	if ls := D("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"); !strings.Contains(ls, "appnet overlay swarm") || !strings.Contains(ls, "ingress overlay swarm") {
		t.Errorf("network ls:\n%s", ls)
	}
	if _, _, err := dockerOn(t, dockerCLI, m, "s3cret", "secret", "create", "pw", "-"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := dockerOn(t, dockerCLI, m, "colour=blue\n", "config", "create", "app.conf", "-"); err != nil {
		t.Fatal(err)
	}
	if ls := D("secret", "ls", "--format", "{{.Name}}"); strings.TrimSpace(ls) != "pw" {
		t.Errorf("secret ls: %q", ls)
	}
	if c := D("config", "inspect", "app.conf", "--format", "{{printf \"%s\" .Spec.Data}}"); strings.TrimSpace(c) != "colour=blue" {
		t.Errorf("config inspect: %q", c)
	}

	// A service, its progress shown until it converged.
	out, stderr, err := dockerOn(t, dockerCLI, m, "", "service", "create", "--name", "web", "--replicas", "3",
		"--publish", "8080:80", "--network", "appnet", "--env", "GREETING=hello", "--constraint", "node.labels.zone!=b",
		"--mount", "type=volume,source=webdata,target=/data", "--secret", "pw", "--config", "source=app.conf,target=/etc/app.conf",
		"--health-cmd", "wget -q -O- http://127.0.0.1/ || exit 1", "--health-interval", "1s",
		"--update-parallelism", "2", "--update-delay", "1s", "--update-order", "start-first", e.Image)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out+stderr, "overall progress: 3 out of 3 tasks") || !strings.Contains(out+stderr, "verify: Service") {
		t.Errorf("service create's progress:\n%s\n%s", out, stderr)
	}
	if total, _ := e.C.ServiceContainers("web"); total != 3 {
		t.Errorf("web runs %d containers; want 3", total)
	}
	web := e.Net.AddHost("client")
	meshAnswers(t, e, web, 8080)
	for _, n := range e.C.Nodes() {
		if cs := harness.Of("web", n.RunningContainers()); len(cs) > 0 {
			insideBecomes(t, cs[0], "/run/secrets/pw", "s3cret", "from docker secret create")
			insideBecomes(t, cs[0], "/etc/app.conf", "colour=blue\n", "from docker config create")
		}
	}
	if ls := D("service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}} {{.Ports}}"); strings.TrimSpace(ls) != "web replicated 3/3 *:8080->80/tcp" {
		t.Errorf("service ls: %q", ls)
	}
	if ls := D20("service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}}"); strings.TrimSpace(ls) != "web replicated 3/3" {
		t.Errorf("docker 20.10 service ls: %q", ls)
	}
	for _, bin := range []string{dockerCLI, dockerCLI20} {
		ps := lines(mustDocker(t, bin, m, "service", "ps", "web", "--format", "{{.Name}} {{.DesiredState}} {{.CurrentState}} {{.Node}}"))
		if len(ps) != 3 {
			t.Errorf("%s service ps: %v", bin, ps)
		}
		for _, l := range ps {
			f := strings.Fields(l)
			if len(f) < 4 || !strings.HasPrefix(f[0], "web.") || f[1] != "Running" || f[2] != "Running" || !strings.HasPrefix(f[len(f)-1], "worker") && f[len(f)-1] != "manager1" {
				t.Errorf("%s service ps line %q", bin, l)
			}
		}
	}
	pretty := D("service", "inspect", "--pretty", "web")
	for _, want := range []string{"Name:\t\tweb", "Replicated", "Replicas:\t3", "Parallelism:\t2", "start-first", "GREETING=hello",
		"/data", "Secrets:", "PublishedPort = 8080"} {
		if !strings.Contains(pretty, want) {
			t.Errorf("service inspect --pretty lacks %q:\n%s", want, pretty)
		}
	}
	var inspected []swarm.Service
	if err := json.Unmarshal([]byte(D("service", "inspect", "web")), &inspected); err != nil || len(inspected) != 1 {
		t.Fatalf("service inspect: %v", err)
	}
	if hc := inspected[0].Spec.TaskTemplate.ContainerSpec.Healthcheck; hc == nil || hc.Interval != time.Second || hc.Test[0] != "CMD-SHELL" {
		t.Errorf("the health check through docker: %+v", hc)
	}
	if got := m.MustCLI("service", "inspect", "web", "--format", "{{.Spec.Task.Container.Healthcheck.Test}}"); !strings.Contains(got, "wget") {
		t.Errorf("the health check through shoal: %q", got)
	}

	// The nodes' own endpoints: docker ps, logs, image ls, volume ls.
	for _, n := range []*harness.Node{w1, w2} {
		cs := harness.Of("web", n.RunningContainers())
		ps := lines(mustDocker(t, dockerCLI, n, "ps", "--filter", "label=com.docker.swarm.service.name=web", "--format", "{{.ID}} {{.Names}} {{.Status}}"))
		if len(ps) != len(cs) {
			t.Errorf("docker ps on %s: %v; it runs %d web containers", n.Name, ps, len(cs))
		}
		for _, l := range ps {
			if f := strings.Fields(l); len(f) < 3 || !strings.HasPrefix(f[1], "web.") || f[2] != "Up" {
				t.Errorf("docker ps on %s: %q", n.Name, l)
			}
		}
		if len(cs) > 0 {
			if vs := mustDocker(t, dockerCLI, n, "volume", "ls", "--format", "{{.Driver}} {{.Name}}"); !strings.Contains(vs, "local webdata") {
				t.Errorf("docker volume ls on %s:\n%s", n.Name, vs)
			}
		}
		// Pulled by the digest the service pinned: no tag, as Docker shows it.
		repo := e.Image[:strings.LastIndex(e.Image, ":")]
		if is := mustDocker(t, dockerCLI, n, "image", "ls", "--format", "{{.Repository}} {{.Tag}}"); !strings.Contains(is, repo+" <none>") {
			t.Errorf("docker image ls on %s:\n%s; want %s", n.Name, is, e.Image)
		}
		if code, body := apiCall(t, n, "GET", "/v1.50/images/json", ""); code != 200 || !strings.Contains(body, `"RepoDigests":["`+repo+"@sha256:") {
			t.Errorf("GET /images/json on %s: %d %s", n.Name, code, body)
		}
	}

	// Logs: a service that talks, read whole and followed.
	D("service", "create", "--name", "talker", "--detach", "--restart-condition", "none", "--entrypoint", "/bin/sh", e.Image,
		"-c", "/whoami echo first line; /whoami echo to stderr >&2; i=0; while true; do i=$((i+1)); /whoami echo tick $i; sleep 0.2; done")
	e.Eventually(60*time.Second, func() error {
		logs, _, err := dockerOn(t, dockerCLI, m, "", "service", "logs", "talker")
		if err != nil {
			return err
		}
		if !strings.Contains(logs, "| first line") || !strings.Contains(logs, "talker.1.") || !strings.Contains(logs, "@manager1") && !strings.Contains(logs, "@worker") {
			return fmt.Errorf("service logs: %q", logs)
		}
		return nil
	})
	follow := exec.Command(dockerCLI, "service", "logs", "-f", "--tail", "0", "talker")
	follow.Env = append(os.Environ(), "DOCKER_HOST=unix://"+dockerSocket(m), "DOCKER_CONFIG="+dockerConfig(t))
	pipe, _ := follow.StdoutPipe()
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	ticks := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			ticks <- sc.Text()
		}
		close(ticks)
	}()
	select {
	case l := <-ticks:
		if !strings.Contains(l, "| tick ") {
			t.Errorf("service logs -f: %q", l)
		}
	case <-time.After(30 * time.Second):
		t.Error("service logs -f printed nothing in 30s")
	}
	_ = follow.Process.Kill()
	_ = follow.Wait()
	talkerNode := ""
	for _, n := range e.C.Nodes() {
		if cs := harness.Of("talker", n.RunningContainers()); len(cs) == 1 {
			talkerNode = n.Name
			id := strings.TrimSpace(mustDocker(t, dockerCLI, n, "ps", "-q", "--filter", "label=com.docker.swarm.service.name=talker"))
			tail, _, err := dockerOn(t, dockerCLI, n, "", "logs", "--tail", "2", id)
			if err != nil || strings.Count(tail, "tick") != 2 {
				t.Errorf("docker logs --tail 2 %s: %q %v", id, tail, err)
			}
			out, errOut, err := dockerOn(t, dockerCLI, n, "", "logs", id)
			if err != nil || !strings.HasPrefix(out, "first line\n") || errOut != "to stderr\n" || !strings.Contains(out, "\n"+tail) {
				t.Errorf("docker logs %s: stdout %q stderr %q %v; its tail was %q", id, out, errOut, err, tail)
			}
		}
	}
	if talkerNode == "" {
		t.Error("no node runs talker")
	}
	D("service", "rm", "talker")

	// Scale, update, rollback: each waits, and the containers follow.
	D("service", "scale", "web=4")
	if total, _ := e.C.ServiceContainers("web"); total != 4 {
		t.Errorf("after scale web=4: %d containers", total)
	}
	img2 := e.Net.ServeImage(testimage.Options{Tag: "2"})
	before := runningWeb(t, e)
	out, stderr, err = dockerOn(t, dockerCLI, m, "", "service", "update", "--image", img2, "web")
	if err != nil || !strings.Contains(out+stderr, "verify: Service") {
		t.Fatalf("service update --image: %v\n%s%s", err, out, stderr)
	}
	after := runningWeb(t, e)
	if len(after) != 4 || overlap(before, after) {
		t.Errorf("the update replaced %v with %v", before, after)
	}
	if img := D("service", "inspect", "web", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}} {{.PreviousSpec.TaskTemplate.ContainerSpec.Image}}"); !strings.Contains(strings.Fields(img)[0], ":2") || !strings.Contains(img, ":1") {
		t.Errorf("after the update: %q", img)
	}
	meshAnswers(t, e, web, 8080)
	out, stderr, err = dockerOn(t, dockerCLI, m, "", "service", "rollback", "web")
	if err != nil || !strings.Contains(out+stderr, "rollback") {
		t.Fatalf("service rollback: %v\n%s%s", err, out, stderr)
	}
	if img := D("service", "inspect", "web", "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}"); !strings.Contains(img, ":1") {
		t.Errorf("after the rollback: %q", img)
	}
	if total, _ := e.C.ServiceContainers("web"); total != 4 {
		t.Errorf("after the rollback: %d containers", total)
	}

	// A global service, detached, on every node; drained nodes leave it.
	D("service", "create", "--name", "agent", "--mode", "global", "-d", e.Image)
	e.Eventually(60*time.Second, func() error {
		if total, byNode := e.C.ServiceContainers("agent"); total != 3 || len(byNode) != 3 {
			return fmt.Errorf("agent runs %d containers on %v", total, byNode)
		}
		return nil
	})
	D("node", "update", "--availability", "drain", w2.ID())
	e.Eventually(60*time.Second, func() error {
		if cs := harness.Of("agent", w2.RunningContainers()); len(cs) != 0 {
			return fmt.Errorf("the drained %s runs %d agent containers", w2.Name, len(cs))
		}
		return nil
	})
	if ps := D("node", "ps", w2.ID(), "--filter", "desired-state=running", "--format", "{{.Name}}"); strings.TrimSpace(ps) != "" {
		t.Errorf("node ps of the drained node: %q", ps)
	}
	D("node", "update", "--availability", "active", w2.ID())
	D("service", "rm", "agent")

	// Events, as the services changed.
	evs := D("events", "--since", fmt.Sprint(start.Unix()), "--until", fmt.Sprint(time.Now().Add(time.Second).Unix()),
		"--filter", "type=service", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}")
	for _, want := range []string{"service create web", "service update web", "service create agent", "service remove agent"} {
		if !strings.Contains(evs, want) {
			t.Errorf("docker events lack %q:\n%s", want, evs)
		}
	}

	// docker's Go SDK: list the services, create one.
	sdk, err := client.New(client.WithHost("unix://" + dockerSocket(m)))
	if err != nil {
		t.Fatal(err)
	}
	defer sdk.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	list, err := sdk.ServiceList(ctx, client.ServiceListOptions{Status: true})
	if err != nil || len(list.Items) != 1 || list.Items[0].Spec.Name != "web" || list.Items[0].ServiceStatus.RunningTasks != 4 {
		t.Errorf("the SDK's ServiceList: %+v, %v", list.Items, err)
	}
	replicas := uint64(2)
	created, err := sdk.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: swarm.ServiceSpec{
		Annotations:  swarm.Annotations{Name: "sdk"},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Image: e.Image}},
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
	}})
	if err != nil || created.ID == "" {
		t.Fatalf("the SDK's ServiceCreate: %v", err)
	}
	e.Eventually(60*time.Second, func() error {
		if total, _ := e.C.ServiceContainers("sdk"); total != 2 {
			return fmt.Errorf("the SDK's service runs %d containers", total)
		}
		return nil
	})
	D("service", "rm", "sdk")

	// A stack: the docker CLI reads the compose file itself.
	dir := t.TempDir()
	file := filepath.Join(dir, "stack.yml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(dockerStack, e.Image)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "token.txt"), []byte("t0ken"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bin := range []string{dockerCLI, dockerCLI20} {
		out = mustDocker(t, bin, m, "stack", "deploy", "-c", file, "st")
		for _, want := range []string{"Creating network st_back", "Creating secret st_token", "Creating service st_front", "Creating service st_api"} {
			if bin == dockerCLI && !strings.Contains(out, want) {
				t.Errorf("stack deploy lacks %q:\n%s", want, out)
			}
		}
		e.Eventually(60*time.Second, func() error {
			if s := mustDocker(t, bin, m, "stack", "services", "st", "--format", "{{.Name}} {{.Replicas}}"); !strings.Contains(s, "st_front 2/2") || !strings.Contains(s, "st_api 1/1") {
				return fmt.Errorf("stack services:\n%s", s)
			}
			return nil
		})
	}
	if ls := D("stack", "ls", "--format", "{{.Name}} {{.Services}}"); strings.TrimSpace(ls) != "st 2" {
		t.Errorf("stack ls: %q", ls)
	}
	if ps := lines(D("stack", "ps", "st", "--filter", "desired-state=running", "--format", "{{.Name}} {{.CurrentState}}")); len(ps) != 3 {
		t.Errorf("stack ps: %v", ps)
	}
	meshAnswers(t, e, web, 8081)
	if total, _ := e.C.ServiceContainers("st_api"); total != 1 {
		t.Errorf("st_api runs %d containers", total)
	}
	for _, n := range e.C.Nodes() {
		if cs := harness.Of("st_api", n.RunningContainers()); len(cs) == 1 {
			insideBecomes(t, cs[0], "/run/secrets/token", "t0ken", "from the stack's secret")
		}
	}
	D("stack", "rm", "st")
	dockerBadInput(t, m)
	dockerTLS(t, e, web)
	e.Eventually(60*time.Second, func() error {
		if total, _ := e.C.ServiceContainers("st_front"); total != 0 {
			return fmt.Errorf("st_front still runs %d containers", total)
		}
		if ls := D("service", "ls", "--format", "{{.Name}}"); strings.TrimSpace(ls) != "web" {
			return fmt.Errorf("services after stack rm: %q", ls)
		}
		return nil
	})
}

// dockerBadInput sends the Docker API what it must refuse: each gets
// Docker's status code and a message saying what was wrong, and nothing
// changes.
func dockerBadInput(t *testing.T, m *harness.Node) {
	t.Helper()
	state := func() string {
		return m.MustCLI("service", "ls", "--format", "{{.Name}}") + m.MustCLI("service", "inspect", "web", "--format", "{{.Meta.Version}}")
	}
	before := state()
	_, raw := apiCall(t, m, "GET", "/v1.50/services/web", "")
	var svc swarm.Service
	if err := json.Unmarshal([]byte(raw), &svc); err != nil {
		t.Fatalf("GET /services/web: %v: %s", err, raw)
	}
	spec, _ := json.Marshal(svc.Spec)
	stale := fmt.Sprintf("/v1.50/services/web/update?version=%d", svc.Version.Index-1)
	for _, c := range []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"malformed JSON", "POST", "/v1.50/services/create", `{"Name": "x",`, 400, "invalid JSON"},
		{"a field of the wrong type", "POST", "/v1.50/services/create", `{"Name": 5}`, 400, "Name must be string"},
		{"no container", "POST", "/v1.50/services/create", `{"Name": "x"}`, 400, "ContainerSpec"},
		{"a field Shoal does not support", "POST", "/v1.50/services/create",
			`{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"busybox","OomScoreAdj":5}}}`, 400, "OomScoreAdj is not supported by Shoal"},
		{"an invalid spec", "POST", "/v1.50/services/create",
			`{"Name":"x","TaskTemplate":{"ContainerSpec":{"Image":"busybox"},"RestartPolicy":{"Condition":"sometimes"}}}`, 400, "sometimes"},
		{"a stale version", "POST", stale, string(spec), 409, "update out of sequence"},
		{"no version", "POST", "/v1.50/services/web/update", string(spec), 400, "invalid version"},
		{"an unknown service", "GET", "/v1.50/services/nosuch", "", 404, "nosuch"},
		{"an unknown service's update", "POST", "/v1.50/services/nosuch/update?version=1", string(spec), 404, "nosuch"},
		{"an API version too old", "GET", "/v1.24/info", "", 400, "client version 1.24 is too old. Minimum supported API version is 1.41"},
		{"an API version too new", "GET", "/v1.99/info", "", 400, "client version 1.99 is too new. Maximum supported API version is 1.50"},
		{"a container create", "POST", "/v1.50/containers/create", `{"Image":"busybox"}`, 501, "docker service create"},
		{"an exec", "POST", "/v1.50/containers/abc/exec", `{}`, 501, "not implemented by Shoal"},
		{"a build", "POST", "/v1.50/build", "", 501, "Shoal does not build images"},
		{"a plugin", "GET", "/v1.50/plugins", "", 501, "Shoal has no plugins"},
		{"no such endpoint", "GET", "/v1.50/nosuch", "", 404, "page not found"},
		{"bad filters", "GET", "/v1.50/services?filters=nojson", "", 400, "invalid filters"},
		{"an unknown filter", "GET", `/v1.50/services?filters={"colour":{"red":true}}`, "", 400, "colour"},
	} {
		code, body := apiCall(t, m, c.method, c.path, c.body)
		var msg struct{ Message string }
		if err := json.Unmarshal([]byte(body), &msg); err != nil || code != c.code || !strings.Contains(msg.Message, c.want) {
			t.Errorf("%s: %d %s; want %d with a message saying %q", c.name, code, body, c.code, c.want)
		}
	}
	// The docker CLI shows the daemon's words and fails.
	if _, stderr, err := dockerOn(t, dockerCLI, m, "", "service", "scale", "nosuch=2"); err == nil || !strings.Contains(stderr, "Error response from daemon") || !strings.Contains(stderr, "nosuch") {
		t.Errorf("docker service scale nosuch=2: %v: %s", err, stderr)
	}
	if after := state(); after != before {
		t.Errorf("bad input changed the cluster: %q -> %q", before, after)
	}
}

// dockerTLS drives the manager's Docker API over TLS from another host,
// as docker --tlsverify does: with a manager's certificate it answers;
// without one, or with a worker's, the handshake fails.
func dockerTLS(t *testing.T, e *faults.Env, from *harness.Host) {
	t.Helper()
	m, w := e.C.Managers[0], e.C.Workers[0]
	run := func(certs string, args ...string) (string, error) {
		base := []string{"-H", "tcp://" + m.Host.IP + ":2376", "--tlsverify", "--tlscacert", filepath.Join(m.CertDir(), "ca.crt")}
		if certs != "" {
			base = append(base, "--tlscert", filepath.Join(certs, "node.crt"), "--tlskey", filepath.Join(certs, "node.key"))
		}
		cmd := from.Command(dockerCLI, append(base, args...)...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+dockerConfig(t))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(m.CertDir(), "node", "ls", "--format", "{{.Hostname}}"); err != nil || len(lines(out)) != 3 {
		t.Errorf("docker --tlsverify with a manager's certificate: %v: %s", err, out)
	}
	if out, err := run(m.CertDir(), "service", "ls", "--format", "{{.Name}}"); err != nil || !strings.Contains(out, "web") {
		t.Errorf("docker --tlsverify service ls: %v: %s", err, out)
	}
	if out, err := run(w.CertDir(), "node", "ls"); err == nil {
		t.Errorf("docker --tlsverify with a worker's certificate answered: %s", out)
	}
	if out, err := run("", "node", "ls"); err == nil {
		t.Errorf("docker --tlsverify without a certificate answered: %s", out)
	}
}

// dockerStack is a compose file as docker stack deploy takes it.
const dockerStack = `
version: "3.8"
services:
  front:
    image: %[1]s
    ports: ["8081:80"]
    networks: [back]
    deploy:
      replicas: 2
  api:
    image: %[1]s
    networks: [back]
    secrets: [token]
networks:
  back: {}
secrets:
  token:
    file: ./token.txt
`

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func runningWeb(t *testing.T, e *faults.Env) []int {
	var pids []int
	for _, n := range e.C.Nodes() {
		for _, c := range harness.Of("web", n.RunningContainers()) {
			pids = append(pids, c.Pid)
		}
	}
	return pids
}

func overlap(a, b []int) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

// TestDockerSwarm forms, changes and leaves a swarm with the docker CLI
// alone, and pulls and loads images on a node, on two loopback nodes.
func TestDockerSwarm(t *testing.T) {
	needRoot(t)
	needDockerCLIs(t)
	n1, n2 := harness.NewNode(t, "manager1"), harness.NewNode(t, "worker1")
	n1.Start()
	n2.Start()
	if info := mustDocker(t, dockerCLI, n1, "info", "--format", "{{.Swarm.LocalNodeState}}"); strings.TrimSpace(info) != "inactive" {
		t.Errorf("before init: %q", info)
	}
	out := mustDocker(t, dockerCLI, n1, "swarm", "init", "--advertise-addr", n1.Addr)
	if !strings.Contains(out, "Swarm initialized: current node ("+n1.ID()+") is now a manager.") || !strings.Contains(out, "docker swarm join --token SHOAL-1-") {
		t.Errorf("docker swarm init:\n%s", out)
	}
	tok := strings.TrimSpace(mustDocker(t, dockerCLI, n1, "swarm", "join-token", "-q", "worker"))
	if _, stderr, err := dockerOn(t, dockerCLI, n2, "", "swarm", "join", "--token", tok[:len(tok)-3]+"xyz", "--advertise-addr", n2.Addr, n1.Addr); err == nil || !strings.Contains(stderr, "Error response from daemon") {
		t.Errorf("a wrong token: %v %s", err, stderr)
	}
	if out := mustDocker(t, dockerCLI, n2, "swarm", "join", "--token", tok, "--advertise-addr", n2.Addr, n1.Addr); !strings.Contains(out, "This node joined a swarm as a worker.") {
		t.Errorf("docker swarm join: %q", out)
	}
	harness.Eventually(t, 30*time.Second, func() error {
		if ls := lines(mustDocker(t, dockerCLI, n1, "node", "ls", "--format", "{{.Hostname}} {{.Status}}")); len(ls) != 2 || strings.Count(strings.Join(ls, " "), "Ready") != 2 {
			return fmt.Errorf("node ls: %v", ls)
		}
		return nil
	})
	mustDocker(t, dockerCLI, n1, "swarm", "update", "--task-history-limit", "3")
	if got := mustDocker(t, dockerCLI, n1, "info", "--format", "{{.Swarm.Cluster.Spec.Orchestration.TaskHistoryRetentionLimit}}"); strings.TrimSpace(got) != "3" {
		t.Errorf("task history limit through docker: %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if c, err := n1.Control().GetCluster(ctx, &shoalv1.GetClusterRequest{}); err != nil || c.GetCluster().GetSpec().GetTaskHistoryLimit() != 3 {
		t.Errorf("the cluster's task history limit: %v, %v", c.GetCluster().GetSpec(), err)
	}
	if _, stderr, err := dockerOn(t, dockerCLI, n1, "", "swarm", "update", "--snapshot-interval", "5"); err == nil || !strings.Contains(stderr, "Raft is not supported by Shoal") {
		t.Errorf("swarm update --snapshot-interval: %v %s", err, stderr)
	}
	if out := mustDocker(t, dockerCLI, n1, "swarm", "update", "--autolock=true"); !strings.Contains(out, "SHOALKEY-1-") {
		t.Errorf("swarm update --autolock=true: %q", out)
	}
	if key, want := strings.TrimSpace(mustDocker(t, dockerCLI, n1, "swarm", "unlock-key", "-q")), strings.TrimSpace(n1.MustCLI("swarm", "unlock-key", "-q")); key != want {
		t.Errorf("docker swarm unlock-key -q = %q; shoal says %q", key, want)
	}
	mustDocker(t, dockerCLI, n1, "swarm", "update", "--autolock=false")

	// A node's images: docker pull and docker load.
	img := testimage.Serve(t, testimage.Options{Tag: "pulled"})
	if out := mustDocker(t, dockerCLI, n2, "pull", img.Ref); !strings.Contains(out, "Status: Downloaded newer image for "+img.Ref) || !strings.Contains(out, "Digest: sha256:") {
		t.Errorf("docker pull:\n%s", out)
	}
	if out := mustDocker(t, dockerCLI, n2, "pull", img.Ref); !strings.Contains(out, "Status: Image is up to date for "+img.Ref) {
		t.Errorf("docker pull again:\n%s", out)
	}
	if _, stderr, err := dockerOn(t, dockerCLI, n2, "", "pull", "127.0.0.1:1/nosuch:1"); err == nil || stderr == "" {
		t.Errorf("docker pull of a registry that is not there: %v %q", err, stderr)
	}
	tar := filepath.Join(t.TempDir(), "img.tar")
	if err := img.Image.WriteDockerArchive(tar, "loaded/app:1"); err != nil {
		t.Fatal(err)
	}
	if out := mustDocker(t, dockerCLI, n2, "load", "-i", tar); !strings.Contains(out, "Loaded image: loaded/app:1") {
		t.Errorf("docker load: %q", out)
	}
	if ls := mustDocker(t, dockerCLI, n2, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(ls, "loaded/app:1") || !strings.Contains(ls, img.Ref) {
		t.Errorf("docker image ls:\n%s", ls)
	}
	if got := n2.MustCLI("image", "ls"); !strings.Contains(got, "loaded/app") {
		t.Errorf("shoal image ls after docker load:\n%s", got)
	}

	// Leaving.
	if out := mustDocker(t, dockerCLI, n2, "swarm", "leave"); !strings.Contains(out, "Node left the swarm.") {
		t.Errorf("docker swarm leave: %q", out)
	}
	if st := mustDocker(t, dockerCLI, n2, "info", "--format", "{{.Swarm.LocalNodeState}}"); strings.TrimSpace(st) != "inactive" {
		t.Errorf("after leave: %q", st)
	}
	id2 := strings.TrimSpace(mustDocker(t, dockerCLI, n1, "node", "ls", "--filter", "role=worker", "--format", "{{.ID}}"))
	mustDocker(t, dockerCLI, n1, "node", "rm", "--force", id2)
	if ls := lines(mustDocker(t, dockerCLI, n1, "node", "ls", "-q")); len(ls) != 1 {
		t.Errorf("node ls after rm: %v", ls)
	}
	if _, stderr, err := dockerOn(t, dockerCLI, n2, "", "service", "ls"); err == nil || !strings.Contains(stderr, "not a swarm manager") && !strings.Contains(stderr, "not part of a swarm") {
		t.Errorf("service ls on a node in no swarm: %v %s", err, stderr)
	}
}
