package cli

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// deploySpecOf parses args as service create (create) or update flags
// and applies them to spec, as the commands do.
func deploySpecOf(t *testing.T, spec *shoalv1.ServiceSpec, create bool, args ...string) (*shoalv1.ServiceSpec, error) {
	t.Helper()
	var f specFlags
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	f.register(fs, create)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("flags %q do not parse: %v", args, err)
	}
	spec = proto.Clone(spec).(*shoalv1.ServiceSpec)
	return spec, f.apply(fs, spec, create)
}

func newSpec() *shoalv1.ServiceSpec {
	return &shoalv1.ServiceSpec{Name: "web", Task: &shoalv1.TaskSpec{Container: &shoalv1.ContainerSpec{Image: "img"}}}
}

// uc is an update config: docker's defaults, edited.
func uc(edit func(*shoalv1.UpdateConfig)) *shoalv1.UpdateConfig {
	c := defaultUpdateConfig()
	if edit != nil {
		edit(c)
	}
	return c
}

var (
	dur       = durationpb.New
	startOrd  = shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST
	rollbackA = shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK
	continueA = shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE
)

func text(m proto.Message) string {
	if m == nil || !m.ProtoReflect().IsValid() {
		return "<nil>"
	}
	return prototext.MarshalOptions{}.Format(m)
}

func TestCreateDeployFlags(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		health   *shoalv1.HealthConfig
		update   *shoalv1.UpdateConfig
		rollback *shoalv1.UpdateConfig
	}{
		{nil, nil, uc(nil), uc(nil)},
		{[]string{"--health-cmd", "curl -f http://localhost/ || exit 1"},
			&shoalv1.HealthConfig{Test: []string{"CMD-SHELL", "curl -f http://localhost/ || exit 1"}}, uc(nil), uc(nil)},
		{[]string{"--health-cmd", "true", "--health-interval", "2s", "--health-timeout", "1s", "--health-retries", "5",
			"--health-start-period", "10s", "--health-start-interval", "500ms"},
			&shoalv1.HealthConfig{Test: []string{"CMD-SHELL", "true"}, Interval: dur(2 * time.Second), Timeout: dur(time.Second),
				Retries: 5, StartPeriod: dur(10 * time.Second), StartInterval: dur(500 * time.Millisecond)}, uc(nil), uc(nil)},
		// Timings alone keep the image's test.
		{[]string{"--health-interval", "2s"}, &shoalv1.HealthConfig{Interval: dur(2 * time.Second)}, uc(nil), uc(nil)},
		{[]string{"--no-healthcheck"}, &shoalv1.HealthConfig{Test: []string{"NONE"}}, uc(nil), uc(nil)},
		{[]string{"--health-http", ":8080/health"}, &shoalv1.HealthConfig{Http: "http://:8080/health"}, uc(nil), uc(nil)},
		{[]string{"--health-http", "https://:8443"}, &shoalv1.HealthConfig{Http: "https://:8443/"}, uc(nil), uc(nil)},
		{[]string{"--health-http", "http://:80/ready?full=1", "--health-retries", "1"}, &shoalv1.HealthConfig{Http: "http://:80/ready?full=1", Retries: 1}, uc(nil), uc(nil)},
		{[]string{"--health-tcp", "5432"}, &shoalv1.HealthConfig{TcpPort: 5432}, uc(nil), uc(nil)},
		{[]string{"--update-parallelism", "0", "--update-delay", "10s", "--update-failure-action", "rollback", "--update-monitor", "1s",
			"--update-max-failure-ratio", "0.25", "--update-order", "start-first"}, nil,
			uc(func(c *shoalv1.UpdateConfig) {
				c.Parallelism, c.Delay, c.FailureAction, c.Monitor, c.MaxFailureRatio, c.Order = 0, dur(10*time.Second), rollbackA, dur(time.Second), 0.25, startOrd
			}), uc(nil)},
		{[]string{"--rollback-parallelism", "3", "--rollback-delay", "1m", "--rollback-failure-action", "continue", "--rollback-monitor", "0s",
			"--rollback-max-failure-ratio", "1", "--rollback-order", "start-first"}, nil, uc(nil),
			uc(func(c *shoalv1.UpdateConfig) {
				c.Parallelism, c.Delay, c.FailureAction, c.Monitor, c.MaxFailureRatio, c.Order = 3, dur(time.Minute), continueA, dur(0), 1, startOrd
			})},
	} {
		spec, err := deploySpecOf(t, newSpec(), true, tc.args...)
		if err != nil {
			t.Errorf("create %q = %v", tc.args, err)
			continue
		}
		for _, c := range []struct {
			what      string
			got, want proto.Message
		}{
			{"healthcheck", spec.GetTask().GetContainer().GetHealthcheck(), tc.health},
			{"update", spec.GetUpdate(), tc.update},
			{"rollback", spec.GetRollback(), tc.rollback},
		} {
			if text(c.got) != text(c.want) {
				t.Errorf("create %q: %s = %s; want %s", tc.args, c.what, text(c.got), text(c.want))
			}
		}
	}
}

