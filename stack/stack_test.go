package stack

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/prototext"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// load writes files (name → content) to a directory and loads them in
// order, with env.
func load(t *testing.T, env map[string]string, files ...string) (*Stack, error) {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for i := 0; i+1 < len(files); i += 2 {
		p := filepath.Join(dir, files[i])
		if err := os.WriteFile(p, []byte(files[i+1]), 0o644); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(files[i], ".") && !strings.HasSuffix(files[i], ".txt") && !strings.HasSuffix(files[i], ".env") {
			paths = append(paths, p)
		}
	}
	p, err := Load(context.Background(), Options{Files: paths, Env: env, Namespace: "app"})
	if err != nil {
		return nil, err
	}
	return Convert(p, "app")
}

func mustLoad(t *testing.T, env map[string]string, files ...string) *Stack {
	t.Helper()
	st, err := load(t, env, files...)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func service(t *testing.T, st *Stack, name string) *shoalv1.ServiceSpec {
	t.Helper()
	for _, s := range st.Services {
		if s.GetName() == name {
			return s
		}
	}
	t.Fatalf("no service %s in %v", name, st.Services)
	return nil
}

// Each compose field lands in the spec field docker maps it to.
func TestConvertFields(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		check      func(*testing.T, *shoalv1.ServiceSpec)
	}{
		{"names and labels", "image: img\nlabels: {tier: front}\ndeploy: {labels: {team: web}}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			if s.GetName() != "app_web" || s.GetLabels()["team"] != "web" || s.GetLabels()[NamespaceLabel] != "app" ||
				s.GetTask().GetContainer().GetLabels()["tier"] != "front" || s.GetTask().GetContainer().GetLabels()[NamespaceLabel] != "app" {
				t.Errorf("%v", s)
			}
		}},
		{"command and entrypoint", "image: img\nentrypoint: [/bin/sh, -c]\ncommand: [echo hi]", func(t *testing.T, s *shoalv1.ServiceSpec) {
			c := s.GetTask().GetContainer()
			if !slices.Equal(c.GetCommand(), []string{"/bin/sh", "-c"}) || !c.GetCommandSet() || !slices.Equal(c.GetArgs(), []string{"echo hi"}) {
				t.Errorf("%v", c)
			}
		}},
		{"environment", "image: img\nenvironment: {B: '2', A: '1', FROM_ENV: null}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			if got := s.GetTask().GetContainer().GetEnv(); !slices.Equal(got, []string{"A=1", "B=2", "FROM_ENV=outside"}) {
				t.Errorf("env %v", got)
			}
		}},
		{"the rest of the container", `image: img
user: "1000:1000"
working_dir: /app
hostname: box
stop_grace_period: 30s
stop_signal: SIGINT
init: true
read_only: true
tty: true
cap_add: [NET_ADMIN]
cap_drop: [ALL]
group_add: [audio]
sysctls: {net.core.somaxconn: "1024"}
ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 65535}
dns: [10.0.0.2]
dns_search: [example.org]
dns_opt: [ndots:2]
extra_hosts: ["db.local:10.0.0.9"]`, func(t *testing.T, s *shoalv1.ServiceSpec) {
			c := s.GetTask().GetContainer()
			if c.GetUser() != "1000:1000" || c.GetDir() != "/app" || c.GetHostname() != "box" || c.GetStopGracePeriod().AsDuration() != 30*time.Second ||
				c.GetStopSignal() != "SIGINT" || !c.GetInit() || !c.GetReadOnly() || !c.GetTty() || !slices.Equal(c.GetCapAdd(), []string{"NET_ADMIN"}) ||
				!slices.Equal(c.GetCapDrop(), []string{"ALL"}) || !slices.Equal(c.GetGroups(), []string{"audio"}) || c.GetSysctls()["net.core.somaxconn"] != "1024" ||
				!slices.Equal(c.GetDnsConfig().GetNameservers(), []string{"10.0.0.2"}) || !slices.Equal(c.GetDnsConfig().GetSearch(), []string{"example.org"}) ||
				!slices.Equal(c.GetDnsConfig().GetOptions(), []string{"ndots:2"}) || !slices.Equal(c.GetHosts(), []string{"10.0.0.9 db.local"}) {
				t.Errorf("%s", prototext.Format(c))
			}
			if u := c.GetUlimits(); len(u) != 2 || u[0].GetName() != "nofile" || u[0].GetSoft() != 1024 || u[0].GetHard() != 2048 || u[1].GetSoft() != 65535 || u[1].GetHard() != 65535 {
				t.Errorf("ulimits %v", u)
			}
		}},
		{"ports short, long, range, udp, host", `image: img
ports:
  - "8080:80"
  - "53:53/udp"
  - "9000-9001:9000-9001"
  - {target: 443, published: "8443", mode: host}
  - "3000"`, func(t *testing.T, s *shoalv1.ServiceSpec) {
			var got []string
			for _, p := range s.GetEndpoint().GetPorts() {
				got = append(got, prototext.Format(p))
			}
			if len(got) != 6 {
				t.Fatalf("%d ports: %v", len(got), got)
			}
			p := s.GetEndpoint().GetPorts()
			if p[0].GetPublishedPort() != 8080 || p[0].GetTargetPort() != 80 || p[1].GetProtocol() != shoalv1.PortProtocol_PORT_PROTOCOL_UDP ||
				p[2].GetPublishedPort() != 9000 || p[3].GetPublishedPort() != 9001 || p[4].GetPublishMode() != shoalv1.PublishMode_PUBLISH_MODE_HOST ||
				p[5].GetPublishedPort() != 0 || p[5].GetTargetPort() != 3000 {
				t.Errorf("ports %v", got)
			}
		}},
		{"healthcheck string", "image: img\nhealthcheck: {test: curl -f http://localhost/, interval: 5s, timeout: 2s, retries: 4, start_period: 10s}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			h := s.GetTask().GetContainer().GetHealthcheck()
			if !slices.Equal(h.GetTest(), []string{"CMD-SHELL", "curl -f http://localhost/"}) || h.GetInterval().AsDuration() != 5*time.Second ||
				h.GetTimeout().AsDuration() != 2*time.Second || h.GetRetries() != 4 || h.GetStartPeriod().AsDuration() != 10*time.Second {
				t.Errorf("%v", h)
			}
		}},
		{"healthcheck disabled", "image: img\nhealthcheck: {disable: true}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			if got := s.GetTask().GetContainer().GetHealthcheck().GetTest(); !slices.Equal(got, []string{"NONE"}) {
				t.Errorf("%v", got)
			}
		}},
		{"global", "image: img\ndeploy: {mode: global}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			if s.GetGlobal() == nil {
				t.Errorf("%v", s.GetMode())
			}
		}},
		{"replicas", "image: img\ndeploy: {replicas: 4}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			if s.GetReplicated().GetReplicas() != 4 {
				t.Errorf("%v", s.GetMode())
			}
		}},
		{"replicated job", "image: img\ndeploy: {mode: replicated-job, replicas: 3}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			if j := s.GetReplicatedJob(); j.GetTotalCompletions() != 3 || j.GetMaxConcurrent() != 3 {
				t.Errorf("%v", s.GetMode())
			}
		}},
		{"global job", "image: img\ndeploy: {mode: global-job}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			if s.GetGlobalJob() == nil {
				t.Errorf("%v", s.GetMode())
			}
		}},
		{"placement", "image: img\ndeploy: {placement: {constraints: [node.role==worker], preferences: [{spread: node.labels.zone}], max_replicas_per_node: 2}}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			p := s.GetTask().GetPlacement()
			if !slices.Equal(p.GetConstraints(), []string{"node.role==worker"}) || p.GetPreferences()[0].GetSpreadDescriptor() != "node.labels.zone" || p.GetMaxReplicas() != 2 {
				t.Errorf("%v", p)
			}
		}},
		{"resources", "image: img\ndeploy: {resources: {limits: {cpus: '0.5', memory: 64M, pids: 100}, reservations: {cpus: '0.25', memory: 32M}}}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			r := s.GetTask().GetResources()
			if r.GetLimits().GetNanoCpus() != 5e8 || r.GetLimits().GetMemoryBytes() != 64<<20 || r.GetLimits().GetPids() != 100 ||
				r.GetReservations().GetNanoCpus() != 25e7 || r.GetReservations().GetMemoryBytes() != 32<<20 {
				t.Errorf("%v", r)
			}
		}},
		{"restart policy", "image: img\ndeploy: {restart_policy: {condition: on-failure, delay: 5s, max_attempts: 3, window: 1m}}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			r := s.GetTask().GetRestart()
			if r.GetCondition() != shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE || r.GetDelay().AsDuration() != 5*time.Second || r.GetMaxAttempts() != 3 || r.GetWindow().AsDuration() != time.Minute {
				t.Errorf("%v", r)
			}
		}},
		{"restart: without a restart policy", "image: img\nrestart: on-failure:2", func(t *testing.T, s *shoalv1.ServiceSpec) {
			r := s.GetTask().GetRestart()
			if r.GetCondition() != shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE || r.GetMaxAttempts() != 2 {
				t.Errorf("%v", r)
			}
		}},
		{"update and rollback", "image: img\ndeploy: {update_config: {parallelism: 2, delay: 10s, order: start-first, failure_action: rollback}, rollback_config: {parallelism: 0}}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			u, r := s.GetUpdate(), s.GetRollback()
			if u.GetParallelism() != 2 || u.GetDelay().AsDuration() != 10*time.Second || u.GetOrder() != shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST ||
				u.GetFailureAction() != shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK || u.GetMonitor().AsDuration() != 5*time.Second || r.GetParallelism() != 0 {
				t.Errorf("update %v rollback %v", u, r)
			}
		}},
		{"dnsrr", "image: img\ndeploy: {endpoint_mode: dnsrr}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			if s.GetEndpoint().GetMode() != shoalv1.EndpointMode_ENDPOINT_MODE_DNSRR {
				t.Errorf("%v", s.GetEndpoint())
			}
		}},
		{"logging", "image: img\nlogging: {driver: json-file, options: {max-size: 10m}}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			if d := s.GetTask().GetLogDriver(); d.GetName() != "json-file" || d.GetOptions()["max-size"] != "10m" {
				t.Errorf("%v", d)
			}
		}},
		{"volumes of every kind", `image: img
volumes:
  - data:/data
  - ./conf:/etc/app:ro
  - type: tmpfs
    target: /cache
    tmpfs: {size: 1048576}
  - type: volume
    source: data
    target: /other
    volume: {nocopy: true}
  - /anon
tmpfs: [/run]`, func(t *testing.T, s *shoalv1.ServiceSpec) {
			m := s.GetTask().GetContainer().GetMounts()
			if len(m) != 6 {
				t.Fatalf("%d mounts: %v", len(m), m)
			}
			if m[0].GetType() != shoalv1.MountType_MOUNT_TYPE_VOLUME || m[0].GetSource() != "app_data" || m[0].GetVolumeOptions().GetLabels()[NamespaceLabel] != "app" {
				t.Errorf("named volume %v", m[0])
			}
			if m[1].GetType() != shoalv1.MountType_MOUNT_TYPE_BIND || !filepath.IsAbs(m[1].GetSource()) || !strings.HasSuffix(m[1].GetSource(), "/conf") || !m[1].GetReadOnly() {
				t.Errorf("bind %v", m[1])
			}
			if m[2].GetType() != shoalv1.MountType_MOUNT_TYPE_TMPFS || m[2].GetTmpfsOptions().GetSizeBytes() != 1<<20 {
				t.Errorf("tmpfs %v", m[2])
			}
			if !m[3].GetVolumeOptions().GetNoCopy() || m[4].GetSource() != "" || m[5].GetTarget() != "/run" || m[5].GetType() != shoalv1.MountType_MOUNT_TYPE_TMPFS {
				t.Errorf("long, anonymous, tmpfs: %v %v %v", m[3], m[4], m[5])
			}
		}},
		{"secrets and configs", "image: img\nsecrets: [pw, {source: key, target: /etc/key, uid: '100', mode: 0400}]\nconfigs: [conf]", func(t *testing.T, s *shoalv1.ServiceSpec) {
			c := s.GetTask().GetContainer()
			sec, cfg := c.GetSecrets(), c.GetConfigs()
			if len(sec) != 2 || sec[0].GetSecretName() != "app_pw" || sec[0].GetFile().GetName() != "/run/secrets/pw" || sec[0].GetFile().GetMode() != 0o444 || sec[0].GetFile().GetUid() != "0" {
				t.Errorf("secrets %v", sec)
			}
			if sec[1].GetSecretName() != "shared_key" || sec[1].GetFile().GetName() != "/etc/key" || sec[1].GetFile().GetUid() != "100" || sec[1].GetFile().GetMode() != 0o400 {
				t.Errorf("secret with options %v", sec[1])
			}
			if len(cfg) != 1 || cfg[0].GetConfigName() != "app_conf" || cfg[0].GetFile().GetName() != "/conf" {
				t.Errorf("configs %v", cfg)
			}
		}},
		{"networks and aliases", "image: img\nnetworks: {front: {aliases: [www]}, back: null}", func(t *testing.T, s *shoalv1.ServiceSpec) {
			n := s.GetNetworks()
			if len(n) != 2 || n[0].GetTarget() != "app_back" || n[1].GetTarget() != "app_front" || !slices.Equal(n[1].GetAliases(), []string{"web", "www"}) || !slices.Equal(n[0].GetAliases(), []string{"web"}) {
				t.Errorf("%v", n)
			}
		}},
		{"no networks: the default one", "image: img", func(t *testing.T, s *shoalv1.ServiceSpec) {
			if n := s.GetNetworks(); len(n) != 1 || n[0].GetTarget() != "app_default" {
				t.Errorf("%v", n)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			yaml := "services:\n  web:\n    " + strings.ReplaceAll(tc.yaml, "\n", "\n    ") + `
networks: {front: {}, back: {}}
volumes: {data: {}}
secrets: {pw: {file: ./pw.txt}, key: {external: true, name: shared_key}}
configs: {conf: {file: ./pw.txt}}
`
			st := mustLoad(t, map[string]string{"FROM_ENV": "outside"}, "docker-compose.yml", yaml, "pw.txt", "hunter2")
			tc.check(t, service(t, st, "app_web"))
		})
	}
}

