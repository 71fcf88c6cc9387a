package controlapi

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// A service's health check. Each error names the field as the other
// checks do, after the flag that sets it: service.health_interval for
// --health-interval, service.health_cmd for the test (--health-cmd).
// (The update and rollback configs are checked by validateUpdateConfig.)

// minHealthDuration is docker's smallest non-zero health check interval,
// timeout, start period and start interval.
const minHealthDuration = time.Millisecond

// healthField is the name of a health check field: service.health_<flag>.
func healthField(name string) string { return "service.health_" + name }

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
			f.add(healthField(d.name), "must be 0 (the default) or at least %s, got %s", minHealthDuration, v)
		}
	}
	if r := hc.GetRetries(); r < 0 {
		f.add(healthField("retries"), "must be >= 0 (0 is the default, 3), got %d", r)
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
		f.add("service.healthcheck", "sets %s: a check is one command (test), HTTP GET (http) or TCP connect (tcp_port), so set only one", strings.Join(probes, " and "))
	}
	if t := hc.GetTest(); len(t) > 0 {
		switch t[0] {
		case "NONE":
			if len(t) > 1 {
				f.add(healthField("cmd"), `["NONE"] disables the check and takes no arguments, got %q`, t)
			}
		case "CMD":
			if len(t) < 2 || t[1] == "" {
				f.add(healthField("cmd"), `["CMD", ...] needs a command to run, e.g. ["CMD", "/bin/check", "--quick"]`)
			}
		case "CMD-SHELL":
			if len(t) != 2 || strings.TrimSpace(t[1]) == "" {
				f.add(healthField("cmd"), `["CMD-SHELL", command] needs exactly one shell command, e.g. ["CMD-SHELL", "curl -f http://localhost/ || exit 1"], got %q`, t)
			}
		default:
			f.add(healthField("cmd"), "test[0] must be CMD, CMD-SHELL or NONE, got %q", t[0])
		}
	}
	if u := hc.GetHttp(); u != "" {
		if why := badHealthURL(u); why != "" {
			f.add(healthField("http"), "%q %s: use scheme://:PORT/PATH with scheme http or https, e.g. http://:8080/health", u, why)
		}
	}
	if p := hc.GetTcpPort(); p > 65535 {
		f.add(healthField("tcp"), "must be a port from 1 to 65535, got %d", p)
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
