package cli

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// `service inspect`: JSON or a --format template (newInspectCmd), or with
// --pretty docker's human-friendly view (cli/command/service/formatter.go
// in docker/cli), with its UpdateStatus, UpdateConfig, RollbackConfig and
// Healthcheck blocks.

func newServiceInspectCmd(g *globals) *cobra.Command {
	get := func(ctx context.Context, c shoalv1.ControlServiceClient, ref string) (*shoalv1.Service, error) {
		resp, err := c.GetService(ctx, &shoalv1.GetServiceRequest{ServiceId: ref})
		return resp.GetService(), err
	}
	cmd := newInspectCmd(g, "inspect SERVICE [SERVICE...]", "Show services in detail (JSON)", get)
	withPretty(g, cmd, "--format is incompatible with human friendly format", get,
		func(ctx context.Context, c shoalv1.ControlServiceClient, w *strings.Builder, svcs []*shoalv1.Service) error {
			now := time.Now()
			for _, s := range svcs {
				nets := map[string]string{}
				for _, n := range s.GetSpec().GetNetworks() {
					if resp, err := c.GetNetwork(ctx, &shoalv1.GetNetworkRequest{NetworkId: n.GetTarget()}); err == nil {
						nets[n.GetTarget()] = resp.GetNetwork().GetSpec().GetName()
					}
				}
				prettyService(w, s, nets, now)
			}
			return nil
		})
	return cmd
}

// updateStateName is docker's swarm.UpdateState: "rollback_started".
func updateStateName(s shoalv1.UpdateState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "UPDATE_STATE_"))
}

func failureActionName(a shoalv1.UpdateFailureAction) string {
	if a == shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_UNSPECIFIED {
		a = shoalv1.UpdateFailureAction_UPDATE_FAILURE_ACTION_PAUSE
	}
	return enumName(a.String(), "UPDATE_FAILURE_ACTION_")
}

func updateOrderName(o shoalv1.UpdateOrder) string {
	if o == shoalv1.UpdateOrder_UPDATE_ORDER_UNSPECIFIED {
		o = shoalv1.UpdateOrder_UPDATE_ORDER_STOP_FIRST
	}
	return enumName(o.String(), "UPDATE_ORDER_")
}

// bytesSize is docker's units.BytesSize: 256MiB, 1.5GiB.
func bytesSize(n int64) string {
	v := float64(n)
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strconv.FormatFloat(v, 'g', 4, 64) + units[i]
}