// The stack's networks, secrets and configs, named and labelled.
func TestConvertObjects(t *testing.T) {
	st := mustLoad(t, nil, "docker-compose.yml", `
services:
  web: {image: img, networks: [front, ext], secrets: [pw, shared], configs: [conf]}
  job: {image: img}
networks:
  front: {attachable: true, driver_opts: {com.docker.network.driver.mtu: "1400"}, ipam: {config: [{subnet: 10.9.0.0/24, gateway: 10.9.0.254}]}, labels: {a: b}}
  ext: {external: true, name: outside}
  unused: {}
secrets:
  pw: {file: ./pw.txt}
  shared: {external: true}
configs:
  conf: {name: my-conf, file: ./pw.txt}
`, "pw.txt", "hunter2")
	var nets []string
	for _, n := range st.Networks {
		nets = append(nets, n.Name)
	}
	if !slices.Equal(nets, []string{"app_default", "app_front", "outside"}) {
		t.Fatalf("networks %v (the unused one is not the stack's)", nets)
	}
	front := st.Networks[1].Spec
	if !front.GetAttachable() || front.GetOptions()["com.docker.network.driver.mtu"] != "1400" || front.GetSubnet() != "10.9.0.0/24" || front.GetGateway() != "10.9.0.254" ||
		front.GetLabels()["a"] != "b" || front.GetLabels()[NamespaceLabel] != "app" || !st.Networks[2].External {
		t.Errorf("front %v, ext %v", front, st.Networks[2])
	}
	if len(st.Secrets) != 2 || st.Secrets[0].Name != "app_pw" || string(st.Secrets[0].Data) != "hunter2" || !st.Secrets[1].External || st.Secrets[1].Name != "shared" {
		t.Errorf("secrets %+v", st.Secrets)
	}
	if len(st.Configs) != 1 || st.Configs[0].Name != "my-conf" || st.Configs[0].Labels[NamespaceLabel] != "app" {
		t.Errorf("configs %+v", st.Configs)
	}
}

