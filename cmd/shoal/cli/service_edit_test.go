package cli

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func ports(t *testing.T, specs ...string) []*shoalv1.PortConfig {
	t.Helper()
	out, err := parsePortsFlag("--publish", specs)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func portStrings(ps []*shoalv1.PortConfig) string {
	var out []string
	for _, p := range ps {
		out = append(out, portKey(p))
	}
	return strings.Join(out, " ")
}

func TestUpdatePorts(t *testing.T) {
	udp := &shoalv1.PortConfig{Protocol: shoalv1.PortProtocol_PORT_PROTOCOL_UDP, TargetPort: 53, PublishedPort: 53}
	unset := &shoalv1.PortConfig{TargetPort: 443, PublishedPort: 8443} // protocol and mode unset: tcp, ingress
	for _, tc := range []struct {
		name    string
		cur     []*shoalv1.PortConfig
		add, rm []string
		want    []*shoalv1.PortConfig
	}{
		{"rm by target port", ports(t, "8080:80", "9090:90"), nil, []string{"80"}, ports(t, "9090:90")},
		{"rm published:target", ports(t, "8080:80", "9090:90"), nil, []string{"8080:80"}, ports(t, "9090:90")},
		// docker matches on the target: every port onto 80 goes.
		{"rm by target drops every published port of it", ports(t, "8080:80", "8081:80", "9090:90"), nil, []string{"1:80"}, ports(t, "9090:90")},
		{"rm long form", ports(t, "8080:80", "9090:90"), nil, []string{"published=8080,target=80"}, ports(t, "9090:90")},
		{"rm tcp leaves udp", append(ports(t, "53:53"), udp), nil, []string{"53"}, []*shoalv1.PortConfig{udp}},
		{"rm udp leaves tcp", append(ports(t, "53:53"), udp), nil, []string{"53/udp"}, ports(t, "53:53")},
		{"rm ingress leaves host mode", ports(t, "8080:80", "published=8081,target=80,mode=host"), nil, []string{"80"},
			ports(t, "published=8081,target=80,mode=host")},
		{"rm host mode", ports(t, "8080:80", "published=8081,target=80,mode=host"), nil, []string{"target=80,mode=host"}, ports(t, "8080:80")},
		{"rm matches unset protocol and mode as tcp ingress", []*shoalv1.PortConfig{unset}, nil, []string{"443"}, nil},
		{"rm of a port not published changes nothing", ports(t, "8080:80"), nil, []string{"81"}, ports(t, "8080:80")},
		{"add", ports(t, "8080:80"), []string{"9090:90"}, nil, ports(t, "8080:80", "9090:90")},
		{"add what is there is a no-op", ports(t, "8080:80"), []string{"8080:80", "8080:80"}, nil, ports(t, "8080:80")},
		{"rm then add moves a port", ports(t, "8080:80"), []string{"8081:80"}, []string{"80"}, ports(t, "8081:80")},
	} {
		e := &shoalv1.EndpointSpec{Ports: tc.cur}
		if err := updatePorts(e, tc.add, tc.rm); err != nil {
			t.Errorf("%s: updatePorts(%s, add %q, rm %q) = %v", tc.name, portStrings(tc.cur), tc.add, tc.rm, err)
			continue
		}
		if got, want := portStrings(e.Ports), portStrings(tc.want); got != want {
			t.Errorf("%s: updatePorts(%s, add %q, rm %q) = %s; want %s", tc.name, portStrings(tc.cur), tc.add, tc.rm, got, want)
		}
	}
}

func TestUpdatePortsErrors(t *testing.T) {
	for _, tc := range []struct {
		add, rm []string
		want    string
	}{
		{nil, []string{"http"}, `--publish-rm "http": "http" is not a port number`},
		{nil, []string{"80/sctp"}, `--publish-rm "80/sctp": protocol "sctp" is not tcp or udp`},
		{nil, []string{"published=8080"}, `--publish-rm "published=8080": target is required`},
		{[]string{"8080:x"}, nil, `--publish-add "8080:x": "x" is not a port number`},
	} {
		cur := ports(t, "8080:80")
		e := &shoalv1.EndpointSpec{Ports: cur}
		err := updatePorts(e, tc.add, tc.rm)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("updatePorts(add %q, rm %q) = %v; want %q", tc.add, tc.rm, err, tc.want)
		}
		if portStrings(e.Ports) != portStrings(cur) {
			t.Errorf("updatePorts(add %q, rm %q) failed but changed the ports to %s", tc.add, tc.rm, portStrings(e.Ports))
		}
	}
}

// fakeNetworks resolves like the server's store.Find: ID, name or ID prefix.
func fakeNetworks(ref string) (objectRef, error) {
	for _, n := range []objectRef{{"n1aaaa", "app"}, {"n2bbbb", "db"}, {"n3cccc", "123"}} {
		if ref == n.id || ref == n.name || (len(ref) >= 3 && strings.HasPrefix(n.id, ref)) {
			return n, nil
		}
	}
	return objectRef{}, errors.New(`network "` + ref + `": not found`)
}

