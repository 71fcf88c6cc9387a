package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoal-run/shoal/tests/faults"
	"github.com/shoal-run/shoal/tests/harness"
	"github.com/shoal-run/shoal/tests/testimage"
)

// stackCLI runs the CLI on n with stdin and a long timeout (a deploy
// waits for its services to converge); it returns stdout and stderr.
func stackCLI(t *testing.T, n *harness.Node, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.Bin, append([]string{"-H", "unix://" + n.Socket}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("shoal %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), errb.String(), err
}

// appCompose is a typical application: a web front end publishing a port
// with a health check, an API on two networks, a database with a named
// volume, a secret and a placement constraint, and a one-off migration
// job. Its images and the database's node come from the environment.
const appCompose = `
version: "3.8"
x-common: &common
  image: ${IMAGE:?set IMAGE to the test image}
services:
  web:
    <<: *common
    ports:
      - "8080:80"
    healthcheck:
      test: ["CMD-SHELL", "wget -q -O- http://127.0.0.1/ || exit 1"]
      interval: 1s
      retries: 3
    networks: [front]
    deploy:
      replicas: 3
      update_config:
        parallelism: 2
  api:
    image: ${API_IMAGE:-${IMAGE}}
    networks: [front, back]
    environment:
      DB_HOST: db
    deploy:
      replicas: 2
  db:
    <<: *common
    entrypoint: ["/bin/sh", "-c"]
    command: ["echo start >> /data/log; exec /whoami serve -port 80"]
    volumes:
      - dbdata:/data
    secrets:
      - db_password
    networks: [back]
    deploy:
      placement:
        constraints: ["node.id == ${DB_NODE}"]
  migrate:
    <<: *common
    command: ["echo", "migrated"]
    deploy:
      mode: replicated-job
networks:
  front: {}
  back: {}
volumes:
  dbdata: {}
secrets:
  db_password:
    file: ./db_password.txt
`

// runningTasks is each service's running task IDs, from stack ps.
func runningTasks(t *testing.T, m *harness.Node, ns string) map[string][]string {
	t.Helper()
	out := m.MustCLI("stack", "ps", ns, "--filter", "desired-state=running", "--format", "{{.ID}} {{.Name}} {{.CurrentState}}")
	got := map[string][]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[2] != "Running" {
			continue
		}
		svc := f[1][:strings.LastIndex(f[1], ".")]
		got[svc] = append(got[svc], f[0])
	}
	for _, ids := range got {
		sort.Strings(ids)
	}
	return got
}

// stackObjects lists the objects labelled as ns's.
func stackObjects(t *testing.T, m *harness.Node, ns string) []string {
	t.Helper()
	var out []string
	for _, kind := range []string{"service", "network", "secret", "config"} {
		for _, name := range strings.Fields(m.MustCLI(kind, "ls", "--filter", "label=com.docker.stack.namespace="+ns, "--format", "{{.Name}}")) {
			out = append(out, kind+" "+name)
		}
	}
	return out
}

// A compose file deploys a whole application over three hosts: the front
// end answers through the mesh on every host, the API reaches the
// database by name, the database's data outlives its task, the job runs
// once. A redeploy rolls only what changed; --prune and stack rm remove
// what the files no longer have, never the volume.
func TestStackDeploy(t *testing.T) {
	needRoot(t)
	e := faults.Start(t, 1, 2)
	m := e.C.Managers[0]
	worker := e.C.Workers[0]
	dir := t.TempDir()
	file := filepath.Join(dir, "docker-compose.yml")
	if err := os.WriteFile(file, []byte(appCompose), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "db_password.txt"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("IMAGE", e.Image)
	t.Setenv("DB_NODE", nodeID(t, worker))

	// Bad input first: each a clear error, and nothing deployed.
	bad := func(name, content, want string, before ...string) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		args := []string{"stack", "deploy"}
		for _, f := range append(before, p) {
			args = append(args, "-c", f)
		}
		_, _, err := stackCLI(t, m, "", append(args, "app")...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v; want an error saying %q", name, err, want)
		}
		if objs := stackObjects(t, m, "app"); len(objs) > 0 {
			t.Fatalf("%s deployed %v", name, objs)
		}
	}
	bad("broken.yml", "services:\n  web:\n    image: x\n   ports: [80]\n", "broken.yml")
	bad("unknown.yml", "services:\n  web:\n    image: x\n    colour: red\n", "colour")
	bad("wrongtype.yml", "services:\n  web:\n    image: x\n    deploy:\n      replicas: many\n", "replicas")
	bad("unset.yml", strings.ReplaceAll(appCompose, "${IMAGE:?set IMAGE to the test image}", "${NOSUCH_IMAGE:?set NOSUCH_IMAGE to the test image}"), "NOSUCH_IMAGE")
	bad("nosecret.yml", strings.ReplaceAll(appCompose, "./db_password.txt", "./missing.txt"), "missing.txt")
	bad("noexternal.yml", "services:\n  web:\n    networks: [front, outside]\nnetworks:\n  outside:\n    external: true\n",
		`network "outside" is declared as external, but could not be found`, file)

	out, stderr, err := stackCLI(t, m, "", "stack", "deploy", "-c", file, "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Creating network app_front", "Creating network app_back", "Creating network app_default",
		"Creating secret app_db_password", "Creating service app_web", "Creating service app_api", "Creating service app_db", "Creating service app_migrate"} {
		if !strings.Contains(out, want) {
			t.Errorf("deploy output lacks %q:\n%s\n%s", want, out, stderr)
		}
	}
	if ls := m.MustCLI("stack", "ls"); !strings.Contains(ls, "NAME") || !strings.Contains(ls, "app       4") {
		t.Errorf("stack ls:\n%s", ls)
	}
	if svcs := m.MustCLI("stack", "services", "app", "--format", "{{.Name}} {{.Replicas}}"); !strings.Contains(svcs, "app_web 3/3") || !strings.Contains(svcs, "app_api 2/2") {
		t.Errorf("stack services after a deploy that waited:\n%s", svcs)
	}
	// The job ran once, to completion.
	e.Eventually(60*time.Second, func() error {
		st := m.MustCLI("stack", "ps", "app", "--filter", "name=app_migrate", "--format", "{{.CurrentState}}")
		if !strings.HasPrefix(strings.TrimSpace(st), "Complete") {
			return fmt.Errorf("the migration job: %q", st)
		}
		return nil
	})
	// Through the mesh on every host.
	client := e.Net.AddHost("client")
	for _, n := range e.C.Nodes() {
		e.Eventually(30*time.Second, func() error {
			resp, err := client.HTTPClient(2 * time.Second).Get("http://" + n.Host.IP + ":8080/")
			if err != nil {
				return fmt.Errorf("web through %s: %v", n.Name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if _, ok := testimage.AnswerHostname(body); !ok {
				return fmt.Errorf("web through %s answered %q", n.Name, body)
			}
			return nil
		})
	}
	// The API finds the database by its short name on the back network,
	// and the front end on the front one.
	api := overlayTasks(t, e, "app_api", "app_back")
	db := overlayTasks(t, e, "app_db", "app_back")
	if len(api) != 2 || len(db) != 1 {
		t.Fatalf("%d api and %d db tasks running", len(api), len(db))
	}
	e.Eventually(20*time.Second, func() error {
		addrs, err := lookup(api[0], "db")
		if err != nil || len(addrs) != 1 {
			return fmt.Errorf("db resolves to %v, %v from the api", addrs, err)
		}
		addr, err := netip.ParseAddr(addrs[0])
		if err != nil {
			return err
		}
		if h, err := get(api[0], addr); err != nil || h == "" {
			return fmt.Errorf("the api asking db at %s: %q, %v", addr, h, err)
		}
		if _, err := lookup(api[0], "web"); err != nil {
			return fmt.Errorf("web from the api: %v", err)
		}
		return nil
	})
	// The database's secret, and its data across a kill -9.
	first := oneContainer(t, worker, "app_db")
	insideBecomes(t, first, "/run/secrets/db_password", "s3cret\n", "in the db")
	insideBecomes(t, first, "/data/log", "start\n", "after the first start")
	if err := syscall.Kill(first.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	second := oneContainer(t, worker, "app_db", first.Pid)
	insideBecomes(t, second, "/data/log", "start\nstart\n", "after a kill -9")

	// Redeploy with only the API's image changed: only the API rolls.
	e.Eventually(30*time.Second, func() error {
		if r := runningTasks(t, m, "app"); len(r["app_web"]) != 3 || len(r["app_api"]) != 2 || len(r["app_db"]) != 1 {
			return fmt.Errorf("running: %v", r)
		}
		return nil
	})
	before := runningTasks(t, m, "app")
	img2 := e.Net.ServeImage(testimage.Options{Tag: "2"})
	t.Setenv("API_IMAGE", img2)
	out, _, err = stackCLI(t, m, "", "stack", "deploy", "-c", file, "app")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Updating service app_api") || strings.Contains(out, "Creating") {
		t.Errorf("redeploy output:\n%s", out)
	}
	e.Eventually(60*time.Second, func() error {
		after := runningTasks(t, m, "app")
		for _, svc := range []string{"app_web", "app_db"} {
			if fmt.Sprint(after[svc]) != fmt.Sprint(before[svc]) {
				return fmt.Errorf("%s's tasks changed: %v → %v", svc, before[svc], after[svc])
			}
		}
		if len(after["app_api"]) != 2 {
			return fmt.Errorf("api running %v", after["app_api"])
		}
		for _, id := range after["app_api"] {
			for _, old := range before["app_api"] {
				if id == old {
					return fmt.Errorf("api task %s was not replaced", id)
				}
			}
		}
		return nil
	})
	if img := m.MustCLI("service", "ls", "--filter", "name=app_api", "--format", "{{.Image}}"); !strings.Contains(img, ":2") {
		t.Errorf("app_api runs %q after the redeploy", img)
	}

	// --prune removes what the file no longer has; -c - reads stdin.
	noJob := strings.Replace(appCompose, "  migrate:\n    <<: *common\n    command: [\"echo\", \"migrated\"]\n    deploy:\n      mode: replicated-job\n", "", 1)
	noJob = strings.ReplaceAll(noJob, "./db_password.txt", filepath.Join(dir, "db_password.txt"))
	// --resolve-image never keeps the digests the services run, so
	// nothing rolls.
	e.Eventually(60*time.Second, func() error {
		if r := runningTasks(t, m, "app"); len(r["app_web"]) != 3 || len(r["app_api"]) != 2 || len(r["app_db"]) != 1 {
			return fmt.Errorf("running: %v", r)
		}
		return nil
	})
	settled := runningTasks(t, m, "app")
	out, _, err = stackCLI(t, m, noJob, "stack", "deploy", "-d", "--prune", "--resolve-image", "never", "-c", "-", "app")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // a roll, were one started, would have replaced a task by now
	if after := runningTasks(t, m, "app"); fmt.Sprint(after["app_web"], after["app_api"], after["app_db"]) != fmt.Sprint(settled["app_web"], settled["app_api"], settled["app_db"]) {
		t.Errorf("a redeploy with --resolve-image never rolled tasks: %v → %v", settled, after)
	}
	if !strings.Contains(out, "Removing service app_migrate") {
		t.Errorf("--prune output:\n%s", out)
	}
	if svcs := m.MustCLI("stack", "services", "app", "--format", "{{.Name}}"); strings.Contains(svcs, "migrate") {
		t.Errorf("after --prune:\n%s", svcs)
	}

	// stack rm leaves nothing but the volume.
	out, _, err = stackCLI(t, m, "", "stack", "rm", "app")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Removing service app_web", "Removing secret app_db_password", "Removing network app_front", "Removing network app_default"} {
		if !strings.Contains(out, want) {
			t.Errorf("stack rm output lacks %q:\n%s", want, out)
		}
	}
	if objs := stackObjects(t, m, "app"); len(objs) > 0 {
		t.Errorf("after stack rm: %v", objs)
	}
	e.Eventually(30*time.Second, func() error {
		if cs := harness.Of("app_db", worker.RunningContainers()); len(cs) > 0 {
			return fmt.Errorf("%d db containers still run", len(cs))
		}
		return nil
	})
	var kept bool
	for _, v := range volumes(t, worker) {
		kept = kept || v.Name == "app_dbdata"
	}
	if !kept {
		t.Errorf("stack rm removed the volume app_dbdata: %+v", volumes(t, worker))
	}
	if _, stderr, err := stackCLI(t, m, "", "stack", "rm", "app"); err != nil || !strings.Contains(stderr, "Nothing found in stack: app") {
		t.Errorf("stack rm of a removed stack: %v %q", err, stderr)
	}
	// A compose file written by others for docker stack deploy (the
	// Docker samples' voting app), its images replaced by the test image:
	// the services with published ports answer through the mesh; the
	// visualizer, which binds the Docker engine's socket, cannot start
	// here, and its task says why.
	voting, err := os.ReadFile(filepath.Join("..", "stack", "testdata", "real", "voting-app.yml"))
	if err != nil {
		t.Fatal(err)
	}
	votingFile := filepath.Join(dir, "voting-app.yml")
	if err := os.WriteFile(votingFile, regexp.MustCompile(`(?m)^(\s+image:).*$`).ReplaceAll(voting, []byte("${1} "+e.Image)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, err = stackCLI(t, m, "", "stack", "deploy", "-d", "-c", votingFile, "vote")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "Ignoring unsupported options: depends_on") || !strings.Contains(out, "Creating service vote_visualizer") {
		t.Errorf("deploy of the voting app: %s\n%s", out, stderr)
	}
	e.Eventually(60*time.Second, func() error {
		for svc, n := range map[string]int{"vote_vote": 2, "vote_result": 1, "vote_redis": 1, "vote_db": 1, "vote_worker": 1} {
			if err := e.Converged(svc, n); err != nil {
				return err
			}
		}
		return nil
	})
	for _, port := range []string{"5000", "5001"} {
		e.Eventually(30*time.Second, func() error {
			resp, err := client.HTTPClient(2 * time.Second).Get("http://" + e.C.Workers[1].Host.IP + ":" + port + "/")
			if err != nil {
				return fmt.Errorf("the voting app's port %s: %v", port, err)
			}
			resp.Body.Close()
			return nil
		})
	}
	e.Eventually(30*time.Second, func() error {
		ps := m.MustCLI("stack", "ps", "vote", "--filter", "name=vote_visualizer", "--no-trunc", "--format", "{{.Error}}")
		if !strings.Contains(ps, "/var/run/docker.sock") {
			return fmt.Errorf("the visualizer's tasks: %q", ps)
		}
		return nil
	})
	if _, _, err := stackCLI(t, m, "", "stack", "rm", "vote"); err != nil {
		t.Fatal(err)
	}

	// stack config prints the merged, interpolated file.
	cfg, _, err := stackCLI(t, m, "", "stack", "config", "-c", file)
	if err != nil || !strings.Contains(cfg, e.Image) || strings.Contains(cfg, "${IMAGE") {
		t.Errorf("stack config: %v\n%s", err, cfg)
	}
}
