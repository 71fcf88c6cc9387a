package controlapi

import (
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/shoal-run/shoal/internal/errdefs"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// deploySpec is fullSpec with a health check and update and rollback
// configs set to valid values.
func deploySpec() *shoalv1.ServiceSpec {
	s := fullSpec()
	s.Task.Container.Healthcheck = &shoalv1.HealthConfig{
		Test:     []string{"CMD-SHELL", "curl -f http://localhost/ || exit 1"},
		Interval: durationpb.New(time.Second), Timeout: durationpb.New(time.Millisecond),
		StartPeriod: durationpb.New(0), StartInterval: durationpb.New(5 * time.Second), Retries: 3,
	}
	s.Update = &shoalv1.UpdateConfig{Parallelism: 2, Delay: durationpb.New(time.Second), Monitor: durationpb.New(5 * time.Second),
		FailureAction: shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK, MaxFailureRatio: 1, Order: shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST}
	s.Rollback = &shoalv1.UpdateConfig{FailureAction: shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE}
	return s
}

func TestValidateDeployValid(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(s *shoalv1.ServiceSpec)
	}{
		{"as made", func(*shoalv1.ServiceSpec) {}},
		{"CMD", func(s *shoalv1.ServiceSpec) { s.Task.Container.Healthcheck.Test = []string{"CMD", "/bin/check", "-q"} }},
		{"NONE", func(s *shoalv1.ServiceSpec) {
			s.Task.Container.Healthcheck = &shoalv1.HealthConfig{Test: []string{"NONE"}}
		}},
		{"image's test with new timings", func(s *shoalv1.ServiceSpec) { s.Task.Container.Healthcheck.Test = nil }},
		{"http", func(s *shoalv1.ServiceSpec) {
			s.Task.Container.Healthcheck = &shoalv1.HealthConfig{Http: "http://:8080/health"}
		}},
		{"https with a query", func(s *shoalv1.ServiceSpec) {
			s.Task.Container.Healthcheck = &shoalv1.HealthConfig{Http: "https://:8443/ready?full=1"}
		}},
		{"http without a path", func(s *shoalv1.ServiceSpec) { s.Task.Container.Healthcheck = &shoalv1.HealthConfig{Http: "http://:80"} }},
		{"tcp", func(s *shoalv1.ServiceSpec) { s.Task.Container.Healthcheck = &shoalv1.HealthConfig{TcpPort: 65535} }},
		{"ratio 0, every default", func(s *shoalv1.ServiceSpec) { s.Update = &shoalv1.UpdateConfig{}; s.Rollback = &shoalv1.UpdateConfig{} }},
	} {
		s := deploySpec()
		tc.mutate(s)
		if err := ValidateServiceSpec(s); err != nil {
			t.Errorf("%s: ValidateServiceSpec = %v; want nil", tc.name, err)
		}
	}
}