func targets(nets []*shoalv1.NetworkAttachment) string {
	var out []string
	for _, n := range nets {
		s := n.GetTarget()
		if len(n.GetAliases()) > 0 {
			s += "(" + strings.Join(n.GetAliases(), ",") + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func TestUpdateNetworks(t *testing.T) {
	att := func(id string, aliases ...string) *shoalv1.NetworkAttachment {
		return &shoalv1.NetworkAttachment{Target: id, Aliases: aliases}
	}
	for _, tc := range []struct {
		name    string
		cur     []*shoalv1.NetworkAttachment
		add, rm []string
		want    string
	}{
		{"rm by name", []*shoalv1.NetworkAttachment{att("n1aaaa"), att("n2bbbb")}, nil, []string{"app"}, "n2bbbb"},
		{"rm by ID", []*shoalv1.NetworkAttachment{att("n1aaaa"), att("n2bbbb")}, nil, []string{"n2bbbb"}, "n1aaaa"},
		{"rm by ID prefix", []*shoalv1.NetworkAttachment{att("n1aaaa"), att("n2bbbb")}, nil, []string{"n1a"}, "n2bbbb"},
		{"rm of a numeric name", []*shoalv1.NetworkAttachment{att("n3cccc"), att("n2bbbb")}, nil, []string{"123"}, "n2bbbb"},
		{"rm an attachment stored by name", []*shoalv1.NetworkAttachment{att("app")}, nil, []string{"n1aaaa"}, ""},
		{"rm of one not attached changes nothing", []*shoalv1.NetworkAttachment{att("n1aaaa")}, nil, []string{"db"}, "n1aaaa"},
		{"add by name stores the ID", []*shoalv1.NetworkAttachment{att("n1aaaa")}, []string{"db"}, nil, "n1aaaa n2bbbb"},
		{"add by ID", nil, []string{"n2bbbb"}, nil, "n2bbbb"},
		{"rm and add", []*shoalv1.NetworkAttachment{att("n1aaaa")}, []string{"db"}, []string{"app"}, "n2bbbb"},
		{"rm then add back", []*shoalv1.NetworkAttachment{att("n1aaaa", "web")}, []string{"app"}, []string{"app"}, "n1aaaa"},
		{"kept attachments keep their aliases", []*shoalv1.NetworkAttachment{att("n1aaaa", "web", "www"), att("n2bbbb")}, nil, []string{"db"}, "n1aaaa(web,www)"},
	} {
		cur := make([]*shoalv1.NetworkAttachment, len(tc.cur))
		for i, a := range tc.cur {
			cur[i] = proto.Clone(a).(*shoalv1.NetworkAttachment)
		}
		got, err := updateNetworks(cur, tc.add, tc.rm, fakeNetworks)
		if err != nil {
			t.Errorf("%s: updateNetworks(%s, add %q, rm %q) = %v", tc.name, targets(tc.cur), tc.add, tc.rm, err)
			continue
		}
		if targets(got) != tc.want {
			t.Errorf("%s: updateNetworks(%s, add %q, rm %q) = %q; want %q", tc.name, targets(tc.cur), tc.add, tc.rm, targets(got), tc.want)
		}
	}
	for _, tc := range []struct {
		add, rm []string
		want    string
	}{
		{nil, []string{"nope"}, `--network-rm nope: network "nope": not found`},
		{[]string{"nope"}, nil, `--network-add nope: network "nope": not found`},
		{[]string{"app"}, nil, "--network-add app: service is already attached to network app"},
		{[]string{"n1aaaa"}, nil, "--network-add n1aaaa: service is already attached to network app"},
		{[]string{"db", "db"}, nil, "--network-add db: service is already attached to network db"},
	} {
		_, err := updateNetworks([]*shoalv1.NetworkAttachment{att("n1aaaa")}, tc.add, tc.rm, fakeNetworks)
		if err == nil || err.Error() != tc.want {
			t.Errorf("updateNetworks(add %q, rm %q) = %v; want %q", tc.add, tc.rm, err, tc.want)
		}
	}
}

func TestUpdatePrefs(t *testing.T) {
	pref := func(ds ...string) []*shoalv1.PlacementPreference {
		var out []*shoalv1.PlacementPreference
		for _, d := range ds {
			out = append(out, &shoalv1.PlacementPreference{SpreadDescriptor: d})
		}
		return out
	}
	str := func(ps []*shoalv1.PlacementPreference) string {
		var out []string
		for _, p := range ps {
			out = append(out, p.GetSpreadDescriptor())
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		name    string
		cur     []*shoalv1.PlacementPreference
		add, rm []string
		want    string
		err     string
	}{
		{"add appends", pref("node.labels.zone"), []string{"spread=node.labels.rack"}, nil, "node.labels.zone node.labels.rack", ""},
		{"add to none", nil, []string{"spread=node.labels.a", "spread=node.labels.b"}, nil, "node.labels.a node.labels.b", ""},
		{"rm removes the match", pref("node.labels.zone", "node.labels.rack"), nil, []string{"spread=node.labels.zone"}, "node.labels.rack", ""},
		{"rm of none matching", pref("node.labels.zone"), nil, []string{"spread=node.labels.dc"}, "node.labels.zone", ""},
		{"rm then add", pref("node.labels.zone", "node.labels.rack"), []string{"spread=node.labels.zone"}, []string{"spread=node.labels.zone"}, "node.labels.rack node.labels.zone", ""},
		{"bad add", pref("node.labels.zone"), []string{"node.labels.rack"}, nil, "node.labels.zone", `--placement-pref-add "node.labels.rack": use spread=node.labels.<key>`},
		{"bad rm", pref("node.labels.zone"), nil, []string{"spread="}, "node.labels.zone", `--placement-pref-rm "spread=": use spread=node.labels.<key>`},
	} {
		p := &shoalv1.Placement{Preferences: tc.cur}
		err := updatePrefs(p, tc.add, tc.rm)
		if tc.err != "" && (err == nil || err.Error() != tc.err) || tc.err == "" && err != nil {
			t.Errorf("%s: updatePrefs = %v; want %q", tc.name, err, tc.err)
		}
		if str(p.Preferences) != tc.want {
			t.Errorf("%s: updatePrefs(%s, add %q, rm %q) = %q; want %q", tc.name, str(tc.cur), tc.add, tc.rm, str(p.Preferences), tc.want)
		}
	}
}