// Several files merge in order; .env and the environment interpolate,
// the environment winning; extends, env_file and anchors resolve.
func TestLoadMergeAndInterpolation(t *testing.T) {
	st := mustLoad(t, map[string]string{"TAG": "2"}, "a.yml", `
x-base: &base
  image: img:${TAG:-1}
services:
  web:
    <<: *base
    env_file: [./web.env]
    deploy: {replicas: 1}
  worker:
    extends: {service: web}
    command: [work]
`, "b.yml", `
services:
  web:
    image: img:${TAG:-1}-${FROM_DOTENV}
    deploy: {replicas: 3}
`, ".env", "FROM_DOTENV=dot\nTAG=from-dotenv\n", "web.env", "COLOUR=blue\n")
	web, worker := service(t, st, "app_web"), service(t, st, "app_worker")
	if web.GetTask().GetContainer().GetImage() != "img:2-dot" || web.GetReplicated().GetReplicas() != 3 {
		t.Errorf("web: %s %v", web.GetTask().GetContainer().GetImage(), web.GetMode())
	}
	if !slices.Contains(web.GetTask().GetContainer().GetEnv(), "COLOUR=blue") {
		t.Errorf("env_file: %v", web.GetTask().GetContainer().GetEnv())
	}
	if worker.GetTask().GetContainer().GetImage() != "img:2" || !slices.Equal(worker.GetTask().GetContainer().GetArgs(), []string{"work"}) {
		t.Errorf("extends: %v", worker.GetTask().GetContainer())
	}
}

