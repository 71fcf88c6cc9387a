package cli

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"512", 512},
		{"10b", 10},
		{"64k", 64 << 10},
		{"64K", 64 << 10},
		{"2kb", 2 << 10},
		{"3KiB", 3 << 10},
		{"64m", 64 << 20},
		{"100MB", 100 << 20},
		{"256mib", 256 << 20},
		{"1g", 1 << 30},
		{"1.5GiB", 3 << 29},
		{"2gb", 2 << 30},
		{"1t", 1 << 40},
		{"1tib", 1 << 40},
		{" 256m ", 256 << 20},
		{"1.5k", 1536},
		{"0.5m", 512 << 10},
	} {
		got, err := parseBytes(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "  ", "m", "gib", "-1", "-1m", "abc", "1x", "1mm", "1 g b", "inf", "NaN", "1e400", "1,5g"} {
		if got, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) = %d, nil; want an error", in, got)
		} else if strings.TrimSpace(in) != "" && !strings.Contains(err.Error(), "is not a size (e.g. 512m, 1g)") {
			t.Errorf("parseBytes(%q) error = %q; want it to show an example", in, err)
		}
	}
}

func TestParseCPUs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"0.5", 5e8},
		{"1", 1e9},
		{"2", 2e9},
		{"1.5", 15e8},
		{"0.001", 1e6},
		{"0.000000001", 1},
		{"0.1", 1e8},
		{"1.005", 1005e6}, // 1.005e9 is 1004999999.99... in float64: rounded, not truncated
		{"64", 64e9},
	} {
		got, err := parseCPUs(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseCPUs(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "-0.5", "half", "1c", "Inf", "NaN", "1e400", "2 "} {
		if got, err := parseCPUs(in); err == nil || !strings.Contains(err.Error(), "is not a CPU count") {
			t.Errorf("parseCPUs(%q) = %d, %v; want a CPU count error", in, got, err)
		}
	}
}

// TestParseSizesOverflow: a size or CPU count too big for int64 must be an
// error, not a wrapped negative number.
func TestParseSizesOverflow(t *testing.T) {
	for _, in := range []string{"9999999999t", "1e19", "8388608t"} {
		if got, err := parseBytes(in); err == nil {
			t.Errorf("parseBytes(%q) = %d, nil; want an error", in, got)
		}
	}
	for _, in := range []string{"1e10", "9223372037"} {
		if got, err := parseCPUs(in); err == nil {
			t.Errorf("parseCPUs(%q) = %d, nil; want an error", in, got)
		}
	}
}

func TestParsePort(t *testing.T) {
	const (
		tcpP    = shoalv1.PortProtocol_PORT_PROTOCOL_TCP
		udpP    = shoalv1.PortProtocol_PORT_PROTOCOL_UDP
		ingress = shoalv1.PublishMode_PUBLISH_MODE_INGRESS
		host    = shoalv1.PublishMode_PUBLISH_MODE_HOST
	)
	port := func(published, target uint32, proto shoalv1.PortProtocol, mode shoalv1.PublishMode) *shoalv1.PortConfig {
		return &shoalv1.PortConfig{PublishedPort: published, TargetPort: target, Protocol: proto, PublishMode: mode}
	}
	for _, tc := range []struct {
		in   string
		want *shoalv1.PortConfig
	}{
		{"8080:80", port(8080, 80, tcpP, ingress)},
		{"53:53/udp", port(53, 53, udpP, ingress)},
		{"53:53/UDP", port(53, 53, udpP, ingress)},
		{"443:8443/tcp", port(443, 8443, tcpP, ingress)},
		{"80", port(0, 80, tcpP, ingress)},
		{"80/udp", port(0, 80, udpP, ingress)},
		{"65535:1", port(65535, 1, tcpP, ingress)},
		{"published=8080,target=80", port(8080, 80, tcpP, ingress)},
		{"target=80,published=8080", port(8080, 80, tcpP, ingress)},
		{"published=53,target=53,protocol=udp", port(53, 53, udpP, ingress)},
		{"published=8080,target=80,mode=host", port(8080, 80, tcpP, host)},
		{"published=8080,target=80,protocol=udp,mode=ingress", port(8080, 80, udpP, ingress)},
		{"target=80", port(0, 80, tcpP, ingress)},
		{" published=8080, target=80", port(8080, 80, tcpP, ingress)},
	} {
		got, err := parsePort(tc.in)
		if err != nil || !proto.Equal(got, tc.want) {
			t.Errorf("parsePort(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, why string }{
		{"nonsense", `"nonsense" is not a port number`},
		{"", `"" is not a port number`},
		{"8080:", `"" is not a port number`},
		{":80", `"" is not a port number`},
		{"8080:80:90", `"80:90" is not a port number`},
		{"70000:80", `"70000" is not a port number`},
		{"8080:65536", `"65536" is not a port number`},
		{"-1:80", `"-1" is not a port number`},
		{"8080:80/sctp", `protocol "sctp" is not tcp or udp`},
		{"8080:80/", `protocol "" is not tcp or udp`},
		{"published=8080", "target is required"},
		{"target=0", "target is required"},
		{"published=8080,target=80,mode=global", `mode "global" is not ingress or host`},
		{"published=8080,target=80,protocol=icmp", `protocol "icmp" is not tcp or udp`},
		{"published=8080,target=80,name=web", `unknown key "name"`},
		{"published=8080,target", `"target" is not key=value`},
		{"published=8080,target=80,", `"" is not key=value`},
		{"published=x,target=80", `"x" is not a port number`},
		{"published=8080,target=99999", `"99999" is not a port number`},
	} {
		got, err := parsePort(tc.in)
		if err == nil {
			t.Errorf("parsePort(%q) = %v, nil; want an error saying %s", tc.in, got, tc.why)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "--publish "+quote(tc.in)+": ") || !strings.Contains(msg, tc.why) || !strings.Contains(msg, "e.g. 8080:80") {
			t.Errorf("parsePort(%q) error = %q; want --publish %q: ...%s... with an example", tc.in, msg, tc.in, tc.why)
		}
	}
}

func quote(s string) string { return `"` + s + `"` }

func TestParseRestartCondition(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want shoalv1.RestartCondition
	}{
		{"none", shoalv1.RestartCondition_RESTART_CONDITION_NONE},
		{"on-failure", shoalv1.RestartCondition_RESTART_CONDITION_ON_FAILURE},
		{"any", shoalv1.RestartCondition_RESTART_CONDITION_ANY},
	} {
		if got, err := parseRestartCondition(tc.in); err != nil || got != tc.want {
			t.Errorf("parseRestartCondition(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "always", "on_failure", "unless-stopped"} {
		if got, err := parseRestartCondition(in); err == nil || !strings.Contains(err.Error(), "--restart-condition "+quote(in)+": use none, on-failure or any") {
			t.Errorf("parseRestartCondition(%q) = %v, %v; want an error listing the conditions", in, got, err)
		}
	}
}

func TestApplyKV(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      map[string]string
		add, rm []string
		want    map[string]string
	}{
		{"nil, nothing", nil, nil, nil, map[string]string{}},
		{"add to nil", nil, []string{"a=1", "b="}, nil, map[string]string{"a": "1", "b": ""}},
		{"key without value", nil, []string{"c"}, nil, map[string]string{"c": ""}},
		{"value with =", nil, []string{"url=a=b"}, nil, map[string]string{"url": "a=b"}},
		{"replace", map[string]string{"a": "1", "b": "2"}, []string{"a=9"}, nil, map[string]string{"a": "9", "b": "2"}},
		{"remove", map[string]string{"a": "1", "b": "2"}, nil, []string{"a", "missing"}, map[string]string{"b": "2"}},
		{"add then remove", map[string]string{"a": "1"}, []string{"b=2"}, []string{"b"}, map[string]string{"a": "1"}},
		{"last add wins", nil, []string{"a=1", "a=2"}, nil, map[string]string{"a": "2"}},
	} {
		var orig map[string]string
		if tc.in != nil {
			orig = maps.Clone(tc.in)
		}
		got, err := applyKV(tc.in, tc.add, tc.rm, "--label")
		if err != nil || got == nil || !maps.Equal(got, tc.want) {
			t.Errorf("%s: applyKV(%v, %v, %v) = %v, %v; want %v", tc.name, tc.in, tc.add, tc.rm, got, err, tc.want)
		}
		if !maps.Equal(tc.in, orig) {
			t.Errorf("%s: applyKV changed its input to %v; want %v", tc.name, tc.in, orig)
		}
	}
	for _, add := range []string{"=x", "="} {
		if got, err := applyKV(map[string]string{"a": "1"}, []string{"ok=1", add}, nil, "--label-add"); err == nil || !strings.Contains(err.Error(), "--label-add "+quote(add)+": want key=value") {
			t.Errorf("applyKV(add %q) = %v, %v; want an error naming --label-add", add, got, err)
		}
	}
}

func TestUpdateEnv(t *testing.T) {
	for _, tc := range []struct {
		env, add, rm, want []string
	}{
		{nil, nil, nil, nil},
		{[]string{"A=1"}, nil, nil, []string{"A=1"}},
		{nil, []string{"A=1"}, nil, []string{"A=1"}},
		{[]string{"A=1", "B=2", "C=3"}, []string{"B=20", "D=4"}, []string{"C"}, []string{"A=1", "B=20", "D=4"}},
		{[]string{"A=1", "B=2"}, nil, []string{"A", "Z"}, []string{"B=2"}},
		{[]string{"A=1", "AB=2"}, nil, []string{"A"}, []string{"AB=2"}}, // keys, not prefixes
		{[]string{"A=1"}, []string{"A"}, nil, []string{"A"}},            // pass-through replaces
		{[]string{"A=1"}, []string{"A=2"}, []string{"A"}, []string{"A=2"}},
		{[]string{"A=x=y", "B=1"}, []string{"A=z"}, nil, []string{"B=1", "A=z"}},
	} {
		in := slices.Clone(tc.env)
		got := updateEnv(tc.env, tc.add, tc.rm)
		if !slices.Equal(got, tc.want) {
			t.Errorf("updateEnv(%q, add %q, rm %q) = %q; want %q", tc.env, tc.add, tc.rm, got, tc.want)
		}
		if !slices.Equal(tc.env, in) {
			t.Errorf("updateEnv changed its input to %q; want %q", tc.env, in)
		}
	}
}

func TestUpdateList(t *testing.T) {
	for _, tc := range []struct {
		list, add, rm, want []string
	}{
		{nil, nil, nil, nil},
		{[]string{"a", "b"}, []string{"c"}, nil, []string{"a", "b", "c"}},
		{[]string{"a", "b"}, []string{"c", "a"}, []string{"b"}, []string{"a", "c"}},
		{[]string{"a", "a", "b"}, nil, nil, []string{"a", "b"}},
		{[]string{"a"}, []string{"b", "b"}, nil, []string{"a", "b"}},
		{[]string{"a"}, []string{"b"}, []string{"b"}, []string{"a"}},
		{[]string{"node.role==worker"}, nil, []string{"node.role==worker"}, nil},
	} {
		in := slices.Clone(tc.list)
		got := updateList(tc.list, tc.add, tc.rm)
		if !slices.Equal(got, tc.want) {
			t.Errorf("updateList(%q, add %q, rm %q) = %q; want %q", tc.list, tc.add, tc.rm, got, tc.want)
		}
		if !slices.Equal(tc.list, in) {
			t.Errorf("updateList changed its input to %q; want %q", tc.list, in)
		}
	}
}

func TestFormatPorts(t *testing.T) {
	for _, tc := range []struct {
		ports []*shoalv1.PortConfig
		want  string
	}{
		{nil, ""},
		{[]*shoalv1.PortConfig{{PublishedPort: 8080, TargetPort: 80, Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_TCP}}, "*:8080->80/tcp"},
		{[]*shoalv1.PortConfig{{PublishedPort: 8080, TargetPort: 80}}, "*:8080->80/tcp"},
		{[]*shoalv1.PortConfig{
			{PublishedPort: 8080, TargetPort: 80, Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_TCP},
			{PublishedPort: 53, TargetPort: 5353, Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_UDP, PublishMode: shoalv1.PublishMode_PUBLISH_MODE_HOST},
		}, "*:8080->80/tcp, *:53->5353/udp"},
	} {
		if got := formatPorts(tc.ports); got != tc.want {
			t.Errorf("formatPorts(%v) = %q; want %q", tc.ports, got, tc.want)
		}
	}
}