// prettyService writes docker's `service inspect --pretty` of s. nets
// names the networks the spec attaches by ID.
func prettyService(w *strings.Builder, s *shoalv1.Service, nets map[string]string, now time.Time) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	spec := s.GetSpec()
	p("")
	p("ID:\t\t%s", s.GetId())
	p("Name:\t\t%s", spec.GetName())
	if len(spec.GetLabels()) > 0 {
		p("Labels:")
		for _, k := range slices.Sorted(maps.Keys(spec.GetLabels())) {
			if v := spec.GetLabels()[k]; v != "" {
				p(" %s=%s", k, v)
			} else {
				p(" %s", k)
			}
		}
	}
	w.WriteString(prettyMode(s)) // service_jobs.go: the four modes, and a job's run
	if st := s.GetUpdateStatus(); st.GetState() != shoalv1.UpdateState_UPDATE_STATE_UNSPECIFIED {
		p("UpdateStatus:")
		p(" State:\t\t%s", updateStateName(st.GetState()))
		if st.GetStartedAt() != nil {
			p(" Started:\t%s ago", humanDuration(now.Sub(st.GetStartedAt().AsTime())))
		}
		if st.GetState() == shoalv1.UpdateState_UPDATE_STATE_COMPLETED && st.GetCompletedAt() != nil {
			p(" Completed:\t%s ago", humanDuration(now.Sub(st.GetCompletedAt().AsTime())))
		}
		p(" Message:\t%s", st.GetMessage())
	}
	pl := spec.GetTask().GetPlacement()
	p("Placement:")
	if len(pl.GetConstraints()) > 0 {
		p(" Constraints:\t%v", pl.GetConstraints())
	}
	if len(pl.GetPreferences()) > 0 {
		var prefs []string
		for _, pref := range pl.GetPreferences() {
			prefs = append(prefs, "spread="+pref.GetSpreadDescriptor())
		}
		p(" Preferences:   %v", prefs)
	}
	if n := pl.GetMaxReplicas(); n > 0 {
		p(" Max Replicas Per Node:   %d", n)
	}
	prettyUpdateConfig(p, "UpdateConfig", "Update order", spec.GetUpdate())
	prettyUpdateConfig(p, "RollbackConfig", "Rollback order", spec.GetRollback())
	c := spec.GetTask().GetContainer()
	p("ContainerSpec:")
	p(" Image:\t\t%s", c.GetImage())
	if len(c.GetArgs()) > 0 {
		p(" Args:\t\t%s ", strings.Join(c.GetArgs(), " "))
	}
	if len(c.GetEnv()) > 0 {
		p(" Env:\t\t%s ", strings.Join(c.GetEnv(), " "))
	}
	if c.GetDir() != "" {
		p(" Dir:\t\t%s", c.GetDir())
	}
	if c.GetUser() != "" {
		p(" User: %s", c.GetUser())
	}
	if len(c.GetConfigs()) > 0 {
		p("Configs:")
		for _, r := range c.GetConfigs() {
			p(" Target:\t%s", r.GetFile().GetName())
			p("  Source:\t%s", r.GetConfigName())
		}
	}
	if len(c.GetSecrets()) > 0 {
		p("Secrets:")
		for _, r := range c.GetSecrets() {
			p(" Target:\t%s", r.GetFile().GetName())
			p("  Source:\t%s", r.GetSecretName())
		}
	}
	res := spec.GetTask().GetResources()
	rsv, lim := res.GetReservations(), res.GetLimits()
	hasRsv := rsv.GetNanoCpus() > 0 || rsv.GetMemoryBytes() > 0
	hasLim := lim.GetNanoCpus() > 0 || lim.GetMemoryBytes() > 0
	if hasRsv || hasLim {
		p("Resources:")
		for _, r := range []struct {
			name string
			has  bool
			v    *shoalv1.Resources
		}{{"Reservations", hasRsv, rsv}, {"Limits", hasLim, lim}} {
			if !r.has {
				continue
			}
			p(" %s:", r.name)
			if n := r.v.GetNanoCpus(); n > 0 {
				p("  CPU:\t\t%s", strconv.FormatFloat(float64(n)/1e9, 'g', -1, 64))
			}
			if m := r.v.GetMemoryBytes(); m > 0 {
				p("  Memory:\t%s", bytesSize(m))
			}
		}
	}
	if len(spec.GetNetworks()) > 0 {
		var names []string
		for _, n := range spec.GetNetworks() {
			name := nets[n.GetTarget()]
			if name == "" {
				name = n.GetTarget()
			}
			names = append(names, " "+name)
		}
		p("Networks:%s ", strings.Join(names, ""))
	}
	mode := "vip"
	if spec.GetEndpoint().GetMode() == shoalv1.EndpointMode_ENDPOINT_MODE_DNSRR {
		mode = "dnsrr"
	}
	p("Endpoint Mode:\t%s", mode)
	ports := s.GetEndpoint().GetPorts()
	if len(ports) == 0 {
		ports = spec.GetEndpoint().GetPorts()
	}
	if len(ports) > 0 {
		p("Ports:")
		for _, port := range ports {
			p(" PublishedPort = %d", port.GetPublishedPort())
			p("  Protocol = %s", enumName(protocolOf(port).String(), "PORT_PROTOCOL_"))
			p("  TargetPort = %d", port.GetTargetPort())
			p("  PublishMode = %s", enumName(modeOf(port).String(), "PUBLISH_MODE_"))
		}
	}
	if hc := c.GetHealthcheck(); hc != nil {
		p(" Healthcheck:")
		p("  Interval = %s", hc.GetInterval().AsDuration())
		p("  Retries = %d", hc.GetRetries())
		p("  StartPeriod =\t%s", hc.GetStartPeriod().AsDuration())
		p("  StartInterval =\t%s", hc.GetStartInterval().AsDuration())
		p("  Timeout =\t%s", hc.GetTimeout().AsDuration())
		if len(hc.GetTest()) > 0 {
			p("  Tests:")
			for _, t := range hc.GetTest() {
				p("\t Test = %s", t)
			}
		}
		if hc.GetHttp() != "" {
			p("  HTTP = %s", hc.GetHttp())
		}
		if hc.GetTcpPort() != 0 {
			p("  TCPPort = %d", hc.GetTcpPort())
		}
	}
}

// prettyUpdateConfig writes an UpdateConfig or RollbackConfig block, as
// docker does: the delay and monitoring period only when set.
func prettyUpdateConfig(p func(string, ...any), title, orderLabel string, u *shoalv1.UpdateConfig) {
	if u == nil {
		return
	}
	p("%s:", title)
	p(" Parallelism:\t%d", u.GetParallelism())
	if d := u.GetDelay().AsDuration(); d > 0 {
		p(" Delay:\t\t%s", d)
	}
	p(" On failure:\t%s", failureActionName(u.GetFailureAction()))
	if m := u.GetMonitor().AsDuration(); m > 0 {
		p(" Monitoring Period: %s", m)
	}
	p(" Max failure ratio: %s", strconv.FormatFloat(float64(u.GetMaxFailureRatio()), 'g', -1, 32))
	p(" %s %s", padRight(orderLabel+":", len("Max failure ratio:")), updateOrderName(u.GetOrder()))
}

func padRight(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return s + strings.Repeat(" ", n-len(s))
}