// Keys Swarm ignores are docker's warnings; the deploy goes on.
func TestWarnings(t *testing.T) {
	st := mustLoad(t, nil, "docker-compose.yml", `
services:
  web: {image: img, build: ., restart: always, links: [db], depends_on: [db], container_name: web1, expose: ["80"]}
  db: {image: img, privileged: true}
`)
	want := []string{"Ignoring unsupported options: build, depends_on, links, privileged, restart\n",
		"Ignoring deprecated options:\n\ncontainer_name: Setting the container name is not supported.\n\nexpose: Exposing ports is unnecessary - services on the same network can access each other's containers on any port.\n"}
	if !slices.Equal(st.Warnings, want) {
		t.Errorf("warnings %q; want %q", st.Warnings, want)
	}
}

// Bad input is a clear error that names what is wrong.
func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		env   map[string]string
		want  []string
	}{
		{"broken yaml", []string{"docker-compose.yml", "services:\n  web:\n    image: x\n   ports: [80]\n"}, nil, []string{"docker-compose.yml", "line 3", "did not find expected key"}},
		{"unknown key", []string{"docker-compose.yml", "services:\n  web: {image: x, colour: red}\n"}, nil, []string{"services.web", "colour"}},
		{"wrong type", []string{"docker-compose.yml", "services:\n  web: {image: x, deploy: {replicas: many}}\n"}, nil, []string{"services.web.deploy.replicas"}},
		{"unset required variable", []string{"docker-compose.yml", "services:\n  web: {image: '${IMG:?give the image}'}\n"}, nil, []string{"IMG", "give the image"}},
		{"missing secret file", []string{"docker-compose.yml", "services:\n  web: {image: x, secrets: [pw]}\nsecrets: {pw: {file: ./nope.txt}}\n"}, nil, []string{"secret pw", "nope.txt", "no such file"}},
		{"missing env_file", []string{"docker-compose.yml", "services:\n  web: {image: x, env_file: [./nope.env]}\n"}, nil, []string{"nope.env"}},
		{"network driver", []string{"docker-compose.yml", "services:\n  web: {image: x}\nnetworks: {default: {driver: bridge}}\n"}, nil, []string{"network default", `driver "bridge" is not supported`}},
		{"forbidden mem_limit", []string{"docker-compose.yml", "services:\n  web: {image: x, mem_limit: 1g}\n"}, nil, []string{"mem_limit: Set resource limits using deploy.resources"}},
		{"not in swarm", []string{"docker-compose.yml", "services:\n  web: {image: x, oom_score_adj: 100}\n"}, nil, []string{"service web: oom_score_adj is not supported"}},
		{"no image", []string{"docker-compose.yml", "services:\n  web: {build: .}\n"}, nil, []string{"service web: image is required"}},
		{"undeclared volume", []string{"docker-compose.yml", "services:\n  web: {image: x, volumes: ['data:/data']}\n"}, nil, []string{"data"}},
		{"logging driver", []string{"docker-compose.yml", "services:\n  web: {image: x, logging: {driver: syslog}}\n"}, nil, []string{`logging.driver "syslog" is not supported`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, tc.env, tc.files...)
			if err == nil {
				t.Fatal("loaded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%v; want it to say %q", err, w)
				}
			}
		})
	}
}

