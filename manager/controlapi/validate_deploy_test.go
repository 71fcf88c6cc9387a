package controlapi

import (
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

func TestValidateHealthValid(t *testing.T) {
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

func TestValidateHealthOneBadField(t *testing.T) {
	dur := durationpb.New
	hc := func(s *shoalv1.ServiceSpec) *shoalv1.HealthConfig { return s.Task.Container.Healthcheck }
	for _, tc := range []struct {
		name   string
		mutate func(s *shoalv1.ServiceSpec)
		field  string
		text   string
	}{
		{"interval under 1ms", func(s *shoalv1.ServiceSpec) { hc(s).Interval = dur(time.Microsecond) }, "service.health_interval", "must be 0 (the default) or at least 1ms, got 1µs"},
		{"negative interval", func(s *shoalv1.ServiceSpec) { hc(s).Interval = dur(-time.Second) }, "service.health_interval", "got -1s"},
		{"negative timeout", func(s *shoalv1.ServiceSpec) { hc(s).Timeout = dur(-1) }, "service.health_timeout", "at least 1ms"},
		{"start period under 1ms", func(s *shoalv1.ServiceSpec) { hc(s).StartPeriod = dur(10) }, "service.health_start_period", "at least 1ms"},
		{"start interval under 1ms", func(s *shoalv1.ServiceSpec) { hc(s).StartInterval = dur(999 * time.Microsecond) }, "service.health_start_interval", "got 999µs"},
		{"negative retries", func(s *shoalv1.ServiceSpec) { hc(s).Retries = -1 }, "service.health_retries", "must be >= 0"},
		{"unknown test kind", func(s *shoalv1.ServiceSpec) { hc(s).Test = []string{"SHELL", "true"} }, "service.health_cmd", `test[0] must be CMD, CMD-SHELL or NONE, got "SHELL"`},
		{"CMD without a command", func(s *shoalv1.ServiceSpec) { hc(s).Test = []string{"CMD"} }, "service.health_cmd", "needs a command"},
		{"CMD-SHELL with two words", func(s *shoalv1.ServiceSpec) { hc(s).Test = []string{"CMD-SHELL", "a", "b"} }, "service.health_cmd", "exactly one shell command"},
		{"CMD-SHELL empty", func(s *shoalv1.ServiceSpec) { hc(s).Test = []string{"CMD-SHELL", " "} }, "service.health_cmd", "exactly one shell command"},
		{"NONE with arguments", func(s *shoalv1.ServiceSpec) { hc(s).Test = []string{"NONE", "x"} }, "service.health_cmd", "takes no arguments"},
		{"test and http", func(s *shoalv1.ServiceSpec) { hc(s).Http = "http://:80/" }, "service.healthcheck", "sets test and http"},
		{"http and tcp", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).Http, hc(s).TcpPort = nil, "http://:80/", 80 }, "service.healthcheck", "sets http and tcp_port"},
		{"http scheme", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).Http = nil, "ftp://:21/" }, "service.health_http", `has scheme "ftp"`},
		{"http without scheme", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).Http = nil, ":8080/health" }, "service.health_http", "is not a URL"},
		{"http with a host", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).Http = nil, "http://example.com:80/" }, "service.health_http", "names a host"},
		{"http without a port", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).Http = nil, "http:///health" }, "service.health_http", "no port"},
		{"http port 0", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).Http = nil, "http://:0/" }, "service.health_http", "no port"},
		{"http port too big", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).Http = nil, "http://:65536/" }, "service.health_http", "no port"},
		{"tcp port too big", func(s *shoalv1.ServiceSpec) { hc(s).Test, hc(s).TcpPort = nil, 65536 }, "service.health_tcp", "1 to 65535, got 65536"},
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