// On update, the flags given edit what the service has, as docker's
// update does; the others leave it.
func TestUpdateDeployFlags(t *testing.T) {
	cur := newSpec()
	cur.Task.Container.Healthcheck = &shoalv1.HealthConfig{Test: []string{"CMD-SHELL", "check"}, Interval: dur(time.Second), Retries: 2}
	cur.Update = uc(func(c *shoalv1.UpdateConfig) { c.Parallelism = 4; c.Delay = dur(time.Second) })
	noConfigs := newSpec()
	none := newSpec()
	none.Task.Container.Healthcheck = &shoalv1.HealthConfig{Test: []string{"NONE"}}
	for _, tc := range []struct {
		cur    *shoalv1.ServiceSpec
		args   []string
		health *shoalv1.HealthConfig
		update *shoalv1.UpdateConfig
		rb     *shoalv1.UpdateConfig
	}{
		{cur, nil, cur.Task.Container.Healthcheck, cur.Update, nil},
		{cur, []string{"--health-interval", "5s"},
			&shoalv1.HealthConfig{Test: []string{"CMD-SHELL", "check"}, Interval: dur(5 * time.Second), Retries: 2}, cur.Update, nil},
		{cur, []string{"--health-cmd", "other"},
			&shoalv1.HealthConfig{Test: []string{"CMD-SHELL", "other"}, Interval: dur(time.Second), Retries: 2}, cur.Update, nil},
		// Another kind of probe replaces the command; the timings stay.
		{cur, []string{"--health-http", ":80/"}, &shoalv1.HealthConfig{Http: "http://:80/", Interval: dur(time.Second), Retries: 2}, cur.Update, nil},
		{cur, []string{"--health-tcp", "6379"}, &shoalv1.HealthConfig{TcpPort: 6379, Interval: dur(time.Second), Retries: 2}, cur.Update, nil},
		{cur, []string{"--health-cmd", ""}, &shoalv1.HealthConfig{Interval: dur(time.Second), Retries: 2}, cur.Update, nil},
		{cur, []string{"--no-healthcheck"}, &shoalv1.HealthConfig{Test: []string{"NONE"}}, cur.Update, nil},
		// Any setting turns a disabled check back into the image's.
		{none, []string{"--health-retries", "2"}, &shoalv1.HealthConfig{Retries: 2}, nil, nil},
		{none, []string{"--health-cmd", "true"}, &shoalv1.HealthConfig{Test: []string{"CMD-SHELL", "true"}}, nil, nil},
		{noConfigs, []string{"--health-timeout", "3s"}, &shoalv1.HealthConfig{Timeout: dur(3 * time.Second)}, nil, nil},
		{cur, []string{"--update-order", "start-first"}, cur.Task.Container.Healthcheck,
			uc(func(c *shoalv1.UpdateConfig) { c.Parallelism, c.Delay, c.Order = 4, dur(time.Second), startOrd }), nil},
		{cur, []string{"--update-parallelism", "0"}, cur.Task.Container.Healthcheck,
			uc(func(c *shoalv1.UpdateConfig) { c.Parallelism, c.Delay = 0, dur(time.Second) }), nil},
		// No config yet: docker's defaults with the flags given.
		{noConfigs, []string{"--update-delay", "3s"}, nil, uc(func(c *shoalv1.UpdateConfig) { c.Delay = dur(3 * time.Second) }), nil},
		{noConfigs, []string{"--rollback-monitor", "20s", "--rollback-failure-action", "continue"}, nil, nil,
			uc(func(c *shoalv1.UpdateConfig) { c.Monitor, c.FailureAction = dur(20*time.Second), continueA })},
	} {
		spec, err := deploySpecOf(t, tc.cur, false, tc.args...)
		if err != nil {
			t.Errorf("update %q = %v", tc.args, err)
			continue
		}
		for _, c := range []struct {
			what      string
			got, want proto.Message
		}{
			{"healthcheck", spec.GetTask().GetContainer().GetHealthcheck(), tc.health},
			{"update", spec.GetUpdate(), tc.update},
			{"rollback", spec.GetRollback(), tc.rb},
		} {
			if text(c.got) != text(c.want) {
				t.Errorf("update %q: %s = %s; want %s", tc.args, c.what, text(c.got), text(c.want))
			}
		}
	}
}

