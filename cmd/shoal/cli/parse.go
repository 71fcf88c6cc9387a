package cli

import (
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"

	"github.com/shoal-run/shoal/internal/ctrspec"
	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// parseBytes reads sizes like docker: 512, 64k, 64m, 1g, 1.5GiB, 100MB
// (binary units throughout).
func parseBytes(s string) (int64, error) { return ctrspec.ParseSize(s) }

// parseCPUs reads a decimal CPU count (0.5) as nano-CPUs.
func parseCPUs(s string) (int64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v < 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, fmt.Errorf("%q is not a CPU count (e.g. 0.5 or 2)", s)
	}
	if v*1e9 >= math.MaxInt64 {
		return 0, fmt.Errorf("%q is too many CPUs", s)
	}
	return int64(math.Round(v * 1e9)), nil
}

// parsePortsFlag reads the values of a --publish flag.
func parsePortsFlag(flag string, in []string) ([]*shoalv1.PortConfig, error) {
	var out []*shoalv1.PortConfig
	for _, s := range in {
		p, err := parsePortFlag(flag, s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// parsePort reads -p 8080:80[/udp] or the long form
// published=8080,target=80[,protocol=udp][,mode=host].
func parsePort(s string) (*shoalv1.PortConfig, error) { return parsePortFlag("--publish", s) }

// parsePortFlag is parsePort for a flag that takes ports.
func parsePortFlag(flag, s string) (*shoalv1.PortConfig, error) {
	p := &shoalv1.PortConfig{Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_TCP, PublishMode: shoalv1.PublishMode_PUBLISH_MODE_INGRESS}
	bad := func(why string) (*shoalv1.PortConfig, error) {
		return nil, fmt.Errorf("%s %q: %s (e.g. 8080:80, 53:53/udp or published=8080,target=80,mode=host)", flag, s, why)
	}
	port := func(v string) (uint32, error) {
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil {
			return 0, fmt.Errorf("%q is not a port number", v)
		}
		return uint32(n), nil
	}
	if strings.Contains(s, "=") {
		for _, kv := range strings.Split(s, ",") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return bad(fmt.Sprintf("%q is not key=value", kv))
			}
			var err error
			switch strings.TrimSpace(k) {
			case "published":
				p.PublishedPort, err = port(v)
			case "target":
				p.TargetPort, err = port(v)
			case "protocol":
				p.Protocol, err = parseProtocol(v)
			case "mode":
				switch v {
				case "ingress":
					p.PublishMode = shoalv1.PublishMode_PUBLISH_MODE_INGRESS
				case "host":
					p.PublishMode = shoalv1.PublishMode_PUBLISH_MODE_HOST
				default:
					err = fmt.Errorf("mode %q is not ingress or host", v)
				}
			default:
				err = fmt.Errorf("unknown key %q", k)
			}
			if err != nil {
				return bad(err.Error())
			}
		}
		if p.TargetPort == 0 {
			return bad("target is required")
		}
		return p, nil
	}
	spec, proto, hasProto := strings.Cut(s, "/")
	if hasProto {
		var err error
		if p.Protocol, err = parseProtocol(proto); err != nil {
			return bad(err.Error())
		}
	}
	pub, target, ok := strings.Cut(spec, ":")
	var err error
	if !ok {
		if p.TargetPort, err = port(spec); err != nil {
			return bad(err.Error())
		}
		return p, nil
	}
	if p.PublishedPort, err = port(pub); err != nil {
		return bad(err.Error())
	}
	if p.TargetPort, err = port(target); err != nil {
		return bad(err.Error())
	}
	return p, nil
}

func parseProtocol(v string) (shoalv1.PortProtocol, error) {
	switch strings.ToLower(v) {
	case "tcp":
		return shoalv1.PortProtocol_PORT_PROTOCOL_TCP, nil
	case "udp":
		return shoalv1.PortProtocol_PORT_PROTOCOL_UDP, nil
	}
	return 0, fmt.Errorf("protocol %q is not tcp or udp", v)
}

func parseRestartCondition(s string) (shoalv1.RestartCondition, error) {
	switch s {
	case "none":
		return shoalv1.RestartCondition_RESTART_CONDITION_NONE, nil
	case "on-failure":
		return shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE, nil
	case "any":
		return shoalv1.RestartCondition_RESTART_CONDITION_ANY, nil
	}
	return 0, fmt.Errorf("--restart-condition %q: use none, on-failure or any", s)
}

// applyKV adds key=value pairs to and removes keys from a copy of m.
func applyKV(m map[string]string, add, rm []string, flag string) (map[string]string, error) {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	for _, kv := range add {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("%s %q: want key=value", flag, kv)
		}
		out[k] = v
	}
	for _, k := range rm {
		delete(out, k)
	}
	return out, nil
}

// updateEnv adds KEY=VALUE entries (replacing the same key; the last of
// several adds of one key wins) and removes keys.
func updateEnv(env, add, rm []string) []string {
	last := map[string]int{}
	for i, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		last[k] = i
	}
	var adds []string
	for i, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		if last[k] == i {
			adds = append(adds, kv)
		}
	}
	add = adds
	drop := map[string]bool{}
	for _, k := range rm {
		drop[k] = true
	}
	for _, kv := range add {
		k, _, _ := strings.Cut(kv, "=")
		drop[k] = true
	}
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	return append(out, add...)
}

// updateList adds items not present and removes items.
func updateList(list, add, rm []string) []string {
	drop := map[string]bool{}
	for _, r := range rm {
		drop[r] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, x := range append(append([]string{}, list...), add...) {
		if !drop[x] && !seen[x] {
			out = append(out, x)
			seen[x] = true
		}
	}
	return out
}

// formatPorts renders published ports like docker service ls.
func formatPorts(ports []*shoalv1.PortConfig) string {
	var parts []string
	for _, p := range ports {
		proto := "tcp"
		if p.GetProtocol() == shoalv1.PortProtocol_PORT_PROTOCOL_UDP {
			proto = "udp"
		}
		parts = append(parts, fmt.Sprintf("*:%d->%d/%s", p.GetPublishedPort(), p.GetTargetPort(), proto))
	}
	return strings.Join(parts, ", ")
}
