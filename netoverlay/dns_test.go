package netoverlay

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vishvananda/netlink"
	"go.uber.org/zap"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

func TestResolve(t *testing.T) {
	eps := map[string][]*shoalv1.OverlayEndpoint{
		"app": {
			{ServiceName: "web", Addr: "10.0.1.5", Vip: "10.0.1.2", Aliases: []string{"www"}},
			{ServiceName: "web", Addr: "10.0.1.4", Vip: "10.0.1.2", Aliases: []string{"www"}},
			{ServiceName: "rr", Addr: "10.0.1.9"},
			{ServiceName: "rr", Addr: "10.0.1.8"},
		},
		"db": {
			{ServiceName: "pg", Addr: "10.0.2.3", Vip: "10.0.2.2"},
			{ServiceName: "web", Addr: "10.0.2.7", Vip: "10.0.2.6"},
		},
		"ingress": {
			{ServiceName: "edge", Addr: "10.0.0.3", Vip: "10.0.0.2", Ingress: true},
		},
	}
	lookup := func(n string) []*shoalv1.OverlayEndpoint { return eps[n] }
	for _, tc := range []struct {
		name     string
		networks []string
		want     string // "" = not the cluster's
	}{
		{"web", []string{"app"}, "[10.0.1.2]"},
		{"WEB", []string{"app"}, "[10.0.1.2]"},
		{"www", []string{"app"}, "[10.0.1.2]"},
		{"tasks.web", []string{"app"}, "[10.0.1.4 10.0.1.5]"},
		{"tasks.www", []string{"app"}, ""},
		{"rr", []string{"app"}, "[10.0.1.8 10.0.1.9]"},
		{"tasks.rr", []string{"app"}, "[10.0.1.8 10.0.1.9]"},
		{"pg", []string{"app"}, ""},
		{"pg", []string{"app", "db"}, "[10.0.2.2]"},
		{"web", []string{"db", "app"}, "[10.0.2.6]"},
		{"edge", []string{"ingress"}, ""},
		{"example.com", []string{"app", "db"}, ""},
		{"web", nil, ""},
	} {
		got, ok := Resolve(tc.name, tc.networks, lookup)
		s := ""
		if ok {
			s = fmt.Sprint(got)
		}
		if s != tc.want {
			t.Errorf("Resolve(%q, %v) = %q; want %q", tc.name, tc.networks, s, tc.want)
		}
	}
}

func TestUpstreams(t *testing.T) {
	got := Upstreams("# comment\nnameserver 192.0.2.1\nnameserver 127.0.0.53\nsearch x\nnameserver bogus\nnameserver fd00::1\n")
	want := []string{"192.0.2.1:53", "127.0.0.53:53", "[fd00::1]:53"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Upstreams = %v; want %v", got, want)
	}
}

// A resolver inside a namespace answers cluster names over UDP and TCP,
// refuses outside names without an upstream, and stops with close.
func TestServeDNS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("namespaces need root")
	}
	l := newLab(t)
	ns := l.netns("dns")
	if err := InNetns(ns, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	}); err != nil {
		t.Fatal(err)
	}
	lookup := func(string) []*shoalv1.OverlayEndpoint {
		return []*shoalv1.OverlayEndpoint{{ServiceName: "web", Addr: "10.0.1.4", Vip: "10.0.1.2"}, {ServiceName: "web", Addr: "10.0.1.5", Vip: "10.0.1.2"}}
	}
	r, err := serveDNS(ns, []string{"app"}, lookup, nil, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	ask := func(network, name string, qtype uint16) (*dns.Msg, error) {
		var conn net.Conn
		if err := InNetns(ns, func() (err error) {
			conn, err = net.DialTimeout(network, DNSAddr, time.Second)
			return err
		}); err != nil {
			return nil, err
		}
		c := &dns.Client{Net: network, Timeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion(dns.Fqdn(name), qtype)
		resp, _, err := c.ExchangeWithConn(m, &dns.Conn{Conn: conn})
		conn.Close()
		return resp, err
	}
	cluster0, refused0 := testutil.ToFloat64(DNSQueries.WithLabelValues("cluster")), testutil.ToFloat64(DNSQueries.WithLabelValues("refused"))
	defer func() {
		// Each network asked three cluster questions and one outside.
		if got := testutil.ToFloat64(DNSQueries.WithLabelValues("cluster")) - cluster0; got != 6 {
			t.Errorf("%v cluster queries counted; want 6", got)
		}
		if got := testutil.ToFloat64(DNSQueries.WithLabelValues("refused")) - refused0; got != 2 {
			t.Errorf("%v refused queries counted; want 2", got)
		}
	}()
	for _, network := range []string{"udp", "tcp"} {
		resp, err := ask(network, "web", dns.TypeA)
		if err != nil || len(resp.Answer) != 1 || resp.Answer[0].(*dns.A).A.String() != "10.0.1.2" {
			t.Errorf("%s web = %v, %v", network, resp, err)
		}
		resp, err = ask(network, "tasks.web", dns.TypeA)
		if err != nil || len(resp.Answer) != 2 {
			t.Errorf("%s tasks.web = %v, %v", network, resp, err)
		}
		resp, err = ask(network, "web", dns.TypeAAAA)
		if err != nil || resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 0 {
			t.Errorf("%s AAAA web = %v, %v; want no data", network, resp, err)
		}
		resp, err = ask(network, "example.com", dns.TypeA)
		if err != nil || resp.Rcode != dns.RcodeRefused {
			t.Errorf("%s example.com without upstream = %v, %v; want refused", network, resp, err)
		}
	}
}