// A bad deploy flag fails with docker's message shape and exit status,
// before any connection: 125 for a value the flag cannot take, 1 for
// flags that do not go together.
func TestDeployFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"service", "create", "--health-interval", "-1s", "img"}, 125, `invalid argument "-1s" for "--health-interval" flag: duration cannot be negative`},
		{[]string{"service", "create", "--health-timeout", "5", "img"}, 125, `invalid argument "5" for "--health-timeout" flag: "5" is not a duration (e.g. 500ms, 10s, 1m30s)`},
		{[]string{"service", "create", "--update-delay", "-1s", "img"}, 125, `invalid argument "-1s" for "--update-delay" flag: duration cannot be negative`},
		{[]string{"service", "create", "--update-failure-action", "stop", "img"}, 125, `invalid argument "stop" for "--update-failure-action" flag: use pause, continue or rollback`},
		{[]string{"service", "update", "--rollback-failure-action", "rollback", "web"}, 125, `invalid argument "rollback" for "--rollback-failure-action" flag: use pause or continue`},
		{[]string{"service", "create", "--update-order", "first", "img"}, 125, `invalid argument "first" for "--update-order" flag: use start-first or stop-first`},
		{[]string{"service", "create", "--update-max-failure-ratio", "1.5", "img"}, 125, `invalid argument "1.5" for "--update-max-failure-ratio" flag: "1.5" is not a ratio: give a number from 0 to 1`},
		{[]string{"service", "update", "--rollback-max-failure-ratio", "x", "web"}, 125, `"x" is not a ratio`},
		{[]string{"service", "create", "--update-parallelism", "-1", "img"}, 125, `invalid argument "-1" for "--update-parallelism" flag`},
		{[]string{"service", "create", "--health-tcp", "70000", "img"}, 125, `invalid argument "70000" for "--health-tcp" flag: "70000" is not a port number: give one from 1 to 65535`},
		{[]string{"service", "create", "--health-retries", "x", "img"}, 125, `invalid argument "x" for "--health-retries" flag`},
		{[]string{"service", "create", "--no-healthcheck", "--health-cmd", "true", "img"}, 1, "Error: --no-healthcheck conflicts with --health-* options"},
		{[]string{"service", "update", "--no-healthcheck", "--health-interval", "1s", "web"}, 1, "Error: --no-healthcheck conflicts with --health-* options"},
		{[]string{"service", "create", "--health-cmd", "true", "--health-tcp", "80", "img"}, 1,
			"Error: --health-cmd and --health-tcp conflict: a health check is one of a command (--health-cmd), an HTTP GET (--health-http) or a TCP connect (--health-tcp); give one"},
		{[]string{"service", "update", "--health-http", ":80/", "--health-tcp", "80", "web"}, 1, "Error: --health-http and --health-tcp conflict"},
		{[]string{"service", "create", "--health-http", "http://example.com:80/", "img"}, 1,
			`Error: --health-http "http://example.com:80/": give no host, only :PORT: the node probes the task inside its network namespace (e.g. :8080/health or https://:8443/ready)`},
		{[]string{"service", "create", "--health-http", "ftp://:21/", "img"}, 1, `Error: --health-http "ftp://:21/": scheme "ftp" is not http or https`},
		{[]string{"service", "create", "--health-http", ":0/x", "img"}, 1, `Error: --health-http ":0/x": needs a port from 1 to 65535 after the colon`},
		{[]string{"service", "create", "--health-http", "/health", "img"}, 1, `needs a port from 1 to 65535`},
		{[]string{"service", "create", "--health-retries", "-1", "img"}, 1, "Error: --health-retries -1: give 0 or more consecutive failures"},
		{[]string{"service", "update", "--rollback", "--image", "x", "web"}, 1, "Error: other flags may not be combined with --rollback"},
		{[]string{"service", "update", "--rollback", "--force", "web"}, 1, "Error: other flags may not be combined with --rollback"},
		{[]string{"service", "rollback", "--force", "web"}, 125, "unknown flag: --force"},
	} {
		args := append([]string{"-H", "unix://" + noDaemon}, tc.args...)
		stdout, _, err := run(t, args...)
		if err == nil {
			t.Errorf("%q = nil; want an error", tc.args)
			continue
		}
		if got := ExitCode(err); got != tc.code {
			t.Errorf("%q: exit status %d; want %d (%v)", tc.args, got, tc.code, err)
		}
		if msg := Message(err); !strings.Contains(msg, tc.want) {
			t.Errorf("%q says\n%s\nwant\n%s", tc.args, msg, tc.want)
		}
		if strings.Contains(err.Error(), noDaemon) || stdout != "" {
			t.Errorf("%q = %q, printed %q; want the error before any connection", tc.args, err, stdout)
		}
	}
}

