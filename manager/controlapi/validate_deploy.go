package controlapi

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// The deploy settings of a service spec: its health check and its
// update and rollback configs. Each error names the field by its path in
// the spec.

// minHealthDuration is docker's smallest non-zero health check interval,
// timeout, start period and start interval.
const minHealthDuration = time.Millisecond

// healthField is the path of a health check field.
const healthField = "service.spec.task.container.healthcheck"

// validateHealthConfig checks a container's health check: docker's
// durations and retries, one probe (a CMD, CMD-SHELL or NONE test, an
// http URL or a tcp_port) at most.
func validateHealthConfig(f *fieldErrors, hc *shoalv1.HealthConfig) {
	if hc == nil {
		return
	}
	for _, d := range []struct {
		name string
		v    *durationpb.Duration
	}{
		{"interval", hc.GetInterval()}, {"timeout", hc.GetTimeout()},
		{"start_period", hc.GetStartPeriod()}, {"start_interval", hc.GetStartInterval()},
	} {
		if d.v == nil {
			continue
		}
		if v := d.v.AsDuration(); v != 0 && v < minHealthDuration {
			f.add(healthField+"."+d.name, "must be 0 (the default) or at least %s, got %s", minHealthDuration, v)
		}
	}
	if r := hc.GetRetries(); r < 0 {
		f.add(healthField+".retries", "must be >= 0 (0 is the default, 3), got %d", r)
	}
	var probes []string
	if len(hc.GetTest()) > 0 {
		probes = append(probes, "test")
	}
	if hc.GetHttp() != "" {
		probes = append(probes, "http")
	}
	if hc.GetTcpPort() != 0 {
		probes = append(probes, "tcp_port")
	}
	if len(probes) > 1 {
		f.add(healthField, "sets %s: a check is one command (test), HTTP GET (http) or TCP connect (tcp_port), so set only one", strings.Join(probes, " and "))
	}
	if t := hc.GetTest(); len(t) > 0 {
		switch t[0] {
		case "NONE":
			if len(t) > 1 {
				f.add(healthField+".test", `["NONE"] disables the check and takes no arguments, got %q`, t)
			}
		case "CMD":
			if len(t) < 2 || t[1] == "" {
				f.add(healthField+".test", `["CMD", ...] needs a command to run, e.g. ["CMD", "/bin/check", "--quick"]`)
			}
		case "CMD-SHELL":
			if len(t) != 2 || strings.TrimSpace(t[1]) == "" {
				f.add(healthField+".test", `["CMD-SHELL", command] needs exactly one shell command, e.g. ["CMD-SHELL", "curl -f http://localhost/ || exit 1"], got %q`, t)
			}
		default:
			f.add(healthField+".test", "test[0] must be CMD, CMD-SHELL or NONE, got %q", t[0])
		}
	}
	if u := hc.GetHttp(); u != "" {
		if why := badHealthURL(u); why != "" {
			f.add(healthField+".http", "%q %s: use scheme://:PORT/PATH with scheme http or https, e.g. http://:8080/health", u, why)
		}
	}
	if p := hc.GetTcpPort(); p > 65535 {
		f.add(healthField+".tcp_port", "must be a port from 1 to 65535, got %d", p)
	}
}

// badHealthURL says what is wrong with an http check's URL, or "".
func badHealthURL(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "is not a URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Sprintf("has scheme %q", u.Scheme)
	case u.Opaque != "" || u.User != nil || u.Hostname() != "":
		return "names a host (the node probes 127.0.0.1 inside the task's network namespace)"
	case u.Fragment != "":
		return "has a #fragment"
	case u.Path != "" && !strings.HasPrefix(u.Path, "/"):
		return "has a relative path"
	}
	if n, err := strconv.ParseUint(u.Port(), 10, 16); err != nil || n == 0 {
		return "has no port from 1 to 65535"
	}
	return ""
}

// validateUpdateConfig checks an update config (spec.update) or, with
// rollback, a rollback config (spec.rollback), which cannot itself roll
// back on failure.
func validateUpdateConfig(f *fieldErrors, uc *shoalv1.UpdateConfig, rollback bool) {
	if uc == nil {
		return
	}
	field := "service.spec.update"
	if rollback {
		field = "service.spec.rollback"
	}
	for _, d := range []struct {
		name string
		v    *durationpb.Duration
	}{{"delay", uc.GetDelay()}, {"monitor", uc.GetMonitor()}} {
		if d.v != nil && d.v.AsDuration() < 0 {
			f.add(field+"."+d.name, "must be >= 0, got %s", d.v.AsDuration())
		}
	}
	if r := float64(uc.GetMaxFailureRatio()); math.IsNaN(r) || r < 0 || r > 1 {
		f.add(field+".max_failure_ratio", "must be between 0 and 1, got %g", r)
	}
	switch a := uc.GetFailureAction(); {
	case a == shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK && rollback:
		f.add(field+".failure_action", "a rollback cannot roll back on failure: use pause or continue")
	case shoalv1.UpdateFailureAction_name[int32(a)] == "":
		f.add(field+".failure_action", "unknown action %d: use pause, continue or rollback", a)
	}
	if o := uc.GetOrder(); shoalv1.UpdateOrder_name[int32(o)] == "" {
		f.add(field+".order", "unknown order %d: use stop-first or start-first", o)
	}
}