// -c - reads standard input, once.
func TestStdin(t *testing.T) {
	p, err := Load(context.Background(), Options{Files: []string{"-"}, Stdin: strings.NewReader("services:\n  web: {image: img}\n"), Namespace: "app"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Services["web"]; !ok {
		t.Fatalf("%v", p.Services)
	}
	if _, err := Load(context.Background(), Options{Files: []string{"-", "-"}, Stdin: strings.NewReader("")}); err == nil {
		t.Fatal("standard input read twice")
	}
	out, err := Config(p)
	if err != nil || !strings.Contains(string(out), "image: img") {
		t.Fatalf("config: %v\n%s", err, out)
	}
}

// Compose files written for docker stack deploy by others load and
// convert as docker's would.
func TestRealComposeFiles(t *testing.T) {
	for _, tc := range []struct {
		file     string
		services []string
		warnings []string
		check    func(*testing.T, *Stack)
	}{
		{"voting-app.yml", []string{"app_db", "app_redis", "app_result", "app_visualizer", "app_vote", "app_worker"},
			[]string{"Ignoring unsupported options: depends_on\n"}, func(t *testing.T, st *Stack) {
				vote, worker, redis := service(t, st, "app_vote"), service(t, st, "app_worker"), service(t, st, "app_redis")
				if vote.GetReplicated().GetReplicas() != 2 || vote.GetEndpoint().GetPorts()[0].GetPublishedPort() != 5000 || vote.GetUpdate().GetParallelism() != 2 {
					t.Errorf("vote %v", vote)
				}
				if worker.GetLabels()["APP"] != "VOTING" || worker.GetTask().GetRestart().GetMaxAttempts() != 3 || worker.GetTask().GetRestart().GetWindow().AsDuration() != 120*time.Second {
					t.Errorf("worker %v", worker)
				}
				if p := redis.GetEndpoint().GetPorts(); len(p) != 1 || p[0].GetTargetPort() != 6379 || p[0].GetPublishedPort() != 0 {
					t.Errorf("redis ports %v", p)
				}
				viz := service(t, st, "app_visualizer").GetTask().GetContainer()
				if viz.GetStopGracePeriod().AsDuration() != 90*time.Second || viz.GetMounts()[0].GetSource() != "/var/run/docker.sock" {
					t.Errorf("visualizer %v", viz)
				}
				if db := service(t, st, "app_db"); db.GetTask().GetContainer().GetMounts()[0].GetSource() != "app_db-data" {
					t.Errorf("db %v", db.GetTask().GetContainer().GetMounts())
				}
			}},
		{"getting-started.yml", []string{"app_redis", "app_visualizer", "app_web"}, nil, func(t *testing.T, st *Stack) {
			web := service(t, st, "app_web")
			if web.GetReplicated().GetReplicas() != 5 || web.GetTask().GetResources().GetLimits().GetNanoCpus() != 1e8 || web.GetTask().GetResources().GetLimits().GetMemoryBytes() != 50<<20 {
				t.Errorf("web %v", web)
			}
			if args := service(t, st, "app_redis").GetTask().GetContainer().GetArgs(); !slices.Equal(args, []string{"redis-server", "--appendonly", "yes"}) {
				t.Errorf("redis command %v", args)
			}
			if len(st.Networks) != 1 || st.Networks[0].Name != "app_webnet" {
				t.Errorf("networks %+v", st.Networks)
			}
		}},
		{"traefik.yml", []string{"app_traefik", "app_whoami"}, nil, func(t *testing.T, st *Stack) {
			tr := service(t, st, "app_traefik")
			if p := tr.GetEndpoint().GetPorts(); len(p) != 2 || p[0].GetPublishMode() != shoalv1.PublishMode_PUBLISH_MODE_HOST || p[1].GetPublishedPort() != 443 {
				t.Errorf("ports %v", p)
			}
			if tr.GetLabels()["traefik.docker.network"] != "traefik-public" || tr.GetTask().GetLogDriver().GetOptions()["max-file"] != "3" {
				t.Errorf("labels %v, logging %v", tr.GetLabels(), tr.GetTask().GetLogDriver())
			}
			if c := tr.GetTask().GetContainer(); c.GetConfigs()[0].GetFile().GetName() != "/etc/traefik/dynamic.yml" || c.GetSecrets()[0].GetSecretName() != "cf_token" {
				t.Errorf("files %v %v", c.GetConfigs(), c.GetSecrets())
			}
			if service(t, st, "app_whoami").GetGlobal() == nil || len(st.Networks) != 1 || !st.Networks[0].External || st.Networks[0].Name != "traefik-public" {
				t.Errorf("whoami or the network: %+v", st.Networks)
			}
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			p, err := Load(context.Background(), Options{Files: []string{filepath.Join("testdata", "real", tc.file)}, Namespace: "app"})
			if err != nil {
				t.Fatal(err)
			}
			st, err := Convert(p, "app")
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range st.Services {
				names = append(names, s.GetName())
			}
			if !slices.Equal(names, tc.services) || !slices.Equal(st.Warnings, tc.warnings) {
				t.Fatalf("services %v, warnings %q; want %v, %q", names, st.Warnings, tc.services, tc.warnings)
			}
			tc.check(t, st)
		})
	}
}
