package cli

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/protobuf/types/known/durationpb"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// The deploy flags of `service create` and `update`: the health check
// (docker's --health-* and --no-healthcheck, and Shoal's --health-http
// and --health-tcp) and the rolling update and rollback configs
// (docker's --update-* and --rollback-*). Their values are checked as
// they are parsed, so a bad one is a flag error (exit 125) that changes
// nothing.

// docker's defaults for --update-* and --rollback-* (swarmkit's
// defaults.Service.Update and .Rollback).
const (
	defaultParallelism = 1
	defaultMonitor     = 5 * time.Second
)

// defaultUpdateConfig is docker's default update (and rollback) config.
func defaultUpdateConfig() *shoalv1.UpdateConfig {
	return &shoalv1.UpdateConfig{
		Parallelism:   defaultParallelism,
		Delay:         durationpb.New(0),
		FailureAction: shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE,
		Monitor:       durationpb.New(defaultMonitor),
		Order:         shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST,
	}
}

// positiveDuration is docker's PositiveDurationOpt: a duration that
// cannot be negative.
type positiveDuration struct{ d *time.Duration }

// String is "" for zero, so that help shows no "(default 0s)".
func (p positiveDuration) String() string {
	if *p.d == 0 {
		return ""
	}
	return p.d.String()
}
func (p positiveDuration) Type() string { return "duration" }
func (p positiveDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 500ms, 10s, 1m30s)", s)
	}
	if v < 0 {
		return errors.New("duration cannot be negative")
	}
	*p.d = v
	return nil
}

// choice is a string flag that takes one of a few words.
type choice struct {
	v     *string
	words []string
}

func (c choice) String() string { return *c.v }
func (c choice) Type() string   { return "string" }
func (c choice) Set(s string) error {
	for _, w := range c.words {
		if s == w {
			*c.v = s
			return nil
		}
	}
	return fmt.Errorf("use %s", orList(c.words))
}

// orList is "a, b or c".
func orList(words []string) string {
	if len(words) == 1 {
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// ratio is a failure ratio, 0 to 1.
type ratio struct{ v *float32 }

func (r ratio) String() string { return strconv.FormatFloat(float64(*r.v), 'g', -1, 32) }
func (r ratio) Type() string   { return "float" }
func (r ratio) Set(s string) error {
	v, err := strconv.ParseFloat(s, 32)
	if err != nil || v < 0 || v > 1 {
		return fmt.Errorf("%q is not a ratio: give a number from 0 to 1, e.g. 0.2", s)
	}
	*r.v = float32(v)
	return nil
}

// portNumber is a TCP port, or 0 for none.
type portNumber struct{ v *uint32 }

func (p portNumber) String() string { return strconv.FormatUint(uint64(*p.v), 10) }
func (p portNumber) Type() string   { return "port" }
func (p portNumber) Set(s string) error {
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return fmt.Errorf("%q is not a port number: give one from 1 to 65535", s)
	}
	*p.v = uint32(v)
	return nil
}

// healthFlags are the health check's flags.
type healthFlags struct {
	cmd, http                                     string
	tcp                                           uint32
	interval, timeout, startPeriod, startInterval time.Duration
	retries                                       int
	none                                          bool
}

// The health flags that edit a check, as opposed to --no-healthcheck.
var healthSettingFlags = []string{"health-cmd", "health-http", "health-tcp", "health-interval", "health-timeout",
	"health-retries", "health-start-period", "health-start-interval"}

func (h *healthFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&h.cmd, "health-cmd", "", "Command to run to check health")
	fs.StringVar(&h.http, "health-http", "", "Check health with an HTTP GET the node sends into the task's network namespace: [http://|https://]:PORT/PATH (2xx and 3xx are healthy)")
	fs.Var(portNumber{&h.tcp}, "health-tcp", "Check health by connecting to this TCP port inside the task's network namespace")
	fs.Var(positiveDuration{&h.interval}, "health-interval", "Time between running the check (ms|s|m|h)")
	fs.Var(positiveDuration{&h.timeout}, "health-timeout", "Maximum time to allow one check to run (ms|s|m|h)")
	fs.IntVar(&h.retries, "health-retries", 0, "Consecutive failures needed to report unhealthy")
	fs.Var(positiveDuration{&h.startPeriod}, "health-start-period", "Start period for the container to initialize before counting retries towards unstable (ms|s|m|h)")
	fs.Var(positiveDuration{&h.startInterval}, "health-start-interval", "Time between running the check during the start period (ms|s|m|h)")
	fs.BoolVar(&h.none, "no-healthcheck", false, "Disable any container-specified HEALTHCHECK")
}