func TestValidateDeployOneBadField(t *testing.T) {
	dur := durationpb.New
	hc := func(s *shoalv1.ServiceSpec) *shoalv1.HealthConfig { return s.Task.Container.Healthcheck }
	const h = "service.spec.task.container.healthcheck"
	for _, tc := range []struct {
		name   string
		mutate func(s *shoalv1.ServiceSpec)
		field  string
		text   string
	}{
		{"interval under 1ms", func(s *shoalv1.ServiceSpec) { hc(s).Interval = dur(time.Microsecond) }, h + ".interval", "must be 0 (the default) or at least 1ms, got 1µs"},
		{"negative interval", func(s *shoalv1.ServiceSpec) { hc(s).Interval = dur(-time.Second) }, h + ".interval", "got -1s"},
		{"negative timeout", func(s *shoalv1.ServiceSpec) { hc(s).Timeout = dur(-1) }, h + ".timeout", "at least 1ms"},
		{"start period under 1ms", func(s *shoalv1.ServiceSpec) { hc(s).StartPeriod = dur(10) }, h + ".start_period", "at least 1ms"},
		{"start interval under 1ms", func(s *shoalv1.ServiceSpec) { hc(s).StartInterval = dur(999 * time.Microsecond) }, h + ".start_interval", "got 999µs"},
		{"negative retries", func(s *shoalv1.ServiceSpec) { hc(s).Retries = -1 }, h + ".retries", "must be >= 0"},
		{"unknown test kind", func(s *shoalv1.ServiceSpec) { hc(s).Test = []string{"SHELL", "true"} }, h + ".test", `test[0] must be CMD, CMD-SHELL or NONE, got "SHELL"`},
		{"CMD without a command", func(s *shoalv1.ServiceSpec) { hc(s).Test = []string{"CMD"} }, h + ".test", "needs a command"},
		{"CMD-SHELL with two words", func(s *shoalv1.ServiceSpec) { hc(s).Test = []string{"CMD-SHELL", "a", "b"} }, h + ".test", "exactly one shell command"},
		{"CMD-SHELL empty", func(s *shoalv1.ServiceSpec) { hc(s).Test = []string{"CMD-SHELL", " "} }, h + ".test", "exactly one shell command"},
		{"NONE with arguments", func(s *shoalv1.ServiceSpec) { hc(s).Test = []string{"NONE", "x"} }, h + ".test", "takes no arguments"},
		{"test and http", func(s *shoalv1.ServiceSpec) { hc(s).Http = "http://:80/" }, h, "sets test and http"},
		{"http and tcp", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).Http, hc(s).TcpPort = nil, "http://:80/", 80 }, h, "sets http and tcp_port"},
		{"http scheme", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).Http = nil, "ftp://:21/" }, h + ".http", `has scheme "ftp"`},
		{"http without scheme", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).Http = nil, ":8080/health" }, h + ".http", "is not a URL"},
		{"http with a host", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).Http = nil, "http://example.com:80/" }, h + ".http", "names a host"},
		{"http without a port", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).Http = nil, "http:///health" }, h + ".http", "no port"},
		{"http port 0", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).Http = nil, "http://:0/" }, h + ".http", "no port"},
		{"http port too big", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).Http = nil, "http://:65536/" }, h + ".http", "no port"},
		{"tcp port too big", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).TcpPort = nil, 65536 }, h + ".tcp_port", "1 to 65535, got 65536"},
		{"ratio above 1", func(s *shoalv1.ServiceSpec) { s.Update.MaxFailureRatio = 1.5 }, "service.spec.update.max_failure_ratio", "must be between 0 and 1, got 1.5"},
		{"negative ratio", func(s *shoalv1.ServiceSpec) { s.Update.MaxFailureRatio = -0.1 }, "service.spec.update.max_failure_ratio", "must be between 0 and 1"},
		{"NaN ratio", func(s *shoalv1.ServiceSpec) { s.Rollback.MaxFailureRatio = float32(math.NaN()) }, "service.spec.rollback.max_failure_ratio", "must be between 0 and 1"},
		{"negative delay", func(s *shoalv1.ServiceSpec) { s.Update.Delay = dur(-time.Second) }, "service.spec.update.delay", "must be >= 0, got -1s"},
		{"negative monitor", func(s *shoalv1.ServiceSpec) { s.Rollback.Monitor = dur(-time.Second) }, "service.spec.rollback.monitor", "must be >= 0"},
		{"rollback that rolls back", func(s *shoalv1.ServiceSpec) {
			s.Rollback.FailureAction = shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK
		}, "service.spec.rollback.failure_action", "a rollback cannot roll back on failure: use pause or continue"},
		{"unknown action", func(s *shoalv1.ServiceSpec) { s.Update.FailureAction = 7 }, "service.spec.update.failure_action", "unknown action 7"},
		{"unknown order", func(s *shoalv1.ServiceSpec) { s.Update.Order = 9 }, "service.spec.update.order", "unknown order 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := deploySpec()
			tc.mutate(s)
			err := ValidateServiceSpec(s)
			if err == nil {
				t.Fatalf("ValidateServiceSpec = nil; want an error naming %s", tc.field)
			}
			if !errdefs.Is(err, errdefs.ErrInvalid) {
				t.Errorf("ValidateServiceSpec = %v; want category ErrInvalid", err)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tc.field+": ") || !strings.Contains(msg, tc.text) || strings.Count(msg, "; ") > 0 {
				t.Errorf("ValidateServiceSpec = %q; want only %q: ...%q...", msg, tc.field, tc.text)
			}
		})
	}
}
