package netoverlay

import (
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	shoalv1 "github.com/shoal-run/shoal/proto/shoal/v1"
)

// DNSAddr is where a container's resolver is, inside its own network
// namespace (as in Docker); its /etc/resolv.conf names it.
const DNSAddr = "127.0.0.11:53"

// ResolvConf is the /etc/resolv.conf of a container on overlay networks.
const ResolvConf = "nameserver 127.0.0.11\noptions ndots:0\n"

// dnsTTL is short: tasks come and go within seconds.
const dnsTTL = 1

// Lookup is the cluster's part of name resolution, for one container:
// the endpoints of the networks it is on.
type Lookup func(network string) []*shoalv1.OverlayEndpoint

// Resolve answers name (lower case, without the trailing dot) for a
// container on networks: <service> or an alias is the service's VIP on
// the first network that has it (or, in DNS round-robin mode, its tasks'
// addresses); tasks.<service> is the addresses of its running tasks.
// Services on networks the container is not on are not visible. ok is
// false when the name is not the cluster's.
func Resolve(name string, networks []string, lookup Lookup) (addrs []netip.Addr, ok bool) {
	tasks := false
	if rest, found := strings.CutPrefix(name, "tasks."); found {
		name, tasks = rest, true
	}
	for _, nw := range networks {
		var vips, ips []netip.Addr
		seen := map[netip.Addr]bool{}
		for _, e := range lookup(nw) {
			if e.GetIngress() {
				continue // the routing mesh is not for discovery
			}
			match := strings.EqualFold(e.GetServiceName(), name)
			if !tasks {
				for _, a := range e.GetAliases() {
					match = match || strings.EqualFold(a, name)
				}
			}
			if !match {
				continue
			}
			if ip, err := netip.ParseAddr(e.GetAddr()); err == nil && !seen[ip] {
				seen[ip] = true
				ips = append(ips, ip)
			}
			if v, err := netip.ParseAddr(e.GetVip()); err == nil && !seen[v] {
				seen[v] = true
				vips = append(vips, v)
			}
		}
		if len(ips) == 0 {
			continue
		}
		if !tasks && len(vips) > 0 {
			return vips[:1], true
		}
		sort.Slice(ips, func(i, j int) bool { return ips[i].Less(ips[j]) })
		return ips, true
	}
	return nil, false
}

// resolver serves one container's DNS on DNSAddr inside its namespace.
// DNSQueries counts the questions the node's embedded DNS servers were
// asked, by how they were answered: cluster (a name of the cluster),
// forwarded (an upstream answered), refused (not the cluster's and no
// upstream), failed (no upstream answered), malformed. The daemon
// registers it with its metrics.
var DNSQueries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "shoal_node_dns_queries_total",
	Help: "Questions the node's embedded DNS servers were asked, by result: cluster, forwarded, refused, failed, malformed."}, []string{"result"})

func init() {
	for _, r := range []string{"cluster", "forwarded", "refused", "failed", "malformed"} {
		DNSQueries.WithLabelValues(r)
	}
}

type resolver struct {
	networks []string
	lookup   Lookup
	upstream []string
	log      *zap.Logger
	servers  []*dns.Server
	wg       sync.WaitGroup
}

// serveDNS starts a resolver inside the namespace at ns (UDP and TCP on
// DNSAddr). Names outside the cluster go to upstream ("host:53"), or get
// a refusal when there is none.
func serveDNS(ns string, networks []string, lookup Lookup, upstream []string, log *zap.Logger) (*resolver, error) {
	r := &resolver{networks: networks, lookup: lookup, upstream: upstream, log: log}
	var pc net.PacketConn
	var ln net.Listener
	err := InNetns(ns, func() (err error) {
		if pc, err = net.ListenPacket("udp", DNSAddr); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp", DNSAddr); err != nil {
			pc.Close()
			return err
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.servers = []*dns.Server{
		{PacketConn: pc, Handler: r, ReadTimeout: 2 * time.Second},
		{Listener: ln, Handler: r, ReadTimeout: 2 * time.Second, WriteTimeout: 2 * time.Second},
	}
	for _, s := range r.servers {
		r.wg.Add(1)
		go func(s *dns.Server) {
			defer r.wg.Done()
			if err := s.ActivateAndServe(); err != nil {
				r.log.Debug("dns: serve", zap.Error(err))
			}
		}(s)
	}
	return r, nil
}

// close stops the resolver and waits for it.
func (r *resolver) close() {
	for _, s := range r.servers {
		if err := s.Shutdown(); err != nil {
			// Not started yet: closing the sockets ends it.
			if s.PacketConn != nil {
				s.PacketConn.Close()
			}
			if s.Listener != nil {
				s.Listener.Close()
			}
		}
	}
	r.wg.Wait()
}

// ServeDNS implements dns.Handler.
func (r *resolver) ServeDNS(w dns.ResponseWriter, q *dns.Msg) {
	defer w.Close()
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) != 1 {
		DNSQueries.WithLabelValues("malformed").Inc()
		m.Rcode = dns.RcodeFormatError
		_ = w.WriteMsg(m)
		return
	}
	qq := q.Question[0]
	name := strings.ToLower(strings.TrimSuffix(qq.Name, "."))
	addrs, ours := Resolve(name, r.networks, r.lookup)
	if !ours {
		r.forward(w, q, m)
		return
	}
	DNSQueries.WithLabelValues("cluster").Inc()
	if qq.Qtype == dns.TypeA || qq.Qtype == dns.TypeANY {
		for _, a := range addrs {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: qq.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: dnsTTL}, A: a.AsSlice()})
		}
	}
	// Other types of a cluster name: no data, not an error.
	_ = w.WriteMsg(m)
}

// forward asks the node's upstream resolvers, in order.
func (r *resolver) forward(w dns.ResponseWriter, q, m *dns.Msg) {
	if len(r.upstream) == 0 {
		DNSQueries.WithLabelValues("refused").Inc()
		m.Authoritative = false
		m.Rcode = dns.RcodeRefused
		_ = w.WriteMsg(m)
		return
	}
	network := "udp"
	if _, tcp := w.RemoteAddr().(*net.TCPAddr); tcp {
		network = "tcp"
	}
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	for _, up := range r.upstream {
		resp, _, err := c.Exchange(q, up)
		if err == nil && resp != nil {
			DNSQueries.WithLabelValues("forwarded").Inc()
			_ = w.WriteMsg(resp)
			return
		}
		r.log.Debug("dns: upstream", zap.String("upstream", up), zap.Error(err))
	}
	DNSQueries.WithLabelValues("failed").Inc()
	m.Authoritative = false
	m.Rcode = dns.RcodeServerFailure
	_ = w.WriteMsg(m)
}

// Upstreams reads the nameservers of a resolv.conf ("host:53" each). The
// daemon forwards from the node's own namespace, so a loopback resolver
// (systemd-resolved's 127.0.0.53) works too.
func Upstreams(resolvConf string) []string {
	var out []string
	for _, line := range strings.Split(resolvConf, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if ip, err := netip.ParseAddr(f[1]); err == nil {
				out = append(out, net.JoinHostPort(ip.String(), "53"))
			}
		}
	}
	return out
}