// apply edits c's health check with the health flags given, as docker's
// update does (on create, c has none yet): the settings given change,
// the others stay. A check is one command, HTTP GET or TCP connect, so
// giving one kind of probe replaces the kind there was.
func (h *healthFlags) apply(fs *pflag.FlagSet, c *shoalv1.ContainerSpec) error {
	var given []string
	for _, name := range healthSettingFlags {
		if fs.Changed(name) {
			given = append(given, name)
		}
	}
	if h.none {
		if len(given) > 0 {
			return errors.New("--no-healthcheck conflicts with --health-* options")
		}
		c.Healthcheck = &shoalv1.HealthConfig{Test: []string{"NONE"}}
		return nil
	}
	if len(given) == 0 {
		return nil
	}
	var probes []string
	for _, name := range []string{"health-cmd", "health-http", "health-tcp"} {
		if fs.Changed(name) {
			probes = append(probes, "--"+name)
		}
	}
	if len(probes) > 1 {
		return fmt.Errorf("%s conflict: a health check is one of a command (--health-cmd), an HTTP GET (--health-http) or a TCP connect (--health-tcp); give one", strings.Join(probes, " and "))
	}
	if h.retries < 0 {
		return fmt.Errorf("--health-retries %d: give 0 or more consecutive failures", h.retries)
	}
	hc := c.GetHealthcheck()
	if hc == nil {
		hc = &shoalv1.HealthConfig{}
	}
	if len(hc.Test) > 0 && hc.Test[0] == "NONE" {
		hc.Test = nil
	}
	switch {
	case fs.Changed("health-cmd"):
		hc.Test, hc.Http, hc.TcpPort = nil, "", 0
		if h.cmd != "" {
			hc.Test = []string{"CMD-SHELL", h.cmd}
		}
	case fs.Changed("health-http"):
		hc.Test, hc.Http, hc.TcpPort = nil, "", 0
		if h.http != "" {
			u, err := healthHTTP(h.http)
			if err != nil {
				return err
			}
			hc.Http = u
		}
	case fs.Changed("health-tcp"):
		hc.Test, hc.Http, hc.TcpPort = nil, "", h.tcp
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
		dst  **durationpb.Duration
	}{
		{"health-interval", h.interval, &hc.Interval},
		{"health-timeout", h.timeout, &hc.Timeout},
		{"health-start-period", h.startPeriod, &hc.StartPeriod},
		{"health-start-interval", h.startInterval, &hc.StartInterval},
	} {
		if fs.Changed(d.flag) {
			*d.dst = durationpb.New(d.v)
		}
	}
	if fs.Changed("health-retries") {
		hc.Retries = int32(h.retries)
	}
	c.Healthcheck = hc
	return nil
}

// healthHTTP normalizes --health-http's [scheme://]:PORT/PATH to
// "scheme://:PORT/PATH" (http when no scheme is given, / when no path).
// There is no host: the node sends the GET to 127.0.0.1 inside the
// task's network namespace.
func healthHTTP(s string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("--health-http %q: %s (e.g. :8080/health or https://:8443/ready)", s, why)
	}
	raw := s
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return bad(fmt.Sprintf("scheme %q is not http or https", u.Scheme))
	}
	if u.User != nil || u.Hostname() != "" {
		return bad("give no host, only :PORT: the node probes the task inside its network namespace")
	}
	n, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil || n == 0 {
		return bad("needs a port from 1 to 65535 after the colon")
	}
	if u.Fragment != "" {
		return bad("a #fragment is never sent")
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	out := fmt.Sprintf("%s://:%d%s", u.Scheme, n, path)
	if u.RawQuery != "" {
		out += "?" + u.RawQuery
	}
	return out, nil
}

// updateFlags are the --update-* (or --rollback-*) flags of one config.
type updateFlags struct {
	prefix             string // "update" or "rollback"
	parallelism        uint64
	delay, monitor     time.Duration
	failureAction      string
	maxFailureRatio    float32
	order              string
	failureActionWords []string
}

func newUpdateFlags(prefix string) *updateFlags {
	u := &updateFlags{prefix: prefix, parallelism: defaultParallelism, monitor: defaultMonitor,
		failureAction: "pause", order: "stop-first", failureActionWords: []string{"pause", "continue", "rollback"}}
	if prefix == "rollback" {
		u.failureActionWords = []string{"pause", "continue"}
	}
	return u
}

func (u *updateFlags) names() []string {
	var out []string
	for _, n := range []string{"parallelism", "delay", "monitor", "failure-action", "max-failure-ratio", "order"} {
		out = append(out, u.prefix+"-"+n)
	}
	return out
}