// The help of the deploy flags is docker's, with docker's defaults shown
// on create and none on update (where only the flags given change).
func TestDeployFlagsHelp(t *testing.T) {
	help := func(args ...string) string {
		out, _, err := run(t, append(args, "--help")...)
		if err != nil {
			t.Fatalf("%q --help = %v", args, err)
		}
		return out
	}
	create := help("service", "create")
	for _, want := range []string{
		"--health-cmd string ", "Command to run to check health\n",
		"--health-interval duration ", "Time between running the check (ms|s|m|h)\n",
		"--health-start-interval duration ", "Time between running the check during the start period (ms|s|m|h)\n",
		"--no-healthcheck ", "Disable any container-specified HEALTHCHECK\n",
		"--health-http string ", "--health-tcp port ",
		"Maximum number of tasks updated simultaneously (0 to update all at once) (default 1)\n",
		"Duration after each task update to monitor for failure (ns|us|ms|s|m|h) (default 5s)\n",
		`Action on update failure ("pause", "continue", "rollback") (default "pause")` + "\n",
		`Update order ("start-first", "stop-first") (default "stop-first")` + "\n",
		"--update-max-failure-ratio float ", "Failure rate to tolerate during an update\n",
		`Action on rollback failure ("pause", "continue") (default "pause")` + "\n",
		"Maximum number of tasks rolled back simultaneously (0 to roll back all at once) (default 1)\n",
	} {
		if !strings.Contains(create, want) {
			t.Errorf("service create --help lacks %q", want)
		}
	}
	update := help("service", "update")
	for _, want := range []string{"--force ", "Force update even if no changes require it\n", "--rollback ", "Rollback to previous specification\n",
		"Maximum number of tasks updated simultaneously (0 to update all at once)\n", `Action on update failure ("pause", "continue", "rollback")` + "\n",
		"--health-cmd string "} {
		if !strings.Contains(update, want) {
			t.Errorf("service update --help lacks %q", want)
		}
	}
	rb := help("service", "rollback")
	for _, want := range []string{"Usage:\n  shoal service rollback [OPTIONS] SERVICE", "Revert changes to a service's configuration",
		"-d, --detach ", "Exit immediately instead of waiting for the service to converge\n", "-q, --quiet ", "Suppress progress output\n"} {
		if !strings.Contains(rb, want) {
			t.Errorf("service rollback --help lacks %q:\n%s", want, rb)
		}
	}
}

// updateRecorder is a control API with one service, keeping the update
// requests it is sent.
type updateRecorder struct {
	shoalv1.UnimplementedControlServiceServer
	mu   sync.Mutex
	svc  *shoalv1.Service
	reqs []*shoalv1.UpdateServiceRequest
}