// register adds the flags, with docker's help; create shows the defaults
// (update changes only the flags given, so it shows none, as docker's).
func (u *updateFlags) register(fs *pflag.FlagSet, create bool) {
	if !create {
		// Zero values: no "(default ...)" in update's help.
		*u = updateFlags{prefix: u.prefix, failureActionWords: u.failureActionWords}
	}
	quoted := make([]string, len(u.failureActionWords))
	for i, w := range u.failureActionWords {
		quoted[i] = strconv.Quote(w)
	}
	if u.prefix == "update" {
		fs.Uint64Var(&u.parallelism, "update-parallelism", u.parallelism, "Maximum number of tasks updated simultaneously (0 to update all at once)")
		fs.Var(positiveDuration{&u.delay}, "update-delay", "Delay between updates (ns|us|ms|s|m|h)")
		fs.Var(positiveDuration{&u.monitor}, "update-monitor", "Duration after each task update to monitor for failure (ns|us|ms|s|m|h)")
		fs.Var(choice{&u.failureAction, u.failureActionWords}, "update-failure-action", "Action on update failure ("+strings.Join(quoted, ", ")+")")
		fs.Var(ratio{&u.maxFailureRatio}, "update-max-failure-ratio", "Failure rate to tolerate during an update")
		fs.Var(choice{&u.order, []string{"start-first", "stop-first"}}, "update-order", `Update order ("start-first", "stop-first")`)
		return
	}
	fs.Uint64Var(&u.parallelism, "rollback-parallelism", u.parallelism, "Maximum number of tasks rolled back simultaneously (0 to roll back all at once)")
	fs.Var(positiveDuration{&u.delay}, "rollback-delay", "Delay between task rollbacks (ns|us|ms|s|m|h)")
	fs.Var(positiveDuration{&u.monitor}, "rollback-monitor", "Duration after each task rollback to monitor for failure (ns|us|ms|s|m|h)")
	fs.Var(choice{&u.failureAction, u.failureActionWords}, "rollback-failure-action", "Action on rollback failure ("+strings.Join(quoted, ", ")+")")
	fs.Var(ratio{&u.maxFailureRatio}, "rollback-max-failure-ratio", "Failure rate to tolerate during a rollback")
	fs.Var(choice{&u.order, []string{"start-first", "stop-first"}}, "rollback-order", `Rollback order ("start-first", "stop-first")`)
}

// apply sets the config *dst from the flags: on create every field
// (docker's defaults for the flags not given); on update only the flags
// given change, starting from docker's defaults when the service had no
// config.
func (u *updateFlags) apply(fs *pflag.FlagSet, dst **shoalv1.UpdateConfig, create bool) {
	changed := func(n string) bool { return create || fs.Changed(u.prefix+"-"+n) }
	if !create {
		given := false
		for _, n := range u.names() {
			given = given || fs.Changed(n)
		}
		if !given {
			return
		}
	}
	cfg := *dst
	if cfg == nil {
		cfg = defaultUpdateConfig()
	}
	if changed("parallelism") {
		cfg.Parallelism = u.parallelism
	}
	if changed("delay") {
		cfg.Delay = durationpb.New(u.delay)
	}
	if changed("monitor") {
		cfg.Monitor = durationpb.New(u.monitor)
	}
	if changed("failure-action") {
		cfg.FailureAction = failureAction(u.failureAction)
	}
	if changed("max-failure-ratio") {
		cfg.MaxFailureRatio = u.maxFailureRatio
	}
	if changed("order") {
		cfg.Order = updateOrder(u.order)
	}
	*dst = cfg
}

func failureAction(s string) shoalv1.UpdateFailureAction {
	switch s {
	case "continue":
		return shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_CONTINUE
	case "rollback":
		return shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_ROLLBACK
	}
	return shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE
}

func updateOrder(s string) shoalv1.UpdateOrder {
	if s == "start-first" {
		return shoalv1.UpdateOrder_UPDATE_ORDER_START_FIRST
	}
	return shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST
}

// deployFlags are the health, update and rollback flags together.
type deployFlags struct {
	health   healthFlags
	update   *updateFlags
	rollback *updateFlags
}

func (d *deployFlags) register(fs *pflag.FlagSet, create bool) {
	d.update, d.rollback = newUpdateFlags("update"), newUpdateFlags("rollback")
	d.health.register(fs)
	d.update.register(fs, create)
	d.rollback.register(fs, create)
}

func (d *deployFlags) apply(fs *pflag.FlagSet, spec *shoalv1.ServiceSpec, create bool) error {
	if err := d.health.apply(fs, spec.GetTask().GetContainer()); err != nil {
		return err
	}
	if isJobSpec(spec) {
		return nil // a job has no rolling update (checkJobFlags refuses the flags)
	}
	d.update.apply(fs, &spec.Update, create)
	d.rollback.apply(fs, &spec.Rollback, create)
	return nil
}

// check refuses, before the service is read, deploy flags that are wrong
// whatever the service's spec: conflicting health flags, a bad URL.
func (d *deployFlags) check(fs *pflag.FlagSet) error {
	return d.health.apply(fs, &shoalv1.ContainerSpec{})
}