func (s *updateRecorder) GetService(context.Context, *shoalv1.GetServiceRequest) (*shoalv1.GetServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &shoalv1.GetServiceResponse{Service: proto.Clone(s.svc).(*shoalv1.Service)}, nil
}

func (s *updateRecorder) UpdateService(_ context.Context, req *shoalv1.UpdateServiceRequest) (*shoalv1.UpdateServiceResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, proto.Clone(req).(*shoalv1.UpdateServiceRequest))
	return &shoalv1.UpdateServiceResponse{Service: s.svc}, nil
}

// What update --force, update --rollback and rollback ask of the
// manager: --force raises force_update by one and changes nothing else;
// a rollback is the request's rollback flag, at the version read.
func TestServiceUpdateRequests(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		out      string
		rollback bool
		edit     func(s *shoalv1.ServiceSpec) // what the sent spec must differ by
	}{
		{[]string{"service", "update", "-d", "--force", "web"}, "web\n", false, func(s *shoalv1.ServiceSpec) { s.Task.ForceUpdate = 8 }},
		{[]string{"service", "update", "-d", "--force", "--update-parallelism", "2", "web"}, "web\n", false, func(s *shoalv1.ServiceSpec) {
			s.Task.ForceUpdate = 8
			s.Update.Parallelism = 2
		}},
		{[]string{"service", "update", "-d", "web"}, "web\n", false, func(*shoalv1.ServiceSpec) {}},
		{[]string{"service", "update", "-d", "--rollback", "web"}, "web\n", true, func(*shoalv1.ServiceSpec) {}},
		{[]string{"service", "rollback", "-d", "web"}, "web\n", true, func(*shoalv1.ServiceSpec) {}},
		{[]string{"service", "rollback", "--detach", "-q", "web"}, "web\n", true, func(*shoalv1.ServiceSpec) {}},
	} {
		base, err := deploySpecOf(t, newSpec(), true) // every part there, as create makes it
		if err != nil {
			t.Fatal(err)
		}
		base.Mode = &shoalv1.ServiceSpec_Replicated{Replicated: &shoalv1.ReplicatedService{Replicas: 2}}
		base.Task.ForceUpdate = 7
		srv := &updateRecorder{svc: &shoalv1.Service{Id: "svc1", Meta: &shoalv1.Meta{Version: 42}, Spec: base}}
		host := serveControl(t, srv)
		var out, errOut bytes.Buffer
		if err := Run(context.Background(), append([]string{"-H", host}, tc.args...), &out, &errOut); err != nil {
			t.Errorf("%q = %v", tc.args, err)
			continue
		}
		if out.String() != tc.out {
			t.Errorf("%q printed %q; want %q", tc.args, out.String(), tc.out)
		}
		if len(srv.reqs) != 1 {
			t.Errorf("%q sent %d updates; want 1", tc.args, len(srv.reqs))
			continue
		}
		req := srv.reqs[0]
		want := proto.Clone(base).(*shoalv1.ServiceSpec)
		tc.edit(want)
		if req.GetServiceId() != "svc1" || req.GetVersion() != 42 || req.GetRollback() != tc.rollback {
			t.Errorf("%q sent service %q version %d rollback %v; want svc1, 42, %v", tc.args, req.GetServiceId(), req.GetVersion(), req.GetRollback(), tc.rollback)
		}
		if text(req.GetSpec()) != text(want) {
			t.Errorf("%q sent spec\n%s\nwant\n%s", tc.args, text(req.GetSpec()), text(want))
		}
	}
}

// A job takes a health check but no rolling update: create leaves its
// update and rollback configs unset, as docker's.
func TestCreateJobDeployFlags(t *testing.T) {
	spec, err := deploySpecOf(t, newSpec(), true, "--mode", "replicated-job", "--health-cmd", "true")
	if err != nil {
		t.Fatal(err)
	}
	if spec.GetUpdate() != nil || spec.GetRollback() != nil {
		t.Errorf("a job's create set update %s, rollback %s; want none", text(spec.GetUpdate()), text(spec.GetRollback()))
	}
	if got := spec.GetTask().GetContainer().GetHealthcheck().GetTest(); len(got) != 2 || got[1] != "true" {
		t.Errorf("a job's health check = %q; want CMD-SHELL true", got)
	}
}
